"""Render time of a 10,000-record report, by the reports engineer's bench/bench_report_render.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "bench_report_render.py"
#: The figures the script prints: "10000 records: build 0.3 s, HTML 1.2 s (8.1 MB), build + HTML 1.5 s ...;
#: terminal table 0.2 s".
_FIGURES = {
    "build_seconds": r"build ([\d.]+) s,",
    "html_seconds": r"HTML ([\d.]+) s",
    "html_megabytes": r"\(([\d.]+) MB\)",
    "build_and_html_seconds": r"build \+ HTML ([\d.]+) s",
    "terminal_seconds": r"terminal table ([\d.]+) s",
}


def run(records: int = 10_000) -> dict[str, Any]:
    """The script's figures, or {"absent": reason} when it is missing or fails."""
    if not SCRIPT.exists():
        return {"records": records, "absent": f"{SCRIPT.name} is not in bench/ (the reports benchmark)"}
    done = subprocess.run([sys.executable, "-m", "bench.bench_report_render", str(records)], capture_output=True, text=True, timeout=600,
                          cwd=SCRIPT.parents[1])
    output = done.stdout.strip()
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return {"records": records, "absent": f"{SCRIPT.name} exited {done.returncode}: {' | '.join(tail)}"}
    figures: dict[str, Any] = {"records": records, "output": output}
    for key, pattern in _FIGURES.items():
        found = re.search(pattern, output)
        figures[key] = float(found.group(1)) if found else None
    return figures
