"""Safe writes for files several processes may write at once (xdist controllers, parallel CI jobs).

Two tools, used together for read-modify-write: :func:`locked` serialises writers of one path, and
:func:`atomic_write_text` makes each write all-or-nothing (a temporary file in the same folder, then
``os.replace``), so a reader or a killed writer never sees or leaves half a file.

The lock is an OS file lock on a sibling of the target, ``.<name>.lock`` in the target's own folder,
which the holder removes before it lets go. Why there and not in the system temporary folder: every
writer of a path meets the same lock file whatever its user, ``TMPDIR`` or container (CI jobs that
share a checkout but not a /tmp), and removing it after each use leaves nothing to pile up. A killed
holder leaves at most that one file: the OS has released its lock, and the next writer takes the
lock, uses the file and removes it. The temporary files of :func:`atomic_write_text` sit in the same
folder already, so the lock adds no new kind of file there.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

#: How long a writer waits for another process's lock before giving up with :class:`LockTimeout`.
LOCK_WAIT_SECONDS = 60.0
#: After this long a waiting writer says what it waits for, instead of sitting silent.
LOCK_NOTICE_SECONDS = 3.0
_POLL_SECONDS = 0.05


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the wait; the message is one line saying which."""


def to_stderr(line: str) -> None:
    """Print a progress line at once (pytest's capture is suspended when the stores are written)."""
    print(line, file=sys.stderr, flush=True)


def describe_process(pid: int | None) -> str:
    """``pid 123 (its command line)`` where known, for a line saying who holds a lock."""
    if not pid or pid <= 0:
        return "another process"
    try:  # Linux: the command line says which job it is; elsewhere the pid alone
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            command = stream.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        command = ""
    if len(command) > 80:
        command = command[:77] + "..."
    return f"pid {pid} ({command})" if command else f"pid {pid}"


def lock_file(target: Path) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` beside it (present only while a writer holds it)."""
    target = Path(target).absolute()
    return target.with_name(f".{target.name}.lock")


def _open(path: Path) -> tuple[int, bool]:
    """Open (creating) the lock file; read-only where another user left it there (a lock needs no write)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644), True
    except PermissionError:
        if not path.exists():  # the folder is not writable: say that, not "no such file"
            raise
        return os.open(path, os.O_RDONLY), False


def _try_lock(handle: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(handle, 0, os.SEEK_SET)
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
    except OSError:  # held by another process (EWOULDBLOCK / EACCES)
        return False
    return True


def _unlock(handle: int) -> None:
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        os.lseek(handle, 0, os.SEEK_SET)
        msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)


def _is_at(handle: int, path: Path) -> bool:
    """Whether ``path`` still names the file ``handle`` has open (the previous holder may have removed
    it while this process waited on it: a lock on a removed file excludes nobody)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def _holder(path: Path) -> int | None:
    """The pid the holder wrote into the lock file, where it can be read."""
    try:
        return int(path.read_text(encoding="ascii").strip() or 0) or None
    except (OSError, ValueError):
        return None


@contextmanager
def locked(target: Path, *, wait: float | None = None,
           notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (a file or folder, which need not exist) while inside.

    Waits up to ``wait`` seconds (:data:`LOCK_WAIT_SECONDS`) for another holder, saying so through
    ``notify`` (stderr) after :data:`LOCK_NOTICE_SECONDS`; then raises :class:`LockTimeout`.
    """
    path = lock_file(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = LOCK_WAIT_SECONDS if wait is None else wait
    notify = notify or to_stderr
    started = time.monotonic()
    noticed = False
    while True:
        handle, writable = _open(path)
        if _try_lock(handle):
            if _is_at(handle, path):
                break
            os.close(handle)  # locked a removed file: lock the one now at the path instead
            continue
        os.close(handle)
        waited = time.monotonic() - started
        if waited >= wait:
            raise LockTimeout(f"pytest-energy: {target} is locked by {describe_process(_holder(path))} "
                              f"(lock file {path}) for over {wait:g} s; end or wait for that process, then run again")
        if not noticed and waited >= LOCK_NOTICE_SECONDS:
            notify(f"pytest-energy: {target} is locked by {describe_process(_holder(path))}; "
                   f"waiting up to {wait:g} s")
            noticed = True
        time.sleep(_POLL_SECONDS)
    try:
        if writable:  # lets a waiter say who holds it
            os.ftruncate(handle, 0)
            os.write(handle, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        if fcntl is not None:
            # Removed while still held, so a waiter that then gets this file's lock sees it is gone
            # (see _is_at) and locks the next file at the path, never the same one as another writer.
            if _is_at(handle, path):
                os.unlink(path)
            _unlock(handle)
            os.close(handle)
        else:  # Windows cannot remove an open file: remove it after closing, unless a waiter has it open
            _unlock(handle)
            os.close(handle)
            try:
                os.unlink(path)
            except OSError:
                pass


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` all at once: readers see the old file or the new, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file private (0600); a baseline or report should read like any other file.
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644)
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        # Ctrl-C or a full disk mid-write: leave the old file as it was and no temporary behind.
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
