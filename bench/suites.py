"""``python3 -m bench suites``: how long the bundled suites take, in all and per suite file.

One ``pytest --energy suites/`` run (serially, ``HF_HUB_OFFLINE=1``, the way CI runs it) in a child
process, with a JUnit XML whose test times are summed per suite file: one run, so fallbacks shared by
two files train once, as they do in CI. Writes ``bench/results/suites-<date>-<device>.json`` and
``.md`` (the table; a ``-m`` selection adds ``-m-<expression>`` to the name) and prints the table. The
budget is 10 minutes on a 2-core CPU machine; the load average before and after says how shared the
machine was (a shared one reads slower).

    python3 -m bench suites                       # every suite
    python3 -m bench suites -m "not heavy"        # pytest options after the subcommand pass through
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_energy.measure.sources.modelled import cpu_model

from . import slug

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 600.0  # issue 14.8: the bundled suites within 10 minutes on the 2-core CPU machine


def _per_suite(junit: Path) -> dict[str, dict[str, Any]]:
    """Seconds and outcomes per suite file, from pytest's JUnit XML (its testcase ``file``/``classname``)."""
    suites: dict[str, dict[str, Any]] = defaultdict(lambda: {"seconds": 0.0, "tests": 0, "passed": 0,
                                                             "failed": 0, "skipped": 0})
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = case.get("file") or case.get("classname", "?").replace(".", "/") + ".py"
        entry = suites[Path(name).name]
        entry["seconds"] += float(case.get("time", 0.0))
        entry["tests"] += 1
        outcome = ("failed" if case.find("failure") is not None or case.find("error") is not None
                   else "skipped" if case.find("skipped") is not None else "passed")
        entry[outcome] += 1
    return dict(sorted(suites.items()))


def run(pytest_args: list[str], out: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Run the suites once and write the JSON and the markdown table; returns their paths and the data."""
    out.mkdir(parents=True, exist_ok=True)
    junit = Path(tempfile.mkdtemp(prefix="bench-suites-")) / "junit.xml"
    command = [sys.executable, "-m", "pytest", "--energy", "suites/", "-p", "no:cacheprovider", "-q",
               f"--junitxml={junit}", "-o", "junit_family=xunit2", *pytest_args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    load_before = os.getloadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = next((line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)),
                   done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "no output")
    data = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": f"{cpu_model()}, {os.cpu_count()} logical CPUs",
        "command": " ".join(["pytest", *command[3:]]),
        "exit_code": done.returncode, "summary": summary.strip("= "),
        "wall_seconds": wall, "cpu_user_seconds": cpu_after.ru_utime - cpu_before.ru_utime,
        "cpu_system_seconds": cpu_after.ru_stime - cpu_before.ru_stime,
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
        "budget_seconds": BUDGET_SECONDS, "within_budget": wall <= BUDGET_SECONDS,
        "suites": _per_suite(junit) if junit.is_file() else {},
    }
    stem = out / result_name(data["date"], f"{cpu_model()}-{os.cpu_count()}c", pytest_args)
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    table = stem.with_suffix(".md")
    table.write_text(markdown(data))
    return stem.with_suffix(".json"), table, data


def result_name(date: str, device: str, pytest_args: list[str]) -> str:
    """``suites-<day>-<device>``, and ``-m-<expression>`` for a marker-selected run (``-m "not heavy"``),
    so the whole run's file and the selected one's stand side by side."""
    parts = [date[:10], device]
    for flag, value in zip(pytest_args, pytest_args[1:]):
        if flag == "-m":
            parts += ["m", value]
    return "suites-" + "-".join(slug(part) for part in parts)


def markdown(data: dict[str, Any]) -> str:
    """The run as a markdown table: one row per suite file, then the whole run against the budget."""
    lines = [f"# Suites' run time, {data['date']}", "",
             f"`{data['command']}` on {data['device']}: {data['summary']} (exit code {data['exit_code']}).",
             f"Load average (1, 5, 15 min) before {_load(data['load_average_before'])}, "
             f"after {_load(data['load_average_after'])}: above the core count means other work shared the machine "
             "and the times read slower than on an idle one.", "",
             "| suite file | tests | passed | failed | skipped | seconds |", "| --- | --- | --- | --- | --- | --- |"]
    for name, entry in data["suites"].items():
        lines.append(f"| `{name}` | {entry['tests']} | {entry['passed']} | {entry['failed']} | {entry['skipped']} "
                     f"| {entry['seconds']:.1f} |")
    verdict = "within" if data["within_budget"] else "OVER"
    lines += ["", f"Whole run: {data['wall_seconds']:.1f} s wall ({verdict} the {data['budget_seconds']:.0f} s "
              f"budget), {data['cpu_user_seconds']:.1f} s user CPU, {data['cpu_system_seconds']:.1f} s system CPU. "
              "A suite's seconds are its tests' call, set-up and teardown times (a fallback shared by two files is "
              "trained in the first that needs it); collection and start-up make up the rest.", ""]
    return "\n".join(lines)


def _load(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main(argv: list[str]) -> int:
    """Run the suites with ``argv`` passed to pytest; print the table. Exit 1 when over the budget."""
    data_path, table, data = run(argv, ROOT / "bench" / "results")
    print(table.read_text())
    print(f"bench: wrote {data_path} and {table}", file=sys.stderr)
    return 0 if data["within_budget"] and data["exit_code"] in (0, 5) else 1
