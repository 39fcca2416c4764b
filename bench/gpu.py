"""``python3 -m bench gpu``: the one-command check of the first runner with a GPU, in at most five minutes.

It measures, on GPU 0 through the plugin's own NVML source: the energy counter's tick period and what
one read costs, idle power, the per-round CV of 1 s windows of a steady bf16 load, how often the gate's
own statistics detect +3 % and +1 % more work (measured A/B trials, and many simulated ones drawn from
the measured noise), what measuring costs a 1 s test and ``--energy-top`` a suite of short tests, what
one conditions read (temperature, clock, power limit, throttle reasons) costs, and the bundled suites'
GPU-only case (2:4 pruning). Then it sets the reasoned constants of the meter and the verdict beside
what it measured, each "agrees" or "disagrees (why)". It writes ``bench/results/gpu-<product>.md``
and ``.json``.

Every part reuses the benchmark's sections (rigs, noise, detection, overhead); each part's counts are
scaled from what the parts before it took, so the whole run fits ``--budget`` seconds. Without NVML it
says so in one line and exits 3, as ``pytest-energy doctor --require gpu`` does; ``--simulated`` runs
it against the simulated NVML GPU (bench/simnvml.py) instead, labelled "simulated" everywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pytest_energy.core.record import finite
from pytest_energy.judge.verdict import WINDOW_NOISE
from pytest_energy.measure import meter as meter_module
from pytest_energy.measure.fingerprint import git_commit
from pytest_energy.measure.meter import Meter
from pytest_energy.measure.sources.base import POWER_LIMIT_MARGIN, Channel
from pytest_energy.measure.sources.nvml import COUNTER_TICK_SECONDS

from . import detection, noise, overhead, rigs, simnvml, slug, step

ROOT = Path(__file__).resolve().parents[1]
#: Exit status where there is no GPU to check (as ``pytest-energy doctor --require gpu``).
NO_GPU = 3
BUDGET_SECONDS = 300.0
#: The effects the check detects (0: identical work, the false-alarm rate).
EFFECTS = (0.0, 0.01, 0.03)
ROUNDS = 5
#: Simulated A/B trials per effect drawn from the measured noise (cheap: no device time).
SIMULATED_TRIALS = 2000
#: The bundled suites' GPU-only case (suites/test_pruning.py: the sweep's semi-structured level).
PRUNING_CASE = ("suites/test_pruning.py", "2:4")
SIMULATED = "simulated"


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--simulated", action="store_true",
                        help="check the simulated NVML GPU (bench/simnvml.py) where there is no GPU")
    parser.add_argument("--quick", action="store_true",
                        help="the smallest counts of every part (0.1 s windows; for trying the command)")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                        help=f"seconds the whole check may take (default {BUDGET_SECONDS:g})")
    parser.add_argument("--window", type=float, help="window length of the noise and detection parts "
                                                     "(default 1 s, quick 0.1 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON and markdown")
    arguments = parser.parse_args(argv)
    if not arguments.budget > 0 or (arguments.window is not None and not arguments.window > 0):
        parser.error("--budget and --window take seconds > 0")
    return arguments


class Check:
    """One run: the parts in order, each given what is left of the budget, every result in ``results``."""

    def __init__(self, arguments: argparse.Namespace, rig: rigs.Rig) -> None:
        self.args, self.rig = arguments, rig
        self.quick = arguments.quick
        self.window = arguments.window or (0.1 if self.quick else 1.0)
        self.began = time.perf_counter()
        self.results: dict[str, Any] = {"meta": {"simulated": arguments.simulated, "rig": rig.label,
                                                 "window_seconds": self.window, "budget_seconds": arguments.budget,
                                                 "part_seconds": {}}}

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.began)

    def part(self, name: str, what: str, action: Callable[[], Any]) -> Any:
        """Run one part (bench.step), keep its result and its time."""
        began = time.perf_counter()
        if self.left() <= 0:
            self.results[name] = result = {"skipped": f"the {self.args.budget:g} s budget was spent"}
        else:
            self.results[name] = result = step(what, action)
        self.results["meta"]["part_seconds"][name] = time.perf_counter() - began
        return result

    # -- the parts --------------------------------------------------------------------------------
    def counter(self) -> dict[str, Any]:
        """Read the idle counter back to back: the instants it changed, each read's wall and CPU time."""
        seconds = 1.0 if self.quick else min(8.0, max(2.0, 0.03 * self.left()))
        [channel] = self.rig.open_channels()[:1]
        try:
            return counter_reads(channel, seconds)
        finally:
            channel.close()

    def idle(self) -> dict[str, Any]:
        """The meter's own start: its calibrated tick period and idle power (a quick check's over 1 s too:
        over 0.3 s, a busy host's late reads put the idle power 5 % off)."""
        seconds = 1.0 if self.quick else min(5.0, max(1.0, 0.02 * self.left()))
        meter = Meter(self.rig.open_channels())
        try:
            watts = meter.start(seconds)
            return {"idle_seconds": seconds, "idle_watts": sum(watts.values()),
                    "calibrated_tick_seconds": next(iter(meter.periods.values()), None), "notes": meter.notes}
        finally:
            meter.close()

    def conditions(self) -> dict[str, Any]:
        """Each conditions read's wall and CPU time (the meter takes one per GPU at every window edge)."""
        reads = 10 if self.quick else 50
        [channel] = self.rig.open_channels()[:1]
        try:
            channel.start()
            walls, cpus = [], []
            state: dict[str, object] = {}
            for _ in range(reads):
                wall, cpu = time.perf_counter(), time.thread_time()
                state = channel.conditions()
                cpus.append(time.thread_time() - cpu)
                walls.append(time.perf_counter() - wall)
            return {"reads": reads, "wall_seconds": statistics.median(walls), "cpu_seconds": statistics.median(cpus),
                    "last": state, "power_limit_watts": channel.max_watts()}
        finally:
            channel.close()

    def noise(self) -> dict[str, Any]:
        """Per-round CV of the plugin's windows of a steady load (noise.run, the plugin's method only)."""
        per_measurement = ROUNDS * self.window + 0.5  # warm-up and the gap between measurements
        measurements = 1 if self.quick else max(2, min(8, int(0.15 * self.left() / per_measurement)))
        plan = noise.Plan(windows=[self.window], rounds=ROUNDS, seconds_per_window=measurements * ROUNDS * self.window,
                          max_measurements=measurements, idle_seconds=0.3 if self.quick else 1.0,
                          seed=self.args.seed)
        [series] = noise.run({noise.PLUGIN: self.rig}, plan, (noise.PLUGIN,))
        summary = series.summary()
        if series.absent:
            raise RuntimeError(series.absent)
        summary["watts"] = [s["joules"] / s["seconds"] for s in summary["samples"] if s["seconds"] > 0]
        return summary

    def detection(self) -> dict[str, Any]:
        """The gate's statistics on measured A/B trials of +0, +1, +3 % work, and on simulated ones drawn
        from the noise the previous part measured."""
        measured_noise = self.results.get("noise", {})
        spent = self.results["meta"]["part_seconds"].get("noise", 0.0)
        per_measurement = spent / max(1, len(measured_noise.get("samples", [])) / ROUNDS)
        options = dict(window=self.window, rounds=ROUNDS, warmup=3, idle_seconds=0.3 if self.quick else 1.0)
        if self.rig.key == "sim":  # sleeps: one simulated GPU per effect, measured at once
            trials = 1 if self.quick else max(1, int(0.25 * self.left() / per_measurement / 2))
            per_effect = {effect: rigs.simulated_rig(self.args.seed + 20 + i) for i, effect in enumerate(EFFECTS)}
            measured = detection.measured_parallel(per_effect, trials=trials, **options)
        else:
            trials = 1 if self.quick else max(1, int(0.3 * self.left() / per_measurement / (2 * len(EFFECTS))))
            measured = detection.measured_trials(self.rig, EFFECTS, trials=trials, **options)
        result: dict[str, Any] = {"measured_trials": trials, "measured": [r.as_dict() for r in measured]}
        if measured_noise.get("cv_net_later") is not None:
            # The rounds as measured (a first round off by what the noise part saw), and all like the later ones.
            models = [detection.NoiseModel("rounds as measured", measured_noise["cv_net_later"],
                                           measured_noise["first_offset_net"], measured_noise["first_sd_net"]),
                      detection.NoiseModel("first round like the rest", measured_noise["cv_net_later"])]
            simulated = [rule.as_dict() for model in models for rule in detection.simulate_verdict(
                self.rig.key, self.window, model, ROUNDS, SIMULATED_TRIALS, self.args.seed, effects=EFFECTS)]
            result.update(simulated_trials=SIMULATED_TRIALS, simulated=simulated)
        return result

    def overhead(self) -> dict[str, Any]:
        """What measuring costs a 1 s test (overhead.measured_test_overhead), one run a side."""
        return overhead.measured_test_overhead(self.rig, 1, 1)

    def top(self) -> dict[str, Any]:
        """``--energy-top`` on short tests, as many as the budget's share allows after the 1 s tests' runs."""
        ran = self.results.get("overhead", {})
        startup = max(1.0, ran.get("wall_plain_seconds", 5.0) - 2.0)  # two 1 s tests in the plain run
        per_test = overhead.TOP_TEST_SECONDS + 0.01
        share = 0.35 * self.left()
        tests = 10 if self.quick else max(20, min(overhead.TOP_TESTS, int((share - 2 * startup) / (2 * per_test))))
        return overhead.top_overhead(self.rig, 1, tests)

    def pruning(self) -> dict[str, Any]:
        """The 2:4 pruning case of the bundled suites, in a pytest subprocess, only where CUDA is."""
        reason = cuda_absent()
        if reason:
            return {"skipped": f"no CUDA ({reason})"}
        path, case = PRUNING_CASE
        limit = max(10.0, self.left() - 5.0)
        shown = ["pytest", "--energy", path, "-k", case]
        began = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as name:  # the run's outputs, not the project's
            outputs = Path(name)
            command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *overhead._plugin_flags(),
                       *shown[1:], "--energy-json", str(outputs / "records.json"),
                       "--energy-report", str(outputs / "report.html"), "--energy-history",
                       str(outputs / "history.sqlite"), "--energy-baselines", str(outputs / "baselines")]
            try:
                done = subprocess.run(command, cwd=ROOT, env=overhead._environment(), capture_output=True, text=True,
                                      timeout=limit)
            except subprocess.TimeoutExpired:
                return {"skipped": f"`{' '.join(shown)}` did not finish in the {limit:.0f} s left of the budget"}
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return {"command": " ".join(shown), "exit_status": done.returncode, "seconds": time.perf_counter() - began,
                "summary": " | ".join(tail)}

    # -- the whole check --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.part("counter", "counter ticks and read cost", self.counter)
        self.part("idle", "idle power", self.idle)
        self.part("conditions", "conditions reads", self.conditions)
        self.part("noise", f"per-round CV of {self.window:g} s windows", self.noise)
        self.part("detection", "detection of +1 % and +3 %", self.detection)
        self.part("overhead", "overhead of a 1 s test", self.overhead)
        self.part("top", "--energy-top overhead", self.top)
        self.part("pruning", "the suites' 2:4 pruning case", self.pruning)
        self.results["constants"] = constants(self.results)
        self.results["meta"].update(identity(self.rig, self.args.simulated))
        self.results["meta"]["seconds"] = time.perf_counter() - self.began
        return self.results


def counter_reads(channel: Channel, seconds: float) -> dict[str, Any]:
    """Read ``channel`` back to back for ``seconds``: each read's wall and CPU time, the counter's
    changes (a change's instant is the middle of the two reads around it), the intervals between
    changes, and idle power over each interval."""
    channel.start()
    walls, cpus, changes = [], [], []
    last, last_mid = None, 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        wall, cpu = time.perf_counter(), time.thread_time()
        value = channel.read()
        cpus.append(time.thread_time() - cpu)
        after = time.perf_counter()
        walls.append(after - wall)
        mid = (wall + after) / 2
        if last is not None and value != last:
            changes.append(((last_mid + mid) / 2, value))
        last, last_mid = value, mid
    intervals = [b[0] - a[0] for a, b in zip(changes, changes[1:])]
    watts = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(changes, changes[1:]) if b[0] > a[0]]
    return {"seconds": seconds, "reads": len(walls), "read_wall_seconds": statistics.median(walls),
            "read_cpu_seconds": statistics.median(cpus), "changes": len(changes),
            "tick_seconds": statistics.median(intervals) if intervals else None,
            "longest_interval_seconds": max(intervals, default=None), "interval_watts": watts}


def cuda_absent() -> str:
    """"" where torch sees a CUDA GPU, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return "" if torch.cuda.is_available() else "torch sees no CUDA GPU"


def _row(name: str, where: str, assumed: str, measured: str, agrees: bool | None, why: str) -> dict[str, Any]:
    verdict = "not measured" if agrees is None else "agrees" if agrees else f"disagrees ({why})"
    return {"constant": name, "where": where, "assumed": assumed, "measured": measured, "verdict": verdict}


def _number(results: dict[str, Any], part: str, key: str) -> float | None:
    value = results.get(part, {}).get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def constants(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each reasoned constant beside what this run measured, "agrees" or "disagrees (why)"."""
    rows = []
    tick = _number(results, "counter", "tick_seconds") or _number(results, "idle", "calibrated_tick_seconds")
    rows.append(_row("COUNTER_TICK_SECONDS", "measure/sources/nvml.py", f"{COUNTER_TICK_SECONDS:g} s",
                     f"{tick:.4g} s" if tick else "n/a",
                     None if tick is None else abs(tick / COUNTER_TICK_SECONDS - 1) <= 0.1,
                     "the meter calibrates the period at start, but its nominal tick bounds the first waits"))
    longest = _number(results, "counter", "longest_interval_seconds")
    timeout = meter_module.TICK_TIMEOUT_PERIODS
    rows.append(_row("TICK_TIMEOUT_PERIODS (frozen-counter ticks)", "measure/meter.py", f"{timeout:g} periods",
                     f"longest gap between changes {longest / tick:.2f} periods" if longest and tick else "n/a",
                     None if not (longest and tick) else longest / tick < timeout,
                     "a live counter went that long unchanged: the poller would call it frozen"))
    cv = _number(results, "noise", "cv_net")
    rows.append(_row("WINDOW_NOISE", "judge/verdict.py", f"{WINDOW_NOISE * 100:g} % a window",
                     f"{cv * 100:.2f} % (net CV of {results['meta']['window_seconds']:g} s windows)" if cv is not None
                     else "n/a", None if cv is None else cv <= WINDOW_NOISE,
                     "single-window verdicts here understate the noise; raise it"))
    watts = results.get("counter", {}).get("interval_watts") or []
    idle = _number(results, "idle", "idle_watts")
    floor = meter_module.IDLE_FLOOR_FRACTION
    lowest = min(watts) / idle if watts and idle else None
    rows.append(_row("IDLE_FLOOR_FRACTION", "measure/meter.py", f"a window below {floor * 100:g} % of idle is stalled",
                     f"lowest idle interval {lowest * 100:.0f} % of idle ({idle:.4g} W)" if lowest is not None
                     else "n/a",
                     None if lowest is None else lowest > floor,
                     "a live idle window read below the floor: it would be called a stalled counter"))
    factor, slack = meter_module.COOLDOWN_IDLE_FACTOR, meter_module.COOLDOWN_IDLE_SLACK_WATTS
    high = statistics.quantiles(watts, n=20)[-1] if len(watts) >= 2 and idle else None
    rows.append(_row("COOLDOWN_IDLE_FACTOR, _SLACK_WATTS", "measure/meter.py",
                     f"idle <= {factor:g} x idle + {slack:g} W",
                     f"95th percentile of idle intervals {high:.4g} W" if high is not None else "n/a",
                     None if high is None else high <= factor * idle + slack,
                     "an idle GPU reads above the cooldown's idle bound: cooldowns would wait for nothing"))
    limit = _number(results, "conditions", "power_limit_watts")
    loaded = results.get("noise", {}).get("watts") or []
    peak = max(loaded) / limit if loaded and limit else None
    rows.append(_row("POWER_LIMIT_MARGIN", "measure/sources/base.py", f"{POWER_LIMIT_MARGIN:g} x the power limit",
                     f"loaded windows up to {peak:.2f} x its {limit:.4g} W limit" if peak is not None else "n/a",
                     None if peak is None else peak < POWER_LIMIT_MARGIN,
                     "a loaded window read above the bound: it would be called a counter jump"))
    read = _number(results, "counter", "read_wall_seconds")
    rows.append(_row("READ_SECONDS (the simulated GPU's read)", "bench/simnvml.py",
                     f"{simnvml.READ_SECONDS * 1000:g} ms", f"{read * 1000:.2f} ms" if read is not None else "n/a",
                     None if read is None else abs(read / simnvml.READ_SECONDS - 1) <= 0.5,
                     "this GPU's reads cost otherwise than the H100's the simulation copies"))
    rows.append(_row("IDLE_WATTS (the simulated GPU's idle)", "bench/simnvml.py", f"{simnvml.IDLE_WATTS:g} W",
                     f"{idle:.4g} W" if idle is not None else "n/a",
                     None if idle is None else abs(idle / simnvml.IDLE_WATTS - 1) <= 0.5,
                     "this GPU idles otherwise than the H100 the simulation copies"))
    return rows


def identity(rig: rigs.Rig, simulated: bool) -> dict[str, Any]:
    product = SIMULATED if simulated else str(rig.facts.get("name", "gpu"))
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "product": product,
            "product_slug": slug(product), "git_commit": git_commit(ROOT), "device": rig.label}


# -- the report -------------------------------------------------------------------------------------
def _ms(value: Any) -> str:
    return f"{value * 1000:.3g} ms" if isinstance(value, (int, float)) else "n/a"


def _pct(value: Any) -> str:
    return f"{value * 100:.2f} %" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _absent(part: Any) -> str | None:
    if not isinstance(part, dict):
        return "not run"
    return part.get("absent") or part.get("skipped")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _section(title: str, part: Any, body: Callable[[dict[str, Any]], list[str]]) -> list[str]:
    absent = _absent(part)
    return [f"## {title}", "", *([f"skipped: {absent}"] if absent else body(part)), ""]


def _detection_rows(rules: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for rule in rules:
        effects = rule["effects"]
        rows.append([rule["rule"], rule["noise_from"], f"{rule['threshold'] * 100:g} %", *(
            _pct(effects.get(f"{e:g}", {}).get("regression_rate")) for e in EFFECTS)])
    return rows


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    label = " NVML GPU (bench/simnvml.py), no GPU" if meta["simulated"] else ""
    window = f"{meta['window_seconds']:g} s"
    lines = [f"# GPU check: {meta['product']}{label}", "",
             f"- Device: {meta['device']}", f"- Date: {meta['date']}; commit {meta['git_commit'] or 'unknown'}",
             f"- Took {meta['seconds']:.0f} s of a {meta['budget_seconds']:g} s budget: " + ", ".join(
                 f"{name} {seconds:.1f} s" for name, seconds in meta["part_seconds"].items())]
    if meta["simulated"]:
        lines.append("- **simulated**: every figure below comes from the simulated NVML GPU (bench/simnvml.py), "
                     "not from a GPU")
    lines.append("")
    lines += _section("Counter: tick and read cost", results.get("counter"), lambda p: [
        f"- Tick period (changes of the idle counter): {_ms(p['tick_seconds'])}; the meter's calibration: "
        f"{_ms(results.get('idle', {}).get('calibrated_tick_seconds'))}",
        f"- One read: {_ms(p['read_wall_seconds'])} wall, {_ms(p['read_cpu_seconds'])} CPU "
        f"({p['reads']} reads, {p['changes']} changes in {p['seconds']:g} s)"])
    lines += _section("Idle power", results.get("idle"), lambda p: [
        f"- {p['idle_watts']:.4g} W over {p['idle_seconds']:g} s (the meter's idle window)",
        *(f"- Note: {note}" for note in p["notes"])])
    lines += _section("Conditions reads", results.get("conditions"), lambda p: [
        f"- One read (temperature, SM clock, power limit, throttle reasons): {_ms(p['wall_seconds'])} wall, "
        f"{_ms(p['cpu_seconds'])} CPU (median of {p['reads']}); the meter takes one per GPU at each window edge, "
        "off the measured thread", f"- Last read: `{json.dumps(p['last'], sort_keys=True)}`"])
    lines += _section(f"Per-round CV at {window} windows", results.get("noise"), lambda p: [
        f"- {p['windows']} windows of a steady load ({ROUNDS} rounds a measurement, after 3 warm-up iterations)",
        f"- CV gross {_pct(p['cv'])}, net {_pct(p['cv_net'])}, net after the first window "
        f"{_pct(p['cv_net_later'])}; first window's offset {_pct(p['first_offset_net'])}"])

    def detection_body(p: dict[str, Any]) -> list[str]:
        header = ["rule", "noise", "threshold",
                  *(f"+{e * 100:g} %" if e else "identical (false alarms)" for e in EFFECTS)]
        body = [f"Regression rates with the gate's own statistics (pytest_energy.judge.simulation), {ROUNDS} rounds of "
                f"{window} a side.", "", f"Measured A/B trials ({p['measured_trials']} per effect):", ""]
        body += _table(header, _detection_rows(p["measured"]))
        if p.get("simulated"):
            body += ["", f"Simulated from the measured noise ({p['simulated_trials']} trials per effect):", ""]
            body += _table(header, _detection_rows(p["simulated"]))
        return body

    lines += _section("Detection of +3 % and +1 %", results.get("detection"), detection_body)
    lines += _section("Per-test overhead", results.get("overhead"), lambda p: _table(
        ["test", "plain", "measured", "overhead"],
        [[name, f"{t['plain_seconds']:.3f} s", f"{t['measured_seconds']:.3f} s",
          f"{t['overhead_seconds'] * 1000:+.0f} ms ({_pct(t['overhead_fraction'])})"]
         for name, t in p["tests"].items()])
        + ["", f"Session start {p['session_start_seconds']:+.2f} s, end {p['session_end_seconds']:+.2f} s"])
    lines += _section("`--energy-top` overhead", results.get("top"), lambda p: [
        f"- {p['tests']} tests of {p['test_seconds'] * 1000:g} ms: "
        f"{p['per_test_overhead_seconds'] * 1000:+.2f} ms a test "
        f"({_pct(p['overhead_fraction'])}); session stages {p['session_stages_seconds']:+.2f} s; "
        f"{p['listed']} listed"])
    lines += _section("The suites' GPU-only case (2:4 pruning)", results.get("pruning"), lambda p: [
        f"- `{p['command']}`: exit {p['exit_status']} in {p['seconds']:.0f} s: {p['summary']}"])
    lines += ["## Constants", "", "The meter's and the verdict's reasoned constants beside what this run measured"
              + (" (simulated: a check of the command, not of the constants)" if meta["simulated"] else "") + ".", ""]
    lines += _table(["constant", "where", "assumed", "measured", "verdict"],
                    [[r["constant"], r["where"], r["assumed"], r["measured"], r["verdict"]]
                     for r in results["constants"]])
    return "\n".join(lines).rstrip() + "\n"


def write(results: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``gpu-<product>.json`` and ``.md`` into ``folder``; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"gpu-{results['meta']['product_slug']}"
    data, table = folder / f"{stem}.json", folder / f"{stem}.md"
    data.write_text(json.dumps(finite(results), indent=1, allow_nan=False, default=str) + "\n")
    table.write_text(markdown(results))
    return data, table


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    if arguments.simulated:
        rig = rigs.simulated_rig(arguments.seed)
    else:
        reason = rigs.gpu_available()
        if reason:
            print(f"bench gpu: no NVIDIA GPU to check here ({reason}); run it on a GPU runner, or add --simulated "
                  "to try the command on the simulated GPU", file=sys.stderr)
            return NO_GPU
        try:
            rig = rigs.gpu_rig()
        except Exception as error:  # NVML or CUDA failing past the probe: one line, as without a GPU
            print(f"bench gpu: GPU 0 could not be set up ({type(error).__name__}: {error})", file=sys.stderr)
            return NO_GPU
    results = Check(arguments, rig).run()
    data, table = write(results, arguments.out)
    print(table.read_text())
    print(f"bench gpu: wrote {data} and {table}", file=sys.stderr)
    return 0
