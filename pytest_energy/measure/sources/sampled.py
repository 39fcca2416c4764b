"""The power-integrating sampler that every source without an energy counter reuses.

A device that offers power readings but no cumulative energy (NVIDIA GPUs before Volta; AMD's
``amdsmi`` or Apple's ``powermetrics`` would be others) becomes a channel by subclassing
:class:`SampledChannel` and implementing :meth:`SampledChannel.read_watts` (and, for the fingerprint,
:meth:`~pytest_energy.measure.sources.base.Channel.identity` and :meth:`~pytest_energy.measure.sources.base.Channel.max_watts`).
A daemon thread then reads the power every :data:`SAMPLE_INTERVAL_SECONDS`, or every
:data:`SAMPLER_COST_RATIO` times the measured cost of one reading if that is longer, and integrates
the readings with the trapezoid rule; every :meth:`SampledChannel.read` also takes a reading, so a
window's integral runs exactly to its edges.
"""

from __future__ import annotations

import abc
import threading
import time
from collections import deque

from .base import POWER_LIMIT_MARGIN, Channel, SourceError

#: Shortest interval between power readings of the sampler.
SAMPLE_INTERVAL_SECONDS = 0.01
#: The sampler waits at least this many times the cost of one power reading between readings, so it
#: never takes more than 5 % of a core (``nvmlDeviceGetPowerUsage`` costs 2-12 µs, the field path ~4 ms).
SAMPLER_COST_RATIO = 20
#: Power samples kept for :meth:`SampledChannel.timeline`: 10 minutes at 10 ms, about 7 MB.
#: The joules integral is a running sum and does not depend on this cap.
TIMELINE_CAP = 60_000


class SampledChannel(Channel):
    """Power read by a background thread and integrated into cumulative joules.

    Samples are integrated with the trapezoid rule into a running sum; the last :data:`TIMELINE_CAP`
    are kept for :meth:`timeline`. A reading above 1.5x the power limit is a fault, not power: it is
    left out and the next :meth:`read` raises, so that window is invalid. A failed reading in the
    thread makes the next :meth:`read` raise too: the window that holds the gap is refused.
    """

    method = "sampled"
    tick_seconds = 0.0  # every read samples the power itself: continuous at the meter's scale
    frozen_after_seconds = 0.1  # a powered device never reads 0 W: a tenth of a second at 0 J is a fault
    #: What reads the power, for messages ("NVML").
    reader = "the power reading"

    def __init__(self) -> None:
        self.interval_seconds = SAMPLE_INTERVAL_SECONDS
        self._sample_lock = threading.Lock()
        self._samples: deque[tuple[float, float]] = deque(maxlen=TIMELINE_CAP)
        self._joules = 0.0
        self._error: SourceError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def read_watts(self) -> float:
        """The device's power in watts now; raises :class:`SourceError` when the reading fails."""

    def _sample(self) -> None:
        before = time.perf_counter()
        watts = self.read_watts()
        at = (before + time.perf_counter()) / 2
        limit = self.max_watts()
        if limit is not None and watts > POWER_LIMIT_MARGIN * limit:  # left out of the integral
            raise SourceError(f"{self.device}: {self.reader} read {watts:.4g} W, above {POWER_LIMIT_MARGIN:g}x its "
                              f"{limit:.4g} W power limit; the window holding that reading is invalid")
        with self._sample_lock:
            if self._samples:
                last_at, last_watts = self._samples[-1]
                if at <= last_at:
                    return  # another thread stored a later reading meanwhile; the integral is past this one
                self._joules += (watts + last_watts) / 2 * (at - last_at)
            self._samples.append((at, watts))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self._sample()
            except SourceError as error:
                with self._sample_lock:
                    self._error = self._error or error  # reported by the next read: that window has a gap

    def start(self) -> None:
        """Start the sampler thread, spacing readings by at least 20x the measured cost of one."""
        if self._thread is not None:
            return
        costs = []
        for _ in range(3):
            before = time.perf_counter()
            try:
                self._sample()
            except SourceError as error:
                with self._sample_lock:
                    self._error = self._error or error
                break
            costs.append(time.perf_counter() - before)
        if costs:
            self.interval_seconds = max(SAMPLE_INTERVAL_SECONDS, SAMPLER_COST_RATIO * min(costs))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"pytest-energy sampler {self.device}", daemon=True)
        self._thread.start()

    def read(self) -> float:
        """Integrated joules up to now; raises :class:`SourceError` for a failed reading since the last read."""
        self._sample()
        with self._sample_lock:
            error, self._error = self._error, None
            if error is not None:
                raise error
            return self._joules

    def timeline(self, since: float, until: float) -> list[tuple[float, float]]:
        """(perf_counter seconds, watts) readings between two instants (the last 10 minutes at most)."""
        with self._sample_lock:
            return [(at, watts) for at, watts in self._samples if since <= at <= until]

    def uncertainty(self, joules: float, seconds: float) -> float:
        """A change of power between two readings is placed up to one interval off: at most one
        interval of the mean power at each edge of the window."""
        watts = joules / seconds if seconds > 0 else 0.0
        return 2 * self.interval_seconds * abs(watts)

    def close(self) -> None:
        """Stop the sampler thread."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=1.0)
            self._thread = None
