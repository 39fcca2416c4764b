"""The history store at fleet scale: a history of 1,000 runs x 100 records on SQLite and on PostgreSQL,
the time to append one more run to it and to import 100 ``--energy-json`` files into it.

    python3 -m bench.history_scale [--runs 1000] [--records 100] [--backends sqlite,postgresql] [--postgres URL]

Without ``--postgres`` the PostgreSQL side runs on a throwaway cluster (tests/postgres.py: Debian's
binaries); it is skipped, saying why, where none can be started. :func:`fill` is the reusable part: it
fills any store with a synthetic history (the nightly report's bench builds on it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic records and the throwaway cluster of the tests

from factories import make_record, make_run_info  # noqa: E402

from pytest_energy.artifacts import import_files  # noqa: E402
from pytest_energy.gate import Judgement  # noqa: E402
from pytest_energy.history import History  # noqa: E402
from pytest_energy.record import Record, RunInfo, session_document  # noqa: E402
from pytest_energy.verdict import Verdict  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def synthetic_run(index: int, records: int) -> tuple[RunInfo, list[Record], Judgement]:
    """Run ``index`` of a nightly series: ``records`` records (10 test modules), one a day, commit and
    branch named by the index, an energy verdict per record; joules drift slowly, so series have a shape."""
    started = (START + timedelta(days=index)).isoformat()
    info = dataclasses.replace(make_run_info(f"run-{index:05d}"), started=started, finished=started,
                               git_commit=f"{index:040x}", branch="main")
    made = [make_record(f"tests/test_m{r % 10}.py::test_{r}", joules=1.0 + r / 10 + (index % 7) / 100)
            for r in range(records)]
    verdicts = [Verdict(r.name, "energy", "unchanged", 1.0, 0.98, 1.02, 0.05, "default", "energy unchanged", True)
                for r in made]
    return info, made, Judgement(verdicts=verdicts, baseline_set="default", fingerprint_id=info.fingerprint["id"])


def fill(store_url: Path | str, runs: int, records: int) -> list[float]:
    """Append ``runs`` synthetic runs of ``records`` records each to the store at ``store_url`` (a path
    or a database URL); returns each append's seconds."""
    history = History(store_url)
    seconds = []
    for index in range(runs):
        run = synthetic_run(index, records)
        began = time.perf_counter()
        history.append(*run)
        seconds.append(time.perf_counter() - began)
    return seconds


def _artifacts(folder: Path, first: int, count: int, records: int) -> list[Path]:
    paths = []
    for index in range(first, first + count):
        info, made, judgement = synthetic_run(index, records)
        gate = {"outcome": "passed", "baseline_set": "default", "fingerprint_id": judgement.fingerprint_id,
                "verdicts": [dataclasses.asdict(v) for v in judgement.verdicts]}
        path = folder / f"{info.run_id}.json"
        path.write_text(json.dumps(session_document(made, info.to_dict(), gate)))
        paths.append(path)
    return paths


def measure(store_url: Path | str, runs: int, records: int, folder: Path) -> dict[str, Any]:
    """Fill the store, then time one more append and an import of 100 artifact files into it."""
    began = time.perf_counter()
    appends = fill(store_url, runs, records)
    filled = time.perf_counter() - began
    history = History(store_url)
    run = synthetic_run(runs, records)
    began = time.perf_counter()
    history.append(*run)
    one = time.perf_counter() - began
    paths = _artifacts(folder, runs + 1, 100, records)
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
    parser.add_argument("--records", type=int, default=100)
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
                from postgres import Cluster, unavailable

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
