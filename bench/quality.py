"""``python3 -m bench quality``: how far the bundled cases' quality moves between training runs.

A case whose model is trained in the run (a fine-tune, a fallback trained here) scores differently
with another seed, thread count or CPU. One ``pytest --energy suites/ --energy-quality-seeds K`` run
(default K = 5; serially, ``HF_HUB_OFFLINE=1``) trains each such case K times and keeps every run's
figures; this reads them from the run's JSON and writes, per case and metric, the runs, their mean,
standard deviation and range, with the budget the rule in docs/cases.md gives from them, to
``bench/results/quality-<date>-<device>.json`` and ``.md``.

Earlier result files of other machines (``--pool``, default: every ``quality-*.json`` in
bench/results) are pooled into the budget, so one rule covers every CPU model that has run it.

    python3 -m bench quality                                   # K = 5, every suite
    python3 -m bench quality --seeds 8 suites/test_finetune.py
    python3 -m bench quality --energy-update-baselines         # also stores the runs as baselines' spread
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_energy.measure.sources.modelled import cpu_model

from . import slug

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: The budget rule: mean - 4 standard deviations of the pooled runs, never above the lowest run minus one,
#: rounded down to 0.01. Four standard deviations of a run-to-run spread: a healthy run below it is
#: about 1 in 30,000 if the runs were normal, and the lowest run seen keeps a margin where they are not.
SIGMAS = 4.0


def budget(values: list[float], higher_is_better: bool = True) -> float | None:
    """The quality budget the rule gives for these runs' figures (None for fewer than 3)."""
    if len(values) < 3:
        return None
    centre, spread = statistics.fmean(values), statistics.stdev(values)
    # Rounded to 1e-9 before the hundredths, so 0.40 read as 0.4000000001 is not raised to 0.41.
    if higher_is_better:
        return math.floor(round(min(centre - SIGMAS * spread, min(values) - spread) * 100, 9)) / 100
    return math.ceil(round(max(centre + SIGMAS * spread, max(values) + spread) * 100, 9)) / 100


def runs_of(document: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Record name -> metric -> {runs: [{value, seed, threads}], higher_is_better, computed_by, outcome}
    for every record whose model was trained in the run, from an ``--energy-json`` document."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for record in document.get("records", []):
        for metric, entry in sorted(record.get("quality", {}).items()):
            entry = entry if isinstance(entry, dict) else {}
            runs = [run for run in entry.get("runs") or []
                    if isinstance(run, dict) and isinstance(run.get("value"), (int, float))]
            if not (entry.get("trained_in_run") and runs):
                continue  # not trained here, or not computed here (BERTScore without its model): no spread
            found.setdefault(record["name"], {})[metric] = {
                "runs": runs,
                "higher_is_better": entry.get("higher_is_better", True),
                "computed_by": entry.get("computed_by", ""), "outcome": record.get("outcome", "")}
    return found


def measure(seeds: int, pytest_args: list[str]) -> dict[str, Any]:
    """Run the suites once with ``--energy-quality-seeds`` and return the result document."""
    folder = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    output = folder / "energy.json"
    command = [sys.executable, "-m", "pytest", "--energy", "-p", "no:cacheprovider", "-q",
               f"--energy-quality-seeds={seeds}", f"--energy-json={output}", "--energy-report=none",
               "--energy-history=none", "--energy-csv=none", "--energy-model-card=none", *pytest_args]
    if not any(not arg.startswith("-") for arg in pytest_args):
        command.insert(3, "suites/")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    document = json.loads(output.read_text()) if output.is_file() else {}
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": f"{cpu_model()}, {os.cpu_count()} logical CPUs",
        "hardware": document.get("session", {}).get("fingerprint", {}).get("id", ""),
        "command": " ".join(["pytest", *command[3:]]), "exit_code": done.returncode,
        "summary": lines[-1].strip("= ") if lines else "no output", "wall_seconds": time.perf_counter() - began,
        "load_average_after": list(os.getloadavg()),
        "seeds": seeds, "records": runs_of(document),
    }


def pooled(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Record -> metric -> every run of every result (each run tagged with its machine)."""
    pool: dict[str, dict[str, dict[str, Any]]] = {}
    for result in results:
        for name, metrics in result.get("records", {}).items():
            for metric, entry in metrics.items():
                slot = pool.setdefault(name, {}).setdefault(metric, {"runs": [], "higher_is_better":
                                                                     entry.get("higher_is_better", True)})
                slot["runs"] += [dict(run, device=result.get("device", "")) for run in entry["runs"]]
    return pool


def markdown(result: dict[str, Any], pool: dict[str, dict[str, dict[str, Any]]], others: list[Path]) -> str:
    """The runs of this machine per case and metric, and the budget the rule gives from every machine's."""
    lines = [f"# Quality between training runs, {result['date']}", "",
             f"`{result['command']}` on {result['device']} ({result['hardware']}): {result['summary']} (exit code "
             f"{result['exit_code']}, {result['wall_seconds']:.0f} s). Each case whose model is trained in the run "
             f"trained {result['seeds']} times: its seed, then the next seeds, alternating 1 thread and the machine's "
             "(a fallback always trains on 1 thread).", "",
             f"Pooled with: {', '.join(f'`{p.name}`' for p in others) or 'no other machine yet'}. Budget rule "
             f"(docs/cases.md): mean - {SIGMAS:g} sd of the pooled runs, at most the lowest run - 1 sd, rounded down "
             "to 0.01.", "",
             "| record | metric | runs here | mean | sd | min | max | pooled runs | budget by the rule |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, metrics in sorted(result["records"].items()):
        for metric, entry in metrics.items():
            values = [run["value"] for run in entry["runs"]]
            every = [run["value"] for run in pool.get(name, {}).get(metric, {}).get("runs", [])]
            rule = budget(every, entry.get("higher_is_better", True))
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            lines.append(
                f"| `{name.split('::', 1)[-1]}` | {metric} | {', '.join(f'{v:.3f}' for v in values)} | "
                f"{statistics.fmean(values):.3f} | {spread:.3f} | {min(values):.3f} | {max(values):.3f} | "
                f"{len(every)} | {'-' if rule is None else f'{rule:.2f}'} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench quality", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="training runs per case (default 5)")
    parser.add_argument("--pool", nargs="*", type=Path, default=None,
                        help="other machines' result files to pool (default: every bench/results/quality-*.json)")
    args, pytest_args = parser.parse_known_args(argv)
    result = measure(args.seeds, pytest_args)
    stem = RESULTS / f"quality-{result['date'][:10]}-{slug(f'{cpu_model()} {os.cpu_count()}c')}"
    others = [p for p in (args.pool if args.pool is not None else sorted(RESULTS.glob("quality-*.json")))
              if p != stem.with_suffix(".json")]
    pool = pooled([result, *(json.loads(p.read_text()) for p in others)])
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(result, pool, others))
    print(stem.with_suffix(".md").read_text())
    print(f"bench: wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}", file=sys.stderr)
    return 0 if result["exit_code"] in (0, 5) else 1
