"""The history store at fleet scale: a history of 1,000 runs x 100 records on SQLite and on PostgreSQL,
the time to append one more run to it and to import 100 ``--energy-json`` files into it.

    python3 -m bench.history_scale [--runs 1000] [--records 100] [--backends sqlite,postgresql] [--postgres URL]

Without ``--postgres`` the PostgreSQL side runs on a throwaway cluster (pytest_energy/testing/postgres.py: Debian's
binaries); it is skipped, saying why, where none can be started. The history is the nightly report's
bench's synthetic series (``bench.nightly.nightly_runs``: four runners, two device kinds, a step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from bench.nightly import nightly_runs, records_per_run
from pytest_energy.commands.json_import import import_files
from pytest_energy.store.history import History
from pytest_energy.core.record import Record, RunInfo, session_document
from pytest_energy.judge.verdict import Judgement

Run = tuple[RunInfo, list[Record], Judgement]


def fill(store_url: Path | str, series: Iterator[Run], runs: int) -> list[float]:
    """Append the next ``runs`` runs of ``series`` to the store at ``store_url`` (a path or a database
    URL); returns each append's seconds."""
    history = History(store_url)
    seconds = []
    for _ in range(runs):
        run = next(series)
        began = time.perf_counter()
        history.append(*run)
        seconds.append(time.perf_counter() - began)
    return seconds


def _artifacts(folder: Path, series: Iterator[Run], count: int) -> list[Path]:
    """The next ``count`` runs of ``series`` as ``--energy-json`` files in ``folder``."""
    paths = []
    for _ in range(count):
        info, made, judgement = next(series)
        path = folder / f"{info.run_id}.json"
        path.write_text(json.dumps(session_document(made, info.to_dict(), judgement.document({}))))
        paths.append(path)
    return paths


def measure(store_url: Path | str, runs: int, records: int, folder: Path) -> dict[str, Any]:
    """Fill the store, then time one more append and an import of 100 artifact files into it."""
    series = nightly_runs(runs + 101, records)
    began = time.perf_counter()
    appends = fill(store_url, series, runs)
    filled = time.perf_counter() - began
    history = History(store_url)
    run = next(series)
    began = time.perf_counter()
    history.append(*run)
    one = time.perf_counter() - began
    paths = _artifacts(folder, series, 100)
    began = time.perf_counter()
    result = import_files(history, paths)
    imported = time.perf_counter() - began
    assert len(result.imported) == 100, result.lines[-1]
    began = time.perf_counter()
    again = import_files(history, paths)  # the same files again: nothing stored twice
    reimported = time.perf_counter() - began
    assert len(again.already) == 100 and len(history.runs()) == runs + 101
    return {"fill_seconds": filled, "append_median_seconds": statistics.median(appends),
            "append_after_fill_seconds": one, "import_100_seconds": imported,
            "import_100_again_seconds": reimported}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.history_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--records", type=records_per_run, default=100)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=None, help="a database URL to use instead of a throwaway cluster")
    arguments = parser.parse_args(argv)
    results: dict[str, Any] = {"runs": arguments.runs, "records": arguments.records}
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        for backend in arguments.backends.split(","):
            artifacts = Path(folder) / backend
            artifacts.mkdir()
            if backend == "sqlite":
                results[backend] = measure(Path(folder) / "history.sqlite", arguments.runs, arguments.records, artifacts)
            elif arguments.postgres:
                results[backend] = measure(arguments.postgres, arguments.runs, arguments.records, artifacts)
            else:
                from pytest_energy.testing.postgres import Cluster, unavailable

                reason = unavailable()
                if reason:
                    results[backend] = {"skipped": reason}
                    continue
                cluster = Cluster()
                try:
                    results[backend] = measure(cluster.database("bench"), arguments.runs, arguments.records, artifacts)
                finally:
                    cluster.stop()
            print(backend, json.dumps(results[backend]), flush=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
