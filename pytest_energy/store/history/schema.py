"""The history's tables, built on first use (SQLAlchemy is imported only where a store is opened), their
schema version and the steps that migrate an older store (:data:`MIGRATIONS`, run by the engine), and
the rows one run becomes.

Tables: ``meta`` (the schema version), ``runs`` (one row per session, the whole RunInfo as JSON too),
``records`` (one row per record of a run, the whole record as JSON too, so a report can be rebuilt
from history alone) and ``verdicts`` (every verdict of the run). Text columns have no length limit on
either backend.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ...core.record import Record, RunInfo, finite

if TYPE_CHECKING:
    from ...judge.verdict import Judgement

#: Version of the tables below; a store of another version is migrated (:data:`MIGRATIONS`) or refused.
SCHEMA_VERSION = 3
#: How a store of an older version becomes the current one: version -> what the step from it adds.
MIGRATIONS = {1: "runs.branch (the git branch of each run)",
              2: "text without a length limit in every text column (PostgreSQL refused a run whose test id, "
                 "branch or commit was longer than its varchar; SQLite never limits)"}


_BUILT: dict[str, Any] = {}


def _schema() -> Any:
    """The tables, built on first use so that SQLAlchemy is imported only where a store is opened
    (and again where SQLAlchemy was imported anew, as pytester's module snapshots make it be)."""
    import sqlalchemy as sa

    if _BUILT.get("sqlalchemy") is sa:
        return _BUILT["metadata"]
    metadata = sa.MetaData()
    text = sa.Text
    real = sa.Double
    sa.Table("meta", metadata, sa.Column("name", text, primary_key=True),
             sa.Column("value", text, nullable=False))
    runs = sa.Table(
        "runs", metadata,
        sa.Column("run_id", text, primary_key=True),
        sa.Column("started", text, nullable=False),
        sa.Column("finished", text),
        sa.Column("fingerprint_id", text),
        sa.Column("git_commit", text),
        sa.Column("exitstatus", sa.Integer),
        sa.Column("baseline_set", text),
        sa.Column("gate_failed", sa.Integer),
        sa.Column("record_count", sa.Integer),
        sa.Column("regressions", sa.Integer),
        sa.Column("total_net_joules", real),
        sa.Column("total_gross_joules", real),
        sa.Column("co2_grams", real),
        sa.Column("info_json", text, nullable=False),
        sa.Column("branch", text),  # schema 2
    )
    sa.Index("runs_by_started", runs.c.started)
    # A record's and a verdict's key holds its name, which may be longer than a PostgreSQL btree entry
    # (2,704 bytes: a parametrised test id of thousands of characters): those tables are indexed by
    # run and, on PostgreSQL, by a hash of the name; names are unique in a run by construction
    # (History.append refuses a run where they repeat, before writing).
    records = sa.Table(
        "records", metadata,
        sa.Column("run_id", text, nullable=False),
        sa.Column("name", text, nullable=False),
        sa.Column("nodeid", text, nullable=False),
        sa.Column("form", text),
        sa.Column("unit", text),
        sa.Column("iterations", sa.Integer),
        sa.Column("per_iteration_net_joules", real),
        sa.Column("per_iteration_gross_joules", real),
        sa.Column("per_iteration_uncertainty_joules", real),
        sa.Column("normalised_net", real),
        sa.Column("total_net_joules", real),
        sa.Column("total_gross_joules", real),
        sa.Column("duration_seconds", real),
        sa.Column("co2_grams", real),
        sa.Column("methods", text),
        sa.Column("outcome", text),
        sa.Column("quality_json", text),
        sa.Column("verdict_status", text),
        sa.Column("verdict_ratio", real),
        sa.Column("record_json", text, nullable=False),
    )
    sa.Index("records_by_run", records.c.run_id)
    sa.Index("records_by_name", records.c.name, postgresql_using="hash")
    verdicts = sa.Table(
        "verdicts", metadata,
        sa.Column("run_id", text, nullable=False),
        sa.Column("name", text, nullable=False),
        sa.Column("metric", text, nullable=False),
        sa.Column("baseline_set", text, nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("ratio", real),
        sa.Column("low", real),
        sa.Column("high", real),
        sa.Column("threshold", real),
        sa.Column("gating", sa.Integer),
        sa.Column("message", text),
    )
    sa.Index("verdicts_by_run", verdicts.c.run_id)
    _BUILT.update(sqlalchemy=sa, metadata=metadata)
    return metadata


def _table(name: str) -> Any:
    return _schema().tables[name]


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _rows_of(run_info: RunInfo, records: list[Record], judgement: Judgement | None) -> tuple[dict, list, list]:
    """The run's row, its records' rows and its verdicts' rows, as the tables hold them."""
    verdicts = judgement.verdicts if judgement is not None else []
    baseline_set = judgement.baseline_set if judgement is not None else None
    energy = {v.name: v for v in verdicts if v.metric == "energy" and v.baseline_set == baseline_set}
    valid = [r for r in records if r.valid]
    run_row = {
        "run_id": run_info.run_id, "started": run_info.started, "finished": run_info.finished,
        "fingerprint_id": run_info.fingerprint.get("id"), "git_commit": run_info.git_commit,
        "branch": run_info.branch, "exitstatus": run_info.exitstatus, "baseline_set": baseline_set,
        "gate_failed": int(bool(judgement and judgement.gate_failed)), "record_count": len(records),
        "regressions": len({v.name for v in verdicts if v.status == "regression"}),  # records, as the gate's head line
        "total_net_joules": _number(sum(r.total_net_joules for r in valid)),
        "total_gross_joules": _number(sum(r.total_gross_joules for r in valid)),
        "co2_grams": _number(sum(r.co2_grams for r in valid)),
        "info_json": json.dumps(finite(run_info.to_dict()), sort_keys=True, allow_nan=False),
    }
    record_rows = []
    for record in records:
        verdict = energy.get(record.name)
        quality = {k: v.get("value") if isinstance(v, dict) else v for k, v in record.quality.items()}
        record_rows.append({
            "run_id": run_info.run_id, "name": record.name, "nodeid": record.nodeid, "form": record.form,
            "unit": record.unit, "iterations": record.iterations,
            "per_iteration_net_joules": _number(record.per_iteration_net_joules),
            "per_iteration_gross_joules": _number(record.per_iteration_gross_joules),
            "per_iteration_uncertainty_joules": _number(record.per_iteration_uncertainty_joules),
            "normalised_net": _number(record.normalised.get("per_iteration_net")),
            "total_net_joules": _number(record.total_net_joules),
            "total_gross_joules": _number(record.total_gross_joules),
            "duration_seconds": _number(record.duration_seconds), "co2_grams": _number(record.co2_grams),
            "methods": ",".join(record.methods), "outcome": record.outcome,
            "quality_json": json.dumps(finite(quality), sort_keys=True),
            "verdict_status": verdict.status if verdict else None,
            "verdict_ratio": _number(verdict.ratio) if verdict and verdict.ratio is not None else None,
            "record_json": json.dumps(finite(record.to_dict()), sort_keys=True, allow_nan=False),
        })
    verdict_rows = [
        {"run_id": run_info.run_id, "name": v.name, "metric": v.metric, "baseline_set": v.baseline_set,
         "status": v.status, "ratio": _number(v.ratio), "low": _number(v.low), "high": _number(v.high),
         "threshold": _number(v.threshold), "gating": int(v.gating), "message": v.message}
        for v in verdicts
    ]
    return run_row, record_rows, verdict_rows
