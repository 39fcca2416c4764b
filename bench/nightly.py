"""Build time of the fleet's nightly report over a big history (issue 15.6: 1,000 runs x 100 records,
target under 5 s).

``python3 -m bench.nightly [--runs 1000] [--records 100] [--history PATH|URL]`` fills a history (an SQLite
file, or a ``postgresql://`` database; through ``History.append``, as the plugin writes it; kept at
``--history`` for a rerun) with nightly
runs of four runners on two device kinds, each run measuring 100 of a 120-test suite, a tenth of the
tests stepping up 15 % at one commit; then times reading the window and finding the change points
(``build_fleet``), the HTML, and the terminal lines. ``python3 -m bench`` runs it as its "nightly"
section with 200 runs (its figures scale about linearly with runs x records).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from pytest_energy.core.config import is_database_url
from pytest_energy.store.history import History, HistoryError
from pytest_energy.core.record import Carbon, Component, Record, Round, RunInfo
from pytest_energy.judge.verdict import Judgement, Verdict

CARBON = Carbon(intensity_g_per_kwh=56.0, source="bench", pue=1.2, country_iso_code="FRA")
GPUS = {"h100-a": "NVIDIA H100 80GB HBM3", "h100-b": "NVIDIA H100 80GB HBM3",
        "a100-a": "NVIDIA A100-SXM4-80GB", "a100-b": "NVIDIA A100-SXM4-80GB"}
SUITE = 120


def _fingerprint(runner: str) -> dict[str, Any]:
    return {"id": runner, "gpus": [{"device": "gpu:0", "name": GPUS[runner]}], "cpu_model": f"host of {runner}",
            "logical_cpus": 32, "methods": ["gpu:counter"]}


def _record(name: str, joules: float, fingerprint: dict[str, Any], started: str, commit: str) -> Record:
    rounds = [Round(20, 1.0, joules * 20 + 77, joules * 20, True, {"gpu:0": joules * 20}) for _ in range(5)]
    components = [Component("gpu:0", "gpu", "counter", sum(r.gross_joules for r in rounds),
                            sum(r.net_joules for r in rounds), 77.0, 5.0, 50, 0.07)]
    return Record.from_rounds(rounds, components, carbon=CARBON, name=name, nodeid=name, form="call",
                              warmup_iterations=3, fingerprint=fingerprint, timestamp=started, git_commit=commit,
                              outcome="passed")


def records_per_run(text: str) -> int:
    """``--records``: 1 to the suite's 120 tests (argparse says so in one line otherwise)."""
    value = int(text)
    if not 1 <= value <= SUITE:
        raise argparse.ArgumentTypeError(f"{value} records per run: the synthetic suite has 1 to {SUITE} tests")
    return value


def nightly_runs(runs: int, records: int, seed: int = 0) -> Iterator[tuple[RunInfo, list[Record], Judgement]]:
    """``runs`` nightly runs in order, as ``History.append`` takes them: four runners on two device kinds, each
    run measuring ``records`` of a 120-test suite with an energy verdict per record, a tenth of the tests
    stepping up 15 % half way (the one synthetic history of the benches)."""
    rng = random.Random(seed)
    runners = list(GPUS)
    stepping = set(rng.sample(range(SUITE), SUITE // 10))
    step_at = runs // 2
    for index in range(runs):
        runner = runners[index % len(runners)]
        fingerprint = _fingerprint(runner)
        started = _time(index)
        commit = f"{index // len(runners):040x}"
        tests = sorted(rng.sample(range(SUITE), records))
        measured, verdicts = [], []
        for test in tests:
            name = f"suites/test_{test // 10}.py::test_{test}"
            level = (4.0 if "a100" in runner else 2.5) * (1 + test / SUITE)
            if test in stepping and index >= step_at:
                level *= 1.15
            noise = rng.gauss(0, 0.01) + (rng.uniform(0.2, 0.4) if rng.random() < 0.03 else 0.0)
            measured.append(_record(name, level * (1 + noise), fingerprint, started, commit))
            verdicts.append(Verdict(name, "energy", "unchanged", 1.0, 0.98, 1.02, 0.05, "default", "unchanged", True))
        info = RunInfo(run_id=f"run-{index:05d}", started=started, finished=started, fingerprint=fingerprint,
                       git_commit=commit, branch="main", settings={}, carbon=CARBON, idle_watts={"gpu:0": 77.0},
                       reference_joules={})
        yield info, measured, Judgement(verdicts=verdicts, baseline_set="default", fingerprint_id=runner)


def fill(path: Path | str, runs: int, records: int, seed: int = 0) -> None:
    """``runs`` nightly runs of ``records`` records each (:func:`nightly_runs`), appended to the history at
    ``path``."""
    history = History(path)
    for run_ in nightly_runs(runs, records, seed):
        history.append(*run_)


def _time(index: int) -> str:
    """Four runs a night (one per runner), nights from 2024-01-01 on."""
    night, slot = divmod(index, len(GPUS))
    moment = datetime(2024, 1, 1, 2, tzinfo=timezone.utc) + timedelta(days=night, minutes=10 * slot)
    return moment.isoformat()


def measure(path: Path | str, runs: int) -> dict[str, Any]:
    """Seconds to build the nightly report over the ``runs`` newest runs, to render its HTML and its lines."""
    from pytest_energy.report import html
    from pytest_energy.report.fleet import build_fleet
    from pytest_energy.report.terminal import fleet_lines

    began, cpu = time.perf_counter(), time.process_time()
    fleet = build_fleet(History(path), runs)
    built, built_cpu = time.perf_counter(), time.process_time()
    page = html.render_fleet(fleet)
    rendered = time.perf_counter()
    lines = fleet_lines(fleet)
    printed, printed_cpu = time.perf_counter(), time.process_time()
    return {"runs": fleet.runs, "tests": fleet.tests, "kinds": len(fleet.kinds), "change_points": fleet.steps,
            "build_seconds": built - began, "build_cpu_seconds": built_cpu - cpu, "html_seconds": rendered - built,
            "html_megabytes": len(page) / 1e6, "terminal_seconds": printed - rendered, "terminal_lines": len(lines),
            "total_seconds": printed - began, "total_cpu_seconds": printed_cpu - cpu}


def _empty(store: Path | str) -> bool:
    if not is_database_url(str(store)):
        return not Path(store).exists()
    try:
        return not History(store).runs(1)
    except HistoryError:  # a database with no history tables yet
        return True


def run(runs: int = 1000, records: int = 100, history: Path | str | None = None, seed: int = 0) -> dict[str, Any]:
    """Fill (where ``history`` is missing or an empty database) and measure; the figures with the filling time."""
    with tempfile.TemporaryDirectory() as folder:
        path = history or Path(folder) / "history.sqlite"
        filled = 0.0
        if _empty(path):
            began = time.perf_counter()
            fill(path, runs, records, seed)
            filled = time.perf_counter() - began
        return {"records_per_run": records, "fill_seconds": filled, **measure(path, runs)}


def text(figures: dict[str, Any]) -> str:
    return (f"nightly report over {figures['runs']} runs x {figures['records_per_run']} records "
            f"({figures['tests']} tests on {figures['kinds']} device kinds, {figures['change_points']} change points): "
            f"build {figures['build_seconds']:.2f} s ({figures['build_cpu_seconds']:.2f} s CPU), HTML "
            f"{figures['html_seconds']:.2f} s ({figures['html_megabytes']:.1f} MB), terminal "
            f"{figures['terminal_seconds']:.3f} s; total {figures['total_seconds']:.2f} s wall, "
            f"{figures['total_cpu_seconds']:.2f} s CPU (history filled in {figures['fill_seconds']:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.nightly", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--records", type=records_per_run, default=100)
    parser.add_argument("--history", default=None,
                        help="keep the filled history here, a path or a postgresql:// URL (reused if it holds runs)")
    arguments = parser.parse_args(argv)
    print(text(run(arguments.runs, arguments.records, arguments.history)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
