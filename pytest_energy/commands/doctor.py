"""``pytest-energy doctor``: what this runner can measure, how well, and with which settings.

Per device it opens the channels the plugin would open (:func:`pytest_energy.measure.sources.detect`), then
measures on this machine what the plugin depends on: how often each counter changes (its tick) and
what one read costs, read in a loop for a bounded time, and the idle power through the plugin's own
meter. Each registered source says how its devices measure and, in a section of its own, why it is
missing (no NVIDIA driver, RAPL readable by root only, with the fix); the doctor adds which settings the
plugin would resolve from the project's ini file and the environment.

``--require gpu|rapl|counter`` makes it a check a CI job runs first: exit 3 with one line per
requirement the runner cannot meet (a source's section answers its own requirement; ``counter`` asks for
any hardware counter). ``--json`` prints :func:`to_json`'s document (keys listed there).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ..core.config import Settings, hidden_secrets, path_setting
from ..core.record import finite
from ..measure.sources.base import Channel, Section, SourceError
from .project import Project

#: Exit code when a ``--require`` is not met (2 stays the code of bad input, as elsewhere in the CLI).
UNMET_EXIT = 3
#: JSON document version; keys are only ever added.
SCHEMA_VERSION = 1
#: Counter changes to observe for the tick period; the probe also stops after PROBE_MAX_SECONDS.
PROBE_TICKS = 5
PROBE_MAX_SECONDS = 2.0
#: How long a continuous source (RAPL, modelled, sampled) is read to time its reads.
PROBE_SECONDS = 0.2
#: Read costs kept for the median.
PROBE_MAX_READS = 20_000

#: Settings shown, in this order: what decides how a test is measured and judged, and where runs are stored
#: (the history with its password hidden).
SHOWN_SETTINGS = ("devices", "rounds", "min_window", "warmup", "min_effect", "idle_seconds", "gate_modelled",
                  "fail_on_regression", "normalise", "baselines", "baseline_set", "history", "powercap", "cooldown",
                  "top")


@dataclass
class DeviceReport:
    """One channel the plugin would measure, with what was measured of it here."""

    device: str
    kind: str
    method: str  # counter | sampled | modelled
    how: str  # one line: where the joules come from
    gates: bool  # whether an energy regression on this device can fail the session
    tick_seconds: float | None = None  # observed period of counter changes (counters only)
    ticks_seen: int = 0
    read_seconds: float | None = None  # median cost of one read()
    sample_interval_seconds: float | None = None  # sampled GPUs: the sampler's interval
    idle_watts: float | None = None
    power_limit_watts: float | None = None
    mig_enabled: bool | None = None  # a measured GPU never has MIG on (the source refuses those)
    other_processes: list[int] = field(default_factory=list)
    nvml_index: int | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # a read that failed while probing


@dataclass
class Diagnosis:
    """Everything doctor found; :func:`to_json` gives its stable JSON form."""

    devices: list[DeviceReport]
    sections: dict[str, Section]  # by their JSON key: "gpu" (NVML), "rapl", and any source's of its own
    settings: dict[str, Any]
    gating: list[str]
    notes: list[str]
    fingerprint_id: str
    # Where a baseline recorded here goes: "folder", "set", "file" (its set folder and "<test module>.json";
    # None where baselines are off) and "device_kinds" (the kinds this runner's energy is kept under).
    baselines: dict[str, Any] = field(default_factory=dict)
    #: More lines per device, from its source (a GPU's CUDA number, power limit, MIG, other processes).
    device_lines: dict[str, list[str]] = field(default_factory=dict)


# -- probing -----------------------------------------------------------------------------------------
def probe(channel: Channel) -> tuple[float | None, int, float | None, str | None]:
    """(tick seconds, changes seen, median read seconds, error) from reading ``channel`` in a loop.

    A ticking counter is read until it has changed :data:`PROBE_TICKS` + 1 times, for at least a
    second and at most :data:`PROBE_MAX_SECONDS`; other channels for :data:`PROBE_SECONDS`. The tick is the median
    interval between changes, each placed midway between the read before it and the read that saw it.
    """
    ticking = channel.method == "counter"
    # At least a second for a ticking counter: on a busy machine this thread may not run for a while.
    bound = min(PROBE_MAX_SECONDS, max(1.0, (PROBE_TICKS + 2) * channel.tick_seconds)) if channel.tick_seconds \
        else PROBE_SECONDS
    costs: list[float] = []
    changes: list[float] = []
    try:
        last = channel.read()
        previous_end = time.perf_counter()
        deadline = previous_end + bound
        while time.perf_counter() < deadline and len(changes) <= PROBE_TICKS:
            before = time.perf_counter()
            value = channel.read()
            after = time.perf_counter()
            if len(costs) < PROBE_MAX_READS:  # enough for the median; a cheap counter is read on for its tick
                costs.append(after - before)
            if value != last:
                changes.append((previous_end + after) / 2)
            last, previous_end = value, after
    except SourceError as error:
        return None, len(changes), statistics.median(costs) if costs else None, str(error)
    intervals = [b - a for a, b in zip(changes, changes[1:])]
    tick = statistics.median(intervals) if ticking and intervals else None
    return tick, len(changes) if ticking else 0, statistics.median(costs) if costs else None, None


def _gates(channel: Channel, channels: list[Channel], settings: Settings) -> bool:
    """As the gate decides (record.judged_devices, gate._energy_verdict): measured devices are judged
    where a record has any, modelled ones only where none is, and then only with gate_modelled."""
    if not settings.fail_on_regression:
        return False
    if channel.method != "modelled":
        return True
    return settings.gate_modelled and all(c.method == "modelled" for c in channels)


def _gating(devices: list[DeviceReport], settings: Settings) -> list[str]:
    measured = [d.device for d in devices if d.method != "modelled"]
    modelled = [d.device for d in devices if d.method == "modelled"]
    lines = []
    fails = ("a regression fails the session" if settings.fail_on_regression
             else "a regression is reported but does not fail the session (energy_fail_on_regression is false)")
    if measured:
        lines.append(f"energy verdicts judge the measured devices {', '.join(measured)}: {fails}")
        if modelled:
            lines.append(f"{', '.join(modelled)} are modelled: recorded, but not judged beside a measured device")
    elif modelled:
        if settings.gate_modelled:
            lines.append(f"only modelled energy here ({', '.join(modelled)}), gating as energy_gate_modelled "
                         f"is true: {fails}")
        else:
            lines.append(f"only modelled energy here ({', '.join(modelled)}): verdicts are shown but never fail "
                         "the session (energy_gate_modelled is false)")
    else:
        lines.append("no device is measured: nothing can be judged")
    lines.append(f"minimum effect {settings.min_effect:g} ({settings.min_effect * 100:g} %), "
                 f"{settings.rounds} rounds of at least {settings.min_window:g} s per measured call")
    return lines


# -- the diagnosis -----------------------------------------------------------------------------------
def diagnose(settings: Settings, project: Project) -> Diagnosis:
    """Open the plugin's channels, measure them here (idle power over ``settings.idle_seconds``), and
    say what the plugin would do with them."""
    from ..measure.fingerprint import fingerprint
    from ..measure.meter import Meter
    from ..measure.sources import Request, cpu_tdp, detect, parse_devices, registered_sources, source_of

    request = Request(parse_devices(settings.devices), settings.powercap, cpu_tdp(settings))
    found = detect(settings.devices, rapl_root=settings.powercap, cpu_tdp=request.cpu_tdp)
    channels = found.channels
    meter = Meter(channels)
    lines: dict[str, list[str]] = {}
    try:
        idle = meter.start(settings.idle_seconds)
        devices = []
        for channel in channels:
            source = source_of(channel)
            identity = channel.identity()
            tick, seen, cost, problem = probe(channel)
            limit = identity.get("power_limit_watts")
            devices.append(DeviceReport(
                device=channel.device, kind=channel.kind, method=channel.method, how=source.how(channel),
                gates=_gates(channel, channels, settings), tick_seconds=tick, ticks_seen=seen, read_seconds=cost,
                sample_interval_seconds=getattr(channel, "interval_seconds", None) if channel.method == "sampled"
                else None,
                idle_watts=idle.get(channel.device), power_limit_watts=float(limit) if limit is not None else None,
                other_processes=channel.other_processes(), identity=identity, problem=problem,
                **source.doctor_fields(channel),
            ))
            lines[channel.device] = source.doctor_lines(channel)
        machine = fingerprint(channels)
    finally:
        meter.close()
    sections = [source.section(channels, request, found.notes, settings.devices) for source in registered_sources()]
    return Diagnosis(
        devices=devices,
        sections={section.key: section for section in sections if section is not None},
        settings={
            "inifile": str(project.inifile) if project.inifile else None,
            "values": hidden_secrets({name: settings.values[name] for name in SHOWN_SETTINGS}),
            "sources": {name: settings.sources[name] for name in SHOWN_SETTINGS},
        },
        gating=_gating(devices, settings),
        notes=list(found.notes),
        fingerprint_id=machine["id"],
        baselines=_baselines(settings, project, channels, machine),
        device_lines=lines,
    )


def _baselines(settings: Settings, project: Project, channels: list[Channel],
               machine: dict[str, Any]) -> dict[str, Any]:
    """Where a baseline recorded here goes (the plugin's own layout, ``<baselines>/<set>/<test module>.json``,
    from pytest's rootdir: the ini file's folder), and the device kinds its energy is kept under."""
    from ..store.baselines import set_folder
    from ..measure.fingerprint import device_kinds

    root = project.inifile.parent if project.inifile else project.start
    folder = path_setting(settings.baselines, root)
    kinds = [kind.id for kind in device_kinds(channels, machine, settings.device_kind_fields.split(","))]
    return {"folder": str(folder) if folder is not None else None, "set": settings.baseline_set,
            "file": str(set_folder(folder, settings.baseline_set) / "<test module>.json") if folder is not None
            else None, "device_kinds": kinds}


def unmet(diagnosis: Diagnosis, required: list[str]) -> dict[str, str]:
    """Requirement -> one line saying why this runner cannot meet it; met ones are absent. A source's
    section answers its own requirement ("gpu", "rapl"); "counter" asks for any hardware energy counter."""
    lines: dict[str, str] = {}
    answers = {section.requirement: section for section in diagnosis.sections.values() if section.requirement}
    for requirement in dict.fromkeys(required):
        if requirement == "counter":
            if not any(d.method == "counter" for d in diagnosis.devices):
                methods = ", ".join(sorted({d.method for d in diagnosis.devices})) or "nothing"
                why = "; ".join(f"{section.label}: {section.reason}" for section in diagnosis.sections.values())
                lines[requirement] = f"--require counter: no hardware energy counter here (only {methods}): {why}"
        elif requirement not in answers:
            lines[requirement] = (f"--require {requirement}: no registered source answers it (known: "
                                  f"{', '.join([*answers, 'counter'])})")
        elif answers[requirement].unmet:
            lines[requirement] = str(answers[requirement].unmet)
    return lines


def to_json(diagnosis: Diagnosis, required: list[str]) -> dict[str, Any]:
    """The ``--json`` document. Keys: ``schema_version``, ``fingerprint_id``, ``devices`` (one object
    per measured device: device, kind, method, how, gates, tick_seconds, ticks_seen, read_seconds,
    sample_interval_seconds, idle_watts, power_limit_watts, mig_enabled, other_processes, nvml_index,
    identity, problem), then each source's section by its key: ``gpu`` (available, reason,
    cuda_visible_devices, cuda_device_order, notes), ``rapl`` (root, state: readable | root-only | absent |
    unreadable, zones, readable, reason, fix), a registered source's of its own;
    ``settings`` (inifile, values, sources), ``gating``, ``notes``, ``baselines`` (folder, set, file: where
    a baseline recorded here goes, None where baselines are off; device_kinds), ``requirements`` (each asked
    requirement: met, reason) and ``ok`` (every asked requirement met)."""
    failures = unmet(diagnosis, required)
    return finite({
        "schema_version": SCHEMA_VERSION,
        "fingerprint_id": diagnosis.fingerprint_id,
        "devices": [dataclasses.asdict(d) for d in diagnosis.devices],
        **{key: section.document for key, section in diagnosis.sections.items()},
        "settings": diagnosis.settings,
        "gating": diagnosis.gating,
        "notes": diagnosis.notes,
        "baselines": diagnosis.baselines,
        "requirements": {r: {"met": r not in failures, "reason": failures.get(r)} for r in dict.fromkeys(required)},
        "ok": not failures,
    })


# -- rendering ---------------------------------------------------------------------------------------
def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _tick(device: DeviceReport) -> str:
    if device.method == "sampled":
        return f"sampled every {_seconds(device.sample_interval_seconds)}"
    if device.method == "modelled":
        return "continuous (model)"
    if device.tick_seconds is None:
        return "no change seen" if device.ticks_seen < 2 else "-"
    return f"{_seconds(device.tick_seconds)} ({device.ticks_seen} changes seen)"


def _baselines_line(baselines: dict[str, Any]) -> str:
    if baselines["file"] is None:
        return "baselines: off (energy_baselines is none), so nothing is compared or recorded"
    return (f"baselines recorded here go to {baselines['file']} (set {baselines['set']!r}, one file per test "
            f"module); their energy is kept per device kind ({'; '.join(baselines['device_kinds']) or 'none'}), "
            "their work, quality and model are judged on any runner")


def render(diagnosis: Diagnosis, required: list[str], console: Any) -> None:
    """Print the diagnosis with rich on ``console``."""
    from rich.table import Table
    from rich.text import Text

    console.print(f"[bold]pytest-energy doctor[/bold]  hardware fingerprint {diagnosis.fingerprint_id}")
    console.print(_baselines_line(diagnosis.baselines), markup=False, highlight=False)
    table = Table(title="What is measured here", title_justify="left")
    for column in ("device", "method", "tick", "read cost", "idle", "gates"):
        table.add_column(column, overflow="fold")
    for device in diagnosis.devices:
        table.add_row(*map(Text, (device.device, device.method, _tick(device),
                                  _seconds(device.read_seconds),
                                  f"{device.idle_watts:.3g} W" if device.idle_watts is not None else "-",
                                  "yes" if device.gates else "no")))
    console.print(table)
    for device in diagnosis.devices:
        console.print(f"{device.device}: {device.how}", markup=False, highlight=False)
        for line in diagnosis.device_lines.get(device.device, []):
            console.print(line, markup=False, highlight=False)
        if device.problem:
            console.print(f"{device.device}: reading failed while probing: {device.problem}", style="red",
                          markup=False, highlight=False)
    for section in diagnosis.sections.values():
        for line in section.lines:
            console.print(line, markup=False, highlight=False)
    settings = Table(title=Text(f"Settings the plugin will use (ini: {diagnosis.settings['inifile'] or 'none found'})"),
                     title_justify="left")
    for column in ("setting", "value", "from"):
        settings.add_column(column, overflow="fold")
    for name, value in diagnosis.settings["values"].items():
        settings.add_row(Text(f"energy_{name}"), Text(str(value)), Text(diagnosis.settings["sources"][name]))
    console.print(settings)
    for line in diagnosis.gating:
        console.print(f"gate: {line}", markup=False, highlight=False)
    for note in diagnosis.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if required and not unmet(diagnosis, required):  # unmet ones: one line each on stderr, from main()
        console.print(f"requirements met: {', '.join(dict.fromkeys(required))}", markup=False, highlight=False)


def main(settings: Settings, project: Project, *, required: list[str], as_json: bool) -> int:
    """Run the diagnosis and print it; 0, or :data:`UNMET_EXIT` when a requirement is not met (one
    line per unmet requirement on stderr)."""
    diagnosis = diagnose(settings, project)
    if as_json:
        import json

        print(json.dumps(to_json(diagnosis, required), indent=1, default=str))
    else:
        from rich.console import Console

        render(diagnosis, required, Console(soft_wrap=True))
    failures = unmet(diagnosis, required)
    for line in failures.values():
        print(f"pytest-energy doctor: {line}", file=sys.stderr)
    return UNMET_EXIT if failures else 0
