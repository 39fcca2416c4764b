"""Copies of the run where ML teams already look: an MLflow run (:mod:`.mlflow`), a Weights & Biases run
(:mod:`.wandb`), a Prometheus text file and a Pushgateway push (:mod:`.prometheus`).

Each reads the report built once (:mod:`pytest_energy.report.model`: a record's figures are its row's, never
computed again here), imports its library only when it is called (each is an optional extra), and is
written after every other output, so it attaches the files this run wrote. A tracker that is missing,
misconfigured or unreachable costs one line saying what to do (:func:`log`), never another output nor the
run's exit status: it is a copy for people to look at, not the artifact a CI step needs.

What they share lives here: the keys a record's figures go by in a tracker (:func:`record_keys`,
:func:`figures`) and that one line.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...core.config import Output
    from ..model import Report, Row

#: MLflow's longest metric or tag key; W&B takes any, so the same keys serve both.
MAX_KEY = 250
#: The longest a record's part of a key may be: room for "/" and the longest figure name.
MAX_NAME = 200
_UNSAFE = re.compile(r"[^\w.\- /]")  # MLflow's portable key characters: letters, digits, _ . - space /
_USERINFO = re.compile(r"(://)[^/\s]*@")  # to the last "@" before the path: a password may hold one


class TrackerError(Exception):
    """A tracker that cannot take the run for a reason its message says in one line, with what to do."""


def needs(module: str, extra: str) -> Any:
    """The tracker's library, imported now; :class:`TrackerError` naming the extra to install without it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise TrackerError(f"{module} cannot be imported ({error}): pip install 'pytest-energy[{extra}]'") from None


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def _key(name: str) -> str:
    """A record's name as a key may spell it: "::" a "/", any other unsafe character "_", no empty or dot
    path segment (MLflow refuses a key a path would read otherwise), at most :data:`MAX_NAME` characters."""
    parts = [part for part in _UNSAFE.sub("_", name.replace("::", "/")).split("/") if part]
    key = "/".join("_" if part in (".", "..") else part for part in parts) or "_"
    return key if len(key) <= MAX_NAME else f"{key[:MAX_NAME - 9].rstrip('/')}-{_digest(name)}"


def record_keys(names: list[str]) -> dict[str, str]:
    """Each record name -> its key (``"t.py::test_a[x]"`` -> ``"t.py/test_a_x_"``); two names that would
    read the same key both get their name's digest appended, so no figure overwrites another's."""
    keys = {name: _key(name) for name in names}
    taken: dict[str, int] = {}
    for key in keys.values():
        taken[key] = taken.get(key, 0) + 1
    return {name: key if taken[key] == 1 else f"{key[:MAX_NAME - 9]}-{_digest(name)}" for name, key in keys.items()}


def figures(row: Row) -> dict[str, float]:
    """A record's figures as the trackers log them, the finite ones: net and gross joules per unit (its
    ``unit``: iteration, inference, ...), gross Wh per 1,000 inferences (inference cases), grams CO2eq of
    the whole measurement, and each quality metric."""
    record = row.record
    values: dict[str, Any] = {
        "net_joules_per_unit": record.per_iteration_net_joules,
        "gross_joules_per_unit": record.per_iteration_gross_joules,
        "wh_per_1000_inferences": row.wh_per_1000,
        "co2_grams": record.co2_grams,
        **{f"quality_{_UNSAFE.sub('_', q.metric.replace('/', '_'))}": q.value for q in row.quality},
    }
    return {name: float(value) for name, value in values.items()
            if isinstance(value, (int, float)) and math.isfinite(value)}


def verdict(row: Row) -> str:
    """The record's verdict as a tag or label reads it ("regression", "unchanged", ... "not judged")."""
    return row.status.value or "not judged"


def run_tags(report: Report) -> dict[str, str]:
    """What identifies the run: commit, branch, runner, device kinds, the gate's outcome and exit status."""
    run = report.run
    kinds = sorted({kind.kind for row in report.rows for kind in row.kinds})
    tags = {
        "commit": (run.git_commit if run else None) or "",
        "branch": (run.branch if run else None) or "",
        "runner": str((run.fingerprint or {}).get("id") or "") if run else "",
        "device_kinds": ", ".join(kinds),
        "outcome": report.headline.outcome,
        "exit_status": str(report.headline.exit_status),
        "baseline_set": report.baseline_set,
        "run_id": run.run_id if run else "",
    }
    return {name: value for name, value in tags.items() if value}


def hidden(text: str) -> str:
    """``text`` with any URL's user information (a password in a tracking URI) shown as ``***``."""
    return _USERINFO.sub(r"\1***@", text)


def log(output: Output, report: Report, target: Path | str, attachments: list[Path], source: str) -> str:
    """Write ``output`` (a tracker's row of :data:`pytest_energy.core.config.OUTPUTS`) to ``target``, with
    the files this run wrote (``attachments``); the one line to show, whether it was written or not.
    ``source``: the setting that named the target, as a line names it ("--energy-mlflow")."""
    module_name, _, function = output.writer.partition(":")
    module = importlib.import_module(module_name, "pytest_energy.report")
    try:
        return hidden(getattr(module, function)(report, target, attachments))
    except TrackerError as error:
        reason = str(error)
    except ImportError as error:  # a part of the library the store needs (MLflow's SQLite store: alembic)
        reason = f"{type(error).__name__}: {error}: pip install 'pytest-energy[{module.EXTRA}]'"
    except Exception as error:  # whatever the library raises: one line, never a traceback
        lines = hidden(str(error)).strip().splitlines()  # hidden before it is cut: no part of a password shows
        reason = f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
        reason += f"; {module.HINTS[function].format(source=source)}"
    verb = "write" if output.shape == "file" else "send"
    return hidden(f"pytest-energy: could not {verb} {output.what} ({source}): {reason}; "
                  "the run's other outputs and exit status are unaffected")
