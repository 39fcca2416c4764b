"""The history on SQLite and on PostgreSQL (a throwaway cluster): what is stored, read back, migrated,
refused, and appended concurrently; an unreachable server."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
import subprocess
from pathlib import Path

import pytest
from pytest_energy.testing.records import make_record, make_run_info

from pytest_energy.judge.gate import Judgement
from pytest_energy.testing.postgres import free_port

from pytest_energy.store.history import SCHEMA_VERSION, History, HistoryError
from pytest_energy.judge.verdict import Verdict

#: The tables of schema version 1 (pytest-energy before the PostgreSQL store), as such files hold them.
SCHEMA_1 = (
    """CREATE TABLE IF NOT EXISTS meta (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        value VARCHAR(255) NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR(64) NOT NULL PRIMARY KEY,
        started VARCHAR(40) NOT NULL,
        finished VARCHAR(40),
        fingerprint_id VARCHAR(200),
        git_commit VARCHAR(80),
        exitstatus INTEGER,
        baseline_set VARCHAR(200),
        gate_failed INTEGER,
        record_count INTEGER,
        regressions INTEGER,
        total_net_joules DOUBLE PRECISION,
        total_gross_joules DOUBLE PRECISION,
        co2_grams DOUBLE PRECISION,
        info_json TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS records (
        run_id VARCHAR(64) NOT NULL,
        name VARCHAR(1000) NOT NULL,
        nodeid VARCHAR(1000) NOT NULL,
        form VARCHAR(16),
        unit VARCHAR(64),
        iterations INTEGER,
        per_iteration_net_joules DOUBLE PRECISION,
        per_iteration_gross_joules DOUBLE PRECISION,
        per_iteration_uncertainty_joules DOUBLE PRECISION,
        normalised_net DOUBLE PRECISION,
        total_net_joules DOUBLE PRECISION,
        total_gross_joules DOUBLE PRECISION,
        duration_seconds DOUBLE PRECISION,
        co2_grams DOUBLE PRECISION,
        methods VARCHAR(100),
        outcome VARCHAR(16),
        quality_json TEXT,
        verdict_status VARCHAR(16),
        verdict_ratio DOUBLE PRECISION,
        record_json TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    )""",
    "CREATE INDEX IF NOT EXISTS records_by_name ON records (name)",
    """CREATE TABLE IF NOT EXISTS verdicts (
        run_id VARCHAR(64) NOT NULL,
        name VARCHAR(1000) NOT NULL,
        metric VARCHAR(100) NOT NULL,
        baseline_set VARCHAR(200) NOT NULL,
        status VARCHAR(16) NOT NULL,
        ratio DOUBLE PRECISION,
        low DOUBLE PRECISION,
        high DOUBLE PRECISION,
        threshold DOUBLE PRECISION,
        gating INTEGER,
        message TEXT,
        PRIMARY KEY (run_id, name, metric, baseline_set)
    )""",
)


def _run(run_id: str, started: str, fingerprint_id: str = "nvidia-h100-80gb-hbm3-x1-1a2b3c4d"):
    info = make_run_info(run_id)
    return dataclasses.replace(info, started=started, fingerprint=dict(info.fingerprint, id=fingerprint_id))


def _judgement(name: str, status: str, ratio: float | None) -> Judgement:
    return Judgement(
        verdicts=[Verdict(name, "energy", status, ratio, 0.9 if ratio else None, 1.2 if ratio else None, 0.05,
                          "default", f"energy {status}", True),
                  Verdict(name, "rougeL", "unchanged", 1.0, None, None, 0.05, "default", "rougeL unchanged", True)],
        baseline_set="default", fingerprint_id="nvidia-h100-80gb-hbm3-x1-1a2b3c4d",
        gate_failed=status == "regression",
    )


def _fill(path: Path | str) -> History:
    history = History(path)
    name = "tests/test_model.py::test_infer"
    for index, (joules, status, ratio) in enumerate([(10.0, "new", None), (10.1, "unchanged", 1.01),
                                                     (11.5, "regression", 1.15)]):
        record = make_record(name, joules=joules, quality={"rougeL": 0.41})
        other = make_record("tests/test_model.py::test_other", joules=2.0)
        history.append(_run(f"run-{index}", f"2026-11-2{index}T10:00:00+00:00"), [record, other],
                       _judgement(name, status, ratio))
    return history


def test_runs_are_listed_newest_first_with_totals(history_at: Path | str) -> None:
    history = _fill(history_at)
    runs = history.runs()
    assert [r.run_id for r in runs] == ["run-2", "run-1", "run-0"]
    assert [r.run_id for r in history.runs(2)] == ["run-2", "run-1"]
    latest = runs[0]
    assert latest.records == 2 and latest.regressions == 1 and latest.gate_failed
    assert latest.fingerprint_id == "nvidia-h100-80gb-hbm3-x1-1a2b3c4d"
    assert latest.baseline_set == "default"
    records = history.records("run-2")
    assert latest.total_net_joules == pytest.approx(sum(r.total_net_joules for r in records))
    assert latest.info["reference_joules"] == {"gpu:0": 350.0}


def test_case_history_is_chronological_with_verdicts(history_at: Path | str) -> None:
    history = _fill(history_at)
    points = history.case_history("tests/test_model.py::test_infer")
    assert [p.run_id for p in points] == ["run-0", "run-1", "run-2"]
    assert [p.status for p in points] == ["new", "unchanged", "regression"]
    assert points[2].ratio == pytest.approx(1.15)
    assert points[2].per_iteration_net_joules == pytest.approx(
        make_record(joules=11.5).per_iteration_net_joules)
    assert points[0].methods == ["counter"] and points[0].quality == {"rougeL": 0.41}
    assert [p.run_id for p in history.case_history("tests/test_model.py::test_infer", 2)] == ["run-1", "run-2"]
    assert history.case_history("nothing") == []


def test_series_and_records_rebuild_what_was_stored(history_at: Path | str) -> None:
    history = _fill(history_at)
    series = history.series()
    infer = series["tests/test_model.py::test_infer"]
    assert [point[0][:10] for point in infer] == ["2026-11-20", "2026-11-21", "2026-11-22"]
    assert [point[2] for point in infer] == ["new", "unchanged", "regression"]
    assert series["tests/test_model.py::test_other"][0][2] is None  # no verdict for it
    assert history.series("other-hardware") == {}
    rebuilt = history.records("run-1")
    original = make_record("tests/test_model.py::test_infer", joules=10.1, quality={"rougeL": 0.41})
    assert [r.name for r in rebuilt] == ["tests/test_model.py::test_infer", "tests/test_model.py::test_other"]
    assert rebuilt[0].to_dict() == original.to_dict()
    verdicts = history.verdicts("run-2")
    assert [(v["metric"], v["status"], v["gating"]) for v in verdicts] == [
        ("energy", "regression", True), ("rougeL", "unchanged", True)]
    assert Verdict(**verdicts[0]).ratio == pytest.approx(1.15)


def test_appending_a_run_again_replaces_it(history_at: Path | str) -> None:
    history = _fill(history_at)
    history.append(_run("run-2", "2026-11-22T10:00:00+00:00"), [make_record(joules=1.0)], None)
    assert len(history.runs()) == 3
    assert [r.name for r in history.records("run-2")] == ["tests/test_model.py::test_infer"]
    assert history.verdicts("run-2") == []


def test_schema_is_versioned_and_other_versions_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    _fill(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
        connection.execute("UPDATE meta SET value = '7' WHERE name = 'schema_version'")
    with pytest.raises(HistoryError, match=rf"schema version 7, newer than this pytest-energy reads \({SCHEMA_VERSION}\); up"):
        History(path).runs()
    with pytest.raises(HistoryError, match="newer"):  # appending refuses too: nothing written into it
        History(path).append(_run("run-9", "2026-11-29T10:00:00+00:00"), [make_record()], None)


def test_unusable_files_are_one_line_errors(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    with pytest.raises(HistoryError, match="no history at .*none.sqlite; run `pytest --energy` first"):
        History(missing).runs()
    assert not missing.exists()  # reading never creates the store
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_text("this is not a database, but a note somebody saved here\n" * 20)
    with pytest.raises(HistoryError) as caught:
        History(garbage).append(_run("r", "2026-11-20T10:00:00+00:00"), [make_record()], None)
    assert "not a usable SQLite store" in str(caught.value) and "\n" not in str(caught.value)


def _append(location: Path | str, index: int, barrier) -> None:
    barrier.wait()
    History(location).append(_run(f"run-{index % 6}", f"2026-11-20T10:00:0{index % 6}+00:00"),
                             [make_record(f"tests/test_p.py::test_{index % 6}")], None)


def test_concurrent_appends_are_all_kept(history_at: Path | str) -> None:
    """Six processes append at once into a new store (each creating the schema), and six more append the
    same six runs again at the same moment: every run is there, once."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(12)
    workers = [context.Process(target=_append, args=(history_at, i, barrier)) for i in range(12)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert sorted(r.run_id for r in History(history_at).runs()) == [f"run-{i}" for i in range(6)]
    records = History(history_at).records_of([f"run-{i}" for i in range(6)])
    assert {run_id: [r.name for r in found] for run_id, found in records.items()} == {
        f"run-{i}": [f"tests/test_p.py::test_{i}"] for i in range(6)}


def test_bulk_reads_and_the_branch(history_at: Path | str) -> None:
    history = _fill(history_at)
    history.append(dataclasses.replace(_run("run-3", "2026-11-23T10:00:00+00:00"), branch="main"), [make_record()])
    assert [(r.run_id, r.branch) for r in history.runs(2)] == [("run-3", "main"), ("run-2", None)]
    assert history.stored(["run-0", "run-3", "run-9"]) == {"run-0", "run-3"}
    verdicts = history.verdicts_of(["run-1", "run-2", "run-9"])
    assert [v["status"] for v in verdicts["run-2"]] == ["regression", "unchanged"] and verdicts["run-9"] == []
    assert verdicts["run-1"] == history.verdicts("run-1")
    records = history.records_of(["run-0", "run-3"])
    assert [len(records["run-0"]), len(records["run-3"])] == [2, 1]


#: A parametrised test id of 1,200 characters (PostgreSQL's varchar(1000) refused it), and one past the
#: 2,704 bytes of a PostgreSQL btree entry (a key or index on the name refused it).
LONG_NAMES = ["tests/test_model.py::test_infer[" + ("prompt-" * 167)[:1167] + "]",
              "tests/test_model.py::test_infer[" + "".join(f"{i:05d}" for i in range(1000)) + "]"]


def _long(run_id: str) -> tuple:
    """A run of long names, a 238-character branch and a 100-character commit, with a verdict each."""
    info = dataclasses.replace(_run(run_id, "2026-11-24T10:00:00+00:00"), branch="feature/" + "b" * 230,
                               git_commit="c" * 100)
    verdicts = [Verdict(name, "energy", "unchanged", 1.0, 0.9, 1.1, 0.05, "set-" + "s" * 300, "unchanged", True)
                for name in LONG_NAMES]
    return info, [make_record(name) for name in LONG_NAMES], Judgement(verdicts, baseline_set="set-" + "s" * 300)


def test_long_names_branches_and_commits_are_kept_whole(history_at: Path | str) -> None:
    """The same on SQLite and PostgreSQL: every text column is unbounded, and names are no btree key."""
    assert len(LONG_NAMES[0]) == 1200 and len(LONG_NAMES[1]) > 2704
    history = _fill(history_at)
    info, records, judgement = _long("run-long")
    history.append(info, records, judgement)
    [run] = history.runs(1)
    assert (run.run_id, run.branch, run.git_commit, run.baseline_set) == (
        "run-long", info.branch, info.git_commit, judgement.baseline_set)
    assert [r.name for r in history.records("run-long")] == sorted(LONG_NAMES)
    assert [v["name"] for v in history.verdicts("run-long")] == sorted(LONG_NAMES)
    for name in LONG_NAMES:
        [point] = history.case_history(name)
        assert (point.run_id, point.git_commit, point.status) == ("run-long", info.git_commit, "unchanged")
    assert set(LONG_NAMES) <= set(history.series())
    history.append(info, records[:1], judgement)  # appended again: replaced, never doubled
    assert [r.name for r in history.records("run-long")] == LONG_NAMES[:1] and len(history.runs()) == 4


def test_a_schema_2_store_on_postgresql_becomes_unbounded(postgres) -> None:
    """A store of schema 2 (varchar columns, keys on names) is migrated on first use: its rows kept,
    the columns text, the keys on names indexes, and a run of long names then appended."""
    import psycopg

    url = postgres.database()
    with psycopg.connect(url) as connection:
        for statement in SCHEMA_1:
            connection.execute(statement.replace("DOUBLE PRECISION", "double precision"))
        connection.execute("ALTER TABLE runs ADD COLUMN branch VARCHAR(200)")
        connection.execute("INSERT INTO meta VALUES ('schema_version', '2')")
        connection.execute("INSERT INTO runs (run_id, started, gate_failed, record_count, regressions, info_json, "
                           "branch) VALUES ('old-run', '2026-10-01T10:00:00+00:00', 0, 0, 0, '{}', 'main')")
    [old] = History(url).runs()  # reading migrates
    assert (old.run_id, old.branch) == ("old-run", "main")
    History(url).append(*_long("run-long"))
    assert [r.run_id for r in History(url).runs()] == ["run-long", "old-run"]
    with psycopg.connect(url) as connection:
        types = set(connection.execute("SELECT data_type FROM information_schema.columns WHERE table_schema = "
                                       "'public' AND data_type LIKE 'character%'"))
        version = connection.execute("SELECT value FROM meta").fetchall()
    assert types == set() and version == [(str(SCHEMA_VERSION),)]
    assert [r.name for r in History(url).records("run-long")] == sorted(LONG_NAMES)


def test_fleet_records_are_the_records_parts_the_nightly_reads(history_at: Path | str) -> None:
    history = _fill(history_at)
    both = make_record("tests/test_p.py::test_both", joules=6.0,
                       devices={"gpu:0": "counter", "cpu:package-0": "counter"})
    judged = Judgement(verdicts=[Verdict(both.name, "energy", "unchanged", 1.0, 0.9, 1.1, 0.05, "default", "gpu same",
                                         True),
                                 Verdict(both.name, "energy:rapl", "regression", 1.3, 1.2, 1.4, 0.05, "default",
                                         "rapl up", True),
                                 Verdict(both.name, "energy", "improvement", 0.5, 0.4, 0.6, 0.05, "other", "", True)],
                       baseline_set="default", fingerprint_id="nvidia-h100-80gb-hbm3-x1-1a2b3c4d")
    history.append(_run("run-3", "2026-11-23T10:00:00+00:00"), [both, make_record("tests/test_p.py::test_a")], judged)
    found = history.fleet_records(["run-3", "run-1", "run-9"])
    assert list(found) == ["run-3", "run-1", "run-9"] and found["run-9"] == []
    full = {run_id: history.records(run_id) for run_id in ("run-3", "run-1")}
    for run_id, records in found.items():
        for light, record in zip(records, full.get(run_id, []), strict=True):
            assert (light.name, light.iterations, light.components, light.fingerprint) == (
                record.name, record.iterations, record.components, record.fingerprint)
    assert [len(c.components) for c in found["run-3"]] == [1, 2] and found["run-3"][0].verdicts == {}
    # Against the run's own baseline set only: the "other" set's improvement is not the nightly's.
    assert found["run-3"][1].verdicts == {"energy": ("unchanged", "gpu same"),
                                          "energy:rapl": ("regression", "rapl up")}
    assert found["run-1"][0].verdicts == {"energy": ("unchanged", "energy unchanged"),
                                          "rougeL": ("unchanged", "rougeL unchanged")}
    # One fingerprint dict per distinct fingerprint of the window, not one per record.
    assert found["run-1"][0].fingerprint is found["run-1"][1].fingerprint


def test_a_schema_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    with sqlite3.connect(path) as connection:
        for statement in SCHEMA_1:
            connection.execute(statement)
        connection.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        connection.execute("INSERT INTO runs (run_id, started, gate_failed, record_count, regressions, info_json) "
                           "VALUES ('old-run', '2026-10-01T10:00:00+00:00', 0, 0, 0, '{}')")
    [old] = History(path).runs()  # reading migrates too: a nightly report needs no run appended first
    assert (old.run_id, old.branch, old.info) == ("old-run", None, {})
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
    History(path).append(dataclasses.replace(_run("new-run", "2026-11-01T10:00:00+00:00"), branch="main"),
                         [make_record()])
    assert [(r.run_id, r.branch) for r in History(path).runs()] == [("new-run", "main"), ("old-run", None)]


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install 'pytest-energy[postgres]'")
    port = free_port()
    url = f"postgresql://energy:secret@127.0.0.1:{port}/history"
    for action in (lambda h: h.append(_run("r", "2026-11-20T10:00:00+00:00"), [make_record()]), lambda h: h.runs()):
        with pytest.raises(HistoryError) as caught:
            action(History(url))
        message = str(caught.value)
        assert message.startswith(f"pytest-energy: history postgresql://energy:***@127.0.0.1:{port}/history "
                                  "cannot be reached (")
        assert "Connection refused" in message and "secret" not in message and "\n" not in message
        assert message.endswith("check that the server runs and the URL, or point --energy-history at a file path")


def test_other_databases_and_empty_servers_are_refused(postgres) -> None:
    with pytest.raises(HistoryError, match="mysql is not supported; give a postgresql://"):
        History("mysql://u@h/db").runs()
    empty = postgres.database()
    with pytest.raises(HistoryError, match=r"no history in postgresql://\S+ yet; run `pytest --energy"):
        History(empty).runs()
    import psycopg

    with psycopg.connect(empty) as connection:
        connection.execute("CREATE TABLE invoices (id integer)")
    with pytest.raises(HistoryError, match="another program's database \\(tables invoices\\)"):
        History(empty).append(_run("r", "2026-11-20T10:00:00+00:00"), [make_record()])


def test_the_branch_is_read_from_git(tmp_path: Path) -> None:
    from pytest_energy.measure.fingerprint import git_branch

    assert git_branch(tmp_path) is None  # outside git
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@x", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q", "-b", "release/1.2"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    assert git_branch(tmp_path) == "release/1.2"
    subprocess.run([*git, "checkout", "-q", "--detach"], check=True)
    assert git_branch(tmp_path) is None  # a detached head, as CI checks out a pull request
