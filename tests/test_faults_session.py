"""Session faults (issue 12): no test outcome, crashed worker or failed gate can read as a pass.

* Only a passed test is judged and baselined: a test that measures and then skips, xfails or
  xpasses is recorded with its outcome and shown as not judged.
* The JSON holds the gate's outcome, its head line, every verdict and the exit status the process
  returns.
* A crashed xdist worker loses only the test it was running (records travel with each test's
  teardown report); the session names the worker and the test, and the gate reads INCOMPLETE.
* The meter's start-up (idle window, reference workload) is paid before the first test, never by a
  test's own duration; a measurement stopped by a failure (a timeout) keeps its record.

The runs measure a CPU package through the fake RAPL tree of test_gate_integration.py, whose counter
advances by exactly the joules each test declares.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ElementTree

import pytest
from test_gate_integration import ARGS, CONFTEST, run_energy

from pytest_energy.store import baselines as store
from pytest_energy.context import record_outcome
from pytest_energy.store.history import History
from pytest_energy.core.record import OUTCOMES
from pytest_energy.session import NOTHING_MEASURED

OUTCOMES_FILE = '''
import pytest

PASSED, OTHERS = {passed}, {others}


def test_passed(energy, package):
    energy.run(package.spend, args=(PASSED,), iterations=1)


def test_skipped(energy, package):
    energy.run(package.spend, args=(OTHERS,), iterations=1)
    pytest.skip("measured, then skipped")


@pytest.mark.xfail(reason="known to fail")
def test_xfailed(energy, package):
    energy.run(package.spend, args=(OTHERS,), iterations=1)
    assert False


@pytest.mark.xfail(reason="expected to fail, but passes")
def test_xpassed(energy, package):
    energy.run(package.spend, args=(OTHERS,), iterations=1)
'''


@pytest.fixture(params=["serial", "xdist"])
def run(request, pytester: pytest.Pytester):
    """Run pytest with --energy on the fake package, serially or with `-n 2`."""
    pytester.makeconftest(CONFTEST)
    workers = ["-n", "2"] if request.param == "xdist" else ["-p", "no:xdist"]

    def go(*extra: str) -> pytest.RunResult:
        # An update run under xdist takes one worker: under -n 2 the workers share the package, whose
        # energy is then never a baseline (issue 25); the judged runs take both.
        recording = request.param == "xdist" and "--energy-update-baselines" in extra
        return run_energy(pytester, *ARGS, *(["-n", "1"] if recording else workers), *extra)

    go.mode = request.param
    return go


def _document(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "out.json").read_text())


def _records(document: dict) -> dict[str, dict]:
    return {r["name"]: r for r in document["records"]}


def test_record_outcome_tells_xfail_and_errors_apart() -> None:
    assert record_outcome("call", "passed", False) == "passed"
    assert record_outcome("call", "failed", False) == "failed"
    assert record_outcome("call", "skipped", False) == "skipped"
    assert record_outcome("call", "skipped", True) == "xfailed"  # pytest reports an xfail as skipped
    assert record_outcome("call", "passed", True) == "xpassed"
    assert record_outcome("teardown", "failed", False) == "error"
    assert record_outcome("setup", "passed", False) == record_outcome("teardown", "passed", False) == ""
    every = {record_outcome(when, outcome, xfail) for when in ("setup", "call", "teardown")
             for outcome in ("passed", "failed", "skipped") for xfail in (False, True)}
    assert every == set(OUTCOMES) | {""}


def test_skipped_and_xfailed_tests_are_recorded_never_judged(run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_outcomes=OUTCOMES_FILE.format(passed=1.0, others=1.0))
    recorded = run("--energy-update-baselines")
    recorded.assert_outcomes(passed=1, skipped=1, xfailed=1, xpassed=1)
    assert recorded.ret == 0
    recorded.stdout.fnmatch_lines(["*1 written, 0 unchanged kept, 3 not written (test not passed, or no valid round)*"])
    [path] = (pytester.path / "baselines").rglob("test_outcomes.py.json")
    assert sorted(store.load_set(path.parent).baselines) == ["test_outcomes.py::test_passed"]

    # The tests that did not pass measure +50 %: neither the gate nor the exit status may notice.
    pytester.makepyfile(test_outcomes=OUTCOMES_FILE.format(passed=1.0, others=1.5))
    result = run("-v")
    result.assert_outcomes(passed=1, skipped=1, xfailed=1, xpassed=1)
    assert result.ret == 0, result.stdout.str()
    assert "regression" not in result.stdout.str()
    shown = {line.strip() for line in result.outlines}
    assert {f"the test {outcome}: not judged" for outcome in ("skipped", "xfailed", "xpassed")} <= shown
    result.stdout.fnmatch_lines(["pytest-energy gate passed: 1 * (set 'default'*"])
    document = _document(pytester)
    outcomes = {name: r["outcome"] for name, r in _records(document).items()}
    assert outcomes == {"test_outcomes.py::test_passed": "passed", "test_outcomes.py::test_skipped": "skipped",
                        "test_outcomes.py::test_xfailed": "xfailed", "test_outcomes.py::test_xpassed": "xpassed"}
    gate = document["gate"]
    assert gate["outcome"] == "passed" and document["session"]["exitstatus"] == 0
    assert gate["not_judged"] == {"test_outcomes.py::test_skipped": "skipped",
                                  "test_outcomes.py::test_xfailed": "xfailed",
                                  "test_outcomes.py::test_xpassed": "xpassed"}
    assert {v["name"] for v in gate["verdicts"]} == {"test_outcomes.py::test_passed"}
    history = History(pytester.path / "reports" / "energy-history.sqlite")
    latest = history.runs(1)[0].run_id
    assert {r.name: r.outcome for r in history.records(latest)} == outcomes
    assert {v["name"] for v in history.verdicts(latest)} == {"test_outcomes.py::test_passed"}


def test_a_failed_gate_exits_1_and_the_json_says_so(run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_outcomes=OUTCOMES_FILE.format(passed=1.0, others=1.0))
    run("--energy-update-baselines").assert_outcomes(passed=1, skipped=1, xfailed=1, xpassed=1)
    pytester.makepyfile(test_outcomes=OUTCOMES_FILE.format(passed=2.0, others=1.0))  # energy doubled
    # One worker under xdist: two would share the package, whose energy then never gates (issue 25).
    result = run(*(["-n", "1"] if run.mode == "xdist" else []))
    assert result.ret == 1
    result.assert_outcomes(passed=1, skipped=1, xfailed=1, xpassed=1)  # the gate alone fails the session
    document = _document(pytester)
    assert document["session"]["exitstatus"] == 1
    gate = document["gate"]
    assert gate["outcome"] == "failed"
    assert gate["head"].startswith("pytest-energy gate FAILED: 1 regression")
    assert gate["head"] in result.stdout.str()
    [verdict] = [v for v in gate["verdicts"] if v["metric"] == "energy"]
    assert verdict["name"] == "test_outcomes.py::test_passed" and verdict["status"] == "regression"
    assert verdict["ratio"] == pytest.approx(2.0, rel=0.05) and verdict["gating"]
    assert History(pytester.path / "reports" / "energy-history.sqlite").runs(1)[0].exitstatus == 1

    pytester.makepyfile(test_outcomes=OUTCOMES_FILE.format(passed=1.0, others=1.0))
    passed = run()
    assert passed.ret == 0
    assert _document(pytester)["session"]["exitstatus"] == 0 and _document(pytester)["gate"]["outcome"] == "passed"


CRASH_FILE = '''
import os

''' + "".join(f'''
def test_{index}(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
''' for index in range(1, 7)) + '''

def test_crash(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
    os._exit(3)
'''


def test_a_crashed_worker_is_named_and_the_gate_is_incomplete(pytester: pytest.Pytester) -> None:
    """xdist only: a serial run that dies takes the whole session with it."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_crash=CRASH_FILE)
    result = pytester.runpytest_subprocess(*ARGS, "-n", "2")
    result.assert_outcomes(passed=6, failed=1)
    assert result.ret == 1
    output = result.stdout.str()
    assert "gate passed" not in output
    lost = re.compile(r"pytest-energy: xdist worker (gw\d+) crashed \(.+\) while running test_crash.py::test_crash: "
                      r"the records that test took are lost and the gate cannot judge it")
    assert len([line for line in result.outlines if lost.search(line)]) == 1, output
    [head] = [line for line in result.outlines if "pytest-energy gate" in line]
    assert head.startswith("pytest-energy gate INCOMPLETE: 1 test failed, 6 new")  # the crashed worker's test
    document = _document(pytester)
    # Every finished test sent its records with its teardown report: none of the six is lost.
    assert sorted(_records(document)) == [f"test_crash.py::test_{i}" for i in range(1, 7)]
    gate = document["gate"]
    assert gate["outcome"] == "incomplete" and gate["head"] == head
    assert len(gate["incomplete"]) == 1 and lost.search(gate["incomplete"][0])
    assert document["session"]["exitstatus"] == 1


def test_a_worker_crashing_after_its_tests_still_fails_closed(pytester: pytest.Pytester) -> None:
    """The worker dies before its end-of-session payload: its tests' records came with their reports,
    but what it measured after them (a session fixture's teardown) cannot be known, so no pass."""
    pytester.makeconftest(CONFTEST + """

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # The worker's own id: PYTEST_XDIST_WORKER may be inherited from a suite that itself runs under xdist.
    if getattr(session.config, "workerinput", {}).get("workerid") == "gw0":
        os._exit(3)
""")
    pytester.makepyfile(test_end="".join(f'''
def test_{index}(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
''' for index in range(1, 5)))
    result = pytester.runpytest_subprocess(*ARGS, "-n", "2")
    result.assert_outcomes(passed=4)
    assert result.ret == 1  # every test passed: the incomplete gate alone fails the session
    result.stdout.fnmatch_lines(["pytest-energy gate INCOMPLETE: 4 new *",
                                 "pytest-energy: xdist worker gw0 crashed (*) outside a test: what it measured after "
                                 "its last test is lost and the gate cannot judge it*"])
    document = _document(pytester)
    assert sorted(_records(document)) == [f"test_end.py::test_{i}" for i in range(1, 5)]
    assert document["gate"]["outcome"] == "incomplete" and document["session"]["exitstatus"] == 1


def test_the_meter_starts_before_the_first_test(run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_quick='''
def test_first(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)


def test_second(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
''')
    idle = 2.0  # the session's idle window: charged to the first test, it would dwarf its real time
    result = run("--energy-idle-seconds", str(idle), "--junitxml", "junit.xml", "--durations", "0", "-vv",
                 "--energy-baselines", "none")
    result.assert_outcomes(passed=2)
    times = {case.get("name"): float(case.get("time"))
             for case in ElementTree.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert set(times) == {"test_first", "test_second"}
    assert all(seconds < idle / 2 for seconds in times.values()), times
    calls = {m.group(2): float(m.group(1)) for m in re.finditer(r"([\d.]+)s call +test_quick.py::(\w+)", result.stdout.str())}
    assert set(calls) == {"test_first", "test_second"} and all(s < idle / 2 for s in calls.values()), calls
    document = _document(pytester)
    assert document["session"]["fingerprint"]["id"] and "cpu:package-0" in document["session"]["idle_watts"]
    # No baselines at all: the gate did not run, and the JSON does not call that a pass.
    assert document["gate"]["outcome"] == "not judged" and document["gate"]["verdicts"] == []
    assert document["gate"]["errors"] == ["pytest-energy: --energy-baselines is none: no baseline compared"]


def test_a_run_that_measures_nothing_starts_no_meter(run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain='''
def test_plain():
    assert 1 + 1 == 2
''')
    result = run("--energy-idle-seconds", "30")  # a started meter would sit in its idle window for 30 s
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{NOTHING_MEASURED}*"])
    document = _document(pytester)
    assert document["records"] == [] and document["gate"]["outcome"] == "nothing measured"
    assert document["session"]["fingerprint"] == {} and document["session"]["idle_watts"] == {}


def test_a_measurement_stopped_by_a_timeout_keeps_its_record(run, pytester: pytest.Pytester) -> None:
    # What pytest-timeout's signal method does: fail the test from inside the code under measure.
    pytester.makepyfile(test_timeout='''
import signal

import pytest


def test_times_out(energy, package):
    def forever():
        package.spend(1.0)
        while True:
            pass

    def timeout(signum, frame):
        pytest.fail("Timeout >0.2s")

    signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    energy.run(forever, iterations=1)


def test_fine(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
''')
    result = run("-v")
    result.assert_outcomes(passed=1, failed=1)
    assert NOTHING_MEASURED not in result.stdout.str()
    records = _records(_document(pytester))
    stopped = records["test_timeout.py::test_times_out"]
    assert stopped["outcome"] == "failed" and stopped["rounds"] == [] and stopped["iterations"] == 0
    assert stopped["notes"] == ["the measurement did not finish (Failed: Timeout >0.2s): no energy figure"]
    assert records["test_timeout.py::test_fine"]["outcome"] == "passed"
    result.stdout.fnmatch_lines(["*the test failed: its verdicts are shown, not gating*"])
    assert _document(pytester)["gate"]["not_judged"] == {"test_timeout.py::test_times_out": "failed"}


def test_the_json_is_written_before_the_gate_judges(pytester: pytest.Pytester) -> None:
    """The first write holds every record and says the gate has not judged: a session killed in a
    later stage leaves no JSON that reads as passed."""
    pytester.makeconftest(CONFTEST + """

import pytest_energy.judge.gate


def _killed_while_judging(*args, **kwargs):
    os._exit(7)


pytest_energy.judge.gate.judge = _killed_while_judging
""")
    pytester.makepyfile(test_one='''
def test_one(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
''')
    result = pytester.runpytest_subprocess(*ARGS, "-p", "no:xdist")
    assert result.ret == 7
    document = _document(pytester)
    assert document["gate"]["outcome"] == "pending" and document["session"]["exitstatus"] == 0
    assert [r["name"] for r in document["records"]] == ["test_one.py::test_one"]


# -- outputs that cannot be written (issue 22, item 9) -----------------------------------------------
ONE_TEST = '''
def test_one(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
'''

# The disk is full: the OS refuses to write a file's data back (fsync gives ENOSPC, as on a full disk).
FULL_DISK = '''

import errno


def _no_space(descriptor):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


os.fsync = _no_space
'''

# The baselines folder is on a read-only file system: creating a folder or opening a file there to
# write (the lock file, the temporary file) fails with EROFS; reading works.
READ_ONLY_BASELINES = '''

import errno

_BASELINES = str(Path(__file__).parent / "baselines")
_open, _mkdir = os.open, os.mkdir


def _read_only(path):
    return OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))


def _open_read_only(path, flags, *args, **kwargs):
    if str(path).startswith(_BASELINES) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        raise _read_only(path)
    return _open(path, flags, *args, **kwargs)


def _mkdir_read_only(path, *args, **kwargs):
    if str(path).startswith(_BASELINES):
        raise _read_only(path)
    return _mkdir(path, *args, **kwargs)


os.open, os.mkdir = _open_read_only, _mkdir_read_only
'''


def _exit_line(what: str) -> str:
    return f"pytest-energy: exit 74: {what} could not be written (see above), so the run fails though its tests passed"


@pytest.mark.parametrize("fault", ["full disk", "under a file"])
def test_a_json_that_cannot_be_written_fails_the_run_with_one_line(run, pytester: pytest.Pytester, fault: str) -> None:
    pytester.makepyfile(test_one=ONE_TEST)
    if fault == "full disk":
        pytester.makeconftest(CONFTEST + FULL_DISK)
        result = run()
        path = pytester.path / "out.json"
        cause = "OSError: [Errno 28] No space left on device"
    else:  # its folder is a file: the OS says so (ENOTDIR / EEXIST), no fake involved
        (pytester.path / "reports").write_text("a file where the JSON's folder would be\n")
        result = run("--energy-json", "reports/out.json")
        path = pytester.path / "reports" / "out.json"
        cause = "FileExistsError: [Errno 17] File exists"
    assert result.ret == 74, result.stdout.str()
    result.assert_outcomes(passed=1)
    failures = [line for line in result.outlines if "could not write" in line]
    assert len(failures) == 1 and failures[0].startswith(f"pytest-energy: could not write the energy JSON: {cause}")
    assert _exit_line("the energy JSON") in result.outlines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not path.exists() and not list(pytester.path.glob(".out.json.*"))  # no temporary file left behind
    [run_row] = History(pytester.path / "reports" / "energy-history.sqlite").runs() if fault == "full disk" else [None]
    assert run_row is None or run_row.exitstatus == 74  # the history row holds the status the process returns


def test_baselines_on_a_read_only_file_system_fail_the_update_run(run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one=ONE_TEST)
    pytester.makeconftest(CONFTEST + READ_ONLY_BASELINES)
    result = run("--energy-update-baselines")
    assert result.ret == 74, result.stdout.str()
    result.assert_outcomes(passed=1)
    folder = pytester.path / "baselines"
    [failure] = [line for line in result.outlines if "could not update" in line]
    assert failure.startswith(f"pytest-energy: could not update baselines: [Errno 30] Read-only file system: "
                              f"'{folder}")
    assert result.outlines[-2:] == [_exit_line("the baselines"), result.outlines[-1]]  # then pytest's summary line
    assert not folder.exists()
    document = _document(pytester)  # the JSON is written after the baselines: it holds the same status
    assert document["session"]["exitstatus"] == 74 and document["gate"]["outcome"] == "passed"
    # Without --energy-update-baselines nothing is asked of the read-only folder: the run passes.
    assert run().ret == 0


@pytest.mark.parametrize("started", ["in a subprocess", "in this process"])
def test_a_file_a_test_rewrites_within_its_second_at_the_same_size_runs_its_new_code(pytester, started: str) -> None:
    """The guard of tests/conftest.py (no bytecode kept of the files tests write), which every test here
    that runs a changed file twice relies on."""
    run = pytester.runpytest_subprocess if started == "in a subprocess" else pytester.runpytest
    path = pytester.makepyfile(test_rewritten="def test_value():\n    assert 1 == 1\n")
    run("-p", "no:cacheprovider").assert_outcomes(passed=1)
    written = path.stat()
    pytester.makepyfile(test_rewritten="def test_value():\n    assert 1 == 2\n")
    os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns))  # the same second and size
    run("-p", "no:cacheprovider").assert_outcomes(failed=1)
