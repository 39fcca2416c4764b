"""A throwaway PostgreSQL cluster for tests and the bench (this project's tests/ and bench/ share it from here): Debian's binaries, ``initdb`` in a temporary
folder, listening only on a unix socket in that folder, stopped and removed at the end. The superuser
``postgres`` signs in without a password; every other role only with its password (scram-sha-256), so
a test can reach a password-protected history (:meth:`Cluster.secured_database`).

PostgreSQL refuses to run as root; as root (CI containers) the cluster runs as the unprivileged user
``nobody`` through ``runuser``. Where no binaries exist (or psycopg is missing), :func:`unavailable`
says why, for a skip reason.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Where Debian's postgresql package puts its server binaries (one folder per major version).
BINARIES = "/usr/lib/postgresql/*/bin"
UNPRIVILEGED = "nobody"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian's layout, else initdb on PATH)."""
    found = sorted(glob.glob(os.path.join(BINARIES, "initdb")), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable() -> str | None:
    """Why no cluster can be started here, or None where one can."""
    if binaries() is None:
        return f"no PostgreSQL server binaries ({BINARIES} or initdb on PATH): apt-get install postgresql"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg 3 is not installed: pip install 'pytest-energy[postgres]'"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root, and PostgreSQL refuses root: no runuser to start it as an unprivileged user"
        try:
            pwd.getpwnam(UNPRIVILEGED)
        except KeyError:
            return f"running as root, and PostgreSQL refuses root: no user {UNPRIVILEGED!r} to start it as"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (for a server that cannot be reached)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A running throwaway cluster; :meth:`database` makes an empty database and gives its URL."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="pytest-energy-pg-"))
        self._names = itertools.count()
        self._as_root = os.geteuid() == 0
        if self._as_root:  # the server's user must own its folder
            shutil.chown(self.folder, UNPRIVILEGED)
        data = self.folder / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        # Every role but the superuser signs in with its password (the file is read when the server starts).
        (data / "pg_hba.conf").write_text("local all postgres trust\nlocal all all scram-sha-256\n")
        options = f"-k {self.folder} -c listen_addresses='' -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.folder / "server.log"), "-o", options, "-w", "start")

    def _run(self, program: str, *arguments: str) -> None:
        command = [str(self.bin / program), *arguments]
        if self._as_root:
            command = ["runuser", "-u", UNPRIVILEGED, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def url(self, database: str = "postgres") -> str:
        """The URL of one database of the cluster, through its unix socket."""
        return f"postgresql://postgres@/{database}?host={self.folder}"

    def database(self, prefix: str = "history") -> str:
        """A new, empty database: its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.folder), user="postgres", dbname="postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def secured_database(self, password: str, prefix: str = "secured") -> str:
        """A new, empty database owned by a new role of the same name that signs in only with
        ``password``: their name (the URL is the caller's to write, in whichever form it tests)."""
        import psycopg
        from psycopg import sql

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.folder), user="postgres", dbname="postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name),
                                                                            sql.Literal(password)))
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
        return name

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
