"""The history's queries: stored runs, one record across runs, every record's series, full records and
verdicts of many runs in one query, and what the fleet's nightly report reads (:meth:`History.fleet_records`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ...core.record import Component, Record
from .engine import HistoryEngine
from .schema import _table

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass
class RunRow:
    """One stored run."""

    run_id: str
    started: str
    finished: str | None
    fingerprint_id: str | None
    git_commit: str | None
    exitstatus: int | None
    baseline_set: str | None
    gate_failed: bool
    records: int
    regressions: int
    total_net_joules: float | None
    total_gross_joules: float | None
    co2_grams: float | None
    info: dict[str, Any] = field(default_factory=dict)  # the RunInfo as stored
    branch: str | None = None  # the git branch checked out (None before schema 2, or outside git)


@dataclass
class CaseRow:
    """One record of one run, as a point of a case's history."""

    run_id: str
    started: str
    git_commit: str | None
    fingerprint_id: str | None
    per_iteration_net_joules: float | None
    per_iteration_gross_joules: float | None
    per_iteration_uncertainty_joules: float | None
    normalised_net: float | None
    iterations: int | None
    unit: str | None
    methods: list[str]
    co2_grams: float | None
    outcome: str | None
    quality: dict[str, float]
    status: str | None  # energy verdict against the run's baseline set
    ratio: float | None


@dataclass
class FleetRecord:
    """One record of a run as the fleet's nightly report reads it: what its device kinds and their
    joules need, and its verdicts, without rebuilding the whole record (its rounds above all)."""

    name: str
    iterations: int  # over its valid rounds
    components: list[Component]
    fingerprint: dict[str, Any]  # one dict per distinct fingerprint of the window: treat it as read-only
    verdicts: dict[str, tuple[str, str]]  # metric -> (status, message), against its run's baseline set
    outcome: str = ""  # the test's outcome, as the record's (OUTCOMES)
    # The record's criteria and quality as Record holds them (its budgets and whether each was met), read
    # for a record that did not pass only: what the nightly says of a missed budget; {} for the others.
    criteria: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)


class History(HistoryEngine):
    """The history store at ``location``: an SQLite file path, or a database URL
    (``postgresql://user@host:5432/db``; ``postgresql+psycopg://`` too). Reading never creates a
    store; :meth:`append` does, its schema with it.

    While another process holds an SQLite store's lock, an operation waits up to
    :data:`LOCK_WAIT_SECONDS`, saying so through ``notify`` (stderr) after :data:`LOCK_NOTICE_SECONDS`.
    Every failure, an unreachable server and Ctrl-C during the wait included, is one
    :class:`HistoryError` line naming its cause.
    """

    # -- reading ---------------------------------------------------------------------------------
    def _rows(self, query: Any, limit: int | None = None) -> list[Any]:
        """The rows of one query (the first ``limit`` where given)."""
        return self._use(lambda connection: list(connection.execute(query if limit is None else query.limit(limit))))

    def stored(self, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` the store holds. Asked before appending them, so it creates the store
        (and its schema) where there is none yet, as :meth:`append` would."""
        import sqlalchemy as sa

        wanted = sorted(set(run_ids))
        if not wanted:
            return set()
        runs = _table("runs")

        def held(connection: Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(wanted), 500):  # bound the statement's parameters
                query = sa.select(runs.c.run_id).where(runs.c.run_id.in_(wanted[start:start + 500]))
                found.update(row.run_id for row in connection.execute(query))
            return found

        return self._use(held, create=True)

    def runs(self, limit: int | None = None) -> list[RunRow]:
        """Stored runs, newest first; the ``limit`` newest where given."""
        import sqlalchemy as sa

        runs = _table("runs")
        rows = self._rows(sa.select(runs).order_by(runs.c.started.desc(), runs.c.run_id.desc()), limit)
        return [RunRow(
            run_id=row.run_id, started=row.started, finished=row.finished, fingerprint_id=row.fingerprint_id,
            git_commit=row.git_commit, exitstatus=row.exitstatus, baseline_set=row.baseline_set,
            gate_failed=bool(row.gate_failed), records=row.record_count or 0, regressions=row.regressions or 0,
            total_net_joules=row.total_net_joules, total_gross_joules=row.total_gross_joules,
            co2_grams=row.co2_grams, info=json.loads(row.info_json), branch=row.branch,
        ) for row in rows]

    def case_history(self, name: str, limit: int | None = None) -> list[CaseRow]:
        """One record name across runs, oldest first; the ``limit`` newest where given."""
        import sqlalchemy as sa

        r, u = _table("records"), _table("runs")
        query = (sa.select(r.c.run_id, u.c.started, u.c.git_commit, u.c.fingerprint_id, r.c.per_iteration_net_joules,
                           r.c.per_iteration_gross_joules, r.c.per_iteration_uncertainty_joules, r.c.normalised_net,
                           r.c.iterations, r.c.unit, r.c.methods, r.c.co2_grams, r.c.outcome, r.c.quality_json,
                           r.c.verdict_status, r.c.verdict_ratio)
                 .join(u, u.c.run_id == r.c.run_id).where(r.c.name == name)
                 .order_by(u.c.started.desc(), r.c.run_id.desc()))
        return [
            CaseRow(*row[:10], [m for m in (row[10] or "").split(",") if m], row[11], row[12],
                    json.loads(row[13] or "{}"), row[14], row[15])
            for row in reversed(self._rows(query, limit))
        ]

    def series(self, fingerprint_id: str | None = None) -> dict[str, list[tuple[str, float | None, str | None]]]:
        """Every record name -> [(run started, per-iteration net joules, energy verdict status)], oldest
        first; only runs on ``fingerprint_id`` where given (joules of different hardware do not mix)."""
        import sqlalchemy as sa

        r, u = _table("records"), _table("runs")
        query = sa.select(r.c.name, u.c.started, r.c.per_iteration_net_joules, r.c.verdict_status).join(
            u, u.c.run_id == r.c.run_id)
        if fingerprint_id is not None:
            query = query.where(u.c.fingerprint_id == fingerprint_id)
        series: dict[str, list[tuple[str, float | None, str | None]]] = {}
        for name, started, joules, status in self._rows(query.order_by(u.c.started, r.c.run_id)):
            series.setdefault(name, []).append((started, joules, status))
        return series

    def records_of(self, run_ids: Sequence[str]) -> dict[str, list[Record]]:
        """The full records of several runs in one query: run id -> records (by name); a run the store
        does not hold maps to []."""
        import sqlalchemy as sa

        records = _table("records")
        found: dict[str, list[Record]] = {run_id: [] for run_id in run_ids}
        query = (sa.select(records.c.run_id, records.c.record_json).where(records.c.run_id.in_(list(found)))
                 .order_by(records.c.run_id, records.c.name))
        for run_id, text in self._rows(query):
            found[run_id].append(Record.from_dict(json.loads(text)))
        return found

    def records(self, run_id: str) -> list[Record]:
        """The full records of one run, rebuilt as :class:`Record` objects."""
        return self.records_of([run_id])[run_id]

    def verdicts_of(self, run_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The stored verdicts of several runs in one query: run id -> verdicts as :meth:`verdicts` gives them."""
        import sqlalchemy as sa

        v = _table("verdicts")
        keys = ("name", "metric", "status", "ratio", "low", "high", "threshold", "baseline_set", "message", "gating")
        found: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
        query = (sa.select(v.c.run_id, *(v.c[key] for key in keys)).where(v.c.run_id.in_(list(found)))
                 .order_by(v.c.run_id, v.c.name, v.c.metric, v.c.baseline_set))
        for row in self._rows(query):
            found[row[0]].append(dict(zip(keys, (*row[1:10], bool(row[10])))))
        return found

    def fleet_records(self, run_ids: Sequence[str]) -> dict[str, list[FleetRecord]]:
        """The records of several runs as the nightly report needs them: run id -> records (by name);
        a run the store does not hold maps to [].

        Only each record's components and fingerprint leave its JSON (with its criteria and quality
        where it did not pass, for its missed budgets), picked out by the database
        (the nightly over 1,000 runs of 100 records would otherwise spend most of its time decoding
        rounds it never reads), and each distinct fingerprint is decoded once. A verdict counts when
        it is against its run's baseline set (any, for a run judged against none).
        """
        import sqlalchemy as sa

        r, v, u = _table("records"), _table("verdicts"), _table("runs")
        wanted = list(dict.fromkeys(run_ids))

        def parts(connection: Connection) -> Any:
            """The records with their outcome and their JSON's components and fingerprint, and for a
            record that did not pass its criteria and quality, as JSON text."""
            unpassed = sa.func.coalesce(r.c.outcome, "") != "passed"
            if connection.dialect.name == "postgresql":
                # One parse of each record for all (two json_extract_path_text calls took twice the
                # server's time), as json, not jsonb: the parts' text as stored.
                picked = sa.func.json_to_record(sa.cast(r.c.record_json, sa.JSON)).table_valued(
                    *(sa.column(key, sa.Text) for key in ("components", "fingerprint", "criteria", "quality"))
                ).render_derived(with_types=True)
                return (sa.select(r.c.run_id, r.c.name, r.c.iterations, r.c.outcome, picked.c.components,
                                  picked.c.fingerprint, sa.case((unpassed, picked.c.criteria)),
                                  sa.case((unpassed, picked.c.quality)))
                        .select_from(r).join(picked, sa.true()))

            def extract(key: str) -> Any:
                return sa.func.json_extract(r.c.record_json, f"$.{key}", type_=sa.Text)

            return sa.select(r.c.run_id, r.c.name, r.c.iterations, r.c.outcome, extract("components"),
                             extract("fingerprint"), sa.case((unpassed, extract("criteria"))),
                             sa.case((unpassed, extract("quality"))))

        def read(connection: Connection) -> dict[str, list[FleetRecord]]:
            found: dict[str, list[FleetRecord]] = {run_id: [] for run_id in wanted}
            fingerprints: dict[str | None, dict[str, Any]] = {}
            for start in range(0, len(wanted), 500):  # bound the statement's parameters
                chunk = wanted[start:start + 500]
                judged: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
                query = (sa.select(v.c.run_id, v.c.name, v.c.metric, v.c.status, v.c.message)
                         .join(u, u.c.run_id == v.c.run_id)
                         .where(v.c.run_id.in_(chunk), sa.or_(u.c.baseline_set.is_(None),
                                                              v.c.baseline_set == u.c.baseline_set))
                         .order_by(v.c.run_id, v.c.name, v.c.metric, v.c.baseline_set))
                for run_id, name, metric, status, message in connection.execute(query):
                    judged.setdefault((run_id, name), {})[metric] = (status, message or "")
                query = parts(connection).where(r.c.run_id.in_(chunk)).order_by(r.c.run_id, r.c.name)
                for run_id, name, iterations, outcome, components, fingerprint, criteria, quality in \
                        connection.execute(query):
                    known = fingerprints.get(fingerprint)
                    if known is None:
                        known = fingerprints[fingerprint] = json.loads(fingerprint) if fingerprint else {}
                    found[run_id].append(FleetRecord(
                        name, iterations or 0, [Component(**c) for c in json.loads(components or "[]")], known,
                        judged.get((run_id, name), {}), outcome or "", json.loads(criteria) if criteria else {},
                        json.loads(quality) if quality else {}))
            return found

        return self._use(read)

    def verdicts(self, run_id: str) -> list[dict[str, Any]]:
        """The stored verdicts of one run, as dicts with the fields of :class:`~pytest_energy.judge.verdict.Verdict`."""
        return self.verdicts_of([run_id])[run_id]
