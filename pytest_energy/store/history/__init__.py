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

The parts, each with one job: ``schema.py`` (the tables, their version and migration steps, the rows a
run becomes), ``engine.py`` (connecting, waiting on locks and naming their holder, creating, migrating
and checking the schema, appending) and ``queries.py`` (:class:`History`: the engine and every read).
The names callers use are importable from here.
"""

from __future__ import annotations

from .engine import CONNECT_SECONDS, LOCK_NOTICE_SECONDS, LOCK_WAIT_SECONDS, HistoryError
from .queries import CaseRow, FleetRecord, History, RunRow
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["CONNECT_SECONDS", "LOCK_NOTICE_SECONDS", "LOCK_WAIT_SECONDS", "MIGRATIONS", "SCHEMA_VERSION", "CaseRow",
           "FleetRecord", "History", "HistoryError", "RunRow"]
