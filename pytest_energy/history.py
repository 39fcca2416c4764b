"""History: every measured run appended to an embedded SQLite store, for trends and nightly reports.

Tables: ``meta`` (the schema version), ``runs`` (one row per session, the whole RunInfo as JSON too),
``records`` (one row per record of a run, the whole record as JSON too, so a report can be rebuilt
from history alone) and ``verdicts`` (every verdict of the run). The SQL is kept to what PostgreSQL
and MySQL also accept (standard types, no ``INSERT OR REPLACE``, no ``AUTOINCREMENT``, no ``LIMIT``),
so a shared server database can be added behind the same class later; only the ``?`` placeholders
and ``BEGIN IMMEDIATE`` (below) are SQLite's. SQLite's own file locking makes concurrent appends safe.
"""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .record import Record, RunInfo, finite

if TYPE_CHECKING:
    from .gate import Judgement

#: Version of the tables below; a store of another version is refused with what to do.
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        value VARCHAR(255) NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR(64) NOT NULL PRIMARY KEY,
        started VARCHAR(40) NOT NULL,
        finished VARCHAR(40),
        fingerprint_id VARCHAR(200),
        git_commit VARCHAR(80),
        exitstatus INTEGER,
        baseline_set VARCHAR(200),
        gate_failed INTEGER,
        record_count INTEGER,
        regressions INTEGER,
        total_net_joules DOUBLE PRECISION,
        total_gross_joules DOUBLE PRECISION,
        co2_grams DOUBLE PRECISION,
        info_json TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS records (
        run_id VARCHAR(64) NOT NULL,
        name VARCHAR(1000) NOT NULL,
        nodeid VARCHAR(1000) NOT NULL,
        form VARCHAR(16),
        unit VARCHAR(64),
        iterations INTEGER,
        per_iteration_net_joules DOUBLE PRECISION,
        per_iteration_gross_joules DOUBLE PRECISION,
        per_iteration_uncertainty_joules DOUBLE PRECISION,
        normalised_net DOUBLE PRECISION,
        total_net_joules DOUBLE PRECISION,
        total_gross_joules DOUBLE PRECISION,
        duration_seconds DOUBLE PRECISION,
        co2_grams DOUBLE PRECISION,
        methods VARCHAR(100),
        outcome VARCHAR(16),
        quality_json TEXT,
        verdict_status VARCHAR(16),
        verdict_ratio DOUBLE PRECISION,
        record_json TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    )""",
    "CREATE INDEX IF NOT EXISTS records_by_name ON records (name)",
    """CREATE TABLE IF NOT EXISTS verdicts (
        run_id VARCHAR(64) NOT NULL,
        name VARCHAR(1000) NOT NULL,
        metric VARCHAR(100) NOT NULL,
        baseline_set VARCHAR(200) NOT NULL,
        status VARCHAR(16) NOT NULL,
        ratio DOUBLE PRECISION,
        low DOUBLE PRECISION,
        high DOUBLE PRECISION,
        threshold DOUBLE PRECISION,
        gating INTEGER,
        message TEXT,
        PRIMARY KEY (run_id, name, metric, baseline_set)
    )""",
)


#: SQLite takes the write lock at the start (waiting up to the timeout), so two appending processes
#: cannot deadlock upgrading read locks; the one SQLite-specific statement, kept here.
_BEGIN_WRITE = "BEGIN IMMEDIATE"


class HistoryError(RuntimeError):
    """The history store cannot be used; the message is one line naming the file and what to do."""


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


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class History:
    """The SQLite history at ``path``. Reading never creates the file; :meth:`append` does."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        if not create and not self.path.exists():
            raise HistoryError(f"pytest-energy: no history at {self.path}; run `pytest --energy` first "
                               "or give the path of an existing history")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: transactions are opened explicitly, so DDL is inside them too.
            with closing(sqlite3.connect(str(self.path), timeout=60, isolation_level=None)) as connection:
                self._check_schema(connection, create)
                yield connection
        except sqlite3.DatabaseError as error:
            raise HistoryError(f"pytest-energy: history {self.path} is not a usable SQLite store ({error}); "
                               "move it aside or use another --energy-history path") from None

    def _check_schema(self, connection: sqlite3.Connection, create: bool) -> None:
        if create:
            connection.execute(_BEGIN_WRITE)
            try:
                for statement in _SCHEMA:
                    connection.execute(statement)
                if connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() is None:
                    connection.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?)",
                                       (str(SCHEMA_VERSION),))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        try:
            row = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            row = None
        version = row[0] if row else None
        if version != str(SCHEMA_VERSION):
            if version is not None and version.isdigit() and int(version) > SCHEMA_VERSION:
                raise HistoryError(f"pytest-energy: history {self.path} has schema version {version}, newer "
                                   f"than this pytest-energy reads ({SCHEMA_VERSION}); upgrade pytest-energy")
            raise HistoryError(f"pytest-energy: history {self.path} has schema version {version!r}, not "
                               f"{SCHEMA_VERSION}; move it aside or use another --energy-history path")

    # -- writing ---------------------------------------------------------------------------------
    def append(self, run_info: RunInfo, records: list[Record], judgement: Judgement | None = None) -> None:
        """Store one run, its records and its verdicts (again, replacing, if the run id is stored)."""
        verdicts = judgement.verdicts if judgement is not None else []
        baseline_set = judgement.baseline_set if judgement is not None else None
        energy = {v.name: v for v in verdicts if v.metric == "energy" and v.baseline_set == baseline_set}
        valid = [r for r in records if r.valid]
        run_row = (
            run_info.run_id, run_info.started, run_info.finished, run_info.fingerprint.get("id"),
            run_info.git_commit, run_info.exitstatus, baseline_set,
            int(bool(judgement and judgement.gate_failed)), len(records),
            len({v.name for v in verdicts if v.status == "regression"}),  # records, as the gate's head line
            _number(sum(r.total_net_joules for r in valid)), _number(sum(r.total_gross_joules for r in valid)),
            _number(sum(r.co2_grams for r in valid)),
            json.dumps(finite(run_info.to_dict()), sort_keys=True, allow_nan=False),
        )
        record_rows = []
        for record in records:
            verdict = energy.get(record.name)
            quality = {k: v.get("value") if isinstance(v, dict) else v for k, v in record.quality.items()}
            record_rows.append((
                run_info.run_id, record.name, record.nodeid, record.form, record.unit, record.iterations,
                _number(record.per_iteration_net_joules), _number(record.per_iteration_gross_joules),
                _number(record.per_iteration_uncertainty_joules), _number(record.normalised.get("per_iteration_net")),
                _number(record.total_net_joules), _number(record.total_gross_joules),
                _number(record.duration_seconds), _number(record.co2_grams), ",".join(record.methods),
                record.outcome, json.dumps(finite(quality), sort_keys=True),
                verdict.status if verdict else None,
                _number(verdict.ratio) if verdict and verdict.ratio is not None else None,
                json.dumps(finite(record.to_dict()), sort_keys=True, allow_nan=False),
            ))
        verdict_rows = [
            (run_info.run_id, v.name, v.metric, v.baseline_set, v.status, _number(v.ratio), _number(v.low),
             _number(v.high), _number(v.threshold), int(v.gating), v.message)
            for v in verdicts
        ]
        with self._connect(create=True) as connection:
            connection.execute(_BEGIN_WRITE)
            try:
                for table in ("verdicts", "records", "runs"):
                    connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_info.run_id,))
                connection.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(run_row))})", run_row)
                if record_rows:
                    connection.executemany(
                        f"INSERT INTO records VALUES ({', '.join('?' * len(record_rows[0]))})", record_rows)
                if verdict_rows:
                    connection.executemany(
                        f"INSERT INTO verdicts VALUES ({', '.join('?' * len(verdict_rows[0]))})", verdict_rows)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    # -- reading ---------------------------------------------------------------------------------
    def runs(self, limit: int | None = None) -> list[RunRow]:
        """Stored runs, newest first; the ``limit`` newest where given."""
        with self._connect() as connection:
            cursor = connection.execute(
                "SELECT run_id, started, finished, fingerprint_id, git_commit, exitstatus, baseline_set, "
                "gate_failed, record_count, regressions, total_net_joules, total_gross_joules, co2_grams, "
                "info_json FROM runs ORDER BY started DESC, run_id DESC")
            rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
        return [RunRow(*row[:7], bool(row[7]), row[8] or 0, row[9] or 0, *row[10:13], json.loads(row[13]))
                for row in rows]

    def case_history(self, name: str, limit: int | None = None) -> list[CaseRow]:
        """One record name across runs, oldest first; the ``limit`` newest where given."""
        with self._connect() as connection:
            cursor = connection.execute(
                "SELECT r.run_id, u.started, u.git_commit, u.fingerprint_id, r.per_iteration_net_joules, "
                "r.per_iteration_gross_joules, r.per_iteration_uncertainty_joules, r.normalised_net, "
                "r.iterations, r.unit, r.methods, r.co2_grams, r.outcome, r.quality_json, r.verdict_status, "
                "r.verdict_ratio FROM records r JOIN runs u ON u.run_id = r.run_id WHERE r.name = ? "
                "ORDER BY u.started DESC, r.run_id DESC", (name,))
            rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
        return [
            CaseRow(*row[:10], [m for m in (row[10] or "").split(",") if m], row[11], row[12],
                    json.loads(row[13] or "{}"), row[14], row[15])
            for row in reversed(rows)
        ]

    def series(self, fingerprint_id: str | None = None) -> dict[str, list[tuple[str, float | None, str | None]]]:
        """Every record name -> [(run started, per-iteration net joules, energy verdict status)], oldest
        first; only runs on ``fingerprint_id`` where given (joules of different hardware do not mix)."""
        query = ("SELECT r.name, u.started, r.per_iteration_net_joules, r.verdict_status FROM records r "
                 "JOIN runs u ON u.run_id = r.run_id")
        parameters: tuple[str, ...] = ()
        if fingerprint_id is not None:
            query += " WHERE u.fingerprint_id = ?"
            parameters = (fingerprint_id,)
        with self._connect() as connection:
            rows = connection.execute(query + " ORDER BY u.started, r.run_id", parameters).fetchall()
        series: dict[str, list[tuple[str, float | None, str | None]]] = {}
        for name, started, joules, status in rows:
            series.setdefault(name, []).append((started, joules, status))
        return series

    def records(self, run_id: str) -> list[Record]:
        """The full records of one run, rebuilt as :class:`Record` objects."""
        with self._connect() as connection:
            rows = connection.execute("SELECT record_json FROM records WHERE run_id = ? ORDER BY name",
                                      (run_id,)).fetchall()
        return [Record.from_dict(json.loads(row[0])) for row in rows]

    def verdicts(self, run_id: str) -> list[dict[str, Any]]:
        """The stored verdicts of one run, as dicts with the fields of :class:`~pytest_energy.verdict.Verdict`."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT name, metric, status, ratio, low, high, threshold, baseline_set, message, gating "
                "FROM verdicts WHERE run_id = ? ORDER BY name, metric, baseline_set", (run_id,)).fetchall()
        keys = ("name", "metric", "status", "ratio", "low", "high", "threshold", "baseline_set", "message", "gating")
        return [dict(zip(keys, row[:9] + (bool(row[9]),))) for row in rows]
