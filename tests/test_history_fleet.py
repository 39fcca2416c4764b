"""One history for a fleet: runs of `pytest --energy` appending to a PostgreSQL server at once, a server
that cannot be reached, CI artifacts imported with `pytest-energy import`, and baselines written from
the newest runs of the history (`pytest-energy baselines update --from-history`).

The runs measure through the fake RAPL tree of test_gate_integration (the one hardware boundary); the
server is the session's throwaway cluster (pytest_energy/testing/postgres.py).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_energy.core.facts import ModelFacts
from pytest_energy.core.figures import pooled_net_per_iteration
from pytest_energy.testing.records import make_record, make_run_info
from pytest_energy.testing.postgres import free_port
from test_gate_integration import ARGS, CONFTEST, run_energy

from pytest_energy.store import baselines as store
from pytest_energy.commands.cli import main
from pytest_energy.store.history import History
from pytest_energy.core.record import SCHEMA_VERSION, session_document

MEASURED = '''
def test_measured(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
'''


@pytest.fixture(params=["serial", "xdist"])
def workers(request: pytest.FixtureRequest) -> list[str]:
    return ["-n", "2"] if request.param == "xdist" else []


# -- runs of pytest --energy --------------------------------------------------------------------------
def test_an_unreachable_server_costs_the_run_only_its_history_row(
        pytester: pytest.Pytester, workers: list[str]) -> None:
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install 'pytest-energy[postgres]'")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_fleet=MEASURED)
    url = f"postgresql://energy@127.0.0.1:{free_port()}/fleet"
    result = run_energy(pytester, *ARGS, *workers, "--energy-history", url, "--energy-report", "report.html")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if url in line]
    assert len(lines) == 1, result.stdout.str()
    assert lines[0].startswith(f"pytest-energy: history {url} cannot be reached (") and "Connection refused" in lines[0]
    assert lines[0].endswith(" not appended)") and lines[0].count("pytest-energy") == 1
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "test_fleet.py::test_measured" in {r["name"] for r in
                                              json.loads((pytester.path / "out.json").read_text())["records"]}
    assert "<html" in (pytester.path / "report.html").read_text()[:500].lower()


def test_three_sessions_append_to_one_server_at_once(pytester: pytest.Pytester, postgres) -> None:
    url = postgres.database("fleet")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_fleet=MEASURED)
    sessions = [pytester.popen([sys.executable, "-m", "pytest", *ARGS, "--energy-json", f"out{i}.json",
                                "--energy-history", url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for i in range(3)]
    outputs = [session.communicate(timeout=300) for session in sessions]
    for session, (stdout, stderr) in zip(sessions, outputs):
        assert session.returncode == 0, stdout + stderr
        assert "appended to history postgresql://" in stdout
    run_ids = {json.loads((pytester.path / f"out{i}.json").read_text())["session"]["run_id"] for i in range(3)}
    history = History(url)
    assert {run.run_id for run in history.runs()} == run_ids and len(run_ids) == 3
    for records in history.records_of(sorted(run_ids)).values():
        assert [r.name for r in records] == ["test_fleet.py::test_measured"]


# -- pytest-energy import -----------------------------------------------------------------------------
def _artifact(folder: Path, run_id: str, started: str, joules: float, branch: str | None = "main",
              version: int = SCHEMA_VERSION, name: str = "tests/test_a.py::test_a") -> Path:
    """An --energy-json file of one run, as the session writes it (schema 1: no gate section; schema 3 and
    older: the model, case and notes in ``extra``)."""
    info = dataclasses.replace(make_run_info(run_id), started=started, branch=branch)
    gate = {"outcome": "passed", "baseline_set": "default", "fingerprint_id": info.fingerprint["id"],
            "verdicts": [{"name": name, "metric": "energy", "status": "unchanged", "ratio": 1.01, "low": 0.98,
                          "high": 1.04, "threshold": 0.05, "baseline_set": "default", "message": "unchanged",
                          "gating": True, "by_budget": False, "baseline_hardware": ""}]}
    document = session_document([make_record(name, joules=joules)], info.to_dict(), gate)
    if version <= 3:
        for record in document["records"]:
            record["extra"] = {"notes": record.pop("notes"), "model": {"requested": "tiny-bert", "digest": "aa"}}
            for key in ("model", "case", "figures"):
                del record[key]
    if version == 1:
        del document["gate"]
        document["session"].pop("branch")
        document["session"].pop("exitstatus")
    document["schema_version"] = version
    path = folder / f"{run_id}.json"
    path.write_text(json.dumps(document))
    return path


def test_importing_artifacts_stores_each_run_once(history_at: Path | str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    files = [_artifact(tmp_path, "run-1", "2026-11-21T10:00:00+00:00", 10.0),
             _artifact(tmp_path, "run-0", "2026-11-20T10:00:00+00:00", 9.0, version=1)]
    newer = _artifact(tmp_path, "run-9", "2026-11-29T10:00:00+00:00", 9.0, version=5)
    assert main(["import", *map(str, files), str(newer), "--history", str(history_at)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"pytest-energy: {newer} has --energy-json schema version 5; this pytest-energy reads 1, "
                        "2, 3 and 4 (a newer file needs a newer pytest-energy); not imported")
    assert lines[1:3] == [f"pytest-energy: {files[0]}: run run-1 imported (1 records)",
                          f"pytest-energy: {files[1]}: run run-0 imported (1 records)"]
    assert lines[-1].endswith("2 runs imported into " + History(history_at).where + ", 0 held already, "
                              "1 files refused")
    assert main(["import", *map(str, files), str(files[0]), "--history", str(history_at)]) == 0
    again = capsys.readouterr().out.splitlines()
    assert again[0] == f"pytest-energy: {files[0]}: run run-1 is in history {History(history_at).where} already; " \
                       "not stored again"
    assert again[-1].endswith("0 runs imported into " + History(history_at).where + ", 3 held already, "
                              "0 files refused")
    history = History(history_at)
    runs = history.runs()
    assert [(r.run_id, r.branch, r.baseline_set) for r in runs] == [("run-1", "main", "default"),
                                                                    ("run-0", None, None)]
    assert [v["status"] for v in history.verdicts("run-1")] == ["unchanged"] and history.verdicts("run-0") == []
    # A schema-1 record's model, kept in its extra, is read onto the typed field.
    assert history.records("run-0")[0].to_dict() == make_record("tests/test_a.py::test_a", joules=9.0,
                                                                model=ModelFacts("tiny-bert", digest="aa")).to_dict()
    # The commands read it as they read the default file: the runs, and the nightly report.
    assert main(["runs", "--history", str(history_at)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["run-1", "run-0"]
    assert main(["report", "--history", str(history_at), "--out", str(tmp_path / "nightly.html")]) == 0
    assert "tests/test_a.py::test_a" in (tmp_path / "nightly.html").read_text()


def test_files_that_are_no_artifact_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"records": []}))
    missing = tmp_path / "missing.json"
    history = tmp_path / "history.sqlite"
    assert main(["import", str(broken), str(other), str(missing), "--history", str(history)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"pytest-energy: {broken} is not JSON (") and lines[0].endswith("; not imported")
    assert lines[1] == f"pytest-energy: {other} is not an --energy-json document (no schema_version and session); " \
                       "not imported"
    assert lines[2] == f"pytest-energy: {missing}: No such file or directory; not imported"
    assert not history.exists() or History(history).runs() == []


def _edited(path: Path, change) -> Path:
    """``path``'s document changed by ``change`` (a hand-edited or foreign artifact)."""
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def test_one_odd_file_is_refused_by_name_and_the_rest_imported(history_at: Path | str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Each file's shape is checked before anything is written: an odd one is one line naming it, the
    files after it are imported, and the command exits 2 at the end."""
    def started(day: int) -> str:
        return f"2026-11-{day:02d}T10:00:00+00:00"

    def set_in(keys: tuple, value) -> object:
        def change(document: dict) -> None:
            *parents, last = keys
            target = document
            for key in parents:
                target = target[key]
            target[last] = value
        return change

    odd = {  # file name -> (change, what its line says)
        "listed": (set_in(("session", "run_id"), ["run-a", "run-b"]),
                   "its session's run_id is a list, expected the run's id (text); not imported"),
        "boolean": (set_in(("schema_version",), True),
                    "its schema_version is true, not a version number; not imported"),
        "iterations": (set_in(("records", 0, "rounds", 1, "iterations"), "20"),
                       "a schema-4 document in a shape this pytest-energy cannot read (records[0].rounds[1].iterations "
                       "is a str, expected int); not imported"),
        "idle": (set_in(("session", "idle_watts"), {"gpu:0": [77.0]}),
                 "a schema-4 document in a shape this pytest-energy cannot read (session.idle_watts['gpu:0'] is a "
                 "list, expected float); not imported"),
        "gating": (set_in(("gate", "verdicts", 0, "gating"), "yes"),
                   "a schema-4 document in a shape this pytest-energy cannot read (gate.verdicts[0].gating is a str, "
                   "expected bool); not imported"),
        "fingerprint": (set_in(("session", "fingerprint", "id"), 7),
                        "a schema-4 document in a shape this pytest-energy cannot read (session.fingerprint['id'] is "
                        "an int, expected str); not imported"),
        "case": (set_in(("records", 0, "case"), {"kind": "inference", "batch_size": "4"}),  # typed facts too
                 "a schema-4 document in a shape this pytest-energy cannot read (records[0].case.batch_size is a "
                 "str, expected int); not imported"),
        "twice": (lambda document: document["records"].append(document["records"][0]),
                  "a schema-4 document in a shape this pytest-energy cannot read (the record name "
                  "'tests/test_a.py::test_a' is given twice); not imported"),
        "judged": (lambda document: document["gate"]["verdicts"].append(document["gate"]["verdicts"][0]),
                   "a schema-4 document in a shape this pytest-energy cannot read (the energy verdict on "
                   "'tests/test_a.py::test_a' against the set 'default' is given twice); not imported"),
    }
    files = [_artifact(tmp_path, "run-first", started(1), 9.0)]
    for day, (name, (change, _)) in enumerate(odd.items(), start=2):
        files.append(_edited(_artifact(tmp_path, f"run-{name}", started(day), 9.0), change))
    files.append(_artifact(tmp_path, "run-last", started(20), 9.0))
    assert main(["import", *map(str, files), "--history", str(history_at)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines[:-1]) == sorted([f"pytest-energy: {files[0]}: run run-first imported (1 records)",
                                         f"pytest-energy: {files[-1]}: run run-last imported (1 records)",
                                         *(f"pytest-energy: {path}: {said}"
                                           for path, (_, said) in zip(files[1:-1], odd.values()))])
    assert lines[-1].endswith(f"2 runs imported into {History(history_at).where}, 0 held already, "
                              f"{len(odd)} files refused")
    assert [r.run_id for r in History(history_at).runs()] == ["run-last", "run-first"]


def test_a_run_the_store_refuses_is_refused_by_name_and_the_rest_imported(postgres, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A run whose rows the server refuses (a run id past a btree entry's 2,704 bytes, not compressible):
    its transaction is rolled back, that file named, and the next file imported."""
    url = postgres.database()
    run_id = "run-" + "".join(f"{i:04d}" for i in range(800))
    refused = _edited(_artifact(tmp_path, "run-long", "2026-11-01T10:00:00+00:00", 9.0),
                      lambda document: document["session"].update(run_id=run_id))
    files = [refused, _artifact(tmp_path, "run-next", "2026-11-02T10:00:00+00:00", 9.0)]
    assert main(["import", *map(str, files), "--history", url]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"pytest-energy: history {History(url).where} could not be used (ProgramLimitExceeded")
    assert lines[0].endswith(f"; {refused} not imported")
    assert lines[1:] == [f"pytest-energy: {files[1]}: run run-next imported (1 records)",
                         f"pytest-energy: 1 runs imported into {History(url).where}, 0 held already, 1 files refused"]
    assert [r.run_id for r in History(url).runs()] == ["run-next"]


def test_an_older_artifact_holding_a_password_is_imported_without_it(history_at: Path | str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A file written before passwords were left out of records: its history URL is stored without one."""
    url = "postgresql://energy:S3cret%2FPW@db.example:5432/energy?password=S3cret/PW&sslmode=require"
    path = _edited(_artifact(tmp_path, "run-old", "2026-11-01T10:00:00+00:00", 9.0),
                   lambda document: document["session"]["settings"].update(history=url))
    assert main(["import", str(path), "--history", str(history_at)]) == 0
    assert "S3cret" not in capsys.readouterr().out
    [run] = History(history_at).runs()
    assert run.info["settings"]["history"] == "postgresql://energy@db.example:5432/energy?sslmode=require"


# -- baselines from history ---------------------------------------------------------------------------
def test_pooled_baselines_take_the_newest_runs_of_each_kind_of_the_same_work() -> None:
    name = "tests/test_a.py::test_a"
    newest_first = [
        [make_record(name, joules=12.0, proxies={"flops": 2e9})],
        [make_record(name, joules=11.0, proxies={"flops": 2e9}),
         make_record("tests/test_b.py::test_b", joules=1.0, device="cpu", kind="cpu", method="modelled")],
        [make_record(name, joules=10.0, proxies={"flops": 1e9})],  # other work: not this code's steady state
        [make_record(name, joules=9.0, proxies={"flops": 2e9})],  # beyond --last 3
    ]
    result = store.pooled(newest_first, 3)
    assert result.runs_per_kind == {"gpu: NVIDIA H100 80GB HBM3 x1": 3, "modelled: Intel(R) Xeon(R) Platinum 8480C x1": 1}
    [a, b] = result.baselines
    assert (a.name, a.work) == (name, {"flops": 2e9}) and b.name == "tests/test_b.py::test_b"
    [energy] = a.energy.values()
    assert len(energy.rounds) == 10  # 5 rounds of each of the two runs of the same work
    assert pooled_net_per_iteration(energy.rounds) == pytest.approx(
        (make_record(joules=12.0).per_iteration_net_joules + make_record(joules=11.0).per_iteration_net_joules) / 2)
    assert energy.reference_joules == {}  # none recorded by these runs
    def with_model(digest: str) -> store.Baseline:
        return store.from_record(make_record(name, model=ModelFacts("tiny-bert", digest=digest)))

    old = with_model("aa")
    assert not store.model_changed(old, with_model("aa"))
    assert store.model_changed(old, with_model("bb"))
    assert not store.model_changed(old, a)  # a test without a model
    failed = make_record("tests/test_c.py::test_c", outcome="failed")
    assert store.pooled([[failed]], 3).baselines == []


def test_baselines_update_from_history_is_a_diff_of_the_folder(history_at: Path | str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    files = [_artifact(tmp_path, f"run-{i}", f"2026-11-2{i}T10:00:00+00:00", 10.0 + i,
                       branch="main" if i != 2 else "feature") for i in range(4)]
    assert main(["import", *map(str, files), "--history", str(history_at)]) == 0
    root = tmp_path / "baselines"
    folder = store.set_folder(root, "default")
    store.update(folder, [store.from_record(make_record("tests/test_a.py::test_other", joules=3.0))])
    capsys.readouterr()
    assert main(["baselines", "update", "--from-history", "--last", "2", "--branch", "main",
                 "--history", str(history_at), "--baselines", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"pytest-energy: baselines {folder}: 1 written from history {History(history_at).where}, "
                        "rounds pooled per device kind: gpu: NVIDIA H100 80GB HBM3 x1 (2 runs)")
    assert lines[1].split() == ["new", "tests/test_a.py::test_a"]
    stored = store.load_set(folder).baselines
    assert sorted(stored) == ["tests/test_a.py::test_a", "tests/test_a.py::test_other"]  # the other entry kept
    [energy] = stored["tests/test_a.py::test_a"].energy.values()
    expected = (make_record(joules=13.0).per_iteration_net_joules + make_record(joules=11.0).per_iteration_net_joules) / 2
    assert pooled_net_per_iteration(energy.rounds) == pytest.approx(expected, rel=1e-5)  # run-3, run-1: main only
    assert main(["baselines", "update", "--from-history", "--last", "2", "--branch", "release",
                 "--history", str(history_at), "--baselines", str(root)]) == 2
    assert capsys.readouterr().err.startswith("pytest-energy: no run of branch release in history ")


def test_a_profiles_runs_are_pooled_apart_into_its_own_folder(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Runs under --energy-profile measured another protocol: the default's baselines never pool them, and
    --profile pools them alone into <set>@<profile>, where that profile's runs judge against them."""
    history = tmp_path / "history.sqlite"
    files = [_artifact(tmp_path, f"run-{i}", f"2026-11-2{i}T10:00:00+00:00", 10.0 + 10 * i) for i in range(3)]
    profiled = _edited(files[2], lambda document: document["session"]["settings"].update(profile="ai-energy-score"))
    assert main(["import", *map(str, files[:2]), str(profiled), "--history", str(history)]) == 0
    root = tmp_path / "baselines"
    for profile, folder, joules in (("default", store.set_folder(root, "default"), (20.0, 10.0)),
                                    ("ai-energy-score", root / "default@ai-energy-score", (30.0,))):
        capsys.readouterr()
        assert main(["baselines", "update", "--from-history", "--last", "2", "--history", str(history),
                     "--baselines", str(root), "--profile", profile]) == 0
        assert capsys.readouterr().out.startswith(f"pytest-energy: baselines {folder}: 1 written from history ")
        [energy] = store.load_set(folder).baselines["tests/test_a.py::test_a"].energy.values()
        expected = sum(make_record(joules=j).per_iteration_net_joules for j in joules) / len(joules)
        assert pooled_net_per_iteration(energy.rounds) == pytest.approx(expected, rel=1e-5)
    assert main(["baselines", "update", "--from-history", "--last", "2", "--branch", "release", "--history",
                 str(history), "--baselines", str(root), "--profile", "ai-energy-score"]) == 2
    assert "no run of branch release of profile ai-energy-score in history" in capsys.readouterr().err


# -- the nightly report's reading ---------------------------------------------------------------------
def test_the_nightly_reads_the_budgets_of_a_test_that_failed(history_at: Path | str) -> None:
    """On either backend: the record that failed comes with its criteria and quality (its missed budgets
    in the nightly's opening); one that passed with its outcome only, its JSON left unread."""
    from pytest_energy.report.fleet import build_fleet

    energy_budget = {"limit_joules": 2.0, "per": "iteration", "basis": "gross", "met": False}
    failed = make_record("t.py::test_over", 3.0, quality={"accuracy": 0.81}, outcome="failed",
                         criteria={"energy": [energy_budget]})
    failed.quality["accuracy"].update(budget=0.9, budget_met=False)
    passed = make_record("t.py::test_under", 1.0, quality={"accuracy": 0.95},
                         criteria={"energy": [{**energy_budget, "met": True}]})
    info = make_run_info("run-1")
    History(history_at).append(info, [failed, passed])
    over, under = History(history_at).fleet_records(["run-1"])["run-1"]
    assert (over.name, over.outcome, over.criteria) == ("t.py::test_over", "failed", {"energy": [energy_budget]})
    assert over.quality["accuracy"] == {"value": 0.81, "computed_by": "rouge-score 0.1.2", "budget": 0.9,
                                        "budget_met": False}
    assert (under.outcome, under.criteria, under.quality) == ("passed", {}, {})
    changed = build_fleet(History(history_at)).changed
    missed, = changed.missed_budgets
    assert missed.test.name == "t.py::test_over" and missed.text == (
        f"quality budget missed: accuracy 0.81 < 0.9; energy budget missed (1 of 1), in the run of {info.started[:19]}")
