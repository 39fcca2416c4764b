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
import os
import sqlite3
import struct
import sys
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .locking import describe_process, to_stderr
from .record import Record, RunInfo, finite

try:  # POSIX: asks the OS who holds SQLite's lock on the store
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .verdict import Judgement

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


#: How long a store operation waits for another process's lock on the store before giving up.
LOCK_WAIT_SECONDS = 60.0
#: After this long a waiting operation says who holds the lock, rather than sit silent for a minute.
LOCK_NOTICE_SECONDS = 3.0
#: SQLite's own busy wait per attempt: short, so Python gets control back in time for the notice and
#: for Ctrl-C (a signal does not end SQLite's wait).
_ATTEMPT_SECONDS = 0.25
#: SQLite's POSIX lock bytes on the store (pending, reserved, then the 510 shared bytes) at 1 GiB.
_SQLITE_LOCK_BYTES = (0x40000000, 512)

_T = TypeVar("_T")


class HistoryError(RuntimeError):
    """The history store cannot be used; the message is one line naming the file, the cause and what to do."""


def _cause(error: sqlite3.Error) -> str:
    """What went wrong, by SQLite's error name (Python 3.11+) or else its message."""
    name = getattr(error, "sqlite_errorname", "")
    text = str(error).lower()
    if name.startswith("SQLITE_BUSY") or "database is locked" in text:
        return "locked"
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return "read-only"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open database file" in text:
        return "cannot open"
    if name.startswith("SQLITE_CONSTRAINT") or isinstance(error, sqlite3.IntegrityError):
        return "duplicate"
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text or "malformed" in text:
        return "corrupt"
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "full"
    return "other"


def _lock_holder_pid(path: Path) -> int | None:
    """The pid holding a POSIX lock on the store's lock bytes, where the OS says (64-bit Linux).

    Called only while this process holds no lock on the store (its attempt has just failed and its
    connection is closed): closing a descriptor drops every POSIX lock a process holds on that file.
    """
    if fcntl is None or not sys.platform.startswith("linux") or struct.calcsize("P") != 8:
        return None
    layout = "hhqqi"  # struct flock on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, *_SQLITE_LOCK_BYTES, 0)
        kind, _, _, _, pid = struct.unpack(layout, fcntl.fcntl(handle, fcntl.F_GETLK, query))
    except OSError:
        return None
    finally:
        os.close(handle)
    return pid if kind != fcntl.F_UNLCK and pid > 0 else None


def _in_transaction(connection: sqlite3.Connection, change: Callable[[], Any]) -> None:
    """Run ``change`` in one write transaction: all of it is stored, or (on any error, Ctrl-C too) none."""
    connection.execute(_BEGIN_WRITE)
    try:
        change()
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


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
    """The SQLite history at ``path``. Reading never creates the file; :meth:`append` does.

    While another process holds the store's lock, an operation waits up to :data:`LOCK_WAIT_SECONDS`,
    saying so through ``notify`` (stderr) after :data:`LOCK_NOTICE_SECONDS`. Every failure, Ctrl-C
    during the wait included, is one :class:`HistoryError` line naming its cause.
    """

    def __init__(self, path: Path | str, *, notify: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.notify = notify or to_stderr

    def _use(self, work: Callable[[sqlite3.Connection], _T], create: bool = False) -> _T:
        """``work`` on a checked connection (the schema created first with ``create``), tried again
        while another process holds the lock."""
        if not create and not self.path.exists():
            raise HistoryError(f"pytest-energy: no history at {self.path}; run `pytest --energy` first "
                               "or give the path of an existing history")
        if self.path.is_dir():
            raise HistoryError(f"pytest-energy: history {self.path} is a folder; give --energy-history a file path")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        waiting = noticed = False
        try:
            while True:
                try:
                    return self._attempt(work, create)
                except sqlite3.Error as error:
                    if _cause(error) != "locked":
                        raise HistoryError(self._explain(error)) from None
                waiting = True
                time.sleep(_ATTEMPT_SECONDS / 5)  # SQLite may answer "locked" at once: no busy loop
                waited = time.monotonic() - started
                if waited >= LOCK_WAIT_SECONDS:
                    raise HistoryError(f"pytest-energy: history {self.path} is locked by {self._holder()} for over "
                                       f"{LOCK_WAIT_SECONDS:g} s; end or wait for that process, or point "
                                       "--energy-history elsewhere")
                if not noticed and waited >= LOCK_NOTICE_SECONDS:
                    self.notify(f"pytest-energy: history {self.path} is locked by {self._holder()}; waiting up "
                                f"to {LOCK_WAIT_SECONDS:g} s (Ctrl-C gives up on the history)")
                    noticed = True
        except KeyboardInterrupt:
            # Ctrl-C while the store is locked: one line, and the session's other stages still run.
            during = f" while it was locked by {self._holder()}" if waiting else ""
            raise HistoryError(f"pytest-energy: history {self.path}: interrupted{during}; nothing written "
                               "to it") from None

    def _attempt(self, work: Callable[[sqlite3.Connection], _T], create: bool) -> _T:
        # isolation_level=None: transactions are opened explicitly, so DDL is inside them too.
        with closing(sqlite3.connect(str(self.path), timeout=_ATTEMPT_SECONDS, isolation_level=None)) as connection:
            if create:
                _in_transaction(connection, lambda: self._create_schema(connection))
            self._check_schema(connection)
            return work(connection)

    def _holder(self) -> str:
        return describe_process(_lock_holder_pid(self.path))

    def _explain(self, error: sqlite3.Error) -> str:
        """One line for a store error: its cause and what to do about it."""
        cause, folder = _cause(error), self.path.parent
        if cause == "read-only":
            return (f"pytest-energy: history {self.path} is read-only ({error}); make the file and its folder "
                    f"writable (chmod u+w {self.path} {folder}) or point --energy-history elsewhere")
        if cause == "cannot open":
            return (f"pytest-energy: history {self.path} cannot be opened ({error}); the file and its folder "
                    f"{folder} must be readable and writable (SQLite keeps a journal beside the store): "
                    f"chmod u+rw {self.path}; chmod u+rwx {folder}; or point --energy-history elsewhere")
        if cause == "duplicate":
            return (f"pytest-energy: history {self.path}: a key of this run repeats ({error}); this is a "
                    "pytest-energy bug, please report it (the run's records are in its JSON output)")
        if cause == "full":
            return f"pytest-energy: history {self.path}: the disk is full ({error}); free space and run again"
        if cause == "corrupt":
            return (f"pytest-energy: history {self.path} is not a usable SQLite store ({error}); "
                    "move it aside or use another --energy-history path")
        return f"pytest-energy: history {self.path} could not be used ({type(error).__name__}: {error})"

    def _create_schema(self, connection: sqlite3.Connection) -> None:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:  # another program's database: never add tables to it
            raise HistoryError(f"pytest-energy: history {self.path} is another program's SQLite database (tables "
                               f"{', '.join(sorted(tables)[:3])}); move it aside or use another --energy-history path")
        for statement in _SCHEMA:
            connection.execute(statement)
        if connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() is None:
            connection.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _check_schema(self, connection: sqlite3.Connection) -> None:
        try:
            row = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        except sqlite3.OperationalError as error:
            if _cause(error) != "other":  # locked, unreadable...: not a question of the schema
                raise
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
        repeated = sorted(name for name, count in Counter(r.name for r in records).items() if count > 1)
        if repeated:  # names are unique by construction (TestContext.name_for): say so, never half a run
            raise HistoryError(f"pytest-energy: history {self.path}: {len(repeated)} record names repeat in run "
                               f"{run_info.run_id} (first {repeated[0]!r}); this is a pytest-energy bug, please "
                               "report it (the run's records are in its JSON output)")

        def write(connection: sqlite3.Connection) -> None:
            for table in ("verdicts", "records", "runs"):
                connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_info.run_id,))
            connection.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(run_row))})", run_row)
            if record_rows:
                connection.executemany(
                    f"INSERT INTO records VALUES ({', '.join('?' * len(record_rows[0]))})", record_rows)
            if verdict_rows:
                connection.executemany(
                    f"INSERT INTO verdicts VALUES ({', '.join('?' * len(verdict_rows[0]))})", verdict_rows)

        self._use(lambda connection: _in_transaction(connection, lambda: write(connection)), create=True)

    # -- reading ---------------------------------------------------------------------------------
    def _rows(self, query: str, parameters: tuple[Any, ...] = (), limit: int | None = None) -> list[tuple[Any, ...]]:
        """The rows of one query (the first ``limit`` where given)."""
        def fetch(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            cursor = connection.execute(query, parameters)
            return cursor.fetchall() if limit is None else cursor.fetchmany(limit)

        return self._use(fetch)

    def runs(self, limit: int | None = None) -> list[RunRow]:
        """Stored runs, newest first; the ``limit`` newest where given."""
        rows = self._rows(
            "SELECT run_id, started, finished, fingerprint_id, git_commit, exitstatus, baseline_set, "
            "gate_failed, record_count, regressions, total_net_joules, total_gross_joules, co2_grams, "
            "info_json FROM runs ORDER BY started DESC, run_id DESC", limit=limit)
        return [RunRow(*row[:7], bool(row[7]), row[8] or 0, row[9] or 0, *row[10:13], json.loads(row[13]))
                for row in rows]

    def case_history(self, name: str, limit: int | None = None) -> list[CaseRow]:
        """One record name across runs, oldest first; the ``limit`` newest where given."""
        rows = self._rows(
            "SELECT r.run_id, u.started, u.git_commit, u.fingerprint_id, r.per_iteration_net_joules, "
            "r.per_iteration_gross_joules, r.per_iteration_uncertainty_joules, r.normalised_net, "
            "r.iterations, r.unit, r.methods, r.co2_grams, r.outcome, r.quality_json, r.verdict_status, "
            "r.verdict_ratio FROM records r JOIN runs u ON u.run_id = r.run_id WHERE r.name = ? "
            "ORDER BY u.started DESC, r.run_id DESC", (name,), limit)
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
        rows = self._rows(query + " ORDER BY u.started, r.run_id", parameters)
        series: dict[str, list[tuple[str, float | None, str | None]]] = {}
        for name, started, joules, status in rows:
            series.setdefault(name, []).append((started, joules, status))
        return series

    def records(self, run_id: str) -> list[Record]:
        """The full records of one run, rebuilt as :class:`Record` objects."""
        rows = self._rows("SELECT record_json FROM records WHERE run_id = ? ORDER BY name", (run_id,))
        return [Record.from_dict(json.loads(row[0])) for row in rows]

    def verdicts(self, run_id: str) -> list[dict[str, Any]]:
        """The stored verdicts of one run, as dicts with the fields of :class:`~pytest_energy.verdict.Verdict`."""
        rows = self._rows("SELECT name, metric, status, ratio, low, high, threshold, baseline_set, message, gating "
                          "FROM verdicts WHERE run_id = ? ORDER BY name, metric, baseline_set", (run_id,))
        keys = ("name", "metric", "status", "ratio", "low", "high", "threshold", "baseline_set", "message", "gating")
        return [dict(zip(keys, row[:9] + (bool(row[9]),))) for row in rows]
