"""The baselines store: ``<baselines>/<fingerprint id>/<set>/<test module path>.json``.

One JSON file per test module, mirroring the test tree, so a reviewer sees a model change's energy
next to its test in a diff. Each file holds, per record name, the rounds a verdict needs
(iterations, seconds, gross and net joules, net joules per device), which method measured each
device, the reference-workload joules for normalised verdicts, the quality values and the counted
work (FLOPs) the gate judges. Keys are sorted, measured numbers rounded to 6 significant digits
(counts kept exact), indentation fixed: the same run writes the same bytes.

Writes are read-modify-write under a lock, then an atomic rename (:mod:`pytest_energy.locking`), so
parallel writers lose nothing and a reader never sees half a file. A file that cannot be read (bad
JSON, hand-edited into a wrong shape, another schema version) is reported in one line naming it and
is never overwritten: the records in it may be someone's only baseline.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .locking import LockTimeout, atomic_write_text, locked
from .record import Record, Round

#: Version of the baseline file layout. Files of another version are refused with what to do.
SCHEMA_VERSION = 1

_SIGNIFICANT = 6
_SAFE_PART = re.compile(r"[^A-Za-z0-9._-]+")


class BaselineError(ValueError):
    """A baseline file cannot be used; the message is one line naming the file and what to do."""


@dataclass
class Baseline:
    """One record's stored baseline."""

    name: str
    nodeid: str
    unit: str
    devices: dict[str, str]  # device -> method that measured it
    rounds: list[Round]  # the valid rounds of the run it was recorded from
    reference_joules: dict[str, float]  # device -> the reference workload's joules per iteration on that run
    quality: dict[str, float]
    recorded: str  # ISO 8601 timestamp of the record
    git_commit: str | None = None
    path: Path | None = None  # the file it was read from
    work: dict[str, float] = field(default_factory=dict)  # the FLOP proxy the gate judges (see work_values)

    def to_json(self) -> dict[str, Any]:
        data = _rounded({
            "nodeid": self.nodeid,
            "unit": self.unit,
            "devices": self.devices,
            "rounds": [
                {"iterations": r.iterations, "seconds": r.seconds, "gross_joules": r.gross_joules,
                 "net_joules": r.net_joules, "by_device": r.by_device}
                for r in self.rounds
            ],
            "per_iteration_net_joules": _per_iteration_net(self.rounds),  # for reviewers; not read back
            "reference_joules": self.reference_joules,
            "quality": self.quality,
            "recorded": self.recorded,
            "git_commit": self.git_commit,
        })
        # Counts are exact (zero noise): rounding them would make a threshold of 0 fail identical work.
        data["work"] = {k: int(v) if float(v).is_integer() else v for k, v in self.work.items()}
        return data


def _per_iteration_net(rounds: list[Round]) -> float | None:
    iterations = sum(r.iterations for r in rounds)
    return sum(r.net_joules for r in rounds) / iterations if iterations else None


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{_SIGNIFICANT}g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def quality_values(record: Record) -> dict[str, float]:
    """Metric -> value of a record's quality results (entries are ``{"value": ...}`` or bare numbers)."""
    values = {}
    for metric, entry in record.quality.items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        if _number(value):
            values[metric] = float(value)
    return values


#: The proxies the gate judges, by preference: FLOPs per inference where a record has them (its unit
#: is one inference), else the whole run's FLOPs (a fine-tune of fixed steps). Counted, not measured,
#: so they move only when the work does: a CPU-only CI catches a model doing more work with no noise.
WORK_PROXIES = ("flops_per_inference", "flops")


def work_values(record: Record) -> dict[str, float]:
    """The one FLOP proxy of a record the gate judges (empty where the record counted none)."""
    for key in WORK_PROXIES:
        value = record.proxies.get(key)
        if _number(value) and value > 0:
            return {key: float(value)}
    return {}


def from_record(record: Record) -> Baseline:
    """The baseline a record would be stored as (its valid rounds only)."""
    return Baseline(
        name=record.name,
        nodeid=record.nodeid,
        unit=record.unit,
        devices={c.device: c.method for c in record.components},
        rounds=[Round(r.iterations, r.seconds, r.gross_joules, r.net_joules, True, dict(r.by_device))
                for r in record.rounds if r.valid and r.iterations > 0],
        reference_joules=dict(record.reference_joules),
        quality=quality_values(record),
        recorded=record.timestamp,
        git_commit=record.git_commit,
        work=work_values(record),
    )


# -- files ------------------------------------------------------------------------------------------
def set_folder(root: Path, fingerprint_id: str, set_name: str) -> Path:
    """Folder of one baseline set of one hardware fingerprint."""
    return Path(root) / _safe(fingerprint_id) / _safe(set_name)


def _safe(part: str) -> str:
    cleaned = _SAFE_PART.sub("_", part).strip(".")
    return cleaned or "_"


def file_for(folder: Path, nodeid: str) -> Path:
    """The file holding a record's baseline: its test module's path under the set folder."""
    module = nodeid.split("::", 1)[0].replace("\\", "/")
    parts = [_safe(p) for p in module.split("/") if p not in ("", ".")]
    return folder.joinpath(*(parts or ["_"])).with_name((parts or ["_"])[-1] + ".json")


def _fix(path: Path, problem: str) -> BaselineError:
    return BaselineError(
        f"pytest-energy: baseline file {path} {problem}; fix it, or delete it and re-record with "
        "--energy-update-baselines (other baselines are still used, this file is left as it is)"
    )


def _number(value: Any) -> bool:
    """A finite JSON number (not a bool; an integer too large for a float is refused too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _refuse_constant(name: str) -> float:
    """``json.loads`` hook: NaN and Infinity are not JSON; written back they would be null."""
    raise ValueError(f"{name} is not a number JSON allows")


def _entry(path: Path, name: str, data: Any) -> Baseline:
    """Validate one record's entry (files are reviewed and sometimes hand-edited)."""
    if not isinstance(data, dict):
        raise _fix(path, f"has record {name!r} that is not an object")
    rounds_data = data.get("rounds")
    if not isinstance(rounds_data, list):
        raise _fix(path, f"has record {name!r} without a 'rounds' list")
    rounds = []
    for index, item in enumerate(rounds_data):
        if not (isinstance(item, dict) and isinstance(item.get("iterations"), int) and item["iterations"] > 0
                and all(_number(item.get(k)) for k in ("seconds", "gross_joules", "net_joules"))
                and isinstance(item.get("by_device", {}), dict)
                and all(_number(v) for v in item.get("by_device", {}).values())):
            raise _fix(path, f"has record {name!r} whose round {index} is not "
                             "{iterations > 0, seconds, gross_joules, net_joules, by_device}")
        rounds.append(Round(item["iterations"], float(item["seconds"]), float(item["gross_joules"]),
                            float(item["net_joules"]), True,
                            {str(k): float(v) for k, v in item.get("by_device", {}).items()}))
    quality = data.get("quality", {})
    work = data.get("work", {})
    devices = data.get("devices", {})
    reference = data.get("reference_joules")
    if not (isinstance(quality, dict) and all(_number(v) for v in quality.values())):
        raise _fix(path, f"has record {name!r} whose 'quality' is not metric -> number")
    if not (isinstance(work, dict) and all(_number(v) for v in work.values())):
        raise _fix(path, f"has record {name!r} whose 'work' is not proxy -> number")
    if not (isinstance(devices, dict) and all(isinstance(v, str) for v in devices.values())):
        raise _fix(path, f"has record {name!r} whose 'devices' is not device -> method")
    if _number(reference) or reference is None:
        reference = {}  # a bare number (the first layout) covers every device: a refresh records them apart
    if not (isinstance(reference, dict) and all(_number(v) for v in reference.values())):
        raise _fix(path, f"has record {name!r} whose 'reference_joules' is not device -> joules")
    return Baseline(
        name=name,
        nodeid=str(data.get("nodeid", name)),
        unit=str(data.get("unit", "iteration")),
        devices=dict(devices),
        rounds=rounds,
        reference_joules={str(k): float(v) for k, v in reference.items()},
        quality={k: float(v) for k, v in quality.items()},
        recorded=str(data.get("recorded", "")),
        git_commit=data.get("git_commit"),
        path=path,
        work={k: float(v) for k, v in work.items()},
    )


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


def read_file(path: Path) -> dict[str, Baseline]:
    """Every baseline in one file; raises :class:`BaselineError` (one line) when it cannot be used."""
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


def render_file(baselines: Iterable[Baseline]) -> str:
    """The text of one baseline file: stable key order, rounded numbers, one trailing newline."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "records": {b.name: b.to_json() for b in sorted(baselines, key=lambda b: b.name)},
    }
    return json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"


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


def other_hardware(root: Path, fingerprint_id: str, set_name: str) -> dict[str, list[str]]:
    """Record name -> fingerprint ids of other hardware holding a baseline for it in ``set_name``.

    Unreadable files of other hardware are skipped silently: they can never be used here anyway.
    """
    found: dict[str, list[str]] = {}
    root = Path(root)
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != _safe(fingerprint_id)):
        set_path = folder / _safe(set_name)
        for path in sorted(set_path.rglob("*.json")) if set_path.is_dir() else []:
            try:
                names = read_file(path)
            except BaselineError:
                continue
            for name in names:
                found.setdefault(name, []).append(folder.name)
    return found


@dataclass
class Update:
    """What :func:`update` did."""

    written: dict[str, str] = field(default_factory=dict)  # record name -> "new" or "refreshed"
    refused: list[str] = field(default_factory=list)  # record names whose file cannot be read
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def update(folder: Path, baselines: Iterable[Baseline]) -> Update:
    """Write or refresh these baselines in a set folder, keeping every other entry of each file.

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
                for entry in entries:
                    result.written[entry.name] = "refreshed" if entry.name in existing else "new"
                    existing[entry.name] = entry
                text = render_file(existing.values())
                if not path.exists() or _read_regular(path) != text:
                    atomic_write_text(path, text)
                    result.files.append(path)
        except (BaselineError, LockTimeout) as error:  # this file is left as it is; the others are written
            result.errors.append(str(error))
            result.refused += [entry.name for entry in entries]
    return result
