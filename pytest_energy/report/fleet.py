"""The nightly report for a fleet of runners: every test of a window of runs, per device kind.

Built from a history store through two calls only (``runs``, then ``fleet_records``: each record's
components, fingerprint and verdicts, never its rounds), so it works on any backend the history has.
Energy is judged per device kind (``pytest_energy.measure.fingerprint``), so the report is too: per kind,
every test any run of the window measured on it (not only the latest run's), its latest verdict, its
trend over the runs' dates and commits, the change points of that trend with the commit range each
falls in, and the runners (fingerprint ids) that measured it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..core.figures import devices_net_per_iteration
from ..judge.gate import energy_metric
from ..measure.fingerprint import DEFAULT_KIND_FIELDS, DeviceKind
from ..store.baselines import component_kinds
from .trends import Trend, TrendPoint, steps_of

if TYPE_CHECKING:
    from ..store.history import FleetRecord

#: Trend charts the nightly report draws, those of the most urgent tests first (every chart is inline
#: SVG); every test keeps its row, change points and runners.
NIGHTLY_TRENDS = 400
_URGENCY = {"model changed": 0, "regression": 0, "inconclusive": 1, "incomparable": 2}


@dataclass
class FleetTest:
    """One test on one device kind across the window."""

    name: str
    kind: str  # the device kind id
    trend: Trend
    status: str  # its latest verdict on this kind ("" where none judged it)
    message: str  # that verdict's message
    runners: list[str]  # fingerprint ids that measured it, in order of first measurement
    runs: int  # runs of the window that measured it on this kind
    last_started: str  # the latest of those runs
    last_commit: str
    anchor: str = ""  # HTML id of its chart
    charted: bool = False

    @property
    def latest_joules(self) -> float | None:
        return self.trend.points[-1].joules if self.trend.points else None


@dataclass
class FleetKind:
    """One device kind: its tests, most urgent first, and the runners that measured on it."""

    kind: str
    tests: list[FleetTest]
    runners: list[str]
    runs: int

    @property
    def steps(self) -> int:
        return sum(len(t.trend.steps) for t in self.tests)


@dataclass
class Fleet:
    """Everything the nightly report's HTML and terminal renderers show."""

    title: str
    generated: str
    window: str  # "the last 30 runs", "runs since 2026-11-01"
    runs: int
    first: str  # started of the oldest run in the window
    last: str  # started of the newest
    kinds: list[FleetKind]
    runners: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def tests(self) -> int:
        return sum(len(k.tests) for k in self.kinds)

    @property
    def steps(self) -> int:
        return sum(k.steps for k in self.kinds)

    @property
    def regressions(self) -> int:
        return sum(1 for k in self.kinds for t in k.tests if t.status == "regression")


def _kind_fields(info: dict[str, Any]) -> tuple[str, ...]:
    """The device-kind fields the run judged with (its --energy-device-kind-fields), else the default."""
    fields = (info.get("settings") or {}).get("device_kind_fields") if isinstance(info, dict) else None
    return tuple(str(fields).split(",")) if fields else DEFAULT_KIND_FIELDS


class _KindCache:
    """The device kinds of a record, computed once per runner and set of devices: a nightly over 1,000
    runs of 100 records would otherwise spend a second deriving the same few kinds 100,000 times."""

    def __init__(self) -> None:
        self.known: dict[tuple[Any, ...], list[DeviceKind]] = {}

    def __call__(self, record: FleetRecord, fields: tuple[str, ...]) -> list[DeviceKind]:
        fingerprint = record.fingerprint or {}
        # The fingerprint id names the GPUs, CPU and methods, which is all the default fields read; other
        # fields (driver, power limit, clocks) can change under one id, so their facts join the key.
        facts = "" if fields == DEFAULT_KIND_FIELDS else repr((fingerprint.get("gpus"), fingerprint.get("cpu_model")))
        key = (fields, fingerprint.get("id"), facts, tuple((c.device, c.kind, c.method) for c in record.components))
        kinds = self.known.get(key)
        if kinds is None:
            kinds = self.known[key] = component_kinds(record.components, fingerprint, fields)
        return kinds


@dataclass
class _Series:
    points: list[TrendPoint] = field(default_factory=list)
    runners: dict[str, None] = field(default_factory=dict)
    runs: int = 0
    status: str = ""
    message: str = ""
    last_started: str = ""
    last_commit: str = ""


def build_fleet(history: Any, last: int | None = None, since: str | None = None,
                charts: int = NIGHTLY_TRENDS) -> Fleet:
    """The nightly report over the ``last`` runs (all where None) started at or after ``since`` (an
    ISO date or time) of ``history``. Raises LookupError where the window holds no run."""
    runs = history.runs(last)
    if since:
        runs = [run for run in runs if run.started >= since]
    if not runs:
        window = f" since {since}" if since else ""
        raise LookupError(f"pytest-energy: the history holds no run{window} yet; run `pytest --energy` first"
                          + (" or give an earlier --since" if since else ""))
    runs = runs[::-1]  # oldest first: each series grows in time order
    records_by_run = history.fleet_records([run.run_id for run in runs])
    kinds_of = _KindCache()
    series: dict[tuple[str, str], _Series] = {}
    kind_runs: dict[str, dict[str, None]] = {}
    kind_runners: dict[str, dict[str, None]] = {}
    notes: list[str] = []
    for run in runs:
        fields = _kind_fields(run.info)
        runner, commit = run.fingerprint_id or "", run.git_commit or ""
        seen: set[str] = set()
        for record in records_by_run[run.run_id]:
            try:
                kinds = kinds_of(record, fields)
            except ValueError as error:  # a field this version does not know: the default kinds
                notes.append(f"run {run.run_id}: {error}; its records are grouped by {', '.join(DEFAULT_KIND_FIELDS)}")
                fields = DEFAULT_KIND_FIELDS
                kinds = kinds_of(record, fields)
            for index, kind in enumerate(kinds):
                status, message = record.verdicts.get(energy_metric(index, kind)) or ("", "")
                entry = series.get((kind.id, record.name))
                if entry is None:
                    entry = series[kind.id, record.name] = _Series()
                joules = devices_net_per_iteration(record.components, kind.devices, record.iterations)
                if math.isfinite(joules):
                    entry.points.append(TrendPoint(run.started, joules, status, commit, runner))
                entry.runners[runner] = None
                entry.runs += 1
                entry.status, entry.message = status, message
                entry.last_started, entry.last_commit = run.started, commit
                seen.add(kind.id)
        for kind_id in seen:
            kind_runs.setdefault(kind_id, {})[run.run_id] = None
            kind_runners.setdefault(kind_id, {})[runner] = None
    by_kind: dict[str, list[FleetTest]] = {}
    for (kind, name), entry in series.items():
        trend = Trend(name, entry.points, steps_of(entry.points))
        by_kind.setdefault(kind, []).append(FleetTest(
            name, kind, trend, entry.status, entry.message, list(entry.runners), entry.runs,
            entry.last_started, entry.last_commit))
    kinds = []
    for number, kind in enumerate(sorted(by_kind)):
        tests = sorted(by_kind[kind], key=lambda t: (_URGENCY.get(t.status, 3), not t.trend.steps, t.name))
        for index, test in enumerate(tests):
            test.anchor = f"k{number}t{index}"
        kinds.append(FleetKind(kind, tests, list(kind_runners[kind]), len(kind_runs[kind])))
    drawable = sorted((t for k in kinds for t in k.tests if len(t.trend.points) >= 2),
                      key=lambda t: (_URGENCY.get(t.status, 3), not t.trend.steps))
    for test in drawable[:charts]:
        test.charted = True
    if len(drawable) > charts:
        notes.append(f"{len(drawable) - charts} more trends are listed without their chart (the first {charts} "
                     "most urgent are drawn)")
    window = f"the last {len(runs)} runs" if last else "every stored run"
    if since:
        window = f"{len(runs)} runs since {since}" + (f" (of the last {last})" if last else "")
    runners = list(dict.fromkeys(r for k in kinds for r in k.runners))
    return Fleet(
        title=f"pytest-energy nightly report: {len(runs)} run{'s' if len(runs) != 1 else ''}",
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        window=window, runs=len(runs), first=runs[0].started, last=runs[-1].started,
        kinds=kinds, runners=runners, notes=list(dict.fromkeys(notes)),
    )
