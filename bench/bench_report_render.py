"""Render time of a 10,000-record report (the issue's bound: at most 2 s). A benchmark that prints
its figures, not a timed test: ``python -m bench.bench_report_render [records]``
(from the repository's root, which puts ``bench`` and ``tests`` on the path).

Times the three stages separately (building the report object, the HTML, the terminal table) on
synthetic records shaped like real ones: five rounds, one GPU component, a quarter with quality, a
tenth with a verdict against a baseline, one in a hundred with a power timeline, and a history of 30
runs for every record (the report draws the trends of its most urgent rows).
"""

from __future__ import annotations

import io
import sys
import time

from pytest_energy.report import build_report, html, terminal
from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict


class _Writer:
    """The parts of pytest's terminal reporter that the terminal renderer uses."""

    hasmarkup = False

    def __init__(self) -> None:
        self.out = io.StringIO()
        self._tw = type("TW", (), {"fullwidth": 160, "hasmarkup": False})()

    def write(self, text: str, **markup: bool) -> None:
        self.out.write(text)

    def write_line(self, text: str, **markup: bool) -> None:
        self.out.write(text + "\n")

    def write_sep(self, sep: str, title: str = "", **markup: bool) -> None:
        self.out.write(f"{sep * 8} {title}\n")


def records(count: int) -> tuple[list, list]:
    recs, verdicts = [], []
    for i in range(count):
        name = f"tests/test_mod{i // 100}.py::test_case[{i}]"
        recs.append(make_record(
            name, 5.0 + (i % 37),
            unit="inference" if i % 2 else "iteration",
            quality={"accuracy": 0.8 + (i % 17) / 100} if i % 4 == 0 else None,
            timeline=[(t / 10, 80 + (t % 7) * 40) for t in range(30)] if i % 100 == 0 else None,
        ))
        if i % 10 == 0:
            status = ("regression", "improvement", "unchanged", "inconclusive")[(i // 10) % 4]
            ratio = {"regression": 1.12, "improvement": 0.9}.get(status, 1.01)
            verdicts.append(make_verdict(name, status, ratio, ratio - 0.03, ratio + 0.03))
    return recs, verdicts


class _History:
    """What the report reads from the history store: 30 runs per record, a step in every seventh."""

    def __init__(self, names: list[str]) -> None:
        self._series = {
            name: [(f"2026-10-{day + 1:02d}", (1.1 if i % 7 == 0 and day >= 20 else 1.0) * (5 + i % 37)
                    * (1 + 0.01 * ((day * 7919 + i) % 5 - 2)), "unchanged") for day in range(30)]
            for i, name in enumerate(names)
        }

    def series(self, fingerprint_id: str | None = None) -> dict:
        return self._series


def main(count: int = 10_000) -> None:
    recs, verdicts = records(count)
    judgement, run_info = make_judgement(verdicts), make_run_info()
    history = _History([r.name for r in recs])
    start, cpu = time.perf_counter(), time.process_time()
    report = build_report(recs, judgement, run_info, history)
    built = time.perf_counter()
    page = html.render(report)
    rendered, cpu = time.perf_counter(), time.process_time() - cpu
    terminal.render(report, _Writer(), 0)
    written = time.perf_counter()
    total = rendered - start
    # CPU seconds are printed too: on a shared machine the wall time also counts other processes.
    print(f"{count} records, {len(report.trends)} trend charts: build {built - start:.3f} s, HTML {rendered - built:.3f} s "
          f"({len(page) / 1e6:.1f} MB), build + HTML {total:.3f} s wall, {cpu:.3f} s CPU "
          f"({'within' if total <= 2.0 else 'OVER'} the 2 s bound); terminal table {written - rendered:.3f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
