"""Verdicts: this run's rounds against a baseline's, turned into improvement / unchanged / regression /
inconclusive, plus "new" (no baseline), "incomparable" (baseline from other hardware) and "model changed"
(the model verdict's: another model than the baseline's ran).

The energy statistic is distribution-free and exact, so it needs no random numbers and a verdict is
the same every time it is computed from the same rounds:

* each round gives one value, joules per iteration; the comparison is made on their logarithms, so
  a change is a ratio (energy noise scales with the energy);
* the estimate is the Hodges-Lehmann shift, the median of all pairwise differences between this run's
  and the baseline's log values (reported as a ratio: the median of the pairwise ratios);
* its interval is the Mann-Whitney confidence interval, whose coverage is exact for any noise
  distribution with few rounds (a bootstrap of 5 rounds covers too little), and which a single
  disturbed round cannot drag (a mean and a t interval can be). Past a few thousand pairs of rounds
  the exact rank count gets dear (600 rounds a side: 10^8 steps) and the rank statistic's normal
  approximation takes over, as deterministic and on the wide side of the exact interval;
* a side with a single window (a marked test without the fixture, ``with energy.measure()``) cannot
  show its own noise: that side is given the noise one window can have (its stated reading
  uncertainty and :data:`WINDOW_NOISE` between runs), so a change far beyond it is still a verdict
  and a smaller one is inconclusive, saying so. Rounds too few for the rank interval (3 against 3
  has none at 98 %) are judged the same way, so fewer rounds never judge less than one window does;
* a round at or below zero net (a GPU dipping below its idle power, a disturbed reading) is no
  energy figure: it is left out with a note and the other rounds are judged. Only where most of a
  side's rounds are such is the work too small to judge.

Rule, with ``t`` the minimum effect (a fraction) and the band ``[1/(1+t), 1+t]``:

* regression: the interval lies above 1 (a real increase) and the estimate is above ``1+t``;
* improvement: the interval lies below 1 and the estimate is below ``1/(1+t)``;
* unchanged: the whole interval lies inside the band;
* inconclusive: anything else (too noisy, too few rounds, or a real change smaller than it is wide).

Identical code turns red only when the interval misses 1 from above, which the two-sided 98 %
interval allows at most 1 % of the time whatever the noise, and less still as the estimate must
also pass the threshold. The threshold absorbs run-to-run drift that rounds within one run cannot see.

The types the gate, the stores and the reports read live here too, below the logic that uses them:
:class:`Status`, :class:`Verdict` (built through its named constructors) and :class:`Judgement`.
"""

from __future__ import annotations

import math
import statistics
import struct
from collections import Counter
from dataclasses import KW_ONLY, asdict, dataclass, field
from enum import Enum
from statistics import NormalDist
from typing import Any, Iterable, Sequence

from ..core.units import percent, percent_change
from ..stats.ranks import rank_sum_counts
from ..stats.resampling import Difference


class Status(str, Enum):
    """What a verdict found, most urgent first. A record's status is its most urgent verdict over metrics
    and sets, in the gate's head line and in every report alike. The values are the words the JSON
    report, the history store and the baselines' users read, so a member compares equal to its word.

    "model changed" is the model verdict's: another model ran than the baseline's. It comes first, as it
    explains every other change of its record (a cheaper model is no regression, a dearer one is the
    model's doing), and fails the gate as a regression does (:attr:`fails`), as a snapshot mismatch, until
    the new model is recorded."""

    MODEL_CHANGED = "model changed"
    REGRESSION = "regression"
    INCONCLUSIVE = "inconclusive"
    IMPROVEMENT = "improvement"
    NEW = "new"
    UNCHANGED = "unchanged"
    INCOMPARABLE = "incomparable"
    NOT_JUDGED = ""  # a record no verdict judged (a failed test, a run without baselines): rows only

    def __str__(self) -> str:  # the word, as str() of the value gives it (an Enum would give "Status.NEW")
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str(self), spec)

    @property
    def urgency(self) -> int:
        """0 for the most urgent (model changed); NOT_JUDGED comes last."""
        return _URGENCY[self]

    @property
    def fails(self) -> bool:
        """Whether a verdict of this status fails the gate where it gates: a regression, a model changed."""
        return self in (Status.MODEL_CHANGED, Status.REGRESSION)


#: The statuses a verdict can have, most urgent first.
STATUSES = tuple(status for status in Status if status is not Status.NOT_JUDGED)

_URGENCY = {status: rank for rank, status in enumerate(Status)}


def most_urgent(statuses: Iterable[str]) -> Status:
    """The most urgent of ``statuses`` in :class:`Status`' order (NOT_JUDGED, "", where there is none)."""
    return min((Status(s) for s in statuses), key=_URGENCY.__getitem__, default=Status.NOT_JUDGED)


#: Two-sided confidence of the energy interval: at most 1 % false regressions on identical code.
CONFIDENCE = 0.98


@dataclass
class Verdict:
    """The judgement of one metric of one record against one baseline set.

    Built through the named constructors (:meth:`from_interval`, :meth:`from_ratio`, :meth:`of_status`,
    :meth:`inconclusive`); the positional form stays for stored verdicts (``Verdict(**row)``)."""

    name: str  # record name
    metric: str  # "energy" or a quality metric name ("rougeL", "accuracy", ...)
    status: Status
    ratio: float | None  # current / baseline, for energy the ratio of medians
    low: float | None  # confidence interval of the ratio
    high: float | None
    threshold: float  # minimum effect size used
    baseline_set: str
    message: str  # one line, shown in the terminal and reports
    gating: bool = True  # False where the gate must not fail on it (modelled energy, not asked)
    _: KW_ONLY  # the rest by name only: a positional eleventh argument once landed in the wrong field
    by_budget: bool = False  # judged against a budget, which a refreshed baseline does not change
    baseline_hardware: str = ""  # fingerprint id of the runner its baseline was recorded on ("" for none)

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # a stored or hand-written word becomes the member

    @classmethod
    def from_interval(cls, name: str, metric: str, status: Status, interval: Interval | None, message: str, *,
                      threshold: float, baseline_set: str, gating: bool = True) -> Verdict:
        """A verdict on rounds: the interval's ratio and bounds (none where no interval was computed)."""
        return cls(name, metric, status, interval.ratio if interval else None, interval.low if interval else None,
                   interval.high if interval else None, threshold, baseline_set, message, gating)

    @classmethod
    def from_ratio(cls, name: str, metric: str, status: Status, ratio: float | None, message: str, *,
                   threshold: float, baseline_set: str, gating: bool = True, by_budget: bool = False) -> Verdict:
        """A verdict on one number per run: its ratio to the baseline value, no interval."""
        return cls(name, metric, status, ratio, None, None, threshold, baseline_set, message, gating,
                   by_budget=by_budget)

    @classmethod
    def of_status(cls, name: str, metric: str, status: Status, message: str, *, threshold: float, baseline_set: str,
                  gating: bool = False, baseline_hardware: str = "") -> Verdict:
        """A verdict with no ratio: nothing to compare against (new, incomparable) or compared by identity
        (the model). It gates only where asked."""
        return cls(name, metric, status, None, None, None, threshold, baseline_set, message, gating,
                   baseline_hardware=baseline_hardware)

    @classmethod
    def inconclusive(cls, name: str, metric: str, reason: str, *, threshold: float, baseline_set: str,
                     gating: bool = False, baseline_hardware: str = "") -> Verdict:
        """A metric that could not be judged, with the one-line ``reason`` as its message."""
        return cls.of_status(name, metric, Status.INCONCLUSIVE, reason, threshold=threshold,
                             baseline_set=baseline_set, gating=gating, baseline_hardware=baseline_hardware)


@dataclass
class Judgement:
    """Everything the gate decided for one session, computed once and read by stores and reports."""

    verdicts: list[Verdict] = field(default_factory=list)  # per record name and metric
    baseline_set: str = "default"
    profile: str = "default"  # the measurement profile (--energy-profile): its baselines are the set's own folder
    fingerprint_id: str = ""
    new: list[str] = field(default_factory=list)  # record names with no baseline yet
    errors: list[str] = field(default_factory=list)  # one line per unreadable baseline file
    unreadable: list[str] = field(default_factory=list)  # those files: their tests are not compared
    gate_failed: bool = False
    summary: list[str] = field(default_factory=list)  # lines naming each regression and its size
    rootdir: str = ""  # where relative baseline and history paths resolve (pytest's rootdir)
    # Why the gate could not judge all it should, and so fails: records lost (a crashed worker, see
    # gate.fail_incomplete), unreadable baselines, unchecked budgets, a quality metric the baseline holds
    # and the run lacks.
    incomplete: list[str] = field(default_factory=list)
    # Record name -> why its test failed (a missed budget, ...); "" -> why pytest fails the run where no
    # measured test explains it. Their verdicts are shown, not gating: the failure already fails the run.
    failed: dict[str, str] = field(default_factory=dict)
    orphaned: list[dict[str, str]] = field(default_factory=list)  # baselines no collected test matched
    # Energy budgets that only a modelled estimate exceeded: one line each, reported and not gating (a
    # modelled figure fails its test only with --energy-gate-modelled).
    over_budget: list[str] = field(default_factory=list)
    baselines_required: bool = False  # --energy-require-baselines: new and orphaned ones fail the gate

    @property
    def outcome(self) -> str:
        """``incomplete``, ``failed``, ``passed`` or ``not judged``: with no verdict the gate did not run or
        could not judge, which never reads as "passed", whatever the exit status."""
        return ("incomplete" if self.incomplete else "failed" if self.gate_failed or self.failed
                else "passed" if self.verdicts else "not judged")

    def document(self, not_judged: dict[str, str]) -> dict[str, Any]:
        """The gate's part of the energy JSON: its outcome and head line, every verdict, and
        ``not_judged`` (record name -> its test's outcome) for the records it did not judge."""
        return {
            "outcome": self.outcome,
            "head": self.summary[0] if self.summary else "",
            "summary": list(self.summary),
            "incomplete": list(self.incomplete),
            "failed": dict(self.failed),
            "errors": list(self.errors),
            "baseline_set": self.baseline_set,
            "profile": self.profile,
            "fingerprint_id": self.fingerprint_id,
            "new": list(self.new),
            "orphaned": [dict(o) for o in self.orphaned],
            "over_budget": list(self.over_budget),
            "not_judged": dict(not_judged),
            "verdicts": [asdict(v) for v in self.verdicts],
        }


@dataclass(frozen=True)
class Interval:
    """A ratio current/baseline with its confidence interval (None where rounds are too few)."""

    ratio: float
    low: float | None
    high: float | None
    rounds: int  # this run's rounds
    baseline_rounds: int


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move before it counts: a fraction of the baseline, or an absolute amount."""

    relative: float | None = None
    absolute: float | None = None

    def allowed(self, baseline: float) -> float:
        return self.absolute if self.absolute is not None else (self.relative or 0.0) * abs(baseline)

    @property
    def value(self) -> float:
        return self.absolute if self.absolute is not None else (self.relative or 0.0)

    def describe(self) -> str:
        if self.absolute is not None:
            return f"tolerance {self.absolute:g}"
        return f"threshold {percent(self.relative or 0.0)}"


def fails_gate(verdicts: Iterable[Verdict]) -> bool:
    """Whether any of these verdicts fails the gate: a regression or a model change that gates."""
    return any(v.status.fails and v.gating for v in verdicts)


def parse_tolerance(raw: Any, where: str) -> Tolerance:
    """A marker threshold: a fraction (0.05 = 5 %), ``{"rtol": 0.05}`` or ``{"atol": 0.01}``.

    Raises ValueError with one line naming ``where`` (e.g. "energy marker thresholds['rougeL']").
    """
    expected = f"{where} = {raw!r}: expected a fraction >= 0 such as 0.05, or {{'atol': 0.01}} / {{'rtol': 0.05}}"
    if isinstance(raw, dict):
        if len(raw) != 1 or next(iter(raw)) not in ("atol", "rtol"):
            raise ValueError(expected)
        key, value = next(iter(raw.items()))
        number = _non_negative(value, expected)
        return Tolerance(absolute=number) if key == "atol" else Tolerance(relative=number)
    return Tolerance(relative=_non_negative(raw, expected))


def _non_negative(value: Any, expected: str) -> float:
    if isinstance(value, bool):
        raise ValueError(expected)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(expected) from None
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(expected)
    return number


# -- the statistics ---------------------------------------------------------------------------------
#: The exact rank distribution costs about min(n, m) * n * m / 2 integer steps; beyond this many a normal
#: approximation of the rank statistic is used instead (600 rounds each would take 10^8 steps).
EXACT_STEPS = 250_000
#: Up to this many pairwise differences are sorted; beyond, each order statistic is selected by bisection,
#: so memory stays proportional to the rounds, not to their product.
SORTED_DIFFERENCES = 1_000_000


def critical_rank(n: int, m: int, tail: float, ties: int = 0) -> int:
    """The largest k with P(U <= k - 1) <= tail under no change; 0 when even U = 0 is likelier.

    The interval is then the k-th smallest to the k-th largest of the n x m pairwise differences.
    Exact where that is cheap (:data:`EXACT_STEPS`); beyond, U's normal approximation with a continuity
    correction, its variance reduced by ``ties``, the sum of t^3 - t over groups of t equal values
    within each sample (ties between the samples change with the shift and are left out, which keeps
    the interval on the wide side). The exact count treats values as distinct, as before.
    """
    small, large = min(n, m), max(n, m)
    if small * small * large // 2 <= EXACT_STEPS:
        # The Gaussian binomial is symmetric in n and m: the smaller one is the cheaper loop.
        allowed = tail * math.comb(n + m, n) * (1 + 1e-12)  # (1 - 0.9) / 2 must still allow 1 in 20
        counts = rank_sum_counts(small, large, n * m // 2)
        cumulative, k = 0, 0
        for count in counts:
            cumulative += count
            if cumulative > allowed:
                break
            k += 1
        return k
    total = n + m
    variance = n * m / 12 * ((total + 1) - ties / (total * (total - 1)))
    k = math.floor(n * m / 2 + NormalDist().inv_cdf(tail) * math.sqrt(variance) + 0.5)
    return min(max(k, 0), n * m // 2)


def _ties(values: Sequence[float]) -> int:
    """The sum of t^3 - t over groups of t equal values."""
    return sum(t**3 - t for t in Counter(values).values() if t > 1)


def _float_key(value: float) -> int:
    """An integer that orders like the float (IEEE 754 bits, negatives mirrored)."""
    bits = struct.unpack("<q", struct.pack("<d", value))[0]
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def _key_float(key: int) -> float:
    bits = key if key >= 0 else (-key) | -0x8000_0000_0000_0000
    return struct.unpack("<d", struct.pack("<q", bits))[0]


def _count_at_most(now: Sequence[float], then: Sequence[float], value: float) -> int:
    """How many differences a - b (a in sorted ``now``, b in sorted ``then``) are <= value.

    Float subtraction is monotone in each operand, so one pass of two pointers counts them exactly.
    """
    count, j, m = 0, 0, len(then)
    for a in reversed(now):  # the b with a - b <= value are a suffix of ``then``, longer as a falls
        while j < m and a - then[m - 1 - j] <= value:
            j += 1
        count += j
    return count


def _order_statistics(now: Sequence[float], then: Sequence[float], ranks: Sequence[int]) -> dict[int, float]:
    """The k-th smallest of the differences a - b (a in ``now``, b in ``then``) for each rank k (1-based).

    Sorted outright when there are at most :data:`SORTED_DIFFERENCES`; beyond, the smallest float whose
    count of differences at or below it reaches k is found by bisection on the floats' order (64 steps
    at most), which is exactly the k-th difference, with memory proportional to the rounds.
    """
    if len(now) * len(then) <= SORTED_DIFFERENCES:
        differences = sorted(a - b for a in now for b in then)
        return {k: differences[k - 1] for k in ranks}
    now, then = sorted(now), sorted(then)
    found = {}
    for k in ranks:
        low, high = _float_key(now[0] - then[-1]), _float_key(now[-1] - then[0])
        while low < high:  # invariant: the k-th difference's key lies in [low, high]
            middle = (low + high) // 2
            if _count_at_most(now, then, _key_float(middle)) >= k:
                high = middle
            else:
                low = middle + 1
        found[k] = _key_float(low)
    return found


def _logs(current: Sequence[float], baseline: Sequence[float]) -> tuple[list[float], list[float]]:
    if not current or not baseline:
        raise ValueError("ratio_interval needs at least one value on each side")
    if any(not (math.isfinite(v) and v > 0) for v in (*current, *baseline)):
        raise ValueError("ratio_interval needs finite values > 0")
    return [math.log(v) for v in current], [math.log(v) for v in baseline]


def _hodges_lehmann(logs_now: Sequence[float], logs_then: Sequence[float],
                    *ranks: int) -> tuple[float, dict[int, float]]:
    """The median of the pairwise log differences, and the differences of the other ``ranks``."""
    count = len(logs_now) * len(logs_then)
    middle = count // 2
    centre = (middle + 1,) if count % 2 else (middle, middle + 1)
    found = _order_statistics(logs_now, logs_then, sorted({*centre, *ranks}))
    return sum(found[k] for k in centre) / len(centre), found


def ratio_interval(current: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Hodges-Lehmann ratio current/baseline and its Mann-Whitney interval; values must be > 0."""
    logs_now, logs_then = _logs(current, baseline)
    n, m = len(current), len(baseline)
    k = critical_rank(n, m, (1 - confidence) / 2, _ties(logs_now) + _ties(logs_then))
    if k == 0:
        estimate, _ = _hodges_lehmann(logs_now, logs_then)
        return Interval(math.exp(estimate), None, None, n, m)
    estimate, found = _hodges_lehmann(logs_now, logs_then, k, n * m + 1 - k)
    return Interval(math.exp(estimate), math.exp(found[k]), math.exp(found[n * m + 1 - k]), n, m)


#: How much one window's energy can vary between runs beyond its stated reading uncertainty, as one
#: relative standard deviation: a stated assumption, since one window cannot show it. Counter windows of
#: 0.2 s vary by 6-12 % on an H100 (6.3 % interpolated, 11.8 % read at the edges), shared CI runners by
#: about 3 % in CPU time, and a whole test call also holds its set-up and first-call costs.
WINDOW_NOISE = 0.10


def window_interval(current: Sequence[float], baseline: Sequence[float], reading: tuple[float, float] = (0.0, 0.0),
                    confidence: float = CONFIDENCE, windows: tuple[bool, bool] | None = None) -> Interval:
    """The ratio current/baseline and its interval where a side cannot show its own noise: a single
    window, or (``windows``: which sides, this run's and the baseline's; by default those of a single
    window) rounds too few for the rank interval. Such a side's noise is its stated relative reading
    uncertainty of one window (``reading``, this run and the baseline) over its windows, its observed
    spread where it has several, and :data:`WINDOW_NOISE` between runs, which no number of windows
    within one run averages away; any other side has its observed spread.

    The estimate is the Hodges-Lehmann one, as :func:`ratio_interval`'s; the interval is normal on the
    log ratio, so its coverage is as good as the stated noise, not exact.
    """
    logs_now, logs_then = _logs(current, baseline)
    windows = windows or (len(current) == 1, len(baseline) == 1)
    variance = 0.0
    for logs, stated, window in ((logs_now, reading[0], windows[0]), (logs_then, reading[1], windows[1])):
        spread = statistics.variance(logs) / len(logs) if len(logs) > 1 else 0.0
        variance += spread + (stated**2 / len(logs) + WINDOW_NOISE**2 if window else 0.0)
    estimate, _ = _hodges_lehmann(logs_now, logs_then)
    margin = NormalDist().inv_cdf(1 - (1 - confidence) / 2) * math.sqrt(variance)
    return Interval(math.exp(estimate), math.exp(estimate - margin), math.exp(estimate + margin),
                    len(current), len(baseline))


def minimum_rounds(confidence: float = CONFIDENCE) -> int:
    """Fewest rounds per side (the same on both) for which an interval exists at ``confidence``."""
    rounds = 1
    while critical_rank(rounds, rounds, (1 - confidence) / 2) == 0:
        rounds += 1
    return rounds


def classify(interval: Interval, threshold: float) -> Status:
    """regression / improvement / unchanged / inconclusive under the rule in the module docstring."""
    if interval.low is None or interval.high is None:
        return Status.INCONCLUSIVE
    upper_band, lower_band = 1 + threshold, 1 / (1 + threshold)
    if interval.low > 1 and interval.ratio > upper_band:
        return Status.REGRESSION
    if interval.high < 1 and interval.ratio < lower_band:
        return Status.IMPROVEMENT
    if interval.low >= lower_band and interval.high <= upper_band:
        return Status.UNCHANGED
    return Status.INCONCLUSIVE


# -- verdicts ---------------------------------------------------------------------------------------
def _bounds(interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return ""
    return f" [{percent_change(interval.low, '')}, {percent_change(interval.high, '')}]"


def _plausible(values: Sequence[float]) -> list[float]:
    """The rounds that are an energy figure: finite and above zero net."""
    return [v for v in values if math.isfinite(v) and v > 0]


def _left_out(values: Sequence[float], kept: Sequence[float], side: str, advice: str = "") -> str:
    """The note on a side's rounds left out ("" where none was)."""
    dropped = len(values) - len(kept)
    if not dropped:
        return ""
    return (f"{dropped} of {len(values)} rounds {side} left out (net energy at or below zero or not finite: "
            "a dip below idle power or a disturbed reading)" + (f"; {advice}" if advice else ""))


def judge_energy(
    name: str,
    current: Sequence[float],
    baseline: Sequence[float],
    threshold: float,
    baseline_set: str,
    *,
    gating: bool = True,
    what: str = "energy",
    note: str = "",
    refresh: str = "--energy-update-baselines",
    reading_error: float = 0.0,
    rounds_advice: str | None = None,
) -> Verdict:
    """The energy verdict from per-iteration joules of each valid round, here and in the baseline.

    ``what`` names the quantity in the message ("energy", "normalised energy"); ``note`` is appended
    (e.g. why the verdict does not gate); ``refresh`` is the command that records a new baseline in
    this set, advised on an improvement. Rounds at or below zero are left out with a note (see the
    module docstring). Where a side has a single window, or the rounds are too few for the rank
    interval, it is judged by :func:`window_interval` with ``reading_error``, the stated reading
    uncertainty of one window of this run in the values' unit (the baseline stores none: its windows, on
    the same hardware and method, are taken to read as well relative to their energy). ``rounds_advice``
    says how this run's work gets more rounds, advised where a single window or too few rounds hid a
    smaller change (the gate words it for the record's form; None: a call measured by energy.run).
    """
    suffix = f"; {note}" if note else ""

    def verdict(status: Status, message: str, interval: Interval | None = None) -> Verdict:
        return Verdict.from_interval(name, "energy", status, interval, message + suffix, threshold=threshold,
                                     baseline_set=baseline_set, gating=gating)

    if not current or not baseline:
        side = "this run" if not current else f"baseline {baseline_set!r}"
        return verdict(Status.INCONCLUSIVE, f"{what}: no valid round in {side}")
    now, then = _plausible(current), _plausible(baseline)
    for values, kept, side in ((current, now, "here"), (baseline, then, "in the baseline")):
        if 2 * len(kept) <= len(values):  # most rounds: no dip, the work itself does not stand out
            return verdict(
                Status.INCONCLUSIVE,
                f"{what}: {len(values) - len(kept)} of {len(values)} rounds {side} have net energy at or below "
                "zero (the work is too small to stand out from idle power); lengthen the measured work or raise "
                "--energy-min-window" + (f", and re-record the baseline with {refresh}" if side != "here" else ""),
            )
    left_out = [n for n in (_left_out(current, now, "here"),
                            _left_out(baseline, then, "of the baseline", f"re-record it with {refresh}")) if n]
    interval = ratio_interval(now, then)
    windowed = min(len(now), len(then)) == 1 or interval.low is None
    if windowed:
        reading = reading_error / statistics.median(now)
        few = minimum_rounds()
        sides = (len(now) < few, len(then) < few) if min(len(now), len(then)) > 1 else None
        interval = window_interval(now, then, (reading, reading), windows=sides)
    status = classify(interval, threshold)
    head = (f"{what} {percent_change(interval.ratio)}{_bounds(interval)} vs {baseline_set!r}: {status} "
            f"(threshold {percent(threshold)})")
    if windowed:
        head += "; " + _window_noise(interval, status, len(now), len(then), refresh, rounds_advice)
    elif status is Status.INCONCLUSIVE:
        head += "; more rounds or a longer --energy-min-window narrow the interval"
    if status is Status.IMPROVEMENT:
        head += f"; refresh the baseline with {refresh}"
    return verdict(status, "; ".join([head, *left_out]), interval)


def _window_noise(interval: Interval, status: Status, rounds: int, baseline_rounds: int, refresh: str,
                  rounds_advice: str | None = None) -> str:
    """What a verdict judged as single windows says: how far its sides can vary, and, where that hid a
    smaller change, how to get a finer verdict (``rounds_advice``: how this record's work gets rounds;
    None: a call, which energy.run and --energy-rounds measure in rounds)."""
    margin = percent(interval.high / interval.ratio - 1)
    if min(rounds, baseline_rounds) == 1:
        where = {(True, True): "here and in the baseline", (True, False): "here"}.get(
            (rounds == 1, baseline_rounds == 1), "in the baseline")
        noise = (f"one window {where} can vary by about ±{margin} (its reading uncertainty and "
                 f"{percent(WINDOW_NOISE)} between runs, assumed)")
        finer = (f"{rounds_advice or 'measure the work in rounds (energy.run)'} for a finer verdict" if rounds == 1
                 else f"re-record the baseline in rounds ({refresh}) for a finer verdict")
    else:
        noise = (f"{rounds} rounds here and {baseline_rounds} in the baseline are too few for the rank interval, "
                 f"so they are judged as single windows are: about ±{margin} (their reading uncertainty, spread and "
                 f"{percent(WINDOW_NOISE)} between runs, assumed)")
        finer = (f"{rounds_advice} for a finer verdict" if rounds_advice
                 else f"use --energy-rounds {minimum_rounds()} or more for a finer verdict")
    return f"{noise}, so a smaller change cannot show; {finer}" if status is Status.INCONCLUSIVE else noise


def judge_value(
    name: str,
    metric: str,
    value: float,
    baseline: float | None,
    tolerance: Tolerance,
    baseline_set: str,
    *,
    higher_is_better: bool = True,
    budget: float | None = None,
    gating: bool = True,
    refresh: str = "--energy-update-baselines",
) -> Verdict:
    """A metric with one number per run (a quality metric, or a counted work proxy such as FLOPs per
    inference) against its budget, then against its baseline value.

    Over the budget is a regression whatever the baseline says; with no baseline value the status is
    "new"; otherwise a move beyond the tolerance in the bad direction is a regression, in the good
    direction an improvement.
    """
    sign = 1 if higher_is_better else -1

    def verdict(status: Status, message: str, by_budget: bool = False) -> Verdict:
        ratio = value / baseline if baseline not in (None, 0) else None
        return Verdict.from_ratio(name, metric, status, ratio, message, threshold=tolerance.value,
                                  baseline_set=baseline_set, gating=gating, by_budget=by_budget)

    if budget is not None and sign * (value - budget) < 0:
        side = "below the minimum" if higher_is_better else "above the maximum"
        return verdict(Status.REGRESSION, f"{metric} {value:.4g} is {side} budget {budget:.4g}", by_budget=True)
    if baseline is None:
        return verdict(Status.NEW, f"{metric} {value:.4g}: no baseline in {baseline_set!r} yet")
    difference = value - baseline
    relative = f" ({percent_change(value / baseline)})" if baseline else ""
    head = f"{metric} {value:.4g} vs {baseline:.4g}{relative} in {baseline_set!r}"
    if abs(difference) <= tolerance.allowed(baseline):
        return verdict(Status.UNCHANGED, f"{head}: unchanged ({tolerance.describe()})")
    if sign * difference < 0:
        return verdict(Status.REGRESSION, f"{head}: regression ({tolerance.describe()})")
    return verdict(
        Status.IMPROVEMENT,
        f"{head}: improvement ({tolerance.describe()}); refresh the baseline with {refresh}",
    )


def judge_quality(
    name: str,
    metric: str,
    value: float,
    baseline: float | None,
    tolerance: Tolerance,
    baseline_set: str,
    *,
    spreads: Sequence[Difference],
    higher_is_better: bool = True,
    budget: float | None = None,
    gating: bool = True,
    refresh: str = "--energy-update-baselines",
    note: str = "",
) -> Verdict:
    """A quality figure against its budget, then against its baseline, respecting how far it moves by
    chance: ``spreads`` are the measured intervals of its difference to the baseline (over the
    examples, between training runs; :mod:`pytest_energy.stats.resampling`).

    With the difference ``d`` (current - baseline, signed so that positive is better) and the tolerance
    ``t`` (a minimum effect, as for energy):

    * regression: the **widest** interval lies below 0 and ``d < -t``; improvement: above 0 and ``d > t``.
      A change must stand out from every way the figure varies by chance (for a model trained in the
      run, another seed or CPU trains another model) before it fails anything;
    * unchanged: the examples' paired interval (the difference of these two models on the same
      examples; the only interval where there is no other) lies inside ``[-t, t]``: a model that scores
      the same, example for example, is unchanged whatever another training run could do;
    * inconclusive: anything else (a change within the noise, or one the noise cannot rule in or out),
      said with the interval that decided.

    Without a spread (a baseline written before per-example scores were kept, a metric that keeps
    none) it is judged as :func:`judge_value` judges one number, with ``note`` saying why.
    """
    suffix = f"; {note}" if note else ""
    if budget is not None or baseline is None or not spreads:
        judged = judge_value(name, metric, value, baseline, tolerance, baseline_set, higher_is_better=higher_is_better,
                             budget=budget, gating=gating, refresh=refresh)
        if judged.by_budget or baseline is None or not spreads:
            judged.message += suffix
            return judged
    assert baseline is not None
    sign = 1 if higher_is_better else -1
    allowed = tolerance.allowed(baseline)

    def gained(spread: Difference) -> tuple[float, float, float]:  # estimate, low, high; positive is better
        low, high = sorted((sign * spread.low, sign * spread.high))
        return sign * spread.estimate, low, high

    widest = max(spreads, key=lambda spread: spread.half_width)
    paired = next((spread for spread in spreads if spread.source == "examples"), widest)
    gain, low, high = gained(widest)
    _, paired_low, paired_high = gained(paired)
    if high < 0 and gain < -allowed:
        status, decided = Status.REGRESSION, widest
    elif low > 0 and gain > allowed:
        status, decided = Status.IMPROVEMENT, widest
    elif -allowed <= paired_low and paired_high <= allowed:
        status, decided = Status.UNCHANGED, paired
    else:
        status, decided = Status.INCONCLUSIVE, widest
    relative = f" ({percent_change(value / baseline)})" if baseline else ""

    def signed(number: float) -> str:  # below the 6 digits baselines keep, a difference is their rounding
        return f"{0.0 if abs(number) < 1e-6 * max(1.0, abs(baseline)) else number:+.3g}"

    message = (f"{metric} {value:.4g} vs {baseline:.4g}{relative} in {baseline_set!r}: {status}; difference "
               f"{signed(decided.estimate)} [{signed(decided.low)}, {signed(decided.high)}] "
               f"({percent(CONFIDENCE)}, {decided.detail}; {tolerance.describe()})")
    if status is Status.INCONCLUSIVE:
        message += "; the change is within what this figure varies by chance, or too close to tell"
    if status is Status.IMPROVEMENT:
        message += f"; refresh the baseline with {refresh}"
    bounds = (1 + decided.low / baseline, 1 + decided.high / baseline) if baseline else (None, None)
    return Verdict(name, metric, status, value / baseline if baseline else None, bounds[0], bounds[1], tolerance.value,
                   baseline_set, message + suffix, gating)
