"""The history's engine: connecting to an SQLite file or a PostgreSQL server (through SQLAlchemy Core,
psycopg 3 for the server), one transaction per operation, waiting on another process's lock on an
SQLite store (saying who holds it, from the OS), creating, migrating and checking the schema, and
appending a run. Every failure is one :class:`HistoryError` line naming its cause.

Appends are one transaction each, replacing a run stored under the same id. SQLite serialises writers
by its file lock (``BEGIN IMMEDIATE``: taken at the start, so two writers cannot deadlock upgrading
read locks); PostgreSQL by an advisory lock on the run id (and one on the schema while it is created).
"""

from __future__ import annotations

import os
import sqlite3
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ...core.config import database_url, hide_password, is_database_url
from ...core.record import Record, RunInfo
from ..locking import describe_process, to_stderr
from .schema import MIGRATIONS, SCHEMA_VERSION, _rows_of, _schema, _table

try:  # POSIX: asks the OS who holds SQLite's lock on the store
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from ...judge.verdict import Judgement

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


class HistoryEngine:
    """The connection, locks, schema and writes of a history store (:class:`~pytest_energy.store.history.History`
    adds the queries): ``location`` is an SQLite file path or a database URL. While another process holds
    an SQLite store's lock, an operation waits up to :data:`LOCK_WAIT_SECONDS`, saying so through
    ``notify`` (stderr) after :data:`LOCK_NOTICE_SECONDS`."""

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
