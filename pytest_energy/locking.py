"""Safe writes for files several processes may write at once (xdist controllers, parallel CI jobs).

Two tools, used together for read-modify-write: :func:`locked` serialises writers of one path, and
:func:`atomic_write_text` makes each write all-or-nothing (a temporary file in the same folder, then
``os.replace``), so a reader or a killed writer never sees or leaves half a file.

The lock is an OS file lock on a file in the system temporary folder named after the target's
absolute path: nothing is added to the user's repository (baselines are committed), and a crashed
process releases its lock with its file descriptors.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def _lock_file(target: Path) -> Path:
    digest = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:20]
    # The user id keeps users apart in a shared /tmp, where another user's file could not be opened.
    owner = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"pytest-energy-{owner}-{digest}.lock"


@contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (a file or folder, which need not exist) while inside."""
    handle = os.open(_lock_file(Path(target)), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            msvcrt.locking(handle, msvcrt.LK_LOCK, 1)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
            else:
                msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(handle)


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
