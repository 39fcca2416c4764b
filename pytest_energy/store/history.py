"""History: every measured run appended to one store, for trends and nightly reports.

The store is an embedded SQLite file by default (a path: zero setup) or a shared server database for a
fleet of runners (a URL, ``postgresql://user@host:5432/db``, driven by psycopg 3). Both are spoken to
through SQLAlchemy Core, imported only when a store is opened (never at plugin load).

Tables: ``meta`` (the schema version), ``runs`` (one row per session, the whole RunInfo as JSON too),
``records`` (one row per record of a run, the whole record as JSON too, so a report can be rebuilt
from history alone) and ``verdicts`` (every verdict of the run). The schema is created on first
append; a store of an older schema version (1: before ``runs.branch``; 2: before every text column was
unbounded) is migrated in place, any other version is refused in one line. Text columns have no length
limit on either backend, so a store keeps what the run holds (a test id of thousands of characters, a
long branch) on PostgreSQL as on SQLite.

Appends are one transaction each, replacing a run stored under the same id, so runners appending at
once never see half a run and importing a run twice stores it once. SQLite serialises writers by its
file lock (``BEGIN IMMEDIATE``: taken at the start, so two writers cannot deadlock upgrading read
locks); PostgreSQL by an advisory lock on the run id (and one on the schema while it is created).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

from ..core.config import database_url, hide_password, is_database_url
from .locking import describe_process, to_stderr
from ..core.record import Component, Record, RunInfo, finite

try:  # POSIX: asks the OS who holds SQLite's lock on the store
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from ..judge.verdict import Judgement

#: Version of the tables below; a store of another version is migrated (:data:`MIGRATIONS`) or refused.
SCHEMA_VERSION = 3
#: How a store of an older version becomes the current one: version -> what the step from it adds.
MIGRATIONS = {1: "runs.branch (the git branch of each run)",
              2: "text without a length limit in every text column (PostgreSQL refused a run whose test id, "
                 "branch or commit was longer than its varchar; SQLite never limits)"}

#: How long a store operation waits for another process's lock on the store before giving up.
LOCK_WAIT_SECONDS = 60.0
#: After this long a waiting operation says who holds the lock, rather than sit silent for a minute.
LOCK_NOTICE_SECONDS = 3.0
#: SQLite's own busy wait per attempt: short, so Python gets control back in time for the notice and
#: for Ctrl-C (a signal does not end SQLite's wait).
_ATTEMPT_SECONDS = 0.25
#: SQLite's POSIX lock bytes on the store (pending, reserved, then the 510 shared bytes) at 1 GiB.
_SQLITE_LOCK_BYTES = (0x40000000, 512)
#: How long connecting to a database server may take before the run gives up its history row.
CONNECT_SECONDS = 5
#: The key space of this store's PostgreSQL advisory locks (the first of their two keys).
_ADVISORY = 0x656E  # "en"

_T = TypeVar("_T")


class HistoryError(RuntimeError):
    """The history store cannot be used; the message is one line naming the store, the cause and what to do."""


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


def _sqlite_cause(error: BaseException) -> str:
    """What went wrong in SQLite, by its error name (Python 3.11+) or else its message."""
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


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own error inside SQLAlchemy's wrapper (sqlite3's or psycopg's)."""
    return getattr(error, "orig", None) or error


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


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


class History:
    """The history store at ``location``: an SQLite file path, or a database URL
    (``postgresql://user@host:5432/db``; ``postgresql+psycopg://`` too). Reading never creates a
    store; :meth:`append` does, its schema with it.

    While another process holds an SQLite store's lock, an operation waits up to
    :data:`LOCK_WAIT_SECONDS`, saying so through ``notify`` (stderr) after :data:`LOCK_NOTICE_SECONDS`.
    Every failure, an unreachable server and Ctrl-C during the wait included, is one
    :class:`HistoryError` line naming its cause.
    """

    def __init__(self, location: Path | str, *, notify: Callable[[str], None] | None = None) -> None:
        self.url: str | None = location.strip() if is_database_url(location) else None
        self.path: Path | None = None if self.url else Path(location)
        self.notify = notify or to_stderr
        self._engine: Engine | None = None
        if self.url and self.url.lower().startswith("sqlite:///"):  # an SQLite URL is its path
            self.path, self.url = Path(self.url[len("sqlite:///"):]), None

    @property
    def where(self) -> str:
        """The store as a message names it: its path, or its URL with the password shown as ``***``."""
        if self.path is not None:
            return str(self.path)
        return hide_password(self.url)  # a message lands in CI logs

    def __str__(self) -> str:
        return self.where

    # -- connecting ------------------------------------------------------------------------------
    def _connectable(self) -> Engine:
        if self._engine is None:
            self._engine = self._sqlite_engine() if self.path is not None else self._server_engine()
        return self._engine

    def _sqlite_engine(self) -> Engine:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        # NullPool: each operation opens and closes its connection, so no lock outlives it and the
        # lock holder can be asked of the OS between attempts (see _lock_holder_pid).
        engine = sa.create_engine(sa.engine.URL.create("sqlite", database=str(self.path)), poolclass=NullPool,
                                  connect_args={"timeout": _ATTEMPT_SECONDS})

        @sa.event.listens_for(engine, "connect")
        def _manual(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # transactions are begun below, DDL inside them too

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            writes = connection.get_execution_options().get("write", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

        return engine

    def _server_engine(self) -> Engine:
        import sqlalchemy as sa
        from sqlalchemy.exc import NoSuchModuleError
        from sqlalchemy.pool import NullPool

        try:
            url = database_url(self.url)
        except ValueError:
            raise HistoryError(f"pytest-energy: history {self.where} is not a database URL; give "
                               "postgresql://user@host:5432/db or a file path for SQLite") from None
        if url.get_backend_name() != "postgresql":
            raise HistoryError(f"pytest-energy: history {self.where}: {url.get_backend_name()} is not supported; "
                               "give a postgresql://user@host:5432/db URL or a file path for SQLite")
        if url.get_driver_name() != "psycopg":  # psycopg 3, whatever the URL names (SQLAlchemy's default is psycopg2)
            url = url.set(drivername="postgresql+psycopg")
        try:
            return sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_SECONDS})
        except (NoSuchModuleError, ImportError):
            raise HistoryError(f"pytest-energy: history {self.where} needs psycopg 3: pip install "
                               "'pytest-energy[postgres]'") from None

    def _use(self, work: Callable[[Connection], _T], create: bool = False) -> _T:
        """``work`` in one transaction on a checked store (its schema created or migrated first with
        ``create``), tried again while another process holds an SQLite store's lock."""
        if self.path is not None:
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
                except HistoryError:
                    raise
                except Exception as error:
                    if self.path is None or _sqlite_cause(_driver_error(error)) != "locked":
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
            raise HistoryError(f"pytest-energy: history {self.where}: interrupted{during}; nothing written "
                               "to it") from None

    def _attempt(self, work: Callable[[Connection], _T], create: bool) -> _T:
        engine = self._connectable()
        try:
            opened = engine.connect()
        except Exception as error:
            if self.path is not None:
                raise
            raise HistoryError(f"pytest-energy: history {self.where} cannot be reached "
                               f"({_first_line(_driver_error(error))}); check that the server runs and the URL, "
                               "or point --energy-history at a file path") from None
        with opened:
            connection = opened.execution_options(write=create)
            with connection.begin():
                if create:
                    self._create_schema(connection)
                elif self._version(connection) in {str(version) for version in MIGRATIONS}:
                    self._migrate(connection)  # a store of an older version is migrated on first use
                self._check_schema(connection)
                return work(connection)

    def _holder(self) -> str:
        return describe_process(_lock_holder_pid(self.path)) if self.path is not None else "another process"

    def _explain(self, error: Exception) -> str:
        """One line for a store error: its cause and what to do about it."""
        original = _driver_error(error)
        if self.path is None:
            return f"pytest-energy: history {self.where} could not be used ({type(original).__name__}: " \
                   f"{_first_line(original)})"
        cause, folder = _sqlite_cause(original), self.path.parent
        if cause == "read-only":
            return (f"pytest-energy: history {self.path} is read-only ({original}); make the file and its folder "
                    f"writable (chmod u+w {self.path} {folder}) or point --energy-history elsewhere")
        if cause == "cannot open":
            return (f"pytest-energy: history {self.path} cannot be opened ({original}); the file and its folder "
                    f"{folder} must be readable and writable (SQLite keeps a journal beside the store): "
                    f"chmod u+rw {self.path}; chmod u+rwx {folder}; or point --energy-history elsewhere")
        if cause == "duplicate":
            return (f"pytest-energy: history {self.path}: a key of this run repeats ({original}); this is a "
                    "pytest-energy bug, please report it (the run's records are in its JSON output)")
        if cause == "full":
            return f"pytest-energy: history {self.path}: the disk is full ({original}); free space and run again"
        if cause == "corrupt":
            return (f"pytest-energy: history {self.path} is not a usable SQLite store ({original}); "
                    "move it aside or use another --energy-history path")
        return f"pytest-energy: history {self.path} could not be used ({type(original).__name__}: {original})"

    # -- the schema ------------------------------------------------------------------------------
    def _tables(self, connection: Connection) -> set[str]:
        import sqlalchemy as sa

        return set(sa.inspect(connection).get_table_names())

    def _create_schema(self, connection: Connection) -> None:
        import sqlalchemy as sa

        if connection.dialect.name == "postgresql":  # runners creating the schema at once: one at a time
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:space, 0)"), {"space": _ADVISORY})
        tables = self._tables(connection)
        if tables and "meta" not in tables:  # another program's database: never add tables to it
            kind = "SQLite database" if self.path is not None else "database"
            raise HistoryError(f"pytest-energy: history {self.where} is another program's {kind} (tables "
                               f"{', '.join(sorted(tables)[:3])}); move it aside or use another --energy-history path")
        if not tables:
            _schema().create_all(connection)
            connection.execute(_table("meta").insert(), {"name": "schema_version", "value": str(SCHEMA_VERSION)})
            return
        if self._version(connection) in {str(version) for version in MIGRATIONS}:
            self._migrate(connection)

    def _migrate(self, connection: Connection) -> None:
        """Each step of :data:`MIGRATIONS` from the store's version on: 1 -> 2, the runs' git branch
        (unknown for the runs stored before) and an index of runs by start; 2 -> 3, PostgreSQL's
        varchar columns become text (binary-coercible: no row is rewritten) and the records' and
        verdicts' keys on names become indexes by run and by a hash of the name (SQLite never limited
        a length: its tables keep their keys and gain the indexes by run)."""
        import sqlalchemy as sa

        postgresql = connection.dialect.name == "postgresql"
        if postgresql:  # runners migrating at once: one at a time, the others find it done
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:space, 0)"), {"space": _ADVISORY})
        version = int(self._version(connection) or SCHEMA_VERSION)
        if version < 2:
            connection.execute(sa.text("ALTER TABLE runs ADD COLUMN branch TEXT"))
            next(i for i in _table("runs").indexes if i.name == "runs_by_started").create(connection, checkfirst=True)
        if version < 3:
            if postgresql:
                for table in _schema().sorted_tables:
                    for column in (c for c in table.columns if isinstance(c.type, sa.Text)):
                        connection.execute(sa.text(f"ALTER TABLE {table.name} ALTER COLUMN {column.name} TYPE TEXT"))
                for table in ("records", "verdicts"):  # keys of names: see _schema
                    connection.execute(sa.text(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_pkey"))
                connection.execute(sa.text("DROP INDEX IF EXISTS records_by_name"))
            for name in ("records", "verdicts"):
                for index in _table(name).indexes:
                    index.create(connection, checkfirst=True)
        meta = _table("meta")
        connection.execute(meta.update().where(meta.c.name == "schema_version").values(value=str(SCHEMA_VERSION)))

    def _version(self, connection: Connection) -> str | None:
        import sqlalchemy as sa

        meta = _table("meta")
        if "meta" not in self._tables(connection):  # a new store, or another program's
            return None
        try:
            return connection.execute(sa.select(meta.c.value).where(meta.c.name == "schema_version")).scalar()
        except sa.exc.OperationalError as error:
            if self.path is None or _sqlite_cause(_driver_error(error)) != "other":
                raise  # locked, unreadable...: not a question of the schema
            return None

    def _check_schema(self, connection: Connection) -> None:
        if self.path is None and "meta" not in self._tables(connection):
            raise HistoryError(f"pytest-energy: no history in {self.where} yet; run `pytest --energy "
                               f"--energy-history {self.where}` first")
        version = self._version(connection)
        if version != str(SCHEMA_VERSION):
            if version is not None and version.isdigit() and int(version) > SCHEMA_VERSION:
                raise HistoryError(f"pytest-energy: history {self.where} has schema version {version}, newer "
                                   f"than this pytest-energy reads ({SCHEMA_VERSION}); upgrade pytest-energy")
            raise HistoryError(f"pytest-energy: history {self.where} has schema version {version!r}, not "
                               f"{SCHEMA_VERSION}; move it aside or use another --energy-history path")

    # -- writing ---------------------------------------------------------------------------------
    def append(self, run_info: RunInfo, records: list[Record], judgement: Judgement | None = None) -> None:
        """Store one run, its records and its verdicts (again, replacing, if the run id is stored)."""
        import sqlalchemy as sa

        run_row, record_rows, verdict_rows = _rows_of(run_info, records, judgement)
        repeated = sorted(name for name, count in Counter(r.name for r in records).items() if count > 1)
        if repeated:  # names are unique by construction (TestContext.name_for): say so, never half a run
            raise HistoryError(f"pytest-energy: history {self.where}: {len(repeated)} record names repeat in run "
                               f"{run_info.run_id} (first {repeated[0]!r}); this is a pytest-energy bug, please "
                               "report it (the run's records are in its JSON output)")

        def write(connection: Connection) -> None:
            if connection.dialect.name == "postgresql":  # the same run imported by two runners at once
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:run_id))"),
                                   {"space": _ADVISORY, "run_id": run_info.run_id})
            for name in ("verdicts", "records", "runs"):
                table = _table(name)
                connection.execute(table.delete().where(table.c.run_id == run_info.run_id))
            connection.execute(_table("runs").insert(), run_row)
            if record_rows:
                connection.execute(_table("records").insert(), record_rows)
            if verdict_rows:
                connection.execute(_table("verdicts").insert(), verdict_rows)

        self._use(write, create=True)

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

        Only each record's components and fingerprint leave its JSON, picked out by the database
        (the nightly over 1,000 runs of 100 records would otherwise spend most of its time decoding
        rounds it never reads), and each distinct fingerprint is decoded once. A verdict counts when
        it is against its run's baseline set (any, for a run judged against none).
        """
        import sqlalchemy as sa

        r, v, u = _table("records"), _table("verdicts"), _table("runs")
        wanted = list(dict.fromkeys(run_ids))

        def parts(connection: Connection) -> Any:
            """The records with their JSON's components and fingerprint, as JSON text."""
            if connection.dialect.name == "postgresql":
                # One parse of each record for both (two json_extract_path_text calls took twice the
                # server's time), as json, not jsonb: the parts' text as stored.
                picked = sa.func.json_to_record(sa.cast(r.c.record_json, sa.JSON)).table_valued(
                    sa.column("components", sa.Text), sa.column("fingerprint", sa.Text)).render_derived(
                    with_types=True)
                return (sa.select(r.c.run_id, r.c.name, r.c.iterations, picked.c.components, picked.c.fingerprint)
                        .select_from(r).join(picked, sa.true()))
            return sa.select(r.c.run_id, r.c.name, r.c.iterations,
                             *(sa.func.json_extract(r.c.record_json, f"$.{key}", type_=sa.Text)
                               for key in ("components", "fingerprint")))

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
                for run_id, name, iterations, components, fingerprint in connection.execute(query):
                    known = fingerprints.get(fingerprint)
                    if known is None:
                        known = fingerprints[fingerprint] = json.loads(fingerprint) if fingerprint else {}
                    found[run_id].append(FleetRecord(
                        name, iterations or 0, [Component(**c) for c in json.loads(components or "[]")], known,
                        judged.get((run_id, name), {})))
            return found

        return self._use(read)

    def verdicts(self, run_id: str) -> list[dict[str, Any]]:
        """The stored verdicts of one run, as dicts with the fields of :class:`~pytest_energy.judge.verdict.Verdict`."""
        return self.verdicts_of([run_id])[run_id]

