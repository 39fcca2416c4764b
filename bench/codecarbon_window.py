"""CodeCarbon's figure for one window, taken the way a test would take it: an offline tracker started
before the work and stopped after it, with no network at all.

CodeCarbon is imported here only (never by the plugin). Every connection attempt made while the
benchmark runs is refused and recorded by :class:`NetworkGuard`, so the results can show there
were none.
"""

from __future__ import annotations

import importlib
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .rigs import Rig


@dataclass
class NetworkGuard:
    """Refuses and records every outgoing connection in this process while active."""

    attempts: list[str] = field(default_factory=list)
    _saved: Any = None

    def __enter__(self) -> NetworkGuard:
        self._saved = socket.socket.connect
        guard = self

        def refuse(sock: socket.socket, address: Any) -> None:
            guard.attempts.append(repr(address))
            raise OSError(f"bench: network connection to {address!r} refused")

        socket.socket.connect = refuse  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        socket.socket.connect = self._saved  # type: ignore[method-assign]


def unavailable() -> str:
    """"" when CodeCarbon's offline tracker can be imported, else why not."""
    try:
        importlib.import_module("codecarbon")  # here only: the plugin never imports CodeCarbon
    except Exception as error:  # an ImportError, or a broken install failing at import
        return f"codecarbon cannot be imported ({type(error).__name__}: {error})"
    return ""


@dataclass
class Window:
    """What CodeCarbon reported for one window."""

    joules: float
    iterations: int
    began: float  # perf_counter instants just before start() and just after stop()
    ended: float


def measure(rig: Rig, measure_power_secs: float, country: str, run: Callable[[], int]) -> Window:
    """One window: a new offline tracker, started, ``run()`` (returns iterations), stopped.

    Raises RuntimeError with CodeCarbon's own reason when it reports no energy data.
    """
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(
        country_iso_code=country,
        measure_power_secs=measure_power_secs,
        save_to_file=False,
        log_level="error",
        **{k: v for k, v in rig.codecarbon_options.items() if v is not None},
    )
    rig.sync()
    began = time.perf_counter()
    tracker.start()
    iterations = run()
    rig.sync()
    tracker.stop()
    ended = time.perf_counter()
    data = getattr(tracker, "final_emissions_data", None)
    if data is None or rig.codecarbon_joules is None:
        raise RuntimeError("the tracker stopped without emissions data (CodeCarbon logged why at debug level)")
    return Window(rig.codecarbon_joules(data), iterations, began, ended)
