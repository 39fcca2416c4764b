"""``pytest-energy doctor``: what this runner can measure, how well, and with which settings.

Per device it opens the channels the plugin would open (:func:`pytest_energy.measure.sources.detect`), then
measures on this machine what the plugin depends on: how often each counter changes (its tick) and
what one read costs, read in a loop for a bounded time, and the idle power through the plugin's own
meter. It says why a source is missing (no NVIDIA driver, RAPL readable by root only, with the fix)
and which settings the plugin would resolve from the project's ini file and the environment.

``--require gpu|rapl|counter`` makes it a check a CI job runs first: exit 3 with one line per
requirement the runner cannot meet. ``--json`` prints :func:`to_json`'s document (keys listed there).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import Settings, hidden_secrets, path_setting
from .project import Project
from ..core.record import finite
from ..measure.sources.base import Channel, SourceError, SourceUnavailable

#: Exit code when a ``--require`` is not met (2 stays the code of bad input, as elsewhere in the CLI).
UNMET_EXIT = 3
REQUIREMENTS = ("gpu", "rapl", "counter")
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
    gpu: dict[str, Any]
    rapl: dict[str, Any]
    settings: dict[str, Any]
    gating: list[str]
    notes: list[str]
    fingerprint_id: str
    # Where a baseline recorded here goes: "folder", "set", "file" (its set folder and "<test module>.json";
    # None where baselines are off) and "device_kinds" (the kinds this runner's energy is kept under).
    baselines: dict[str, Any] = field(default_factory=dict)


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


def _how(channel: Channel, identity: dict[str, Any]) -> str:
    if channel.kind == "gpu":
        name = identity.get("name", "NVIDIA GPU")
        if channel.method == "counter":
            return f"{name}: NVML total-energy counter (nvmlDeviceGetTotalEnergyConsumption)"
        return f"{name}: no energy counter (before Volta), power read by {identity.get('power_reading')} and integrated"
    if channel.method == "counter":
        return f"RAPL {identity.get('rapl_domain')} counter ({identity.get('rapl_zone')}/energy_uj)"
    if channel.kind == "cpu":
        return (f"modelled: TDP {identity.get('tdp_watts')} W x (0.1 + 0.9 x load^3), load = this process's CPU "
                f"time over {identity.get('logical_cpus')} CPUs; the TDP is {identity.get('tdp_source')}")
    return f"modelled: {identity.get('ram_model', 'resident memory')}"


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


# -- GPU and RAPL availability ------------------------------------------------------------------------
def _gpu_section(channels: list[Channel], settings: Settings, notes: list[str]) -> dict[str, Any]:
    from ..measure.sources import nvml, parse_devices

    wanted = parse_devices(settings.devices)
    reason = None
    if not any(c.kind == "gpu" for c in channels):
        if "gpu" not in wanted:
            reason = f"GPUs are not among the devices measured (energy_devices = {settings.devices!r})"
        else:
            try:
                opened = nvml.open_channels(wanted["gpu"])
            except SourceUnavailable as error:
                reason = str(error)
            else:
                for channel in opened.channels:
                    channel.close()
                reason = "; ".join(n for n in notes if n.startswith(("gpu", "GPU"))) or "no GPU could be opened"
    return {
        "available": reason is None,
        "reason": reason,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_device_order": os.environ.get("CUDA_DEVICE_ORDER"),
        "notes": [n for n in notes if n.startswith(("gpu", "GPU"))],
    }


def rapl_fix(root: str) -> list[str]:
    """The commands that make RAPL counters readable without root (since CVE-2020-8694, "PLATYPUS",
    the kernel creates ``energy_uj`` with mode 0400; no sysctl changes that)."""
    return [
        f"until the next reboot:  sudo chmod a+r {root}/intel-rapl:*/energy_uj",
        "at every boot, a udev rule (sysfs attributes ignore udev's MODE, so it runs chmod):",
        "  echo 'ACTION==\"add\", SUBSYSTEM==\"powercap\", KERNEL==\"intel-rapl:*\", "
        "RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"' | sudo tee /etc/udev/rules.d/90-rapl.rules",
        "  sudo udevadm control --reload-rules && sudo udevadm trigger --action=add --subsystem-match=powercap",
        "on a shared machine give one group access instead of everyone: chgrp GROUP and chmod g+r in place of "
        "chmod a+r (the counters are the side channel the CVE closed)",
        "no sysctl controls this; `setcap cap_dac_read_search+ep` on the Python binary works too but lets every "
        "Python program read every file: don't",
    ]


def _rapl_section(channels: list[Channel], root: str, notes: list[str]) -> dict[str, Any]:
    base = Path(root)
    zones = sorted(p.name for p in base.glob("intel-rapl:*")) if base.is_dir() else []
    readable = [c.device for c in channels if c.kind in ("cpu", "dram") and c.method == "counter"]
    denied = sorted(str(base / z / "energy_uj") for z in zones
                    if (base / z / "energy_uj").exists() and not os.access(base / z / "energy_uj", os.R_OK))
    if readable:
        state, reason, fix = "readable", None, []
    elif not zones:
        state = "absent"
        where = "no powercap folder" if not base.is_dir() else "no intel-rapl zone in it"
        reason = (f"no RAPL on this machine ({root}: {where}); VMs and most CI runners have none, "
                  "so CPU and RAM are modelled")
        fix = ["on bare metal with an Intel or AMD CPU, load the kernel's driver: sudo modprobe intel_rapl_msr",
               "most VMs and hosted CI runners do not expose RAPL: CPU energy stays modelled there"]
    elif denied:
        state = "root-only"
        reason = (f"the RAPL counters are readable by root only ({denied[0]}; since CVE-2020-8694), "
                  "so CPU and RAM are modelled")
        fix = rapl_fix(root)
    else:
        state = "unreadable"
        reason = "; ".join(n for n in notes if "RAPL" in n) or f"RAPL zones under {root} gave no package counter"
        fix = []
    return {"root": root, "state": state, "zones": zones, "readable": readable, "reason": reason, "fix": fix}


# -- the diagnosis -----------------------------------------------------------------------------------
def diagnose(settings: Settings, project: Project) -> Diagnosis:
    """Open the plugin's channels, measure them here (idle power over ``settings.idle_seconds``), and
    say what the plugin would do with them."""
    from ..measure.fingerprint import fingerprint
    from ..measure.meter import Meter
    from ..measure.sources import cpu_tdp, detect

    found = detect(settings.devices, rapl_root=settings.powercap, cpu_tdp=cpu_tdp(settings))
    channels = found.channels
    meter = Meter(channels)
    try:
        idle = meter.start(settings.idle_seconds)
        devices = []
        for channel in channels:
            identity = channel.identity()
            tick, seen, cost, problem = probe(channel)
            limit = identity.get("power_limit_watts")
            devices.append(DeviceReport(
                device=channel.device, kind=channel.kind, method=channel.method, how=_how(channel, identity),
                gates=_gates(channel, channels, settings), tick_seconds=tick, ticks_seen=seen, read_seconds=cost,
                sample_interval_seconds=getattr(channel, "interval_seconds", None) if channel.method == "sampled"
                else None,
                idle_watts=idle.get(channel.device), power_limit_watts=float(limit) if limit is not None else None,
                mig_enabled=False if channel.kind == "gpu" else None, other_processes=channel.other_processes(),
                nvml_index=getattr(channel, "nvml_index", None), identity=identity, problem=problem,
            ))
        machine = fingerprint(channels)
    finally:
        meter.close()
    return Diagnosis(
        devices=devices,
        gpu=_gpu_section(channels, settings, found.notes),
        rapl=_rapl_section(channels, settings.powercap, found.notes),
        settings={
            "inifile": str(project.inifile) if project.inifile else None,
            "values": hidden_secrets({name: settings.values[name] for name in SHOWN_SETTINGS}),
            "sources": {name: settings.sources[name] for name in SHOWN_SETTINGS},
        },
        gating=_gating(devices, settings),
        notes=list(found.notes),
        fingerprint_id=machine["id"],
        baselines=_baselines(settings, project, channels, machine),
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
    """Requirement (gpu, rapl, counter) -> one line saying why this runner cannot meet it; met ones are absent."""
    lines: dict[str, str] = {}
    for requirement in dict.fromkeys(required):
        if requirement == "gpu" and not any(d.kind == "gpu" for d in diagnosis.devices):
            lines[requirement] = f"--require gpu: no GPU is measured: {diagnosis.gpu['reason']}"
        elif requirement == "rapl" and not diagnosis.rapl["readable"]:
            fix = " (`pytest-energy doctor` lists the commands that fix it)" if diagnosis.rapl["state"] == "root-only" \
                else ""
            lines[requirement] = f"--require rapl: no RAPL counter is readable: {diagnosis.rapl['reason']}{fix}"
        elif requirement == "counter" and not any(d.method == "counter" for d in diagnosis.devices):
            methods = ", ".join(sorted({d.method for d in diagnosis.devices})) or "nothing"
            lines[requirement] = (f"--require counter: no hardware energy counter here (only {methods}): "
                                  f"GPU: {diagnosis.gpu['reason']}; RAPL: {diagnosis.rapl['reason']}")
    return lines


def to_json(diagnosis: Diagnosis, required: list[str]) -> dict[str, Any]:
    """The ``--json`` document. Keys: ``schema_version``, ``fingerprint_id``, ``devices`` (one object
    per measured device: device, kind, method, how, gates, tick_seconds, ticks_seen, read_seconds,
    sample_interval_seconds, idle_watts, power_limit_watts, mig_enabled, other_processes, nvml_index,
    identity, problem), ``gpu`` (available, reason, cuda_visible_devices, cuda_device_order, notes),
    ``rapl`` (root, state: readable | root-only | absent | unreadable, zones, readable, reason, fix),
    ``settings`` (inifile, values, sources), ``gating``, ``notes``, ``baselines`` (folder, set, file: where
    a baseline recorded here goes, None where baselines are off; device_kinds), ``requirements`` (each asked
    requirement: met, reason) and ``ok`` (every asked requirement met)."""
    failures = unmet(diagnosis, required)
    return finite({
        "schema_version": SCHEMA_VERSION,
        "fingerprint_id": diagnosis.fingerprint_id,
        "devices": [dataclasses.asdict(d) for d in diagnosis.devices],
        "gpu": diagnosis.gpu,
        "rapl": diagnosis.rapl,
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
        if device.kind == "gpu":
            facts = [f"cuda:{device.device.partition(':')[2]} = NVML index {device.nvml_index} "
                     f"({device.identity.get('uuid', '?')})",
                     f"power limit {device.power_limit_watts:g} W" if device.power_limit_watts else "power limit n/a",
                     "MIG off",
                     ("other processes on it: " + ", ".join(map(str, device.other_processes))
                      + " (their energy is counted too)") if device.other_processes else "no other process on it"]
            console.print(f"{device.device}: " + "; ".join(facts), markup=False, highlight=False)
        if device.problem:
            console.print(f"{device.device}: reading failed while probing: {device.problem}", style="red",
                          markup=False, highlight=False)
    gpu = diagnosis.gpu
    visible = gpu["cuda_visible_devices"]
    console.print(f"GPU: {'measured' if gpu['available'] else 'not measured: ' + str(gpu['reason'])}; "
                  f"CUDA_VISIBLE_DEVICES={visible if visible is not None else '(unset: every GPU)'}",
                  markup=False, highlight=False)
    rapl = diagnosis.rapl
    console.print(f"RAPL ({rapl['root']}): {rapl['state']}"
                  + (f": {', '.join(rapl['readable'])}" if rapl["readable"] else f": {rapl['reason']}"),
                  markup=False, highlight=False)
    for line in rapl["fix"]:
        console.print(f"  {line}", markup=False, highlight=False)
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
