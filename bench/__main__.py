"""``python3 -m bench``: run the measurement benchmark, write bench/results/<date>-<device>.json and .md.

On a machine with an NVIDIA GPU (NVML and torch with CUDA) it measures that GPU under bf16 matrix
products. Elsewhere it measures a simulated NVML GPU (labelled "simulated" everywhere) and this
machine's CPU through the plugin's own sources (RAPL where readable, else modelled).
``--quick`` takes about a minute on a 2-core CPU machine, a full run about five.
``python3 -m bench suites`` times the bundled suites instead (bench/suites.py); ``python3 -m bench
ordinary`` what ``--energy`` costs a suite that measures nothing (bench/ordinary.py); ``python3 -m bench
gpu`` checks a GPU runner in at most five minutes (bench/gpu.py).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pytest_energy.measure.fingerprint import git_commit
from pytest_energy.measure.sources.modelled import cpu_model

from . import changepoint, codecarbon_window, detection, nightly, noise, overhead, recommend, render, rigs, simnvml
from . import slug, step, tables, validity

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("noise", "detection", "overhead", "validity", "render", "changepoint", "nightly")
SOURCES = ("nvml", "sim", "cpu")
#: The two noise models of the simulated verdicts (see bench/detection.py).
AS_MEASURED = "rounds as measured"
FIRST_LIKE_REST = "first round like the rest"


def _floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds separated by commas, e.g. 0.2,1") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive seconds separated by commas, e.g. 0.2,1")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds > 0")
    return value


def _choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [part.strip() for part in text.split(",") if part.strip()]
        wrong = [item for item in items if item not in allowed]
        if wrong or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a comma list of {', '.join(allowed)}")
        return items
    return parse


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer windows, trials and repetitions (~1 minute)")
    parser.add_argument("--sources", type=_choices(("auto",) + SOURCES), default=["auto"],
                        help="what to measure: auto (the GPU if there is one, else sim,cpu) or a comma list of "
                             "nvml, sim, cpu")
    parser.add_argument("--sections", type=_choices(SECTIONS), default=list(SECTIONS),
                        help=f"sections to run (default all: {','.join(SECTIONS)})")
    parser.add_argument("--windows", type=_floats, help="window lengths in seconds (default 0.1,0.2,0.5,1,2,5; "
                                                        "quick 0.2,1)")
    parser.add_argument("--cpu-windows", type=_floats,
                        help="window lengths for the CPU (default: the windows up to 2 s; quick 1)")
    parser.add_argument("--rounds", type=_positive_int, default=5,
                        help="windows per measurement (default 5, the plugin's)")
    parser.add_argument("--seconds-per-window", type=_positive_float,
                        help="measured seconds to aim for per method and window (default 8, CPU 4, quick 1)")
    parser.add_argument("--trials", type=_positive_int,
                        help="simulated detection trials per cell (default 2000, quick 400)")
    parser.add_argument("--measured-trials", type=_positive_int,
                        help="measured A/B trials per effect (default 6 simulated, 4 on a GPU or CPU; quick 3)")
    parser.add_argument("--measured-window", type=_positive_float,
                        help="window of the measured trials (default 0.5 s, quick 0.2)")
    parser.add_argument("--overhead-repetitions", type=_positive_int, help="pytest runs per side (default 2, quick 1)")
    parser.add_argument("--top-tests", type=_positive_int,
                        help="short tests in the --energy-top overhead suite (default 1000, quick 300)")
    parser.add_argument("--render-records", type=_positive_int, default=10_000, help="records in the rendered report")
    parser.add_argument("--changepoint-trials", type=_positive_int,
                        help="synthetic series per noise model, length and step (default 100, quick 40)")
    parser.add_argument("--nightly-runs", type=_positive_int,
                        help="runs of 100 records in the nightly report's history (default 1000, quick 100)")
    parser.add_argument("--country", default="USA", help="ISO code for CodeCarbon's offline tracker (default USA)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON and markdown")
    return parser.parse_args(argv)


class Bench:
    """One run: builds the rigs once, runs the sections, keeps every result in ``self.results``."""

    def __init__(self, arguments: argparse.Namespace, argv: list[str]) -> None:
        self.args = arguments
        quick = arguments.quick
        self.windows = arguments.windows or ([0.2, 1.0] if quick else [0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
        self.cpu_windows = arguments.cpu_windows or ([1.0] if quick and not arguments.windows else
                                                     [w for w in self.windows if w <= 2.0] or self.windows[:1])
        self.trials = arguments.trials or (400 if quick else 2000)
        self.measured_trials = arguments.measured_trials  # None: 3 quick; full 6 (simulated, in parallel), else 4
        self.measured_window = arguments.measured_window or (0.2 if quick else 0.5)
        self.repetitions = arguments.overhead_repetitions or (1 if quick else 2)
        self.idle_seconds = 0.3 if quick else 1.0
        self.notes: list[str] = []
        self.sources = self._sources(arguments.sources)
        self._rigs: dict[str, rigs.Rig] = {}
        self.results: dict[str, Any] = {
            "meta": {"mode": "quick" if quick else "full", "command": " ".join(["python3 -m bench", *argv]).strip(),
                     "rigs": {}, "notes": self.notes},
            "noise": [], "detection": {}, "overhead": {"tests": [], "top": [], "edges": []}, "validity": [], "render": {},
            "changepoint": {}, "nightly": {},
        }

    # -- set-up ---------------------------------------------------------------------------------
    def _sources(self, asked: list[str]) -> list[str]:
        if asked != ["auto"]:
            if "nvml" in asked:
                reason = rigs.gpu_available()
                if reason:
                    raise SystemExit(f"bench: --sources nvml: no GPU to measure ({reason}); use --sources sim,cpu")
            return [s for s in SOURCES if s in asked]
        reason = rigs.gpu_available()
        if not reason:
            return ["nvml"]
        self.notes.append(f"no GPU here ({reason}): GPU figures come from the simulated NVML counter")
        return ["sim", "cpu"]

    def rig(self, key: str) -> rigs.Rig:
        if key not in self._rigs:
            makers = {"nvml": rigs.gpu_rig, "cpu": rigs.cpu_rig, "sim": lambda: rigs.simulated_rig(self.args.seed)}
            built = makers[key]()
            self._rigs[key] = built
            self.results["meta"]["rigs"][key] = {"label": built.label, "device": built.device, **built.facts}
        return self._rigs[key]

    def plan(self, key: str) -> noise.Plan:
        quick, cpu = self.args.quick, key == "cpu"
        return noise.Plan(
            windows=self.cpu_windows if cpu else self.windows, rounds=self.args.rounds,
            seconds_per_window=self.args.seconds_per_window or (1.0 if quick else 4.0 if cpu else 8.0),
            max_measurements=1 if quick else 2 if cpu else 4,
            idle_seconds=self.idle_seconds, country=self.args.country, seed=self.args.seed,
        )

    step = staticmethod(step)  # bench.step: one part, timed; a failure is one line

    # -- sections -------------------------------------------------------------------------------
    def noise(self) -> None:
        for key in self.sources:
            series = self.step(f"noise on {key}", lambda: self._noise(key))
            if isinstance(series, dict):
                series = [noise.Series(key, method, w, absent=series["absent"]).summary()
                          for w in self.plan(key).windows for method in noise.METHODS]
            self.results["noise"] += series

    def _noise(self, key: str) -> list[dict[str, Any]]:
        plan = self.plan(key)
        rig = self.rig(key)
        carbon = [m for m in noise.METHODS if noise.codecarbon_interval(m) is not None]
        usable = not codecarbon_window.unavailable()
        if key != "sim":
            per_method = {m: rig for m in noise.METHODS}
            if usable and rig.codecarbon_joules is not None:
                self._warm_codecarbon(per_method, carbon, plan)
            return [s.summary() for s in noise.run(per_method, plan)]
        # One simulated GPU per method, all measured at once (their loads and reads are sleeps).
        shared = simnvml.SimulatedNvml(gpus=2, seed=self.args.seed + 7)  # the one CodeCarbon is pointed at
        per_method = {noise.PLUGIN: rig, noise.NAIVE: rigs.simulated_rig(self.args.seed + 1),
                      "codecarbon-15": rigs.simulated_rig(module=shared, index=0),
                      "codecarbon-1": rigs.simulated_rig(module=shared, index=1)}
        if not usable:
            return [s.summary() for s in noise.run(per_method, plan, parallel=True)]
        try:
            with simnvml.codecarbon_sees(shared):
                self._warm_codecarbon(per_method, carbon, plan)
                return [s.summary() for s in noise.run(per_method, plan, parallel=True)]
        except RuntimeError as error:
            measured = noise.run(per_method, plan, tuple(m for m in noise.METHODS if m not in carbon), parallel=True)
            absent = [noise.Series("sim", m, w, absent=str(error)) for w in plan.windows for m in carbon]
            return [s.summary() for s in measured + absent]

    @staticmethod
    def _warm_codecarbon(per_method: dict[str, rigs.Rig], carbon: list[str], plan: noise.Plan) -> None:
        """CodeCarbon's first tracker detects the hardware (seconds of CPU): do that before any window."""
        for method in carbon:
            codecarbon_window.measure(per_method[method], 15.0, plan.country, lambda: 1)

    def detection(self) -> None:
        simulated: list[dict[str, Any]] = []
        for row in self.results["noise"]:
            if row["method"] != noise.PLUGIN or row["absent"] or row["cv_net"] is None:
                continue
            rig, window = row["rig"], row["window_seconds"]
            if row["cv_net_later"] is None:
                continue
            models = [detection.NoiseModel(AS_MEASURED, row["cv_net_later"], row["first_offset_net"],
                                           row["first_sd_net"]),
                      detection.NoiseModel(FIRST_LIKE_REST, row["cv_net_later"])]
            for model in models:
                for rounds in (5, 10):
                    simulated += [r.as_dict() for r in detection.simulate_verdict(
                        rig, window, model, rounds, self.trials, self.args.seed)]
            for method, source, key in ((noise.NAIVE, "naive reads", "cv"), ("codecarbon-15", "CodeCarbon, 15 s", "cv"),
                                        (noise.PLUGIN, "pytest-energy, a window after the first", "cv_later_windows")):
                cell = next((r for r in self.results["noise"] if r["rig"] == rig and r["method"] == method
                             and r["window_seconds"] == window and not r["absent"] and r[key] is not None), None)
                if cell:
                    simulated.append(detection.simulate_bare(
                        rig, window, cell[key], f"{source}, one {window:g} s window", self.trials, self.args.seed
                    ).as_dict())
        self.results["detection"] = {"trials": self.trials, "simulated": simulated}
        primary = "nvml" if "nvml" in self.sources else "sim" if "sim" in self.sources else "cpu"
        measured = self.step(f"measured detection trials on {primary}", lambda: self._measured(primary))
        if isinstance(measured, dict):
            self.results["detection"]["absent"] = measured["absent"]
        else:
            self.results["detection"]["measured"] = measured
        advice_rig = "nvml" if "nvml" in self.sources else "sim" if "sim" in self.sources else None
        if advice_rig:
            self.results["recommendation"] = {model: recommend.defaults(simulated, advice_rig, model)
                                              for model in (AS_MEASURED, FIRST_LIKE_REST)}

    def _measured(self, key: str) -> list[dict[str, Any]]:
        trials = self.measured_trials or (3 if self.args.quick else 6 if key == "sim" else 4)
        options = dict(window=self.measured_window, rounds=self.args.rounds, trials=trials,
                       warmup=3, idle_seconds=self.idle_seconds)
        if key == "sim":
            per_effect = {effect: rigs.simulated_rig(self.args.seed + 20 + i)
                          for i, effect in enumerate(detection.EFFECTS)}
            return [r.as_dict() for r in detection.measured_parallel(per_effect, **options)]
        return [r.as_dict() for r in detection.measured_trials(self.rig(key), detection.EFFECTS, **options)]

    def overhead(self) -> None:
        tested = [k for k in ("nvml", "cpu") if k in self.sources][:1]
        if "sim" in self.sources and (not self.args.quick or not tested):
            tested.append("sim")
        for key in tested:
            # The simulated load is a sleep: one run per side is as steady as many.
            repetitions = 1 if key == "sim" else self.repetitions
            run = self.step(f"overhead of a 1 s test on {key}", lambda: overhead.measured_test_overhead(
                self.rig(key), repetitions, 1 if self.args.quick else overhead.COPIES))
            self.results["overhead"]["tests"].append({"rig": key, **run})
        top_tests = self.args.top_tests or (300 if self.args.quick else overhead.TOP_TESTS)
        for key in [k for k in ("nvml", "sim") if k in self.sources]:  # the ticking counters
            run = self.step(f"--energy-top on {top_tests} short tests on {key}", lambda: overhead.top_overhead(
                self.rig(key), 1 if key == "sim" else self.repetitions, top_tests))
            self.results["overhead"]["top"].append({"rig": key, **run})
        for key in self.sources:
            edges = self.step(f"edge cost on {key}", lambda: overhead.edge_cost(
                self.rig(key), 6 if self.args.quick else 16, 0.15 if self.args.quick else 0.25))
            self.results["overhead"]["edges"].append({"rig": key, **edges})
        self.results["overhead"]["load"] = self.step("plugin load time", lambda: overhead.load_time(
            2 if self.args.quick else 4))

    def validity(self) -> None:
        specs = validity.QUICK if self.args.quick else validity.FULL
        for key in self.sources:
            if self.args.quick and key == "cpu" and len(self.sources) > 1:
                continue  # quick: the counter rigs only
            run = self.step(f"validity on {key}", lambda: validity.run(
                self.rig(key), specs, idle_seconds=self.idle_seconds, seed=self.args.seed))
            self.results["validity"].append({"rig": key, **run})

    def render(self) -> None:
        self.results["render"] = self.step("report render", lambda: render.run(self.args.render_records))

    def changepoint(self) -> None:
        trials = self.args.changepoint_trials or (40 if self.args.quick else 100)
        cells = self.step("change-point methods", lambda: changepoint.run(trials, self.args.seed))
        self.results["changepoint"] = cells if isinstance(cells, dict) else {"trials": trials, "cells": cells}

    def nightly(self) -> None:
        runs = self.args.nightly_runs or (100 if self.args.quick else 1000)
        self.results["nightly"] = self.step(f"nightly report over {runs} runs", lambda: nightly.run(runs))

    # -- the whole run --------------------------------------------------------------------------
    def run(self) -> tuple[Path, Path]:
        began = time.perf_counter()
        with codecarbon_window.NetworkGuard() as guard:
            for key in self.sources:
                self.step(f"set up {key}", lambda: self.rig(key))
            for section in SECTIONS:
                if section in self.args.sections:
                    getattr(self, section)()
        meta = self.results["meta"]
        meta.update(self._identity())
        meta.update({"seconds": time.perf_counter() - began, "network_attempts": guard.attempts})
        return tables.write(self.results, self.args.out)

    def _identity(self) -> dict[str, Any]:
        date = datetime.now(timezone.utc).isoformat(timespec="seconds")
        cpu = f"{cpu_model()}, {os.cpu_count()} logical CPUs"
        gpu = self.results["meta"]["rigs"].get("nvml")
        if gpu:
            device = f"{gpu.get('name', 'NVIDIA GPU')} (driver {gpu.get('driver_version', '?')}); host {cpu}"
            name = gpu.get("name", "gpu")
        else:
            device = f"{cpu}, no GPU"
            name = f"cpu-{cpu_model()}-{os.cpu_count()}c"
        versions = {}
        for package in ("pytest-energy", "pytest", "codecarbon", "nvidia-ml-py", "torch"):  # not `name`: it names the file
            try:
                versions[package] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                versions[package] = None
        versions["python"] = platform.python_version()
        return {"date": date, "device": device, "device_slug": slug(name),
                "git_commit": git_commit(ROOT), "platform": platform.platform(), "versions": versions}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["suites"]:  # the suites' run time (bench/suites.py); the rest goes to pytest
        from . import suites

        return suites.main(argv[1:])
    if argv[:1] == ["ordinary"]:  # what --energy costs a suite that measures nothing (bench/ordinary.py)
        from . import ordinary

        return ordinary.main(argv[1:])
    if argv[:1] == ["gpu"]:  # the one-command check of a GPU runner (bench/gpu.py)
        from . import gpu

        return gpu.main(argv[1:])
    if argv[:1] == ["quality"]:  # the spread of quality between training runs (bench/quality.py)
        from . import quality

        return quality.main(argv[1:])
    bench = Bench(parse_arguments(argv), argv)
    data, table = bench.run()
    print(table.read_text())
    print(f"bench: wrote {data} and {table}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
