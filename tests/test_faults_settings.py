"""Faults in settings: every bad value is one usage line naming its source (exit 4) or fails only its own
test; outputs never write over each other or a store; a project's own `energy` marker or fixture is left
alone. Where the session is involved the run is serial and under pytest-xdist (`-n 2`)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pytest_energy.commands import cli
from pytest_energy.core.config import INI_UNSET, SettingError, resolve

FAST = ["--energy-min-window", "0.02", "--energy-rounds", "3", "--energy-warmup", "1",
        "--energy-idle-seconds", "0.05", "--energy-report", "none", "-p", "no:cacheprovider"]

WORK = """
import pytest

def work(n=20000):
    return sum(i * i for i in range(n))
"""

USED = WORK + """
def test_sum(energy):
    energy(work)
"""


@pytest.fixture(params=["serial", "xdist"])
def mode(request) -> list[str]:
    return ["-p", "no:xdist"] if request.param == "serial" else ["-n", "2"]


def _usage_line(result: pytest.RunResult) -> str:
    """The one line a usage error prints; there must be exactly one, and no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert "Traceback" not in result.stderr.str() and "Traceback" not in result.stdout.str()
    assert len(errors) == 1, errors
    return errors[0]


# -- numbers: finite and in range, from every source -------------------------------------------------
BAD_NUMBERS = [
    ("min_window", "inf", "seconds > 0 and <= 600"),
    ("min_window", "nan", "seconds > 0 and <= 600"),
    ("min_window", "0", "seconds > 0 and <= 600"),
    ("min_window", "601", "seconds > 0 and <= 600"),
    ("idle_seconds", "inf", "seconds > 0 and <= 600"),
    ("idle_seconds", "-1", "seconds > 0 and <= 600"),
    ("pue", "inf", "a number >= 1.0 and <= 5"),
    ("pue", "5.5", "a number >= 1.0 and <= 5"),
    ("carbon_intensity", "1e400", "gCO2eq per kWh, a number >= 0 and <= 2000"),
    ("carbon_intensity", "-inf", "gCO2eq per kWh, a number >= 0 and <= 2000"),
    ("carbon_intensity", "2001", "gCO2eq per kWh, a number >= 0 and <= 2000"),
    ("rounds", "1001", "an integer >= 1 and <= 1000"),
    ("rounds", "1e3", "an integer >= 1 and <= 1000"),
    ("warmup", "10001", "an integer >= 0 and <= 10000"),
    ("min_effect", "inf", "a fraction >= 0 and <= 1 such as 0.05"),
    ("min_effect", "nan", "a fraction >= 0 and <= 1 such as 0.05"),
]


@pytest.mark.parametrize("where", ["cli", "env", "ini"])
@pytest.mark.parametrize("name, value, expected", BAD_NUMBERS)
def test_a_number_out_of_range_is_one_usage_line_naming_its_source(pytester, monkeypatch, where, name, value,
                                                                   expected):
    pytester.makepyfile(USED)
    args = ["--energy", "-p", "no:cacheprovider", "-p", "no:xdist"]
    if where == "cli":
        source = f"--energy-{name.replace('_', '-')}"
        args.append(f"{source}={value}")  # "-inf" would read as an option
    elif where == "env":
        monkeypatch.setenv(f"PYTEST_ENERGY_{name.upper()}", value)
        source = f"PYTEST_ENERGY_{name.upper()}"
    else:
        pytester.makeini(f"[pytest]\nenergy_{name} = {value}\n")
        source = f"ini energy_{name}"
    line = _usage_line(pytester.runpytest(*args))
    assert line == f"ERROR: pytest-energy: {source} has '{value}', expected {expected}"


def test_the_bounds_themselves_are_accepted():
    settings = resolve(True, {"energy_min_window": "600", "energy_idle_seconds": "1e-3", "energy_pue": "5",
                              "energy_carbon_intensity": "0", "energy_rounds": "1000", "energy_warmup": "0",
                              "energy_min_effect": "1"}, lambda name: None, environ={})
    assert (settings.min_window, settings.idle_seconds, settings.pue, settings.carbon_intensity,
            settings.rounds, settings.warmup, settings.min_effect) == (600.0, 1e-3, 5.0, 0.0, 1000, 0, 1.0)


@pytest.mark.parametrize("args", [["--energy-min-window", "inf"], ["--energy-devices", "bogus"]])
def test_infinite_window_and_bogus_devices_stop_the_run_at_once(pytester, args):
    """The issue's check: no hang (a window of inf never fills), no test run, exit 4 at configure."""
    pytester.makepyfile(USED)
    result = pytester.runpytest_subprocess("--energy", "-p", "no:cacheprovider", *args, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_sum" not in result.stdout.str() and "passed" not in result.stdout.str()
    assert f"ERROR: pytest-energy: {args[0]} has '{args[1]}'" in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


# -- marker overrides: the same checks, failing only their own test ------------------------------------
def test_bad_marker_numbers_fail_only_their_test_with_one_line(pytester, mode):
    pytester.makepyfile(WORK + """
@pytest.mark.energy(min_window=float("inf"))
def test_endless(energy):
    energy(work)

@pytest.mark.energy(rounds=600_000)
def test_too_many_rounds(energy):
    energy(work)

@pytest.mark.energy(warmup=-1)
def test_negative_warmup():
    work()

@pytest.mark.energy(min_window="nan")
def test_nan_window(energy):
    energy(work)

@pytest.mark.energy(rounds=2)
def test_fine(energy):
    energy(work)
""")
    result = pytester.runpytest("--energy", "--energy-json", "out.json", *FAST, *mode)
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines_random([
        "*pytest-energy: energy marker min_window has inf, expected seconds > 0 and <= 600",
        "*pytest-energy: energy marker rounds has 600000, expected an integer >= 1 and <= 1000",
        "*pytest-energy: energy marker warmup has -1, expected an integer >= 0 and <= 10000",
        "*pytest-energy: energy marker min_window has 'nan', expected seconds > 0 and <= 600",
    ])
    assert "Traceback" not in result.stdout.str()
    document = json.loads((pytester.path / "out.json").read_text())
    [record] = document["records"]  # the bad markers measured nothing; the fine test kept its two rounds
    assert record["name"].endswith("::test_fine") and len(record["rounds"]) == 2


# -- devices ------------------------------------------------------------------------------------------
def test_bogus_devices_list_the_valid_names_and_the_devices_found(pytester, monkeypatch, tmp_path):
    from pytest_energy.testing import FakeGpu, install_fake_nvml, make_powercap

    nvml = install_fake_nvml(monkeypatch, [FakeGpu(power=80.0)])
    powercap = make_powercap(tmp_path)
    pytester.makepyfile(USED)
    line = _usage_line(pytester.runpytest("--energy", "--energy-devices", "gpu:0,bogus", "--energy-powercap",
                                          str(powercap.root), "-p", "no:cacheprovider", "-p", "no:xdist"))
    assert line == ("ERROR: pytest-energy: --energy-devices has 'gpu:0,bogus' (unknown device 'bogus': expected "
                    "auto, gpu, gpu:N, gpu:UUID, cpu or ram); found on this machine: "
                    "gpu:0 (NVIDIA H100 80GB HBM3, counter), cpu (counter), ram (counter)")
    assert nvml.calls["nvmlInit"] == 1 and nvml.init_count == 0  # listed, then shut down again
    # A bad name from any source; where measurement is off the setting is not used, and NVML not touched.
    monkeypatch.setenv("PYTEST_ENERGY_DEVICES", "cpu:0")
    line = _usage_line(pytester.runpytest("--energy", "--energy-powercap", str(powercap.root),
                                          "-p", "no:cacheprovider", "-p", "no:xdist"))
    assert line.startswith("ERROR: pytest-energy: PYTEST_ENERGY_DEVICES has 'cpu:0' (device 'cpu:0': only GPUs take "
                           "an index or UUID); found on this machine: gpu:0 (NVIDIA H100 80GB HBM3, counter)")
    assert nvml.calls["nvmlInit"] == 2
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist").assert_outcomes(passed=1)
    assert nvml.calls["nvmlInit"] == 2


def test_devices_naming_no_device_is_a_usage_error(pytester):
    pytester.makepyfile(USED)
    pytester.makeini("[pytest]\nenergy_devices = ,\n")
    line = _usage_line(pytester.runpytest("--energy", "-p", "no:cacheprovider", "-p", "no:xdist"))
    assert line.startswith("ERROR: pytest-energy: ini energy_devices has ',' (it names no device: expected auto, "
                           "gpu, gpu:N, gpu:UUID, cpu or ram); found on this machine: ")


# -- outputs never write over each other or a store ---------------------------------------------------
def _store(path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE runs (run_id TEXT)")
    connection.close()
    return path.read_bytes()


@pytest.mark.parametrize("args, expected", [
    (["--energy-json", "reports/energy-history.sqlite"],
     "--energy-json and --energy-history (default) both name {root}/reports/energy-history.sqlite: "
     "give each output a path of its own"),
    (["--energy-csv", "reports/energy-report.html", "--energy-report", "reports/energy-report.html"],
     "--energy-report and --energy-csv both name {root}/reports/energy-report.html: give each output a path of "
     "its own"),
    (["--energy-model-card", "baselines"],
     "--energy-model-card and --energy-baselines (default) both name {root}/baselines: give each output a path "
     "of its own"),
    (["--energy-json", "old.sqlite", "--energy-history", "none"],
     "--energy-json names {root}/old.sqlite, an SQLite store (a history?): it is never written over; give another "
     "path"),
    (["--energy-report", "reports"],
     "--energy-report names the folder {root}/reports: give a file path"),
    (["--energy-json", "baselines/hw/default/test_x.py.json"],
     "--energy-json names {root}/baselines/hw/default/test_x.py.json, inside the baselines folder "
     "{root}/baselines: give a path outside it"),
])
def test_an_output_naming_another_output_or_a_store_is_refused(pytester, args, expected):
    history = _store(pytester.path / "reports" / "energy-history.sqlite")
    old = _store(pytester.path / "old.sqlite")
    (pytester.path / "baselines" / "hw" / "default").mkdir(parents=True)
    pytester.makepyfile(USED)
    result = pytester.runpytest("--energy", "-p", "no:cacheprovider", "-p", "no:xdist", *args)
    line = _usage_line(result)
    assert line == "ERROR: pytest-energy: " + expected.format(root=pytester.path)
    assert (pytester.path / "reports" / "energy-history.sqlite").read_bytes() == history
    assert (pytester.path / "old.sqlite").read_bytes() == old


def test_outputs_are_checked_only_when_measuring(pytester):
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--energy-json", "reports/energy-history.sqlite", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_nightly_report_never_writes_over_a_store_or_a_folder(tmp_path, capsys):
    history = tmp_path / "energy-history.sqlite"
    before = _store(history)
    other = tmp_path / "other.sqlite"
    _store(other)
    cases = {
        str(history): f"pytest-energy: --out {history} is the history store read (--history): give another path",
        str(other): f"pytest-energy: --out names {other}, an SQLite store (a history?): it is never written over; "
                    "give another path",
        str(tmp_path): f"pytest-energy: --out names the folder {tmp_path}: give a file path",
    }
    for out, expected in cases.items():
        assert cli.main(["report", "--history", str(history), "--out", out]) == 2
        captured = capsys.readouterr()
        assert captured.err == expected + "\n" and captured.out == ""
    assert history.read_bytes() == before


# -- one rule for an empty value, from every source ---------------------------------------------------
@pytest.mark.parametrize("where", ["cli", "env", "ini"])
def test_an_empty_value_turns_an_output_off_and_leaves_other_options_unset(pytester, monkeypatch, where):
    pytester.makepyfile(USED)
    args = ["--energy", "--energy-json", "out.json", "--energy-devices", "cpu", "--energy-min-window", "0.02",
            "--energy-idle-seconds", "0.05", "-p", "no:cacheprovider", "-p", "no:xdist"]
    if where == "cli":
        args += ["--energy-report", "", "--energy-history", "", "--energy-warmup", ""]
    elif where == "env":
        for name in ("REPORT", "HISTORY", "WARMUP"):
            monkeypatch.setenv(f"PYTEST_ENERGY_{name}", "")
    else:
        pytester.makeini("[pytest]\nenergy_report =\nenergy_history =\nenergy_warmup =\n")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    settings = json.loads((pytester.path / "out.json").read_text())["session"]["settings"]
    assert (settings["report"], settings["history"], settings["warmup"]) == (None, None, 3)
    assert not (pytester.path / "reports").exists()


def test_absent_ini_keys_keep_the_defaults():
    ini = {"energy_report": ""}
    settings = resolve(True, {}, lambda name: ini.get(name, INI_UNSET), environ={})
    assert settings.report is None and settings.sources["report"] == "ini energy_report"
    assert settings.history == "reports/energy-history.sqlite" and settings.sources["history"] == "default"
    assert resolve(True, {"energy_csv": "NONE"}, lambda name: INI_UNSET, environ={}).csv is None


def test_a_marker_override_error_names_the_keyword():
    settings = resolve(True, {}, lambda name: None, environ={})
    with pytest.raises(SettingError, match=r"^pytest-energy: energy marker rounds has 0, expected an integer >= 1"):
        settings.with_overrides({"rounds": 0}, "energy marker")


# -- a project's own `energy` marker or fixture -------------------------------------------------------
FOREIGN = WORK + """
@pytest.mark.energy(level="high")
def test_their_marker():
    work()

@pytest.mark.energy(level="low")
def test_their_marker_with_our_fixture(energy):
    assert energy(work) == work()

@pytest.mark.energy(rounds=2)
def test_our_marker(energy):
    energy(work)
"""


def test_a_project_marker_of_its_own_is_left_alone_and_said_once(pytester, mode):
    pytester.makeconftest("""
def pytest_configure(config):
    config.addinivalue_line("markers", "energy(level): how much energy the test may use")
""")
    pytester.makepyfile(FOREIGN)
    result = pytester.runpytest("--energy", "--energy-json", "out.json", "--strict-markers", *FAST, *mode)
    result.assert_outcomes(passed=3)
    output = result.stdout.str()
    assert "unknown keyword" not in output and "Traceback" not in output
    line = ("pytest-energy: this project registers its own `energy` marker ('energy(level): how much energy the "
            "test may use'): pytest-energy leaves alone the 2 test(s) whose `energy` marker is not pytest-energy's "
            "(test_a_project_marker_of_its_own_is_left_alone_and_said_once.py::test_their_marker, "
            "test_a_project_marker_of_its_own_is_left_alone_and_said_once.py::test_their_marker_with_our_fixture); "
            "rename yours to measure them")
    assert output.count(line) == 1
    [record] = json.loads((pytester.path / "out.json").read_text())["records"]  # ours is still measured
    assert record["name"].endswith("::test_our_marker") and len(record["rounds"]) == 2


def test_without_a_registration_an_unknown_keyword_is_still_a_typo(pytester):
    pytester.makepyfile(FOREIGN)
    result = pytester.runpytest("--energy", *FAST, "-p", "no:xdist", "--energy-devices", "cpu")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*energy marker: unknown keyword 'level'*"])


def test_a_project_fixture_of_its_own_is_left_alone_and_said_once(pytester, mode):
    pytester.mkpydir("theirs").joinpath("conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef energy():\n    return \"the project's own\"\n")
    pytester.path.joinpath("theirs", "test_theirs.py").write_text("""
import pytest

@pytest.mark.energy(budget="1 uJ")
def test_marked(energy):
    assert energy == "the project's own"

def test_plain(energy):
    assert energy == "the project's own"
""")
    # An override built on pytest-energy's fixture is pytest-energy's: its test is measured.
    pytester.mkpydir("wrapped").joinpath("conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef energy(energy):\n    return energy\n")
    pytester.path.joinpath("wrapped", "test_wrapped.py").write_text(
        "def test_measured(energy):\n    energy(sum, range(1000))\n")
    result = pytester.runpytest("--energy", "--energy-json", "out.json", *FAST, *mode)
    result.assert_outcomes(passed=3)
    output = result.stdout.str()
    line = ("pytest-energy: this project defines its own `energy` fixture (theirs/conftest.py:3): pytest-energy "
            "leaves alone the 2 test(s) that use it (theirs/test_theirs.py::test_marked, "
            "theirs/test_theirs.py::test_plain); rename yours to measure them with pytest-energy's `energy` fixture")
    assert output.count(line) == 1
    [record] = json.loads((pytester.path / "out.json").read_text())["records"]
    assert record["name"] == "wrapped/test_wrapped.py::test_measured"
