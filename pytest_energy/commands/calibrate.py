"""``pytest-energy calibrate``: how noisy this runner is, and the settings that meet a declared target.

It runs the fixed reference workload (:mod:`pytest_energy.measure.reference`) through the plugin's own meter
for a bounded time, cycling through several window lengths: each *measurement* is what the plugin
does for one measured call (warm-up, then back-to-back rounds). From the per-iteration net joules
of the rounds the gate would judge it estimates, per window:

* the spread of the rounds after the first within one measurement (``later_cv``) and the first
  round's offset from them and its spread (the meter's first window can read apart);
* the drift between the measurements at the start and at the end, which rounds inside one run
  cannot see but a baseline recorded earlier meets.

It then simulates the gate's statistics (:mod:`pytest_energy.judge.simulation`: the gate's Mann-Whitney
interval and rule, lognormal rounds with the measured spreads, the drift applied against the rule,
seeded) for each number of rounds, window and minimum effect, and recommends the cheapest
measurement (rounds x window) that meets the target, with the largest minimum effect that meets it
there. A target no setting meets is said plainly, with the smallest effect this runner can detect.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..core.config import MAX_MIN_EFFECT, Settings
from ..core.figures import round_values
from ..core.units import percent
from ..judge.simulation import NoiseModel, Simulated, Target, simulate
from ..judge.verdict import minimum_rounds
from ..measure.meter import Meter
from ..measure.reference import products, reference_workload
from ..measure.sources import cpu_tdp, detect
from ..measure.sources.base import Channel
from .project import Project, ProjectError, overriding, pyproject_target, write_ini_options

#: Exit code when the target cannot be met (as doctor's unmet requirement).
UNMET_EXIT = 3
DEFAULT_SECONDS = 180.0
DEFAULT_WINDOWS = (0.25, 0.5, 1.0, 2.0)
#: Rounds per measured call tried in the simulation.
ROUNDS_CANDIDATES = (5, 7, 10, 15, 20)
#: Minimum effects tried, as shares of the target effect (a threshold at the effect itself detects half).
THRESHOLD_SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
#: Effects tried for "the smallest effect this runner detects" when the target is out of reach.
DETECTABLE_EFFECTS = (0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
DEFAULT_TRIALS = 2000
#: Measurements per window needed for the first round's spread.
MIN_MEASUREMENTS = 2


@dataclass
class Group:
    """One run of the reference workload and the devices whose joules the gate would judge in it."""

    name: str  # "gpu:0", or "cpu" for the CPU product shared by the CPU, DRAM and modelled channels
    workload: Callable[[], None]
    judged: list[str]


@dataclass
class Measurement:
    """Per-iteration net joules of one measurement's rounds, and when it was taken."""

    at: float  # seconds since calibration began (middle of the measurement)
    values: list[float]


@dataclass
class WindowNoise:
    """What the measurements of one group at one window showed."""

    group: str
    window: float
    measurements: list[Measurement] = field(default_factory=list)
    invalid: int = 0  # measurements with an invalid round or net energy at or below zero
    problem: str = ""

    @property
    def usable(self) -> bool:
        return len(self.measurements) >= MIN_MEASUREMENTS

    def spreads(self) -> dict[str, float]:
        """cv (every round, within its measurement), later_cv, first_offset and first_sd (relative to
        the mean of the later rounds of the same measurement, so drift between measurements is left out)."""
        all_squares = later_squares = 0.0
        all_freedom = later_freedom = 0
        firsts = []
        for measurement in self.measurements:
            values = measurement.values
            later = statistics.fmean(values[1:])
            whole = statistics.fmean(values)
            firsts.append(values[0] / later - 1)
            later_squares += sum((v / later - 1) ** 2 for v in values[1:])
            all_squares += sum((v / whole - 1) ** 2 for v in values)
            later_freedom += len(values) - 2
            all_freedom += len(values) - 1
        return {
            "cv": math.sqrt(all_squares / all_freedom) if all_freedom else math.nan,
            "later_cv": math.sqrt(later_squares / later_freedom) if later_freedom else math.nan,
            "first_offset": statistics.fmean(firsts) if firsts else math.nan,
            "first_sd": statistics.stdev(firsts) if len(firsts) > 1 else 0.0,
        }

    def model(self) -> NoiseModel:
        spread = self.spreads()
        return NoiseModel(f"{self.group} {self.window:g} s", spread["later_cv"], spread["first_offset"],
                          spread["first_sd"])


@dataclass
class Choice:
    """Settings and the rates the simulation gave them (the worst over the groups)."""

    rounds: int
    min_window: float
    min_effect: float
    effect: float  # the effect these rates are for
    false_alarms: float
    detection: float


@dataclass
class Calibration:
    """Everything calibrate found."""

    target: Target
    noise: list[WindowNoise]
    drift: dict[str, float]  # group -> relative change from the first to the last measurements
    trials: int
    seconds: float  # time spent measuring
    notes: list[str] = field(default_factory=list)
    choice: Choice | None = None  # meets the target
    smallest: Choice | None = None  # where the target is not met: the smallest effect detected so

    def ini_values(self) -> dict[str, Any]:
        """The settings to write, by ini name (:mod:`pytest_energy.core.config`)."""
        assert self.choice is not None
        return {"energy_rounds": self.choice.rounds, "energy_min_window": self.choice.min_window,
                "energy_min_effect": self.choice.min_effect}


# -- measuring ---------------------------------------------------------------------------------------
def groups_for(channels: list[Channel], notes: list[str]) -> list[Group]:
    """As the session measures its reference (:func:`pytest_energy.measure.reference.products`): each GPU
    runs its own product; the other devices share one run of the CPU product, judged on the measured ones
    where there are any (as the gate does). Modelled CPU and RAM beside a measured GPU are left out: the
    gate does not judge them there."""
    groups = []
    planned = products(channels)
    others = planned.pop("cpu", [])
    for device, own in planned.items():
        workload = reference_workload(device)
        if workload is None:
            notes.append(f"{device} not calibrated: its reference workload needs torch with CUDA")
        else:
            groups.append(Group(device, workload, [c.device for c in own]))
    measured = [c.device for c in others if c.method != "modelled"]
    if measured or (others and not groups):
        workload = reference_workload("cpu")
        assert workload is not None  # the CPU product needs nothing
        groups.append(Group("cpu", workload, measured or [c.device for c in others]))
    elif others:
        notes.append(f"{', '.join(c.device for c in others)} not calibrated: modelled, and not judged beside "
                     "a measured GPU")
    return groups


def measure(meter: Meter, groups: list[Group], windows: Sequence[float], *, seconds: float, warmup: int,
            rounds: int, progress: Callable[[float, str], None]) -> tuple[list[WindowNoise], float]:
    """Measurements cycling through the windows (shortest first) and groups until ``seconds`` are spent;
    one is never started when it would end after that (its length judged from the last one)."""
    noise = {(g.name, w): WindowNoise(g.name, w) for w in windows for g in groups}
    lasted = {key: rounds * key[1] for key in noise}
    began = time.perf_counter()
    while True:
        started_any = False
        for window in sorted(windows):
            for group in groups:
                key = (group.name, window)
                if time.perf_counter() - began + lasted[key] > seconds:
                    continue
                started_any = True
                progress(time.perf_counter() - began, f"{group.name}, {window:g} s windows")
                start = time.perf_counter()
                taken = meter.take_rounds(group.workload, (), {}, rounds=rounds, min_window=window, warmup=warmup)
                measured = meter.account(taken)
                end = time.perf_counter()
                lasted[key] = end - start
                values = round_values(measured.rounds, group.judged)
                entry = noise[key]
                if values is None or len(values) < rounds or any(not (v > 0) for v in values):
                    entry.invalid += 1
                    entry.problem = next((c.note for c in measured.components if c.note),
                                         "net energy at or below zero: the window is too short to stand out "
                                         "from idle power")
                    continue
                entry.measurements.append(Measurement((start + end) / 2 - began, values))
        if not started_any:
            break
    spent = time.perf_counter() - began
    progress(spent, "done")
    return list(noise.values()), spent


def drift(noise: list[WindowNoise], group: str) -> float:
    """The relative change of the group's measurements from the first third of the time to the last,
    each measurement taken relative to the mean of its window (0.0 with fewer than two measurements)."""
    points = []
    for entry in noise:
        if entry.group != group or not entry.measurements:
            continue
        mean = statistics.fmean(statistics.fmean(m.values) for m in entry.measurements)
        points += [(m.at, statistics.fmean(m.values) / mean) for m in entry.measurements]
    if len(points) < 2:
        return 0.0
    points.sort()
    third = max(1, len(points) // 3)
    return statistics.fmean(v for _, v in points[-third:]) / statistics.fmean(v for _, v in points[:third]) - 1


# -- choosing ----------------------------------------------------------------------------------------
def _thresholds(effect: float) -> list[float]:
    """Minimum effects to try for a target effect; only those the plugin accepts (--energy-min-effect's range)."""
    return [t for t in (round(share * effect, 6) for share in THRESHOLD_SHARES) if t <= MAX_MIN_EFFECT]


def _best(noise: list[WindowNoise], drifts: dict[str, float], target: Target, candidates: list[tuple[int, float]],
          *, trials: int, seed: int) -> Choice | None:
    """The first candidate (rounds, window), in the order given, with a minimum effect that meets the
    target for every group; with the largest such minimum effect."""
    thresholds = _thresholds(target.effect)
    by_key = {(e.group, e.window): e for e in noise if e.usable}
    for rounds, window in candidates:
        results: list[Simulated] = []
        for group in drifts:
            model = by_key[(group, window)].model()
            results.append(simulate(model, rounds, trials=trials, effects=(0.0, target.effect),
                                    thresholds=thresholds, drift=drifts[group],
                                    seed=f"calibrate-{seed}-{group}-{window}-{rounds}-{target.effect}"))
        passing = [t for t in thresholds if all(r.meets(target, t) for r in results)]
        if passing:
            threshold = max(passing)
            return Choice(rounds, window, threshold, target.effect,
                          max(r.rate(threshold, 0.0) or 0.0 for r in results),
                          min(r.rate(threshold, target.effect) or 0.0 for r in results))
    return None


def recommend(noise: list[WindowNoise], drifts: dict[str, float], target: Target, *, trials: int,
              seed: int) -> tuple[Choice | None, Choice | None]:
    """(the cheapest settings meeting ``target``, None), or (None, the smallest effect of
    :data:`DETECTABLE_EFFECTS` detected with the target's rates at the most sensitive setting measured;
    None when not even +100 % is)."""
    usable = {(e.group, e.window) for e in noise if e.usable}
    windows = sorted(w for w in {e.window for e in noise} if all((g, w) in usable for g in drifts))
    if not windows:
        return None, None
    candidates = sorted(((r, w) for r in ROUNDS_CANDIDATES for w in windows), key=lambda c: (c[0] * c[1], c[0]))
    choice = _best(noise, drifts, target, candidates, trials=trials, seed=seed)
    if choice is not None:
        return choice, None
    # The most sensitive setting measured: the most rounds, at the window whose noisiest group is quietest.
    by_key = {(e.group, e.window): e for e in noise if e.usable}
    quietest = min(windows, key=lambda w: max(by_key[(g, w)].spreads()["later_cv"] for g in drifts))
    for effect in (e for e in DETECTABLE_EFFECTS if e > target.effect):
        wider = Target(target.max_false_alarms, target.min_detection, effect)
        found = _best(noise, drifts, wider, [(ROUNDS_CANDIDATES[-1], quietest)], trials=trials, seed=seed)
        if found is not None:
            return None, found
    return None, None


def calibrate(settings: Settings, *, seconds: float, windows: Sequence[float], target: Target, trials: int,
              seed: int, progress: Callable[[float, str], None]) -> Calibration:
    """Measure this runner for ``seconds`` and choose settings for ``target``; raises ``LookupError``
    (one line) when nothing here can run the reference workload."""
    found = detect(settings.devices, rapl_root=settings.powercap, cpu_tdp=cpu_tdp(settings))
    notes = list(found.notes)
    meter = Meter(found.channels)
    try:
        groups = groups_for(found.channels, notes)
        if not groups:
            raise LookupError("pytest-energy calibrate: no device here can run the reference workload"
                              + (f" ({'; '.join(notes)})" if notes else ""))
        meter.start(settings.idle_seconds)
        noise, spent = measure(meter, groups, windows, seconds=seconds, warmup=settings.warmup,
                               rounds=minimum_rounds(), progress=progress)
    finally:
        meter.close()
    for entry in noise:
        if not entry.usable:
            notes.append(f"{entry.group} at {entry.window:g} s windows: {len(entry.measurements)} usable "
                         f"measurement(s), {MIN_MEASUREMENTS} needed"
                         + (f" ({entry.invalid} invalid: {entry.problem})" if entry.invalid else
                            "; raise --seconds"))
    if all(all(c.method == "modelled" for c in found.channels if c.device in g.judged) for g in groups) \
            and not settings.gate_modelled:
        notes.append("only modelled energy is judged here: its verdicts do not fail the session unless "
                     "energy_gate_modelled is true")
    drifts = {g.name: drift(noise, g.name) for g in groups}
    result = Calibration(target, noise, drifts, trials, spent, notes)
    result.choice, result.smallest = recommend(noise, drifts, target, trials=trials, seed=seed)
    return result


# -- output ------------------------------------------------------------------------------------------
def verdict_lines(result: Calibration, windows: Sequence[float]) -> list[str]:
    """The recommendation (or why there is none) in plain lines."""
    target = result.target
    if result.choice is not None:
        c = result.choice
        return [f"meets {target.describe()}: {c.rounds} rounds of at least {c.min_window:g} s, minimum effect "
                f"{percent(c.min_effect)} (simulated {percent(c.false_alarms)} false alarms, "
                f"{percent(c.detection)} detection; {result.trials} trials a setting, lognormal rounds with the "
                "spreads measured, drift applied against the rule)"]
    reach = f"windows up to {max(windows):g} s and up to {ROUNDS_CANDIDATES[-1]} rounds"
    if result.smallest is None:
        if not any(e.usable for e in result.noise):
            return ["no recommendation: too few usable measurements (see the notes); raise --seconds"]
        return [f"this runner cannot meet {target.describe()} with {reach}, nor detect +100 % so: "
                "its energy is too noisy to gate on"]
    s = result.smallest
    return [f"this runner cannot meet {target.describe()} with {reach}",
            f"the smallest effect it detects so is +{percent(s.effect)}: {s.rounds} rounds of at least "
            f"{s.min_window:g} s, minimum effect {percent(s.min_effect)} (rerun with --effect {s.effect:g} to "
            "write those settings)"]


def render(result: Calibration, windows: Sequence[float], console: Any) -> None:
    """Print the measured noise and the recommendation with rich on ``console``."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Noise of the reference workload ({result.seconds:.0f} s measured)", title_justify="left")
    for column in ("device", "window", "measurements", "per-round CV", "later rounds CV", "first round", "drift"):
        table.add_column(column)
    for entry in result.noise:
        spread = entry.spreads() if entry.usable else {}
        first = (f"{spread['first_offset'] * 100:+.2f} % ± {spread['first_sd'] * 100:.2f}" if spread else "-")
        table.add_row(*map(Text, (
            entry.group, f"{entry.window:g} s", f"{len(entry.measurements)}" + (f" (+{entry.invalid} invalid)"
                                                                                 if entry.invalid else ""),
            percent(spread["cv"]) if spread else "-", percent(spread["later_cv"]) if spread else "-", first,
            f"{result.drift[entry.group] * 100:+.2f} %")))
    console.print(table)
    for line in verdict_lines(result, windows):
        console.print(line, markup=False, highlight=False)
    if result.choice is not None:
        console.print("[tool.pytest.ini_options]", markup=False, highlight=False)
        for name, value in result.ini_values().items():
            console.print(f"{name} = {value!r}", markup=False, highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def main(settings: Settings, project: Project, *, seconds: float, windows: Sequence[float], target: Target,
         trials: int, seed: int, write: bool) -> int:
    """Calibrate, print, and with ``write`` set the keys in pyproject.toml (warning where the project's
    ``addopts`` or the environment overrides them). 0, :data:`UNMET_EXIT` when the target is not met
    (nothing written), 2 when nothing can be measured or the file cannot be edited (read-only, say)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    target_file = None
    if write:
        try:
            target_file = pyproject_target(project)
        except ProjectError as error:  # said before minutes of measuring, not after
            print(str(error), file=sys.stderr)
            return 2
    console = Console(soft_wrap=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                   TimeElapsedColumn(), console=Console(stderr=True))
    with bar:
        task = bar.add_task("calibrating", total=seconds)
        try:
            result = calibrate(settings, seconds=seconds, windows=windows, target=target, trials=trials, seed=seed,
                               progress=lambda done, what: bar.update(task, completed=min(done, seconds),
                                                                      description=what))
        except LookupError as error:
            print(str(error), file=sys.stderr)
            return 2
    render(result, windows, console)
    if result.choice is None:
        return UNMET_EXIT
    if target_file is not None:
        try:
            console.print(f"pytest-energy: {write_ini_options(target_file, result.ini_values())}",
                          markup=False, highlight=False)
        except (ProjectError, OSError) as error:
            print(str(error), file=sys.stderr)
            return 2
        for line in overriding(project, result.ini_values()):
            print(line, file=sys.stderr)
    return 0
