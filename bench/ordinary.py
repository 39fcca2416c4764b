"""``python3 -m bench ordinary``: what ``--energy`` costs a suite that measures nothing.

A suite of many short tests that never use the `energy` fixture or marker (a project's unit tests),
collected and run plain (plugin loaded, ``--energy`` off), with ``--energy`` and with ``--energy
--energy-top 10`` (:func:`bench.overhead.ordinary_suite`). ``--against REF`` runs a commit's package in
the same alternating rounds, so a before/after comparison shares the machine's load. Writes
``bench/results/ordinary-<date>-<device>.json`` and ``.md`` and prints the table.

    python3 -m bench ordinary                           # 2,000 tests, 5 repetitions
    python3 -m bench ordinary --against bb9bd67         # this tree against that commit's package
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_energy.measure.fingerprint import git_commit
from pytest_energy.measure.sources.modelled import cpu_model

from . import overhead, slug

ROOT = Path(__file__).resolve().parents[1]


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench ordinary", description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=overhead.ORDINARY_TESTS, help="short tests in the suite")
    parser.add_argument("--repetitions", type=int, default=5, help="runs of each kind (the fastest is kept)")
    parser.add_argument("--against", metavar="REF", help="also run the package of this commit, alternating")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON and markdown")
    arguments = parser.parse_args(argv)
    if arguments.tests < 1 or arguments.repetitions < 1:
        parser.error("--tests and --repetitions take a whole number >= 1")
    return arguments


def markdown(data: dict[str, Any]) -> str:
    """The costs, one row per package (each against the same package's plain run), then every time."""
    figures = data["figures"]
    lines = [f"# What `--energy` costs a suite that measures nothing, {data['date']}", "",
             f"`{data['command']}` on {data['device']} (commit {data['commit']}): {figures['tests']:,} short "
             f"tests that use neither the `energy` fixture nor the marker, each way run {figures['repetitions']} "
             "times alternating, the least time of each kept. Load average (1, 5, 15 min) before "
             f"{_load(data['load_average_before'])}, after {_load(data['load_average_after'])}: above the core "
             "count, other work shared the machine and wall times read high; CPU times (the pytest process and "
             "its threads) hold still better.", "",
             "| package | --energy: collect | --energy: run | --energy-top: per test | --energy-top: session |",
             "| --- | --- | --- | --- | --- |"]
    for package, row in figures["packages"].items():
        lines.append(
            f"| {package} | {_ms(row['energy_collect_wall_seconds'])} wall, {_ms(row['energy_collect_cpu_seconds'])} "
            f"CPU | {_ms(row['energy_run_wall_seconds'])} wall, {_ms(row['energy_run_cpu_seconds'])} CPU | "
            f"{row['top_per_test_cpu_seconds'] * 1e6:+.0f} µs CPU, {row['top_per_test_wall_seconds'] * 1e6:+.0f} µs "
            f"wall | {row['top_session_wall_seconds']:+.2f} s wall, {row['top_session_cpu_seconds']:+.2f} s CPU |")
    lines += ["", "Each cost is over the same package's plain run (plugin loaded, `--energy` off). Collect: "
              "`pytest --collect-only`; run: the whole `pytest` process; `--energy-top`'s per test: the tests' own "
              "summed time (setup + call + teardown) over plain's, divided by the tests; its session: the rest of "
              "the run's time over plain's (the meter's start, the records, the listing).", "",
              "| package | what | wall | CPU | tests' own wall | tests' own CPU |",
              "| --- | --- | --- | --- | --- | --- |"]
    for package, row in figures["packages"].items():
        for what, times in row["seconds"].items():
            lines.append(f"| {package} | {what} | {times['wall']:.3f} s | {times['cpu']:.3f} s | "
                         f"{times['tests_wall']:.3f} s | {times['tests_cpu']:.3f} s |")
    return "\n".join(lines + [""])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:+.0f} ms"


def _load(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    load_before = list(os.getloadavg())
    figures = overhead.ordinary_suite(arguments.repetitions, arguments.tests, arguments.against)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data = {"date": date, "device": f"{cpu_model()}, {os.cpu_count()} logical CPUs",
            "command": " ".join(["python3 -m bench ordinary", *argv]).strip(), "commit": git_commit(ROOT),
            "load_average_before": load_before, "load_average_after": list(os.getloadavg()), "figures": figures}
    arguments.out.mkdir(parents=True, exist_ok=True)
    stem = arguments.out / f"ordinary-{date[:10]}-{slug(f'{cpu_model()}-{os.cpu_count()}c')}"
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    table = stem.with_suffix(".md")
    table.write_text(markdown(data))
    print(table.read_text())
    print(f"bench: wrote {stem.with_suffix('.json')} and {table}", file=sys.stderr)
    return 0
