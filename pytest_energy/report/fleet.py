"""The nightly report for a fleet of runners: what changed in a window of runs, then every test of it,
per device kind.

Built from a history store through two calls only (``runs``, then ``fleet_records``: each record's
components, fingerprint, verdicts and outcome, never its rounds), so it works on any backend the history
has. Energy is judged per device kind (``pytest_energy.measure.fingerprint``), so the report is too: per
kind, every test any run of the window measured on it (not only the latest run's), its latest verdict, its
trend over the runs' dates and commits, the change points of that trend with the commit range each
falls in, and the runners (fingerprint ids) that measured it.

The report opens with :class:`Changed`, computed here once: the change points of the window, the new
regressions, the missed budgets (and other failures) of the latest runs, and the runners that disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..core.figures import devices_net_per_iteration
from ..core.units import fmt, percent_change
from ..judge.gate import FAILED_OUTCOMES, energy_metric, failure_reason
from ..judge.verdict import Status
from ..measure.fingerprint import DEFAULT_KIND_FIELDS, DeviceKind
from ..stats.changepoint import MAX_PVALUE, MIN_LEVEL, NEWEST_MIN_LEVEL, STEP_MIN_CHANGE, median, rank_pvalue
from ..store.baselines import component_kinds
from .trends import Trend, TrendPoint, commit_range, steps_of

if TYPE_CHECKING:
    from ..store.history import FleetRecord

#: Trend charts the nightly report draws, those of the most urgent tests first (every chart is inline
#: SVG); every test keeps its row, change points and runners.
NIGHTLY_TRENDS = 400
_URGENCY = {"model changed": 0, "regression": 0, "inconclusive": 1, "incomparable": 2}
#: The verdicts that call a test regressed (those that fail the gate).
REGRESSED = frozenset(status.value for status in Status if status.fails)
#: The verdicts that decide (two runners' latest verdicts at one commit disagree where they differ).
DECISIVE = REGRESSED | {Status.IMPROVEMENT.value, Status.UNCHANGED.value}
#: Runs each runner needs at a test's current level for the runners' figures to be compared: four against
#: four is the least the rank test can tell apart at MAX_PVALUE (its smallest p-value is then 0.029).
RUNNER_RUNS = 4


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
    anchor: str = ""  # HTML id of its row in the full table
    charted: bool = False

    @property
    def latest_joules(self) -> float | None:
        return self.trend.points[-1].joules if self.trend.points else None

    @property
    def chart_anchor(self) -> str:
        """HTML id of its trend chart."""
        return f"{self.anchor}-trend"


@dataclass
class Change:
    """One line of the nightly report's opening: what changed for one test on one device kind."""

    test: FleetTest
    text: str  # what changed, without the test's name
    commits: str = ""  # where to look: a commit range "before..after", or the one commit; "" where unknown


@dataclass
class ChangeGroup:
    """One kind of change in the opening: its heading, its lines, and what it means that it has none."""

    key: str  # HTML id
    heading: str
    changes: list[Change]
    empty: str  # said where it has no change
    one: str  # what one change is called in the summary line ("change point")
    many: str  # and several

    @property
    def counted(self) -> str:
        """"3 change points"."""
        return f"{len(self.changes)} {self.one if len(self.changes) == 1 else self.many}"


@dataclass
class Changed:
    """What changed in the window, the nightly report's opening; each list in the order it is shown."""

    new_regressions: list[Change]  # latest verdict a regression, none at an earlier commit of the window
    missed_budgets: list[Change]  # latest run failed the test: its missed budgets, or that it failed
    change_points: list[Change]  # every change point of the window, newest first
    disagreements: list[Change]  # runners of one device kind whose figures or verdicts differ
    still_regressed: int  # tests whose latest verdict is a regression, one found at an earlier commit too
    detectable: int  # tests with the runs a change point needs (MIN_LEVEL + NEWEST_MIN_LEVEL)
    compared: int  # tests whose runners could be compared (RUNNER_RUNS each, or verdicts at one commit)

    @property
    def groups(self) -> list[ChangeGroup]:
        """Each kind of change, the most urgent first."""
        return [
            ChangeGroup("new-regressions", "New regressions", self.new_regressions,
                        "no test's latest verdict is a regression without one at an earlier commit of the window",
                        "new regression", "new regressions"),
            ChangeGroup("missed-budgets", "Missed budgets and failed tests", self.missed_budgets,
                        "every test passed in its latest run, its energy and quality budgets met",
                        "test failed in its latest run", "tests failed in their latest run"),
            ChangeGroup("change-points", "Change points", self.change_points,
                        f"no step in the trends ({_tests(self.detectable)} of the window have the "
                        f"{MIN_LEVEL + NEWEST_MIN_LEVEL} runs on one device kind a change point needs)",
                        "change point", "change points"),
            ChangeGroup("disagreements", "Runners that disagree", self.disagreements,
                        f"{_tests(self.compared)} measured by several runners of one device kind could be "
                        f"compared ({RUNNER_RUNS} runs each at the test's current level, or verdicts at one commit)",
                        "test whose runners disagree", "tests whose runners disagree"),
        ]

    @property
    def count(self) -> int:
        return sum(len(group.changes) for group in self.groups)

    @property
    def summary(self) -> str:
        """One honest line: how much changed, or that nothing did, and the regressions found earlier."""
        if self.count:
            text = ", ".join(group.counted for group in self.groups if group.changes)
        else:
            text = ("Nothing changed in the window: no new regression, no missed budget or failed test in the "
                    "latest runs, no change point, no runners that disagree")
        if self.still_regressed:
            text += (f"; {_tests(self.still_regressed)} regressed at an earlier commit of the window already "
                     "(first in the table)")
        return text


def _tests(count: int) -> str:
    return f"{count} test{'s' if count != 1 else ''}"


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
    changed: Changed
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
    failure: str = ""  # why its latest run failed the test ("" where it passed)
    first_regressed: str = ""  # the commit (else the time) of the first run that judged it regressed
    cleared_commit: str = ""  # the commit of the last run before that judged it, not regressed
    verdicts: dict[str, tuple[str, str]] = field(default_factory=dict)  # runner -> its latest (status, commit)

    def add(self, status: str, message: str, started: str, commit: str, runner: str, failure: str) -> None:
        """One more run measured it: what that run judged and whether the test failed."""
        if status in REGRESSED and not self.first_regressed:
            self.first_regressed = commit or started
        elif status and not self.first_regressed:
            self.cleared_commit = commit
        self.runners[runner] = None
        self.runs += 1
        self.status, self.message, self.failure = status, message, failure
        self.last_started, self.last_commit = started, commit
        self.verdicts[runner] = (status, commit)


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
                # failure_reason reads a record's outcome, quality and criteria, which a FleetRecord has.
                failure = failure_reason(record) if record.outcome in FAILED_OUTCOMES else ""  # type: ignore[arg-type]
                entry.add(status, message, run.started, commit, runner, failure)
                seen.add(kind.id)
        for kind_id in seen:
            kind_runs.setdefault(kind_id, {})[run.run_id] = None
            kind_runners.setdefault(kind_id, {})[runner] = None
    by_kind: dict[str, list[FleetTest]] = {}
    tested: list[tuple[FleetTest, _Series]] = []
    for (kind, name), entry in series.items():
        trend = Trend(name, entry.points, steps_of(entry.points))
        test = FleetTest(name, kind, trend, entry.status, entry.message, list(entry.runners), entry.runs,
                         entry.last_started, entry.last_commit)
        by_kind.setdefault(kind, []).append(test)
        tested.append((test, entry))
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
        kinds=kinds, runners=runners, changed=_changed(tested), notes=list(dict.fromkeys(notes)),
    )


def _changed(tested: list[tuple[FleetTest, _Series]]) -> Changed:
    """What changed in the window, from every test's trend and series (each test once per device kind)."""
    new_regressions: list[Change] = []
    missed: list[Change] = []
    disagreements: list[Change] = []
    steps: list[tuple[str, Change]] = []
    still_regressed = compared = 0
    for test, entry in sorted(tested, key=lambda pair: (pair[0].name, pair[0].kind)):
        # New where the first regression is the latest run's commit: the fleet's runners of one nightly
        # run one commit, and the first of them to judge it is no earlier run than the others.
        if test.status in REGRESSED and entry.first_regressed != (test.last_commit or test.last_started):
            still_regressed += 1
        elif test.status in REGRESSED:
            new_regressions.append(Change(
                test, f"{test.status} in the run of {test.last_started[:19]}, the first of the window "
                      "(commits since the last judged without one)",
                commit_range(entry.cleared_commit, test.last_commit)))
        if entry.failure:
            missed.append(Change(test, f"{entry.failure}, in the run of {test.last_started[:19]}",
                                 test.last_commit[:12]))
        steps += [(step.started, Change(test, f"{percent_change(step.ratio)} at {step.started[:19]}", step.commits))
                  for step in test.trend.steps]
        disagreement, comparable = _disagreement(test, entry)
        compared += comparable
        if disagreement is not None:
            disagreements.append(disagreement)
    newest_first = [change for _, change in sorted(steps, key=lambda pair: pair[0], reverse=True)]
    detectable = sum(1 for test, _ in tested if len(test.trend.points) >= MIN_LEVEL + NEWEST_MIN_LEVEL)
    return Changed(new_regressions, missed, newest_first, disagreements, still_regressed, detectable, compared)


def _disagreement(test: FleetTest, entry: _Series) -> tuple[Change | None, bool]:
    """Whether the runners that measured ``test`` on its device kind disagree, and whether they could be
    compared at all. Runners of one kind should read alike; they disagree where

    * their figures differ: over the runs of the test's current level (since its last change point), the
      runner reading highest and the one reading lowest (each with RUNNER_RUNS runs or more) have medians
      at least STEP_MIN_CHANGE apart and runs a rank test tells apart (p <= MAX_PVALUE): the rule that
      keeps two levels of a trend apart, applied to two runners instead of two stretches of time;
    * or their latest verdicts at one commit (the test's latest) differ among regression, model changed,
      improvement and unchanged (inconclusive and not judged say nothing to differ from).
    """
    points = test.trend.points[test.trend.steps[-1].index:] if test.trend.steps else test.trend.points
    by_runner: dict[str, list[float]] = {}
    for point in points:
        by_runner.setdefault(point.runner, []).append(point.joules)
    measured = {runner: values for runner, values in by_runner.items() if len(values) >= RUNNER_RUNS}
    at_commit = {runner: status for runner, (status, commit) in entry.verdicts.items()
                 if commit and commit == test.last_commit and status in DECISIVE}
    parts = []
    if len(measured) >= 2:
        levels = {runner: median(values) for runner, values in measured.items()}
        low, high = min(levels, key=levels.__getitem__), max(levels, key=levels.__getitem__)
        if levels[low] > 0 and levels[high] / levels[low] - 1 >= STEP_MIN_CHANGE \
                and rank_pvalue(measured[high], measured[low]) <= MAX_PVALUE:
            parts.append(f"{high or 'unnamed'} reads {fmt(levels[high])} J, {low or 'unnamed'} "
                         f"{fmt(levels[low])} J ({percent_change(levels[high] / levels[low])}; medians of "
                         f"{len(measured[high])} and {len(measured[low])} runs since "
                         + (f"the change point of {test.trend.steps[-1].started[:10]})" if test.trend.steps
                            else "the window's start)"))
    verdicts_differ = len(set(at_commit.values())) > 1
    if verdicts_differ:
        parts.append("their verdicts at its latest commit: " + ", ".join(
            f"{runner or 'unnamed'} {status}" for runner, status in at_commit.items()))
    comparable = len(measured) >= 2 or len(at_commit) >= 2
    if not parts:
        return None, comparable
    return Change(test, "; ".join(parts), test.last_commit[:12] if verdicts_differ else ""), True
