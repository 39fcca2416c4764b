"""Windows, rounds and edges: how cumulative joules from channels become per-iteration energy.

An *edge* is one instant at which every channel's cumulative energy is known; a *window* is the span
between two edges; a *round* is one window holding one or more iterations. Consecutive rounds share
their edges (back-to-back windows), so the work never pauses between rounds.

Counters that tick (NVML's total-energy counter updates every ~100 ms and costs ~3.9 ms of CPU per
read) are never spun on by the measured thread. At each edge the measured thread only notes the time;
a poller thread per ticking channel reads the counter until it changes, which brackets the edge by
two ticks ``(t_a, E_a)`` and ``(t_b, E_b)``, and interpolates the energy at the edge:

* between rounds the device works on both sides, so power is taken as constant across the tick;
* at the first edge the device was idle before it, so ``E_a + idle x (t_edge - t_a)``;
* at the last edge the device idles after it, so ``E_b - idle x (t_b - t_edge)``.

The poller sleeps until just before the tick it predicts, from a period it refines with every tick
it sees (the calibration's few ticks leave it ~2 % off: 20 ms a second ahead). Where its read still
comes after a gap past the tick (a sleep that overshot, a thread waiting for the CPU: a read is known
to have sampled the counter anywhere in its length beyond the fastest read's), the tick's instant is
known only within the gap and it takes the next tick instead, three times at most (with the grid of
ticks known, a wide gap that can hold one of its ticks only is enough). Ticks come every period, so
the gaps of the changes seen together place the grid of ticks, and each read then gives the energy at
the tick of the grid before it: on a loaded host too, an edge lies between two ticks seen, not
extrapolated from ticks seen later (maybe after the work ended). Ticks seen are kept, so an edge
between two of them (edges of short tests, many per tick) is interpolated without a read.

Idle power is measured once per session, again (three windows at most) where a loaded host left its
window's edges loosely known; edges that assume idle power carry its uncertainty. CUDA is synchronised
at every edge when torch has already initialised CUDA (torch is never imported here).

Every window is checked for plausibility before its joules count (:meth:`Meter.window_problem`):
a ticking counter must be seen to tick (a poller that sees no change for three periods marks the
edge frozen), a continuous one must move within its ``frozen_after_seconds``, and the energy must
lie between a tenth of the device's idle power and 1.5x its power limit (plus one tick and a
scheduling delay per edge) times the window; an edge between two ticks that rose more than that in one
is invalid itself (:meth:`TickPoller._jump`). A window outside is invalid with a note, never 0 J
or a jump that passes or fails a budget. A component's ``ticks`` are the counter updates between
the ticks the poller saw at its windows' edges: none where it saw none.

Devices that report conditions (GPUs: temperature, SM clock, power limit, throttle reasons) have
them read at every edge by a thread of their own, so the measured thread only queues the request; a
window with thermal or power throttling at an edge gets a note (:mod:`pytest_energy.measure.conditions`).
An optional cooldown (``--energy-cooldown``) waits before a measurement's warm-up until the GPUs are
at or below a temperature, or have idled for a time, with a timeout and a note when not reached;
after the first miss no later measurement of the session waits (a GPU that stays hot would make
every one wait the whole timeout), which the session says once.
"""

from __future__ import annotations

import bisect
import math
import queue
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, NamedTuple, Sequence, TypeVar

from ..core.config import parse_cooldown
from ..core.record import Component, Round
from .conditions import throttling
from .sources.base import POWER_LIMIT_MARGIN, Channel, SourceError

#: How long a poller waits for a tick before it gives up on an edge (in tick periods).
TICK_TIMEOUT_PERIODS = 3.0
#: Ticks observed to calibrate each ticking channel's period.
CALIBRATION_TICKS = 4
#: Shortest warm-up, in tick periods of the slowest ticking counter (when any warm-up is asked).
WARMUP_PERIODS = 1.5
#: How long before a predicted tick the poller starts reading (the period drifts a little).
PREDICTION_MARGIN = 0.012
#: Two reads around a change further apart than this many of the channel's fastest reads, plus
#: :data:`BRACKET_SLACK` (a sleep went past the tick, or the thread was descheduled between them),
#: leave the tick's instant unknown within their gap: the poller takes the next tick instead.
WIDE_BRACKET_READS = 3
BRACKET_SLACK = 0.002
#: How far off the calibrated period may be (a share of it), until the poller refines it: the few
#: ticks of the calibration leave it ~2 % off, up to 3 % on a busy host.
CALIBRATED_PERIOD_ERROR = 0.03
#: Observed ticks a poller keeps, so an edge between two of them is known without a read.
HISTORY_TICKS = 64
#: Share of an extrapolated span's energy taken as the systematic error of the power assumed there.
EXTRAPOLATION_ERROR = 0.1
#: Idle windows measured at most, until idle power is known within :data:`IDLE_UNCERTAINTY` of itself.
IDLE_WINDOWS = 3
IDLE_UNCERTAINTY = 0.05
#: A window below this share of the device's idle power is a stalled counter. Low, because idle is
#: measured once and a GPU may later idle lower (a deeper power state) than when it was measured.
IDLE_FLOOR_FRACTION = 0.1
#: How late a channel's read may follow its edge's instant (thread scheduling): slack of the upper bound.
EDGE_DELAY_SECONDS = 0.01

#: The longest a cooldown waits (beyond the idle time it asks for) before the measurement goes on.
COOLDOWN_TIMEOUT_SECONDS = 120.0
#: How often a cooldown reads the temperature or the power.
COOLDOWN_POLL_SECONDS = 0.1
#: During a cooldown a device is idle at or below its idle power times this, plus the slack.
COOLDOWN_IDLE_FACTOR = 1.1
COOLDOWN_IDLE_SLACK_WATTS = 5.0

START, BOUNDARY, END = "start", "boundary", "end"

T = TypeVar("T")
#: device -> its conditions at one edge (see :meth:`Channel.conditions`)
States = dict[str, dict[str, Any]]


def cuda_synchronize() -> None:
    """Wait for queued GPU work, so a window edge is where the work really ends (torch only if loaded)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_available() and cuda.is_initialized():
        for index in range(cuda.device_count()):
            cuda.synchronize(index)


@dataclass
class EdgeValue:
    """One channel's cumulative joules at an edge (interpolated for ticking counters)."""

    joules: float
    uncertainty: float = 0.0
    error: str | None = None
    tick: float | None = None  # perf_counter instant of the counter's first tick after this edge (ticking)


class _Pending(Generic[T]):
    """A value a poller thread fills in later."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: T | None = None

    def set(self, value: T) -> None:
        self._value = value
        self._done.set()

    def get(self) -> T:
        self._done.wait()
        assert self._value is not None
        return self._value


def _wide_bracket(gap: float, fastest_read: float) -> bool:
    """Whether two reads ``gap`` seconds apart (mid to mid) leave a counter change between them too loosely
    placed, given the channel's fastest read so far (:data:`WIDE_BRACKET_READS`, :data:`BRACKET_SLACK`)."""
    return gap > WIDE_BRACKET_READS * fastest_read + BRACKET_SLACK


class ConditionsReader:
    """Reads the conditions of the channels that report them, once per edge, on a thread of its own."""

    def __init__(self, channels: list[Channel]) -> None:
        self.channels = channels
        self._requests: queue.Queue[_Pending[States] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="energy-conditions", daemon=True)
        self._thread.start()

    def submit(self) -> _Pending[States]:
        pending: _Pending[States] = _Pending()
        self._requests.put(pending)
        return pending

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(timeout=5.0)

    def _serve(self) -> None:
        while (pending := self._requests.get()) is not None:
            states: States = {}
            for channel in self.channels:
                try:
                    states[channel.device] = channel.conditions()
                except Exception:  # a driver fault must not hang the edge; the conditions are unknown
                    states[channel.device] = {}
            pending.set(states)


@dataclass
class Cooldown:
    """What a cooldown before a measurement did: its target ("45C" or "5s"), how long it waited, and
    whether the devices got there (``detail`` says where they were when it gave up)."""

    target: str
    waited_seconds: float
    reached: bool
    detail: str = ""


class Read(NamedTuple):
    """One read of a ticking counter and the instants around it."""

    value: float
    before: float
    after: float


class Change(NamedTuple):
    """A counter change seen between two reads: the value before and after it, its instant (perf_counter)
    and how well that instant is known (seconds either side)."""

    old: float
    new: float
    tick: float
    resolution: float


class TickPoller:
    """Resolves the edges of one ticking channel on a background thread, in submission order."""

    def __init__(self, channel: Channel, period: float, idle: Callable[[], tuple[float, float]]) -> None:
        """``idle``: the device's idle power and its uncertainty, in watts, as the meter knows them now."""
        self.channel = channel
        self.period = period
        self._idle = idle
        # Where one tick lies, within [low, high] (perf_counter instants): the grid of ticks (_locate); and
        # that tick's count since the grid was first placed (each placing since counted the ticks for sure).
        self._phase: tuple[float, float] | None = None
        self._tick_count = 0
        # A tick the period is refined from: its instant, how well that is known, and its count.
        self._anchor: tuple[float, float, int] | None = None
        self._fastest_read = math.inf  # seconds: the read's own cost, without waiting for the CPU
        self._period_error = CALIBRATED_PERIOD_ERROR * period  # seconds per tick, until refined
        # Observed ticks, oldest first: (perf_counter instant, cumulative joules, instant resolution).
        self._history: list[tuple[float, float, float]] = []
        self._requests: queue.Queue[tuple[float, str, _Pending] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name=f"energy-poller-{channel.device}", daemon=True)
        self._thread.start()

    def submit(self, at: float, side: str) -> _Pending:
        pending = _Pending()
        self._requests.put((at, side, pending))
        return pending

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(timeout=5 * self.period + 1)

    def _serve(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            at, side, pending = request
            try:
                pending.set(self._resolve(at, side))
            except SourceError as error:
                pending.set(EdgeValue(math.nan, math.nan, str(error)))
            except Exception as error:  # a driver fault must not kill the poller and hang the test
                pending.set(EdgeValue(math.nan, math.nan, f"{type(error).__name__}: {error}"))

    def _timed_read(self) -> Read:
        before = time.perf_counter()
        value = self.channel.read()
        after = time.perf_counter()
        self._fastest_read = min(self._fastest_read, after - before)
        return Read(value, before, after)

    def _change(self, old: Read, new: Read) -> Change:
        """Where the counter changed between two reads: the instant and how well it is known.

        A read samples the counter at one point of its call. A read as fast as the fastest is placed at
        its middle (where in the call it samples is the same for every read, so the offset cancels
        between edges); the rest of a longer read is time its thread waited for the CPU, before or after
        that point, so the sample lies anywhere in it. On a loaded host a read waits tens of
        milliseconds: taking its middle placed ticks 5 ms off while claiming 2 ms.
        """
        half = self._fastest_read / 2
        low, high = old.before + half, new.after - half
        return Change(old.value, new.value, (low + high) / 2, max(0.0, (high - low) / 2))

    def _wide(self, change: Change) -> bool:
        """Whether a change's instant is too loosely known to place ticks from, or to end a search on."""
        return _wide_bracket(2 * change.resolution, self._fastest_read)

    def _predicted_tick(self, now: float) -> float | None:
        """The next tick after ``now`` from the tick grid and the period."""
        if self._phase is None:
            return None
        last = sum(self._phase) / 2
        return last + math.ceil((now - last) / self.period) * self.period

    def _observe(self, change: Change) -> None:
        """Place the tick grid with a change seen (:meth:`_locate`), and refine the period from the span
        since the anchor tick.

        The calibrated period is a median of a few intervals, each known to a read's length (~4 ms on
        an H100): 2 % off, a prediction one second ahead misses the tick by 20 ms, past the margin. A
        span of many ticks counted for sure gives a better one (each end known as well as the grid
        places it), so later predictions keep within the margin and the grid stays narrow.
        """
        self._locate(change)
        if self._phase is None:
            return
        tick, resolution = sum(self._phase) / 2, (self._phase[1] - self._phase[0]) / 2
        if self._anchor is None:
            self._anchor = (tick, resolution, self._tick_count)
            return
        anchor, known, counted = self._anchor
        count = self._tick_count - counted
        if count < 1:  # the anchor's own tick: kept as the better known of the two
            if resolution < known:
                self._anchor = (tick, resolution, self._tick_count)
            return
        error = (known + resolution) / count
        if error < self._period_error:
            self.period, self._period_error = (tick - anchor) / count, error

    def _locate(self, change: Change) -> None:
        """Narrow where the ticks lie with a change seen: its tick is somewhere between its two reads.

        Ticks come every period, so each change seen puts one tick of the grid within its reads' gap, and
        the gaps of several changes, a whole number of periods apart, together put it within their
        overlap. On a loaded host, where hardly two reads follow each other closely, changes seen across
        gaps of tens of milliseconds still place the grid to a few.
        """
        # Where in a read the counter is sampled differs between reads too (a simulated GPU: anywhere), so
        # the grid takes both reads whole: a bracket that missed its tick would place every tick wrongly.
        spread = change.resolution + self._fastest_read / 2
        low, high = change.tick - spread, change.tick + spread
        if high - low >= self.period:  # may hold two ticks
            return
        if self._phase is not None:
            known_low, known_high = self._phase
            nearest = round((change.tick - (known_low + known_high) / 2) / self.period)
            overlaps = []  # the counts of ticks since the grid's tick that this change's gap may hold
            for ticks in range(nearest - 2, nearest + 3):
                drift = abs(ticks) * self._period_error
                overlap = (max(low, known_low + ticks * self.period - drift),
                           min(high, known_high + ticks * self.period + drift))
                if overlap[0] <= overlap[1]:
                    overlaps.append((ticks, overlap))
            # One count only: the grid is narrowed to the overlap. None: the period drifted more than
            # thought; several: the count is not sure. Either way the grid starts again from here.
            if len(overlaps) == 1:
                ticks, overlap = overlaps[0]
                self._phase, self._tick_count = overlap, self._tick_count + ticks
                return
        self._phase, self._tick_count, self._anchor = (low, high), 0, None

    def _place(self, reads: list[Read]) -> None:
        """Keep the value of each read at the tick of the grid that published it.

        Once the grid is known (:meth:`_locate`), a read taken between two of its ticks holds the energy
        at the earlier one, known as well as the grid is (plus the period's error per tick away). So an
        edge is interpolated between the ticks next to it, even where the reads around them waited long
        for the CPU, not extrapolated from ticks seen later, maybe after the work had changed. A read
        that may straddle a tick of the grid places nothing.
        """
        placed: set[float] = set()  # values placed already (a poller spinning on fast reads makes many reads)
        for read in reads:
            if read.value in placed:
                continue
            tick = self._grid_tick(read)
            if tick is not None:
                self._keep(tick[0], read.value, tick[1])
                placed.add(read.value)

    def _grid(self, at: float) -> tuple[float, float] | None:
        """The grid's tick (its instant) and how well the grid places its ticks near ``at`` (seconds either
        side: the grid's own width, and the period's error per tick away); None where no grid is placed."""
        if self._phase is None:
            return None
        reference, known = sum(self._phase) / 2, (self._phase[1] - self._phase[0]) / 2
        ticks = abs(round((at - reference) / self.period)) + 1  # to the tick before ``at``, at most
        return reference, known + ticks * self._period_error

    def _grid_tick(self, read: Read) -> tuple[float, float] | None:
        """The tick of the grid that published a read's value and how well its instant is known; None
        where no grid is placed or the read may straddle one of its ticks."""
        grid = self._grid(read.before)
        if grid is None:
            return None
        reference, resolution = grid
        tick = reference + math.floor((read.before - resolution - reference) / self.period) * self.period
        return (tick, resolution) if tick + self.period > read.after + resolution else None

    def _ticks_between(self, old: Read, new: Read) -> int | None:
        """How many ticks of the grid published a change between two reads (each sampled the counter
        somewhere within its call); None where no grid is placed or the reads leave the count unsure.

        Where the grid is known, a change across a wide gap still holds exactly one tick when only one
        tick of the grid can lie between the reads. A gap that may hold two (a read that waited a period
        for the CPU) gave a power twice the true one, with a confident uncertainty.
        """
        grid = self._grid(new.after)
        if grid is None:
            return None
        reference, resolution = grid

        def grid_ticks(low: float, high: float) -> int:
            first, last = math.ceil((low - reference) / self.period), math.floor((high - reference) / self.period)
            return max(0, last - first + 1)

        at_most = grid_ticks(old.before - resolution, new.after + resolution)
        at_least = max(1, grid_ticks(old.after + resolution, new.before - resolution))  # the value changed
        return at_most if at_most == at_least else None

    def _grid_known(self) -> bool:
        """Whether the grid of ticks is known closely enough to end a search on any change."""
        return self._phase is not None and not _wide_bracket(self._phase[1] - self._phase[0], self._fastest_read)

    def _keep(self, tick: float, energy: float, resolution: float) -> None:
        """Add one observed tick to the history, in order; a tick already there is kept once, as the
        better known of the two."""
        index = bisect.bisect_left([point[0] for point in self._history], tick)
        for neighbour in (index - 1, index):
            if 0 <= neighbour < len(self._history):
                point = self._history[neighbour]
                if abs(point[0] - tick) <= max(resolution, point[2]) + 0.25 * self.period:
                    if resolution < point[2]:
                        self._history[neighbour] = (tick, energy, resolution)
                        self._history.sort()  # the better known instant may lie past the other neighbour
                    return
        self._history.insert(index, (tick, energy, resolution))
        del self._history[:-HISTORY_TICKS]

    def _around(self, at: float) -> tuple[tuple[float, float, float] | None, tuple[float, float, float] | None]:
        """The observed ticks just before and just after ``at`` (None where there is none)."""
        index = bisect.bisect_left([point[0] for point in self._history], at)
        return (self._history[index - 1] if index else None,
                self._history[index] if index < len(self._history) else None)

    def _next_to(self, before: tuple[float, float, float] | None, after: tuple[float, float, float] | None) -> bool:
        """Whether two observed ticks are one tick apart (else power may have changed between them). Two
        less than half a period apart are one tick placed twice, inconsistently (reads that waited for the
        CPU on a loaded host): nothing can be interpolated between them."""
        return before is not None and after is not None and 0.5 * self.period <= after[0] - before[0] <= 1.5 * self.period

    def _resolve(self, at: float, side: str) -> EdgeValue:
        if side == BOUNDARY and self._next_to(*self._around(at)):  # seen already: the poller fell behind
            return self._estimate(at, side, 0.0)
        reads = [self._timed_read()]
        unchanged_since = reads[0].after
        predicted = self._predicted_tick(reads[0].after)
        if predicted is not None:  # each read costs ~4 ms of CPU: sleep until just before the tick
            time.sleep(max(0.0, predicted - PREDICTION_MARGIN - time.perf_counter()))
        changes: list[Change] = []
        while True:
            reads.append(self._timed_read())
            last, read = reads[-2:]
            if read.value != last.value:
                changes.append(self._change(last, read))
                self._observe(changes[-1])
                # A wide change ends the search where the grid is known and puts one tick between its
                # reads: that tick is then known as well as the grid.
                one_tick = self._grid_known() and self._ticks_between(last, read) == 1
                if not self._wide(changes[-1]) or one_tick or len(changes) > TICK_TIMEOUT_PERIODS:
                    break
                # The tick fell somewhere in a wide gap (the sleep went past it, or a read waited for the
                # CPU): take the next tick, one period on; the reads place this one on the grid after.
                unchanged_since = read.after
                time.sleep(max(0.0, last.before + self.period - PREDICTION_MARGIN - time.perf_counter()))
            # A powered device always ticks: unchanged for three periods, the counter is frozen. Counted to
            # where the read may have sampled first: a read that waited for the CPU may hold an old value.
            elif read.before - unchanged_since > TICK_TIMEOUT_PERIODS * self.period:
                self._phase = self._anchor = None
                return EdgeValue(math.nan, math.nan, f"the energy counter did not change for "
                                 f"{read.before - unchanged_since:.2g} s ({TICK_TIMEOUT_PERIODS:g} tick periods): "
                                 "a frozen counter")
        for change in changes:  # each change holding one tick: that tick and the one before it
            if 2 * change.resolution < self.period or change is changes[-1]:
                self._keep(change.tick - self.period, change.old, change.resolution + self._period_error)
                self._keep(change.tick, change.new, change.resolution)
        self._place(reads)
        found = changes[-1]
        ticks = self._ticks_between(*reads[-2:]) or 1  # where the grid places no read: one, the likeliest
        return self._estimate(at, side, (found.new - found.old) / (ticks * self.period))

    def _jump(self, joules: float) -> str | None:
        """Why the counter's rise across one tick cannot be energy drawn, or None.

        An edge interpolated across a jump (a driver glitch publishes gigajoules in one tick) would rest
        on that power, its uncertainty as wild: a window's plausibility check then had the slack to pass
        megajoules as valid. Neighbouring ticks may be placed up to 1.5 periods apart, hence 2 periods.
        """
        limit = self.channel.max_watts()
        if not limit or joules <= POWER_LIMIT_MARGIN * limit * 2 * self.period:
            return None
        return (f"the counter rose {joules:.3g} J in one tick, above {POWER_LIMIT_MARGIN:g}x its {limit:.3g} W "
                "power limit: a counter jump")

    def _estimate(self, at: float, side: str, working: float) -> EdgeValue:
        """The energy at an edge from the ticks seen around it (``working``: the power across the last
        tick seen, where no two ticks next to each other are known around the edge).

        Between the tick before the edge and the tick after it, power is constant at a boundary (work on
        both sides), idle up to a start edge and idle after an end edge. Where no tick was seen just
        before the edge (the poller read late, after a tick had passed), the energy is taken back from
        the first tick seen after it, at the power of the next (work) or idle (after an end edge); a start
        edge a tick after the last tick seen before it adds idle power to that tick.
        """
        idle, idle_error = self._idle()
        share = EXTRAPOLATION_ERROR  # of the energy taken across a span, the error of the power assumed there
        if side != BOUNDARY and idle > 0:  # spans at idle power: as far off as idle power is known, too
            share += idle_error / idle
        before, after = self._around(at)
        if after is None:  # unreachable once a change was kept; the edge then rests on the last tick seen
            after = self._history[-1]
        (t_b, e_b, r_b) = after
        if before is not None and self._next_to(before, after):
            (t_a, e_a, r_a) = before
            if jump := self._jump(e_b - e_a):
                return EdgeValue(math.nan, math.nan, jump, tick=t_b)
            working, resolution = (e_b - e_a) / (t_b - t_a), max(r_a, r_b)
            if side == BOUNDARY:
                joules, extrapolated = e_a + working * (at - t_a), 0.0
            elif side == START:
                joules, extrapolated = e_a + idle * (at - t_a), idle * (at - t_a)
            else:
                joules, extrapolated = min(max(e_b - idle * (t_b - at), e_a), e_b), idle * (t_b - at)
        elif side == START and before is not None and at - before[0] <= self.period + before[2]:
            (t_a, e_a, resolution) = before  # the tick before the edge, a tick not seen after it: idle until it
            joules, extrapolated = e_a + idle * (at - t_a), idle * (at - t_a)
        else:
            index = self._history.index(after)
            resolution = r_b
            if index + 1 < len(self._history) and self._next_to(after, self._history[index + 1]):
                t_c, e_c, r_c = self._history[index + 1]
                if jump := self._jump(e_c - e_b):
                    return EdgeValue(math.nan, math.nan, jump, tick=t_b)
                working, resolution = (e_c - e_b) / (t_c - t_b), max(r_b, r_c)
                if side != END:  # the work's power, off by as much as its two ticks' instants allow
                    share = EXTRAPOLATION_ERROR + (r_b + r_c) / (t_c - t_b)
            power = idle if side == END else working
            joules, extrapolated = e_b - power * (t_b - at), power * (t_b - at)
        return EdgeValue(joules, working * resolution + share * abs(extrapolated), tick=self._tick_after(at, t_b))

    def _tick_after(self, at: float, seen: float) -> float:
        """The counter's first tick after an instant: the grid's where it is known (a poller kept from the
        CPU may first see a tick several periods on), else ``seen``, the first tick seen after it."""
        grid = self._grid(at)
        if grid is None or not self._grid_known():
            return seen
        reference = grid[0]
        return reference + math.ceil((at - reference) / self.period) * self.period


@dataclass
class Edge:
    """One instant across all channels; ticking channels resolve in the background."""

    at: float
    values: dict[str, EdgeValue | _Pending[EdgeValue]]
    conditions: _Pending[States] | None = None  # read by the meter's ConditionsReader

    def resolve(self) -> dict[str, EdgeValue]:
        return {device: v.get() if isinstance(v, _Pending) else v for device, v in self.values.items()}

    def states(self) -> States:
        """The conditions of the devices that report them at this edge ({} where none do)."""
        return self.conditions.get() if self.conditions is not None else {}


@dataclass
class Taken:
    """What the meter took for one measurement: its edges and the iterations between them."""

    edges: list[Edge]
    iterations: list[int]
    warmup_iterations: int = 0
    result: Any = None
    cooldown: Cooldown | None = None
    # Where the warm-up began, when it was measured as a window of its own up to ``edges[0]`` (a block
    # whose steps are marked: its whole energy is known); None where the warm-up is not measured.
    warmup_start: Edge | None = None
    notes: list[str] = field(default_factory=list)  # how the rounds came out where not as asked
    # Where a block whose code closed its rounds (StepRounds, marked) ended, when it went on after them:
    # the drain window from ``edges[-1]`` to here, measured for the totals, no round of the verdict's.
    drain_end: Edge | None = None
    drain_iterations: int = 0

    def gross_joules(self) -> float:
        """The joules read across every device from the first edge to the last, before any window is
        checked (NaN where a device has no reading): a valid record's total gross joules, summed alike."""
        first, last = self.edges[0].resolve(), self.edges[-1].resolve()
        return sum(last[device].joules - first[device].joules for device in first)


@dataclass
class Measured:
    """Rounds and per-device components of one measurement, ready to become a record."""

    rounds: list[Round]
    components: list[Component]
    timeline: list[tuple[float, float]] = field(default_factory=list)
    warmup: Round | None = None  # the measured warm-up window (Taken.warmup_start), no round of the verdict's
    drain: Round | None = None  # the measured drain window (Taken.drain_end), no round of the verdict's either


class Meter:
    """Measures windows on a fixed set of channels; one per session (per xdist worker)."""

    def __init__(self, channels: list[Channel], synchronize: Callable[[], None] = cuda_synchronize, *,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """``clock`` and ``sleep`` are what a cooldown waits with (a test's fake clock: no real wait)."""
        self.channels = channels
        self.synchronize = synchronize
        self.clock = clock
        self.sleep = sleep
        self.cooldowns_missed: dict[str, Cooldown] = {}  # target -> the session's first cooldown that missed it
        self.idle_watts: dict[str, float] = {c.device: 0.0 for c in channels}
        self.idle_uncertainty: dict[str, float] = {c.device: 0.0 for c in channels}  # watts
        self.periods: dict[str, float] = {}
        self._pollers: dict[str, TickPoller] = {}
        self._conditions: ConditionsReader | None = None
        self._started = False
        #: One line per problem of the session (an idle window that could not be measured, a cooldown
        #: target missed); the session takes them as its notes.
        self.notes: list[str] = []

    # -- session set-up -------------------------------------------------------------------------
    def start(self, idle_seconds: float | None) -> dict[str, float]:
        """Start samplers, calibrate tick periods, measure idle power (:meth:`measure_idle`; not with
        ``idle_seconds`` None, idle power then stays 0 W until measured); returns idle watts per device."""
        for channel in self.channels:
            channel.start()
        conditioned = [channel for channel in self.channels if channel.conditions()]
        if conditioned:
            self._conditions = ConditionsReader(conditioned)
        for channel in self.channels:
            if channel.tick_seconds > 0:
                self.periods[channel.device] = self._calibrate(channel)
                self._pollers[channel.device] = TickPoller(
                    channel, self.periods[channel.device],
                    lambda d=channel.device: (self.idle_watts[d], self.idle_uncertainty[d]),
                )
        self._started = True
        return self.measure_idle(idle_seconds) if idle_seconds is not None else dict(self.idle_watts)

    def measure_idle(self, idle_seconds: float) -> dict[str, float]:
        """Measure each device's idle power over ``idle_seconds`` of nothing; returns idle watts per device.

        A window whose edges the meter knows only loosely (a loaded host kept the poller from the
        counter across ticks) is measured again, :data:`IDLE_WINDOWS` at most, and the best known one
        kept: idle power off by half once made every first edge of the session wrong by more than the
        uncertainty it stated. Its uncertainty, where still above :data:`IDLE_UNCERTAINTY`, is a note.
        """
        problems: dict[str, str] = {}
        best: dict[str, tuple[float, float]] = {}  # device -> (watts, their uncertainty)
        for _ in range(IDLE_WINDOWS):
            first = self.edge(BOUNDARY, synchronize=False)
            time.sleep(idle_seconds)
            last = self.edge(BOUNDARY, synchronize=False)
            seconds = last.at - first.at
            before, after = first.resolve(), last.resolve()
            for channel in self.channels:  # the first time idle is still 0 W, so no window is below it yet
                device = channel.device
                if device in problems:
                    continue
                start, end = before[device], after[device]
                problem = self.window_problem(channel, start, end, seconds)
                if problem:
                    problems[device] = problem
                    continue
                measured = ((end.joules - start.joules) / seconds,
                            math.hypot(start.uncertainty, end.uncertainty) / seconds)
                if device not in best or measured[1] < best[device][1]:
                    best[device] = measured
            if all(watts * IDLE_UNCERTAINTY >= uncertainty for watts, uncertainty in best.values()):
                break
        for device in self.idle_watts:
            if device in problems:
                self.idle_watts[device] = 0.0
                self.notes.append(f"{device}: idle power not measured ({problems[device]}); net energy is gross "
                                  "energy this session")
                continue
            watts, uncertainty = best[device]
            self.idle_watts[device] = watts
            self.idle_uncertainty[device] = uncertainty
            if uncertainty > watts * IDLE_UNCERTAINTY:
                self.notes.append(f"{device}: idle power {watts:.3g} W known to +-{uncertainty:.2g} W only (the host "
                                  f"was busy in {IDLE_WINDOWS} idle windows): net energy and the first and last "
                                  "edges of measurements are less certain")
        return dict(self.idle_watts)

    def _calibrate(self, channel: Channel) -> float:
        """The counter's period: the median interval between two ticks seen one after the other, each
        known to a read's length; else the channel's nominal tick.

        A busy host deschedules this thread between reads: a tick seen across such a gap is placed
        anywhere in it, and the interval to the next then holds an unknown share of a period. A median of
        raw intervals was 20 % off on a loaded 2-core machine, and every edge then extrapolated from a
        wrong tick with a confident uncertainty. So a tick counts only where it was seen between two close
        reads (the poller's own rule, :data:`WIDE_BRACKET_READS`), and an interval only where no other
        change of the counter came between its two ticks (exactly one period).
        """
        periods: list[float] = []
        fastest = math.inf
        last, last_mid, last_tick, changes = None, 0.0, None, 0
        deadline = time.perf_counter() + (3 * CALIBRATION_TICKS + 2) * channel.tick_seconds
        while len(periods) < CALIBRATION_TICKS - 1 and time.perf_counter() < deadline:
            before = time.perf_counter()
            value = channel.read()
            after = time.perf_counter()
            fastest = min(fastest, after - before)
            mid = (before + after) / 2
            if last is not None and value != last:
                changes += 1
                if not _wide_bracket(mid - last_mid, fastest):
                    tick = (last_mid + mid) / 2
                    if last_tick is not None and changes == 1:
                        periods.append(tick - last_tick)
                    last_tick, changes = tick, 0
            last, last_mid = value, mid
        return statistics.median(periods) if periods else channel.tick_seconds

    def close(self) -> None:
        for poller in self._pollers.values():
            poller.close()
        if self._conditions is not None:
            self._conditions.close()
        for channel in self.channels:
            channel.close()

    # -- edges and windows ----------------------------------------------------------------------
    def edge(self, side: str, *, synchronize: bool = True) -> Edge:
        """Mark an edge now. Continuous channels are read here; ticking ones by their poller."""
        if synchronize:
            self.synchronize()
        at = time.perf_counter()
        values: dict[str, EdgeValue | _Pending] = {}
        for channel in self.channels:
            poller = self._pollers.get(channel.device)
            if poller is not None:
                values[channel.device] = poller.submit(at, side)
                continue
            try:
                values[channel.device] = EdgeValue(channel.read())
            except SourceError as error:
                values[channel.device] = EdgeValue(math.nan, math.nan, str(error))
        return Edge(at, values, self._conditions.submit() if self._conditions is not None else None)

    # -- cooldown -------------------------------------------------------------------------------
    def cool_down(self, target: str | None) -> Cooldown | None:
        """Wait until every device reporting its temperature is at or below ``target`` ("45C"), or
        until every device reporting its power has idled for ``target`` seconds in a row ("5s"); at
        most :data:`COOLDOWN_TIMEOUT_SECONDS` beyond that. After the session's first miss of a target
        no cooldown to it waits: each reads the devices once (reached where they are at the
        temperature now), and the miss is one line in :attr:`notes`. None: no cooldown asked, or no
        device reports its conditions (no GPU: nothing to cool)."""
        if not target or self._conditions is None:
            return None
        value, unit = parse_cooldown(target)
        waiting = target not in self.cooldowns_missed
        limit = COOLDOWN_TIMEOUT_SECONDS + (value if unit == "s" else 0.0)
        began = self.clock()
        deadline = began + (limit if waiting else 0.0)
        calm_since: float | None = None  # the first reading of the current calm spell
        while True:
            now = self.clock()
            far = self._hot(value) if unit == "C" else self._busy()
            if far:
                calm_since = None
            elif calm_since is None:
                calm_since = now
            if calm_since is not None and (unit == "C" or now - calm_since >= value):
                return Cooldown(target, now - began, True)
            if now >= deadline:
                break
            self.sleep(COOLDOWN_POLL_SECONDS)
        detail = ", ".join(far) or f"idle only {now - (calm_since or now):.3g} s at the end"
        if not waiting:
            return Cooldown(target, now - began, False,
                            f"{detail}; not waited for, as the target was missed earlier this session")
        missed = self.cooldowns_missed[target] = Cooldown(target, now - began, False, detail)
        self.notes.append(f"cooldown to {target} not reached within {limit:g} s ({detail}): later measurements "
                          "this session do not wait for it (their records say where the GPUs were)")
        return missed

    def _hot(self, limit: float) -> list[str]:
        """Devices warmer than ``limit`` degC, as "gpu:0 at 52 degC"."""
        assert self._conditions is not None
        readings = {c.device: c.conditions().get("temperature_c") for c in self._conditions.channels}
        return [f"{device} at {t:g} degC" for device, t in readings.items()
                if isinstance(t, (int, float)) and t > limit]

    def _busy(self) -> list[str]:
        """Devices drawing more than their idle power allows, as "gpu:0 at 310 W"."""
        busy = []
        for channel in self.channels:
            watts = channel.power()
            bound = COOLDOWN_IDLE_FACTOR * self.idle_watts[channel.device] + COOLDOWN_IDLE_SLACK_WATTS
            if watts is not None and watts > bound:
                busy.append(f"{channel.device} at {watts:.3g} W")
        return busy

    def take_rounds(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        rounds: int,
        min_window: float,
        warmup: int,
        iterations: int | None = None,
        fill_window: bool = False,
        cooldown: str | None = None,
        first_call: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> Taken:
        """Cool down (``cooldown``, see :meth:`cool_down`), warm up, then ``rounds`` back-to-back windows
        of ``iterations`` calls, or calls until each window lasts ``min_window`` seconds; with both
        (``fill_window``), at least ``iterations`` calls and at least ``min_window`` seconds. Returns fn's
        last result in ``Taken.result``. ``first_call`` makes the first warm-up call, given it as a
        function of no arguments (the session counts the call's work there, where no window is open)."""
        cooled = self.cool_down(cooldown)
        result = None
        # Warm-up also lasts a tick and a half where a counter ticks: the tick before the first edge
        # must then hold work only, as the boundary interpolation of that edge assumes.
        warm_until = time.perf_counter() + WARMUP_PERIODS * max(self.periods.values(), default=0.0)
        done = 0
        while done < warmup or (warmup > 0 and time.perf_counter() < warm_until):
            if done == 0 and first_call is not None:
                result = first_call(lambda: fn(*args, **kwargs))
            else:
                result = fn(*args, **kwargs)
            done += 1
        # After warm-up the device works right up to the first edge, so that edge is a boundary.
        edges = [self.edge(BOUNDARY if warmup > 0 else START)]
        counts: list[int] = []
        for index in range(rounds):
            count, began = 0, edges[-1].at
            while True:
                result = fn(*args, **kwargs)
                count += 1
                filled = time.perf_counter() - began >= min_window
                if iterations is None:
                    if filled:
                        break
                elif count >= iterations and (filled or not fill_window):
                    break
            edges.append(self.edge(END if index == rounds - 1 else BOUNDARY))
            counts.append(count)
        return Taken(edges, counts, done, result, cooled)

    # -- from edges to rounds and components ------------------------------------------------------
    def window_problem(self, channel: Channel, start: EdgeValue, end: EdgeValue, seconds: float) -> str | None:
        """Why one channel's joules over one window cannot be right, or None (module docstring)."""
        if start.error or end.error:
            return start.error or end.error
        gross = end.joules - start.joules
        if not math.isfinite(gross):
            return f"the counter read {gross} J"
        if gross < 0:
            return f"counter went back by {-gross:.3g} J"
        period = self.periods.get(channel.device, 0.0)
        frozen_after = channel.frozen_after_seconds
        if frozen_after and seconds >= frozen_after and gross == 0:
            return f"the counter did not change in {seconds:.3g} s: a frozen counter"
        slack = start.uncertainty + end.uncertainty
        watts = f"{gross:.3g} J in {seconds:.3g} s ({gross / seconds if seconds > 0 else math.inf:.3g} W)"
        idle = self.idle_watts[channel.device]
        if ((period or frozen_after) and idle > 0 and seconds >= max(2 * period, frozen_after)
                and gross + slack < IDLE_FLOOR_FRACTION * idle * seconds):
            return f"{watts}, below {IDLE_FLOOR_FRACTION * 100:g} % of its {idle:.3g} W idle power: a stalled counter"
        limit = channel.max_watts()
        if limit and gross - slack > limit * (POWER_LIMIT_MARGIN * seconds + 2 * (period + EDGE_DELAY_SECONDS)):
            return f"{watts}, above {POWER_LIMIT_MARGIN:g}x its {limit:.3g} W power limit: a counter jump"
        return None

    def _ticks(self, channel: Channel, start: EdgeValue, end: EdgeValue) -> int:
        """Counter updates between the ticks the poller saw at a window's two edges (0 where none)."""
        period = self.periods.get(channel.device, 0.0)
        if not period or start.tick is None or end.tick is None:
            return 0
        return round((end.tick - start.tick) / period)

    def held(self, gpus: Sequence[int] | None = None) -> list[Channel]:
        """The channels a measurement counts: every one, or where it holds ``gpus`` (CUDA's numbers in this
        process: ``cuda:N`` is ``gpu:N``) those GPUs and every device that is no GPU; the other GPUs'
        work is not its own."""
        if gpus is None:
            return list(self.channels)
        own = {f"gpu:{index}" for index in gpus}
        return [c for c in self.channels if c.kind != "gpu" or c.device in own]

    def _round(self, before: dict[str, EdgeValue], after: dict[str, EdgeValue], seconds: float,
               iterations: int, channels: list[Channel]) -> tuple[Round, dict[str, str]]:
        """One window as a round over ``channels``, and each one's problem with it (any problem makes it
        invalid)."""
        by_device: dict[str, float] = {}
        problems: dict[str, str] = {}
        gross_sum = net_sum = 0.0
        for channel in channels:
            start, end = before[channel.device], after[channel.device]
            problem = self.window_problem(channel, start, end, seconds)
            if problem:
                problems[channel.device] = problem
                continue
            gross = end.joules - start.joules
            net = gross - self.idle_watts[channel.device] * seconds
            by_device[channel.device] = net
            gross_sum += gross
            net_sum += net
        valid = bool(channels) and not problems  # with no device read, 0 J would pass every budget falsely
        return Round(iterations, seconds, gross_sum if valid else math.nan, net_sum if valid else math.nan,
                     valid, by_device if valid else {}), problems

    def account(self, taken: Taken, gpus: Sequence[int] | None = None) -> Measured:
        """Turn edges into rounds (per-device net joules) and per-device components; a measured warm-up
        (``taken.warmup_start``) into a round of its own, apart from them. A measurement holding ``gpus``
        counts those GPUs alone (:meth:`held`)."""
        channels = self.held(gpus)
        values = [edge.resolve() for edge in taken.edges]
        rounds: list[Round] = []
        totals = {c.device: {"gross": 0.0, "net": 0.0, "seconds": 0.0, "edge_var": 0.0, "ticks": 0}
                  for c in channels}
        problems: dict[str, str] = {}
        for index, iterations in enumerate(taken.iterations):
            before, after = values[index], values[index + 1]
            seconds = taken.edges[index + 1].at - taken.edges[index].at
            round_, found = self._round(before, after, seconds, iterations, channels)
            for device, problem in found.items():
                problems.setdefault(device, problem)
            rounds.append(round_)
            if not round_.valid:
                continue
            for channel in channels:
                start, end = before[channel.device], after[channel.device]
                total = totals[channel.device]
                total["gross"] += end.joules - start.joules
                total["net"] += round_.by_device[channel.device]
                total["seconds"] += seconds
                total["edge_var"] += start.uncertainty**2 + end.uncertainty**2
                total["ticks"] += self._ticks(channel, start, end)
        warmup = None
        if taken.warmup_start is not None and taken.edges:
            warmup, _ = self._round(taken.warmup_start.resolve(), values[0],
                                    taken.edges[0].at - taken.warmup_start.at, taken.warmup_iterations, channels)
        drain = None
        if taken.drain_end is not None and taken.edges:
            drain, _ = self._round(values[-1], taken.drain_end.resolve(), taken.drain_end.at - taken.edges[-1].at,
                                   taken.drain_iterations, channels)
        states = [edge.states() for edge in taken.edges]
        components = []
        for channel in channels:
            total = totals[channel.device]
            systematic = channel.uncertainty(total["gross"], total["seconds"])
            note = problems.get(channel.device, "")
            if note:
                note = f"window(s) invalid: {note}"
            conditions, condition_notes = _component_conditions(channel.device, states, taken.cooldown)
            shared = (f"shared with {channel.shared_with} workers: their work is in its windows too"
                      if channel.shared_with > 1 else "")
            note = "; ".join(n for n in (note, *condition_notes, shared) if n)
            components.append(
                Component(
                    device=channel.device,
                    kind=channel.kind,
                    method=channel.method,
                    gross_joules=total["gross"],
                    net_joules=total["net"],
                    idle_watts=self.idle_watts[channel.device],
                    window_seconds=total["seconds"],
                    ticks=int(total["ticks"]),
                    uncertainty_joules=math.sqrt(total["edge_var"] + systematic**2),
                    valid=channel.device not in problems,
                    note=note,
                    conditions=conditions,
                    shared_with=channel.shared_with,
                )
            )
        timeline: list[tuple[float, float]] = []
        if taken.edges:
            since, until = taken.edges[0].at, taken.edges[-1].at
            for channel in channels:
                timeline += [(t - since, w) for t, w in channel.timeline(since, until)]
        return Measured(rounds, components, sorted(timeline), warmup, drain)


class StepRounds:
    """The rounds of a block whose own code marks its steps (:meth:`step` after each: a training loop).

    Work that runs once cannot be repeated until a window is filled, as :meth:`Meter.take_rounds`
    does; its steps are split instead, with edges placed as the steps end:

    * the first ``warmup`` steps are a warm-up window of their own from the block's start edge,
      lasting at least :data:`WARMUP_PERIODS` ticks where a counter ticks (as a call's warm-up, so
      the tick before the first round's edge holds work only) while a step is left for each round:
      measured, so the whole block's energy is known, but no round of the verdict's;
    * the steps left are ``rounds`` back-to-back windows of at least a ``rounds``-th of them each
      (``planned``: the steps the block will make, warm-up included). A round also goes on until
      it lasts ``min_window``, and ends only where the steps left can still fill a round at its pace
      (as many steps and the minimum window); otherwise they join it, so the last round is never a
      short one. A block too short for its rounds gives fewer of them, one at the least.

    A step may count several iterations (``step(count)``: a served batch's pass makes one output token
    per sequence); ``planned`` and the rounds then count iterations. A ``marked`` block places its
    rounds' own first and last edges (:meth:`open_rounds`, :meth:`close_rounds`: where a served batch
    first fills and where it starts to drain): its warm-up window lasts until the rounds open, and what
    follows their close (steps, or only time: torchrun processes ending) is a drain window, measured for
    the totals like the warm-up.

    ``planned`` below ``warmup + 1`` shrinks the warm-up so that one step is measured at least. A
    block that marks no step, or ends before its warm-up did, is one window (:meth:`taken`).
    """

    def __init__(self, meter: Meter, start: Edge, *, planned: int, rounds: int, warmup: int,
                 min_window: float, marked: bool = False) -> None:
        self._meter = meter
        self._start = start
        self._planned = planned
        self._asked = rounds
        self._marked = marked
        self._warmup = max(0, min(warmup, planned - 1))
        self._until = planned  # iterations marked when the rounds end
        self._plan_rounds(planned - self._warmup)
        self._min_window = min_window
        ticks = WARMUP_PERIODS * max(meter.periods.values(), default=0.0) if self._warmup else 0.0
        self._warm_until = start.at + ticks
        # After the warm-up, its end is the first edge; a marked block's first is where it opens its rounds.
        self._edges = [start] if not self._warmup and not marked else []
        self._counts: list[int] = []
        self._count = 0  # iterations of the round (or the warm-up) going on
        self._closed = False
        self.steps = 0  # every iteration marked
        self.warmup_steps = 0  # iterations of the warm-up window, once it has ended
        self.drain_steps = 0  # iterations after a marked block closed its rounds

    def _plan_rounds(self, measured: int) -> None:
        self._rounds = max(1, min(self._asked, measured))
        self._least = max(1, measured // self._rounds)  # iterations a round holds at least

    @property
    def _warming(self) -> bool:
        return not self._edges

    def _end_warmup(self) -> None:
        self._edges.append(self._meter.edge(BOUNDARY))
        self.warmup_steps, self._count = self.steps, 0

    def step(self, count: int = 1) -> None:
        """One step of ``count`` iterations has ended: place an edge where it ends the warm-up or a round."""
        self.steps += count
        if self._closed:
            self.drain_steps += count
            return
        self._count += count
        now = time.perf_counter()
        left = self._until - self.steps
        if self._warming:
            if (not self._marked and self.steps >= self._warmup
                    and (now >= self._warm_until or left <= self._rounds)):
                self._end_warmup()
                self._plan_rounds(left)
            return
        elapsed = now - self._edges[-1].at
        last = len(self._counts) + 1 >= self._rounds
        if (not last and self._count >= self._least and elapsed >= self._min_window
                and left >= self._least and left * elapsed / self._count >= self._min_window):
            self._edges.append(self._meter.edge(BOUNDARY))
            self._counts.append(self._count)
            self._count = 0

    def open_rounds(self, iterations: int) -> None:
        """A marked block's rounds start now and will hold ``iterations``: the warm-up window ends here."""
        if not self._marked or not self._warming:
            return
        self._end_warmup()
        self._until = self.steps + iterations
        self._plan_rounds(iterations)

    def close_rounds(self) -> None:
        """A marked block's rounds end now (after their last step): what follows is its drain window."""
        if not self._marked or self._warming or self._closed:
            return
        if self._count:  # else a round has just ended here: its edge is the rounds' last
            self._edges.append(self._meter.edge(BOUNDARY))
            self._counts.append(self._count)
            self._count = 0
        self._closed = True

    def taken(self, end: Edge, iterations: int, cooldown: Cooldown | None) -> Taken:
        """What the block took, ended by ``end``: its rounds, measured warm-up and drain where steps were
        marked; else one window of ``iterations`` (the block's own count), or of the steps where the
        block ended before its warm-up or its first round did."""
        if not self.steps:
            return Taken([self._start, end], [iterations], cooldown=cooldown)
        notes = [] if self.steps <= self._planned else [
            f"{self.steps} steps marked where {self._planned} were planned (energy.measure(iterations=...)): "
            "the rounds were split for the planned ones"]
        if self._warming or not (self._counts or self._count):
            notes.append(f"the block ended after {self.steps} steps, before its warm-up or first round did: one "
                         "window, no warm-up")
            return Taken([self._start, end], [self.steps], cooldown=cooldown, notes=notes)
        edges, counts = list(self._edges), list(self._counts)
        drain_end = None
        if self._closed and (self.drain_steps or end.at > edges[-1].at):  # what follows the rounds stays out of them
            drain_end = end
        elif self._count:
            edges.append(end)
            counts.append(self._count)
        else:  # the block ended right after a round's edge (it made fewer steps than planned)
            edges[-1] = end
        if len(counts) < self._asked:
            notes.append(f"{len(counts)} of the {self._asked} rounds asked: the {sum(counts)} steps after the warm-up "
                         f"could not fill more (a round holds {self._least} steps and lasts {self._min_window:g} s at "
                         "the least); more steps, or a shorter --energy-min-window, give more rounds")
        return Taken(edges, counts, self.warmup_steps, cooldown=cooldown,
                     warmup_start=self._start if self.warmup_steps else None, notes=notes,
                     drain_end=drain_end, drain_iterations=self.drain_steps)


def _component_conditions(device: str, states: list[States],
                          cooldown: Cooldown | None) -> tuple[dict[str, Any], list[str]]:
    """A component's conditions (first and last edge, throttled windows, the cooldown) and its notes."""
    seen = [edge.get(device) or {} for edge in states]
    if not any(seen):
        return {}, []
    windows = [sorted(set(throttling(a)) | set(throttling(b))) for a, b in zip(seen, seen[1:])]
    throttled = [reasons for reasons in windows if reasons]
    reasons = sorted({reason for found in throttled for reason in found})
    conditions: dict[str, Any] = {"start": seen[0], "end": seen[-1], "throttled_windows": len(throttled),
                                  "throttling": reasons}
    notes = []
    if throttled:
        notes.append(f"thermal or power throttling ({', '.join(reasons)}) at the edges of {len(throttled)} of "
                     f"{len(windows)} window(s): the GPU ran below its clocks there")
    if cooldown is not None:
        conditions["cooldown"] = {"target": cooldown.target, "waited_seconds": cooldown.waited_seconds,
                                  "reached": cooldown.reached}
        if not cooldown.reached:
            notes.append(f"cooldown to {cooldown.target} not reached in {cooldown.waited_seconds:.3g} s "
                         f"({cooldown.detail}); measured as it was")
    return conditions, notes
