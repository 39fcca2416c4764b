"""Faults of the stores and of record names: a repeated label, a locked, read-only or interrupted
history, a FIFO among the baselines, a baselines path that is a file, and lock files. Each gives its
own one line, loses no record, and never hangs the run or leaves files behind.

The `pytest --energy` runs measure through the fake RAPL tree of test_gate_integration (the one
hardware boundary), serially and with `-n 2`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from pytest_energy.testing.records import make_record, make_run_info
from test_gate_integration import ARGS, CONFTEST, run_energy

from pytest_energy.store import baselines as store
from pytest_energy.store.history import engine as history_engine
from pytest_energy.store import locking
from pytest_energy.core.config import resolve
from pytest_energy import context as energy_context
from pytest_energy.judge.gate import Judgement, append_history
from pytest_energy.store.history import History, HistoryError
from pytest_energy.store.locking import LockTimeout, lock_file, locked

HISTORY = Path("reports") / "energy-history.sqlite"
LINUX = sys.platform.startswith("linux")


@pytest.fixture(params=["serial", "xdist"])
def workers(request: pytest.FixtureRequest) -> list[str]:
    return ["-n", "2"] if request.param == "xdist" else []


def _updating(workers: list[str]) -> list[str]:
    """An update run under xdist takes one worker: under -n 2 the workers share the fake package, whose
    energy is then never a baseline (issue 25)."""
    return ["-n", "1"] if workers else []


def _records(folder: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads((folder / "out.json").read_text())["records"]}


def _seed(path: Path) -> None:
    """A history holding one earlier run."""
    History(path).append(make_run_info("seed-run"), [make_record("tests/test_old.py::test_old")], None)


def _holder_of(pid: int) -> str:
    """How a lock line names a holder: its pid where the OS says (Linux), else "another process"."""
    return f"pid {pid} (" if LINUX else "another process"


# -- record names ---------------------------------------------------------------------------------
def test_repeated_names_get_suffixes_that_never_meet_a_later_label() -> None:
    context = energy_context.TestContext("t.py::test_a", None, {})
    names = [context.name_for(label) for label in ("x", "x", "x#2", "", "", "x", "x#3")]
    assert names == ["t.py::test_a::x", "t.py::test_a::x#2", "t.py::test_a::x#2#2", "t.py::test_a",
                     "t.py::test_a#2", "t.py::test_a::x#3", "t.py::test_a::x#3#2"]
    # Names without a clash are the ones committed baselines already use.
    other = energy_context.TestContext("t.py::test_b", None, {})
    assert [other.name_for(label) for label in ("x#2", "x", "x")] == [
        "t.py::test_b::x#2", "t.py::test_b::x", "t.py::test_b::x#3"]


DUPLICATE_LABELS = '''
def test_labels(energy, package):
    for joules in (1.0, 2.0):
        energy.run(package.spend, args=(joules,), iterations=1, label="x")
    energy.run(package.spend, args=(4.0,), iterations=1, label="x#2")


def test_other(energy, package):
    energy.run(package.spend, args=(0.5,), iterations=1, label="x")
'''


def test_a_label_like_a_repeat_keeps_every_record(pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_names=DUPLICATE_LABELS)
    result = run_energy(pytester, *ARGS, *_updating(workers), "--energy-update-baselines")
    result.assert_outcomes(passed=2)
    assert result.ret == 0, result.stdout.str()
    assert "bug" not in result.stdout.str() and "not a usable" not in result.stdout.str()
    joules = {"test_names.py::test_labels::x": 1.0, "test_names.py::test_labels::x#2": 2.0,
              "test_names.py::test_labels::x#2#2": 4.0, "test_names.py::test_other::x": 0.5}
    records = _records(pytester.path)
    assert sorted(records) == sorted(joules)
    for name, spent in joules.items():  # each record is its own measurement, none overwritten
        assert records[name]["per_iteration_net_joules"] == pytest.approx(spent, rel=0.1)
    history = History(pytester.path / HISTORY)
    [run] = history.runs()
    assert sorted(r.name for r in history.records(run.run_id)) == sorted(joules)
    [path] = (pytester.path / "baselines").rglob("test_names.py.json")
    stored = json.loads(path.read_text())["records"]
    assert sorted(stored) == sorted(joules)
    [energy] = stored["test_names.py::test_labels::x#2#2"]["energy"].values()  # its one device kind
    assert energy["per_iteration_net_joules"] == pytest.approx(4.0, rel=0.1)


def test_repeated_names_in_one_run_are_a_bug_line_and_nothing_stored(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    _seed(path)
    twins = [make_record("t.py::test_a"), make_record("t.py::test_a")]
    with pytest.raises(HistoryError) as caught:
        History(path).append(make_run_info("run-2"), twins, None)
    message = str(caught.value)
    assert "1 record names repeat in run run-2 (first 't.py::test_a')" in message
    assert "this is a pytest-energy bug, please report it" in message and "move it aside" not in message
    assert [r.run_id for r in History(path).runs()] == ["seed-run"]


# -- a locked history -----------------------------------------------------------------------------
HOLD_SQLITE = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
               "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); sys.stdin.read()")


@contextmanager
def _held(path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the store's write lock until the block ends (as a second session would)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SQLITE, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_locked_history_says_who_holds_it_while_waiting_and_when_it_gives_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "history.sqlite"
    _seed(path)
    monkeypatch.setattr(history_engine, "LOCK_WAIT_SECONDS", 1.5)
    monkeypatch.setattr(history_engine, "LOCK_NOTICE_SECONDS", 0.3)
    notices: list[str] = []
    with _held(path) as holder:
        started = time.monotonic()
        with pytest.raises(HistoryError) as caught:
            History(path, notify=notices.append).append(make_run_info("run-2"), [make_record()], None)
        waited = time.monotonic() - started
    message = str(caught.value)
    assert f"history {path} is locked by {_holder_of(holder.pid)}" in message
    assert "for over 1.5 s; end or wait for that process" in message and "move it aside" not in message
    assert 1.5 <= waited < 10
    assert len(notices) == 1
    assert notices[0].startswith(f"pytest-energy: history {path} is locked by {_holder_of(holder.pid)}")
    assert notices[0].endswith("waiting up to 1.5 s (Ctrl-C gives up on the history)")
    assert [r.run_id for r in History(path).runs()] == ["seed-run"]  # and the store is intact


def test_locked_history_is_one_line_of_append_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "history.sqlite"
    _seed(path)
    monkeypatch.setattr(history_engine, "LOCK_WAIT_SECONDS", 0.5)
    settings = resolve(True, {}, lambda name: None, environ={})
    settings.values.update(history=str(path))
    with _held(path) as holder:
        lines = append_history([make_record()], Judgement(rootdir=str(tmp_path)), settings, make_run_info("run-2"))
    [line] = lines
    assert line.startswith(f"pytest-energy: history {path} is locked by {_holder_of(holder.pid)}")
    assert line.count("pytest-energy") == 1 and line.endswith("(run run-2 not appended)")


def test_a_waiting_append_goes_on_once_the_lock_is_released(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    _seed(path)
    with _held(path) as holder:
        threading.Timer(0.5, holder.stdin.close).start()  # the other session finishes its write
        History(path, notify=pytest.fail).append(make_run_info("run-2"), [make_record()], None)
    assert sorted(r.run_id for r in History(path).runs()) == ["run-2", "seed-run"]


def _start(pytester: pytest.Pytester, *extra: str) -> tuple[subprocess.Popen, queue.Queue]:
    """`pytest --energy` in the background, its stderr lines arriving in a queue (None at the end)."""
    # Ctrl-C reaches the session as it would from a terminal: a test run started in the background by a
    # shell without job control (`pytest ... &`) has SIGINT ignored, and its children inherit that.
    process = pytester.popen([sys.executable, "-m", "pytest", *ARGS, *extra], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def _wait_for(lines: queue.Queue, text: str, timeout: float = 120) -> list[str]:
    """The stderr lines up to the first holding ``text``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, f"the run ended without {text!r}: {''.join(seen)}"
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} within {timeout} s: {''.join(seen)}")


def _rest(lines: queue.Queue) -> str:
    rest = []
    while (line := lines.get(timeout=60)) is not None:
        rest.append(line)
    return "".join(rest)


GATED = '''
def test_measured(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
'''


LONG_ID = '''
import pytest

@pytest.mark.parametrize("prompt", ["p" * 1200])
def test_long(energy, package, prompt):
    energy.run(package.spend, args=(1.0,), iterations=1)
'''


def test_a_long_parametrised_id_is_appended_to_either_store(pytester: pytest.Pytester, workers: list[str],
                                                            history_at: Path | str) -> None:
    """PostgreSQL dropped the run (varchar(1000)) that SQLite kept: the same on both now."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_long=LONG_ID)
    result = run_energy(pytester, *ARGS, *workers, "--energy-history", str(history_at))
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 0 and "appended to history" in output and "not appended" not in output, output
    name = f"test_long.py::test_long[{'p' * 1200}]"
    assert list(_records(pytester.path)) == [name]
    [run] = History(history_at).runs()
    assert [r.name for r in History(history_at).records(run.run_id)] == [name]


def test_run_waits_for_a_locked_history_and_says_so(pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_wait=GATED)
    path = pytester.path / HISTORY
    path.parent.mkdir()
    _seed(path)
    with _held(path) as holder:
        process, lines = _start(pytester, *workers)
        seen = _wait_for(lines, "is locked by")
        holder.stdin.close()  # the other session ends: this run's row goes in
        stdout, _ = process.communicate(timeout=120)
    stderr = "".join(seen) + _rest(lines)
    assert process.returncode == 0, stdout + stderr
    assert f"pytest-energy: history {path} is locked by {_holder_of(holder.pid)}" in seen[-1]
    assert "Traceback" not in stdout + stderr
    assert "appended to history" in stdout
    assert sorted(r.run_id for r in History(path).runs())[-1] == "seed-run" and len(History(path).runs()) == 2


def test_ctrl_c_while_history_is_locked_is_one_line_and_keeps_the_report(
        pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_wait=GATED)
    path = pytester.path / HISTORY
    path.parent.mkdir()
    _seed(path)
    with _held(path) as holder:
        process, lines = _start(pytester, *workers, "--energy-report", "report.html")
        _wait_for(lines, "is locked by")
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=120)
    stderr = _rest(lines)
    assert "Traceback" not in stdout + stderr and "KeyboardInterrupt" not in stdout + stderr
    [line] = [line for line in stdout.splitlines() if "interrupted" in line]
    assert line.startswith(f"pytest-energy: history {path}: interrupted while it was locked by "
                           f"{_holder_of(holder.pid)}")
    assert line.endswith(" not appended)") and "; nothing written to it (run " in line
    assert "1 passed" in stdout
    assert "<html" in (pytester.path / "report.html").read_text()[:500].lower()
    assert [r.run_id for r in History(path).runs()] == ["seed-run"]
    assert "test_wait.py::test_measured" in _records(pytester.path)


# -- a read-only history --------------------------------------------------------------------------
@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for this user: its mode, or for root (whom modes do not stop) the immutable flag."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root where `chattr +i` is not available: no way to make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_history_says_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    _seed(path)
    with _read_only(path):
        with pytest.raises(HistoryError) as caught:
            History(path).append(make_run_info("run-2"), [make_record()], None)
        assert [r.run_id for r in History(path).runs()] == ["seed-run"]  # reading still works
    message = str(caught.value)
    assert message.startswith(f"pytest-energy: history {path} is read-only (attempt to write a readonly database)")
    assert f"chmod u+w {path} {tmp_path}" in message and "move it aside" not in message and "\n" not in message


def test_history_in_a_read_only_folder_says_how_to_fix_it(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    path = folder / "history.sqlite"
    folder.mkdir()
    _seed(path)
    with _read_only(folder):  # the store is writable, but SQLite cannot put its journal beside it
        with pytest.raises(HistoryError) as caught:
            History(path).append(make_run_info("run-2"), [make_record()], None)
    message = str(caught.value)
    assert message.startswith(f"pytest-energy: history {path} cannot be opened (unable to open database file)")
    assert f"chmod u+rwx {folder}" in message and "move it aside" not in message
    assert [r.run_id for r in History(path).runs()] == ["seed-run"]


def test_run_with_a_read_only_history_keeps_its_records(pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_wait=GATED)
    path = pytester.path / HISTORY
    path.parent.mkdir()
    _seed(path)
    with _read_only(path):
        result = run_energy(pytester, *ARGS, *workers)
    assert result.ret == 0
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if str(path) in line]
    assert len(lines) == 1 and "is read-only" in lines[0] and "chmod u+w" in lines[0], result.stdout.str()
    assert lines[0].count("pytest-energy") == 1
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "test_wait.py::test_measured" in _records(pytester.path)


# -- the baselines folder -------------------------------------------------------------------------
def _in_thread(action, timeout: float = 20):
    """``action()``'s result, failing (not hanging) where it does not return within ``timeout``."""
    results: list = []
    thread = threading.Thread(target=lambda: results.append(action()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "hung: a FIFO was opened as a baseline file"
    return results[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_a_fifo_among_baselines_is_skipped_with_a_line(tmp_path: Path) -> None:
    folder = store.set_folder(tmp_path / "baselines", "default")
    store.update(folder, [store.from_record(make_record("tests/test_a.py::test_a"))])
    fifo = folder / "tests" / "test_b.py.json"
    os.mkfifo(fifo)
    loaded = _in_thread(lambda: store.load_set(folder))
    assert list(loaded.baselines) == ["tests/test_a.py::test_a"]
    assert loaded.errors == [f"pytest-energy: skipped {fifo}: a FIFO, not a regular file; baselines are read "
                             "from regular files only (move it aside)"]
    assert loaded.broken == [fifo]
    update = _in_thread(lambda: store.update(folder, [store.from_record(make_record("tests/test_b.py::test_b"))]))
    assert update.refused == ["tests/test_b.py::test_b"] and update.errors == loaded.errors
    assert fifo.is_fifo()  # left as it is


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_run_with_a_fifo_in_baselines_does_not_hang(pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_wait=GATED)
    run_energy(pytester, *ARGS, *_updating(workers), "--energy-update-baselines").assert_outcomes(passed=1)
    [recorded] = (pytester.path / "baselines").rglob("test_wait.py.json")
    fifo = recorded.with_name("test_gone.py.json")
    os.mkfifo(fifo)
    result = pytester.runpytest_subprocess(*ARGS, *workers, timeout=120)
    # An unreadable baseline file may hold this run's baselines, so the gate cannot pass (INCOMPLETE, exit 1).
    assert result.ret == 1, result.stdout.str()
    result.assert_outcomes(passed=1)
    assert any("gate INCOMPLETE" in line and "1 baseline file unreadable" in line for line in result.outlines)
    assert [line for line in result.outlines if "skipped" in line] == [
        f"pytest-energy: skipped {fifo}: a FIFO, not a regular file; baselines are read from regular files only "
        "(move it aside)"]
    [run] = History(pytester.path / HISTORY).runs(1)
    energy = [v for v in History(pytester.path / HISTORY).verdicts(run.run_id) if v["metric"] == "energy"]
    assert [v["status"] for v in energy] != ["new"]  # the regular file next to the FIFO was read


def test_baselines_path_that_is_a_file_is_one_line(pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_wait=GATED)
    in_the_way = pytester.path / "baselines.txt"
    in_the_way.write_text("notes, not baselines\n")
    result = run_energy(pytester, *ARGS, *_updating(workers), "--energy-baselines", "baselines.txt",
                                           "--energy-update-baselines")
    assert result.ret == 74, result.stdout.str()  # the update asked for could not be written (issue 22, item 9)
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if "is a file, not a folder" in line]
    assert lines == [f"pytest-energy: the baselines path {in_the_way} is a file, not a folder: no baseline can be "
                     "read or written there; point --energy-baselines at a folder, or move the file aside"]
    result.stdout.fnmatch_lines(["*0 written, 0 unchanged kept, 1 refused*",
                                 "pytest-energy: exit 74: the baselines could not be written (see above)*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert in_the_way.read_text() == "notes, not baselines\n"


def test_baselines_folder_under_a_file_is_refused_on_update(tmp_path: Path) -> None:
    (tmp_path / "baselines").write_text("x")
    folder = store.set_folder(tmp_path / "baselines", "default")
    loaded = store.load_set(folder)
    assert loaded.broken == [tmp_path / "baselines"] and len(loaded.errors) == 1
    update = store.update(folder, [store.from_record(make_record("tests/test_a.py::test_a"))])
    assert update.errors == loaded.errors and update.refused == ["tests/test_a.py::test_a"] and not update.written


# -- lock files -----------------------------------------------------------------------------------
def test_lock_files_do_not_pile_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    project = tmp_path / "project"
    targets = [project / f"f{i}.json" for i in range(20)] + [project / "reports"]
    for target in targets:
        with locked(target):
            assert lock_file(target) == target.with_name(f".{target.name}.lock") and lock_file(target).exists()
    assert list(project.iterdir()) == [] and list(temporary.iterdir()) == []
    folder = store.set_folder(project / "baselines", "default")
    store.update(folder, [store.from_record(make_record(f"tests/test_{i}.py::test")) for i in range(5)])
    assert sorted(p.name for p in (folder / "tests").iterdir()) == [f"test_{i}.py.json" for i in range(5)]
    assert list(temporary.iterdir()) == []


def test_a_lock_file_left_by_a_killed_writer_is_taken_and_removed(tmp_path: Path) -> None:
    target = tmp_path / "thing.json"
    lock_file(target).write_text("999999999\n")  # a holder killed mid-write: the OS has dropped its lock
    with locked(target, wait=1):
        assert lock_file(target).read_text() == f"{os.getpid()}\n"
    assert not lock_file(target).exists()


def _count(target: str, times: int) -> None:
    for _ in range(times):
        with locked(Path(target)):
            value = int(Path(target).read_text()) if Path(target).exists() else 0
            time.sleep(0.001)  # widen the read-modify-write window a lost update would fall into
            locking.atomic_write_text(Path(target), f"{value + 1}\n")


def test_removing_lock_files_keeps_writers_exclusive(tmp_path: Path) -> None:
    target = tmp_path / "counter.txt"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_count, args=(str(target), 40)) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    assert target.read_text() == "160\n"  # no increment lost while lock files came and went
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter.txt"]


def test_a_lock_held_too_long_names_its_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locking, "LOCK_NOTICE_SECONDS", 0.2)
    folder = store.set_folder(tmp_path / "baselines", "default")
    blocked = store.file_for(folder, "tests/test_a.py::test_a")
    context = multiprocessing.get_context("fork")
    entered, release = context.Event(), context.Event()

    def hold() -> None:
        with locked(blocked):
            entered.set()
            release.wait(60)

    child = context.Process(target=hold)
    child.start()
    try:
        assert entered.wait(30)
        notices: list[str] = []
        with pytest.raises(LockTimeout) as caught:
            with locked(blocked, wait=0.6, notify=notices.append):
                pass
        assert str(caught.value).startswith(f"pytest-energy: {blocked} is locked by pid {child.pid}")
        assert "for over 0.6 s; end or wait for that process" in str(caught.value)
        [notice] = notices
        assert notice.startswith(f"pytest-energy: {blocked} is locked by pid {child.pid}")
        assert notice.endswith("; waiting up to 0.6 s")
        # update() refuses the locked file alone and writes the others.
        monkeypatch.setattr(locking, "LOCK_WAIT_SECONDS", 0.5)
        result = store.update(folder, [store.from_record(make_record(name))
                                       for name in ("tests/test_a.py::test_a", "tests/test_b.py::test_b")])
        assert result.refused == ["tests/test_a.py::test_a"] and list(result.written) == ["tests/test_b.py::test_b"]
        assert len(result.errors) == 1 and f"is locked by pid {child.pid}" in result.errors[0]
    finally:
        release.set()
        child.join(30)
