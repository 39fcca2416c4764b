"""The baselines folder on disk: where a record's entry lives (``<set>/<test module path>.json``), reading
a set (regular files only, a file that cannot be used one line naming it) and updating it (read-modify-
write under a lock, then an atomic rename: parallel writers lose nothing, a reader never sees half a
file, an unreadable file is never overwritten).
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ...core.config import Settings, SettingError, named
from ...core.profiles import DEFAULT
from ...core.record import Collection, Record
from ..locking import LockTimeout, atomic_write_text, locked
from .format import SCHEMA_VERSION, Baseline, BaselineError, _entry, _fix, _refuse_constant, render_file
from .pooling import merged


_SAFE_PART = re.compile(r"[^A-Za-z0-9._-]+")


def set_folder(root: Path, set_name: str, profile: str = DEFAULT) -> Path:
    """Folder of one baseline set (every runner's baselines of that set live in it); a measurement profile
    other than the default keeps its own, ``<set>@<profile>``, so its records never meet the default
    protocol's baselines (another batch size, count and precision is another measurement)."""
    folder = _safe(set_name) if profile == DEFAULT else f"{_safe(set_name)}@{_safe(profile)}"
    return Path(root) / folder


def _safe(part: str) -> str:
    cleaned = _SAFE_PART.sub("_", part).strip(".")
    return cleaned or "_"


def file_for(folder: Path, nodeid: str) -> Path:
    """The file holding a record's baseline: its test module's path under the set folder."""
    module = nodeid.split("::", 1)[0].replace("\\", "/")
    parts = [_safe(p) for p in module.split("/") if p not in ("", ".")]
    return folder.joinpath(*(parts or ["_"])).with_name((parts or ["_"])[-1] + ".json")


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "special file"


def _read_regular(path: Path) -> str:
    """The text of a regular file; anything else (a FIFO would block the run forever) is refused.

    Opened without blocking and checked on the open descriptor, so nothing can swap the file between
    the check and the read.
    """
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(handle, "rb") as stream:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            raise BaselineError(f"pytest-energy: skipped {path}: a {_kind(mode)}, not a regular file; baselines "
                                "are read from regular files only (move it aside)")
        return stream.read().decode("utf-8")


def _document(path: Path) -> dict[str, Any]:
    """The JSON object of a baseline file; :class:`BaselineError` (one line) when it is not one."""
    try:
        text = _read_regular(path)
    except OSError as error:
        raise _fix(path, f"cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise _fix(path, f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise _fix(path, f"is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise _fix(path, "is not a JSON object")
    return data


def read_file(path: Path) -> dict[str, Baseline]:
    """Every baseline in one file; raises :class:`BaselineError` (one line) when it cannot be used."""
    data = _document(path)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise BaselineError(
                f"pytest-energy: baseline file {path} has schema_version {version}, newer than this "
                f"pytest-energy reads ({SCHEMA_VERSION}); upgrade pytest-energy (the file is left as it is)"
            )
        raise _fix(path, f"has schema_version {version!r}, not {SCHEMA_VERSION}")
    records = data.get("records")
    if not isinstance(records, dict):
        raise _fix(path, "has no 'records' object")
    return {name: _entry(path, name, entry) for name, entry in records.items()}


@dataclass
class LoadedSet:
    """One set's baselines as read, and a line per file that could not be used."""

    folder: Path
    baselines: dict[str, Baseline] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    broken: list[Path] = field(default_factory=list)


def _file_in_the_way(folder: Path) -> Path | None:
    """The file that stands where ``folder`` or one of its parents should be (``--energy-baselines``
    pointing at a file), if any."""
    for path in (folder, *folder.parents):
        if path.exists() or path.is_symlink():
            return None if path.is_dir() else path
    return None


def _not_a_folder(path: Path) -> str:
    return (f"pytest-energy: the baselines path {path} is a file, not a folder: no baseline can be read or "
            "written there; point --energy-baselines at a folder, or move the file aside")


def load_set(folder: Path) -> LoadedSet:
    """Read every baseline file of a set folder; a missing folder is an empty set.

    A file where the folder should be is one line in ``errors`` (and in ``broken``), not a silent
    empty set that reads every test as new.
    """
    loaded = LoadedSet(Path(folder))
    if not loaded.folder.is_dir():
        in_the_way = _file_in_the_way(loaded.folder)
        if in_the_way is not None:
            loaded.errors.append(_not_a_folder(in_the_way))
            loaded.broken.append(in_the_way)
        return loaded
    for path in sorted(loaded.folder.rglob("*.json")):
        try:
            loaded.baselines.update(read_file(path))
        except BaselineError as error:
            loaded.errors.append(str(error))
            loaded.broken.append(path)
    return loaded


def set_names(root: Path) -> list[str]:
    """The baseline sets under ``root``: its folders that hold baseline files."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and next(p.rglob("*.json"), None))


def orphaned(loaded: LoadedSet, records: Sequence[Record], collection: Collection) -> list[Baseline]:
    """The baselines of a set that no collected test matched (see :class:`Collection`)."""
    names = {r.name for r in records}
    passed = {r.nodeid for r in records if r.judgeable}
    return [b for name, b in sorted(loaded.baselines.items()) if name not in names and (
        b.nodeid in passed or (b.nodeid not in collection.tests and collection.covers(b.nodeid)))]


@dataclass
class Update:
    """What :func:`update` did."""

    written: dict[str, str] = field(default_factory=dict)  # record name -> "new" or "refreshed"
    refused: list[str] = field(default_factory=list)  # record names whose file cannot be read
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def update(folder: Path, baselines: Iterable[Baseline], replace: Iterable[str] = ()) -> Update:
    """Write or refresh these baselines in a set folder, keeping every other entry of each file and
    every other device kind of each entry (except for the record names in ``replace``: a changed
    model's old energy on other device kinds measured another model).

    Each file is re-read under its lock just before the write, so a concurrent writer's entries
    survive; a file that cannot be read is reported and left untouched.
    """
    result = Update()
    by_file: dict[Path, list[Baseline]] = {}
    for baseline in baselines:
        by_file.setdefault(file_for(folder, baseline.nodeid), []).append(baseline)
    in_the_way = _file_in_the_way(Path(folder)) if by_file else None
    if in_the_way is not None:
        result.errors.append(_not_a_folder(in_the_way))
        result.refused += [entry.name for entries in by_file.values() for entry in entries]
        return result
    for path, entries in sorted(by_file.items()):
        try:
            with locked(path):
                existing = read_file(path) if path.exists() or path.is_symlink() else {}
                replaced = set(replace)
                for entry in entries:
                    result.written[entry.name] = "refreshed" if entry.name in existing else "new"
                    existing[entry.name] = entry if entry.name in replaced else merged(existing.get(entry.name), entry)
                text = render_file(existing.values())
                if not path.exists() or _read_regular(path) != text:
                    atomic_write_text(path, text)
                    result.files.append(path)
        except (BaselineError, LockTimeout) as error:  # this file is left as it is; the others are written
            result.errors.append(str(error))
            result.refused += [entry.name for entry in entries]
    return result


def check_sets(settings: Settings, folder: Path) -> None:
    """A baseline set (compared and updated, or ``--energy-compare``'s) that does not exist while the
    baselines ``folder`` holds others is a typo: every test would read as new, and pass. Raises
    :class:`SettingError` naming those there."""
    held = set_names(folder)
    for name in ("baseline_set", "compare"):
        wanted = settings.values.get(name)
        if held and wanted and not set_folder(folder, wanted).is_dir():
            raise SettingError(f"pytest-energy: {named(settings, name)} has {wanted!r}, but {folder} holds no such "
                               f"baseline set (it holds {', '.join(held)}); give one of those, or record the set "
                               "with --energy-update-baselines")
