"""`pytest-energy calibrate`: the noise estimates, the choice of settings from the gate's statistics, the
pyproject.toml edit, and end to end on a fake RAPL runner (then a pytester run that uses what was written)
and on the modelled CPU.

The fake RAPL package's counter is advanced by a background thread, every millisecond, by 40 W times
the CPU time the measuring thread used since, with 1 % seeded noise: it follows the work. On this shared 2-core
VM that CPU time moves by tens of percent with the other processes' load, so the end-to-end runs ask a
loose target (+200 % with at most 5 % false alarms) that any such runner meets, and assert that what is
written is what the plugin then uses; the choice of settings from known noise is asserted on synthetic
measurements above them.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_energy.commands import calibrate, cli
from pytest_energy.commands.calibrate import Measurement, WindowNoise
from pytest_energy.commands.project import ProjectError, find_project, pyproject_target, write_ini_options
from pytest_energy.judge.simulation import Target
from pytest_energy.testing import make_powercap

WATTS = 40.0




@pytest.fixture
def fake_rapl(tmp_path: Path):
    """A fake RAPL package whose counter follows the CPU time of the measuring thread; yields its root."""
    tree = make_powercap(tmp_path, dram=False)
    clock = time.pthread_getcpuclockid(threading.main_thread().ident)
    stop = threading.Event()

    def feed() -> None:
        chance, microjoules, last = random.Random(3), 0, time.clock_gettime(clock)
        while not stop.wait(0.001):
            now = time.clock_gettime(clock)
            microjoules += round((now - last) * WATTS * 1e6 * (1 + chance.gauss(0, 0.01)))
            last = now
            tree.set_energy("intel-rapl:0", microjoules)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # the feeder gets the GIL within 0.1 ms: the counter lags the work little
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    yield tree.root
    stop.set()
    feeder.join()
    sys.setswitchinterval(interval)


def _noise(group: str, window: float, rows: list[list[float]], spacing: float = 1.0) -> WindowNoise:
    return WindowNoise(group, window, [Measurement(i * spacing, values) for i, values in enumerate(rows)])


def _rows(cv: float, count: int, rounds: int = 5, seed: int = 0, first: float = 0.0, trend: float = 0.0) -> list:
    chance = random.Random(seed)
    return [[(1 + trend * i) * (1 + (first if r == 0 else 0.0)) * (1 + chance.gauss(0, cv)) for r in range(rounds)]
            for i in range(count)]


# -- estimates and the choice ----------------------------------------------------------------------------
def test_spreads_are_within_each_measurement_and_the_first_round_apart():
    # Measurements at levels 1, 2, 3: the spread between them is drift, not round-to-round noise.
    entry = _noise("cpu", 1.0, [[level * 1.05, level * 0.99, level * 1.01, level * 0.99, level * 1.01]
                                for level in (1.0, 2.0, 3.0)])
    spread = entry.spreads()
    assert spread["first_offset"] == pytest.approx(0.05)
    assert spread["first_sd"] == pytest.approx(0.0, abs=1e-12)
    # later rounds 0.99, 1.01, 0.99, 1.01 around their mean 1.0: squares 4e-4 over 3 degrees of freedom each
    assert spread["later_cv"] == pytest.approx(math.sqrt(4e-4 / 3))
    model = entry.model()
    assert (model.first_offset, model.later_cv) == (pytest.approx(0.05), pytest.approx(math.sqrt(4e-4 / 3)))


def test_drift_compares_the_first_and_last_third_of_the_time():
    rising = [_noise("cpu", 0.5, _rows(0.0, 6, trend=0.01), spacing=2.0),
              _noise("cpu", 1.0, _rows(0.0, 6, trend=0.01), spacing=2.0)]
    for entry in rising[1:]:
        for measurement in entry.measurements:
            measurement.at += 1.0  # interleaved with the 0.5 s windows, as calibrate cycles
    assert calibrate.drift(rising, "cpu") == pytest.approx(0.04, abs=0.005)
    assert calibrate.drift([_noise("cpu", 1.0, _rows(0.0, 1))], "cpu") == 0.0


def test_a_quiet_runner_gets_the_cheapest_setting_with_the_largest_minimum_effect():
    noise = [_noise("cpu", w, _rows(0.002, 6, seed=i)) for i, w in enumerate((0.25, 0.5, 1.0))]
    choice, smallest = calibrate.recommend(noise, {"cpu": 0.0}, Target(), trials=300, seed=0)
    assert smallest is None
    assert (choice.rounds, choice.min_window, choice.min_effect) == (5, 0.25, 0.024)
    assert choice.false_alarms <= 0.01 and choice.detection >= 0.95
    again, _ = calibrate.recommend(noise, {"cpu": 0.0}, Target(), trials=300, seed=0)
    assert again == choice  # seeded: the same every time


def test_noise_and_drift_cost_rounds_and_minimum_effect():
    quiet = [_noise("gpu:0", 1.0, _rows(0.002, 6))]
    noisy = [_noise("gpu:0", 1.0, _rows(0.012, 6))]
    base, _ = calibrate.recommend(quiet, {"gpu:0": 0.0}, Target(), trials=300, seed=0)
    more_rounds, _ = calibrate.recommend(noisy, {"gpu:0": 0.0}, Target(), trials=300, seed=0)
    drifting, _ = calibrate.recommend(quiet, {"gpu:0": 0.006}, Target(), trials=300, seed=0)
    lost, _ = calibrate.recommend(quiet, {"gpu:0": 0.015}, Target(), trials=300, seed=0)
    assert more_rounds.rounds > base.rounds
    # Drift of either sign: up, a threshold below it flags identical work; down, it hides part of the +3 %.
    assert 0.006 <= drifting.min_effect < base.min_effect
    assert lost is None  # 1.5 % either way leaves no threshold between 1.5 % and 3 % - 1.5 %


def test_an_unreachable_target_names_the_smallest_effect_detected():
    noise = [_noise("cpu", w, _rows(0.08, 6, seed=i)) for i, w in enumerate((0.5, 1.0))]
    result = calibrate.Calibration(Target(), noise, {"cpu": 0.0}, trials=200, seconds=1.0)
    result.choice, result.smallest = calibrate.recommend(noise, result.drift, Target(), trials=200, seed=0)
    assert result.choice is None and result.smallest.effect in calibrate.DETECTABLE_EFFECTS
    assert result.smallest.effect > 0.03 and result.smallest.rounds == 20
    first, second = calibrate.verdict_lines(result, (0.5, 1.0))
    assert first == ("this runner cannot meet at most 1 % false alarms and at least 95 % detection of +3 % with "
                     "windows up to 1 s and up to 20 rounds")
    assert second.startswith(f"the smallest effect it detects so is +{result.smallest.effect * 100:.3g} %: 20 rounds")
    assert second.endswith(f"(rerun with --effect {result.smallest.effect:g} to write those settings)")


# -- writing pyproject.toml ------------------------------------------------------------------------------
PYPROJECT = """\
[project]
name = "demo"   # a comment kept as it is

[tool.pytest.ini_options]
testpaths = ["tests"]
markers = [
    "slow: long tests",
]
energy_rounds = "17"
energy_json = "out.json"

# the next table
[tool.black]
line-length = 100
"""


def test_write_updates_keys_in_place_and_adds_the_others_leaving_every_other_byte(tmp_path: Path):
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    action = write_ini_options(path, {"energy_rounds": 7, "energy_min_window": 0.5, "energy_min_effect": 0.012})
    assert action == (f"updated energy_rounds and added energy_min_window, energy_min_effect in "
                      f"[tool.pytest.ini_options] of {path}")
    assert path.read_text() == PYPROJECT.replace(
        'energy_rounds = "17"\nenergy_json = "out.json"\n',
        'energy_rounds = 7\nenergy_json = "out.json"\nenergy_min_window = 0.5\nenergy_min_effect = 0.012\n')


def test_write_adds_the_table_and_keeps_crlf(tmp_path: Path):
    path = tmp_path / "pyproject.toml"
    path.write_bytes(b'[project]\r\nname = "demo"\r\n')
    write_ini_options(path, {"energy_rounds": 5, "energy_min_window": 2.0})
    assert path.read_bytes() == (b'[project]\r\nname = "demo"\r\n\r\n[tool.pytest.ini_options]\r\n'
                                 b'energy_rounds = 5\r\nenergy_min_window = 2.0\r\n')
    fresh = tmp_path / "new" / "pyproject.toml"
    fresh.parent.mkdir()
    write_ini_options(fresh, {"energy_rounds": 5})
    assert fresh.read_text() == "[tool.pytest.ini_options]\nenergy_rounds = 5\n"


def test_write_refuses_what_pytest_would_not_read_or_it_cannot_edit_safely(project: Path):
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "pyproject.toml").write_text(PYPROJECT)
    with pytest.raises(ProjectError, match=r"pytest reads this project's settings from .*pytest.ini, not pyproject"):
        pyproject_target(find_project())
    (project / "pytest.ini").unlink()
    assert pyproject_target(find_project()) == project / "pyproject.toml"
    (project / "pyproject.toml").write_text('[tool.pytest]\nminversion = "8"\n')
    with pytest.raises(ProjectError, match=r"\[tool.pytest\] \(native TOML\)"):
        pyproject_target(find_project())
    inline = '[tool.pytest]\nini_options = { energy_rounds = "5" }\n'
    (project / "pyproject.toml").write_text(inline)
    with pytest.raises(ProjectError, match="other than as a"):
        write_ini_options(project / "pyproject.toml", {"energy_rounds": 7})
    assert (project / "pyproject.toml").read_text() == inline


def test_write_goes_through_a_symlink_and_keeps_the_comment_of_a_line_it_rewrites(tmp_path: Path):
    shared = tmp_path / "shared" / "pyproject.toml"
    shared.parent.mkdir()
    shared.write_text('[tool.pytest.ini_options]\nenergy_rounds = "17"  # 17: the last calibration\n'
                      'energy_json = "out#1.json"# a # in the string is no comment\n')
    link = tmp_path / "pyproject.toml"
    link.symlink_to(shared)
    write_ini_options(link, {"energy_rounds": 7, "energy_json": "out.json"})
    assert link.is_symlink() and link.resolve() == shared  # the link stays, its target has the new values
    assert shared.read_text() == ('[tool.pytest.ini_options]\nenergy_rounds = 7  # 17: the last calibration\n'
                                  'energy_json = "out.json"# a # in the string is no comment\n')
    assert not list(shared.parent.glob(".pyproject.toml.*")) and not list(tmp_path.glob(".pyproject.toml.*"))


def test_a_read_only_pyproject_is_refused_in_one_line_before_measuring(project: Path, capsys):
    path = project / "pyproject.toml"
    path.write_text(PYPROJECT)
    path.chmod(0o444)  # read-only by its mode; root could still replace it, so the mode is what is checked
    expected = (f"pytest-energy: {path} is read-only; nothing written: make it writable (chmod u+w {path}) or add "
                "the energy_* settings to [tool.pytest.ini_options] by hand")
    with pytest.raises(ProjectError) as refused:
        write_ini_options(path, {"energy_rounds": 7})
    assert str(refused.value) == expected
    with pytest.raises(ProjectError, match="is read-only"):
        pyproject_target(find_project())
    assert cli.main(["calibrate", "--write", "--seconds", "1"]) == 2  # refused before any measuring
    assert capsys.readouterr().err == expected + "\n"
    assert path.read_text() == PYPROJECT


def test_calibrate_write_warns_where_addopts_or_the_environment_overrides_it(project: Path, capsys,
                                                                              monkeypatch: pytest.MonkeyPatch):
    path = project / "pyproject.toml"
    path.write_text(PYPROJECT.replace('testpaths = ["tests"]\n',
                                      'testpaths = ["tests"]\naddopts = "-p no:cacheprovider --energy-rounds=3"\n'))
    monkeypatch.setenv("PYTEST_ADDOPTS", "--energy-min-window 2")
    monkeypatch.setenv("PYTEST_ENERGY_MIN_EFFECT", "0.2")
    choice = calibrate.Choice(rounds=7, min_window=0.5, min_effect=0.012, effect=0.03, false_alarms=0.005,
                              detection=0.97)
    monkeypatch.setattr(calibrate, "calibrate", lambda *args, **kwargs: calibrate.Calibration(
        Target(), [], {}, trials=100, seconds=1.0, choice=choice))
    assert cli.main(["calibrate", "--write", "--seconds", "1"]) == 0
    out, err = capsys.readouterr()
    assert f"updated energy_rounds and added energy_min_window, energy_min_effect in [tool.pytest.ini_options] " \
           f"of {path}" in out
    assert [line for line in err.splitlines() if line.startswith("pytest-energy")] == [  # after the progress bar
        f"pytest-energy: warning: addopts in {path} has --energy-rounds=3, which overrides the energy_rounds just "
        "written: remove it there",
        "pytest-energy: warning: PYTEST_ADDOPTS has --energy-min-window 2, which overrides the energy_min_window just "
        "written: remove it there",
        "pytest-energy: warning: PYTEST_ENERGY_MIN_EFFECT=0.2 in the environment overrides the energy_min_effect just "
        "written: unset it"]
    # Nothing overrides them: no warning.
    monkeypatch.delenv("PYTEST_ADDOPTS")
    monkeypatch.delenv("PYTEST_ENERGY_MIN_EFFECT")
    path.write_text(PYPROJECT)
    assert cli.main(["calibrate", "--write", "--seconds", "1"]) == 0
    assert "warning" not in capsys.readouterr().err


# -- end to end ------------------------------------------------------------------------------------------
ARGS = ["--seconds", "5", "--windows", "0.05,0.1", "--trials", "200", "--idle-seconds", "0.05",
        "--effect", "2", "--max-false-alarms", "0.05", "--min-detection", "0.8"]

TEST_FILE = """
def test_product(energy):
    energy.run(lambda: sum(i * i for i in range(2000)))
"""


@pytest.fixture
def calibrated(project: Path, fake_rapl: Path, capsys: pytest.CaptureFixture) -> tuple[Path, str]:
    """`calibrate --write` on the fake RAPL runner in a project whose ini asks for 17 rounds."""
    (project / "pyproject.toml").write_text(PYPROJECT)
    code = cli.main(["calibrate", "--write", "--devices", "cpu", "--powercap", str(fake_rapl), *ARGS])
    out, err = capsys.readouterr()
    assert code == 0, f"exit {code}: {out}{err}"
    return project / "pyproject.toml", out


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_calibrate_write_on_fake_rapl_sets_what_the_plugin_then_uses(calibrated, pytester: pytest.Pytester,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     workers: list[str]):
    pyproject, out = calibrated
    written = dict(line.split(" = ") for line in pyproject.read_text().splitlines() if line.startswith("energy_"))
    rounds, window, effect = int(written["energy_rounds"]), float(written["energy_min_window"]), \
        float(written["energy_min_effect"])
    assert rounds in calibrate.ROUNDS_CANDIDATES and window in (0.05, 0.1) and 0 <= effect < 2
    assert (f"meets at most 5 % false alarms and at least 80 % detection of +200 %: {rounds} rounds of at least "
            f"{window:g} s") in out
    assert f"updated energy_rounds and added energy_min_window, energy_min_effect in [tool.pytest.ini_options] " \
           f"of {pyproject}" in out
    assert pyproject.read_text() == PYPROJECT.replace(
        'energy_rounds = "17"\nenergy_json = "out.json"\n',
        f'energy_rounds = {rounds}\nenergy_json = "out.json"\nenergy_min_window = {window!r}\n'
        f'energy_min_effect = {effect!r}\n')
    # The plugin in that project (modelled CPU here: the settings are what is checked).
    (pytester.path / "pyproject.toml").write_text(pyproject.read_text())
    monkeypatch.chdir(pytester.path)
    pytester.makepyfile(test_demo=TEST_FILE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy", "--energy-devices", "cpu",
                                           "--energy-report", "none", "--energy-idle-seconds", "0.05", *workers)
    result.assert_outcomes(passed=1)
    document = json.loads((pytester.path / "out.json").read_text())
    settings = document["session"]["settings"]
    assert (settings["rounds"], settings["min_window"], settings["min_effect"]) == (rounds, window, effect)
    [record] = document["records"]
    assert len(record["rounds"]) == rounds and all(r["seconds"] >= window for r in record["rounds"])


def test_the_fake_rapl_runner_is_measured_through_its_counter(calibrated):
    _, out = calibrated
    rows = [line for line in out.splitlines() if line.startswith("│ cpu")]
    assert [row.split("│")[2].strip() for row in rows] == ["0.05 s", "0.1 s"]
    assert all(int(row.split("│")[3].split()[0]) >= 2 for row in rows)  # measurements per window
    assert "modelled" not in out  # the RAPL package is judged, not a model


def test_an_unmet_target_on_the_modelled_cpu_exits_3_and_writes_nothing(project: Path, capsys, tmp_path: Path):
    (project / "pyproject.toml").write_text(PYPROJECT)
    code = cli.main(["calibrate", "--write", "--devices", "cpu", "--powercap", str(tmp_path / "none"),
                     "--seconds", "1.5", "--windows", "0.05", "--trials", "100", "--idle-seconds", "0.05",
                     "--effect", "0.0001"])
    out = capsys.readouterr().out
    assert code == calibrate.UNMET_EXIT == 3
    assert "this runner cannot meet at most 1 % false alarms and at least 95 % detection of +0.01 % with windows " \
           "up to 0.05 s and up to 20 rounds" in out
    assert "note: only modelled energy is judged here: its verdicts do not fail the session unless " \
           "energy_gate_modelled is true" in out
    assert (project / "pyproject.toml").read_text() == PYPROJECT


def test_bad_options_are_one_line_and_exit_2(project: Path, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["calibrate", "--windows", "0,1"])
    assert raised.value.code == 2
    assert "expected window seconds > 0 separated by commas" in capsys.readouterr().err
    (project / "pytest.ini").write_text("[pytest]\n")
    assert cli.main(["calibrate", "--write", "--seconds", "1"]) == 2  # refused before any measuring
    assert "not pyproject.toml" in capsys.readouterr().err


@pytest.mark.gpu
def test_calibrate_on_a_real_gpu_measures_it_with_the_reference_product(project: Path, capsys, tmp_path: Path):
    from test_doctor import _real_gpu

    reason = _real_gpu()
    if reason:
        pytest.skip(reason)
    if calibrate.reference_workload("gpu:0") is None:
        pytest.skip("torch with CUDA is not installed: the GPU reference workload cannot run")
    code = cli.main(["calibrate", "--devices", "gpu:0", "--powercap", str(tmp_path / "none"), "--seconds", "20",
                     "--windows", "0.5,1", "--trials", "300"])
    out = capsys.readouterr().out
    assert code in (0, calibrate.UNMET_EXIT), out
    rows = [line for line in out.splitlines() if line.startswith("│ gpu:0")]
    assert [row.split("│")[2].strip() for row in rows] == ["0.5 s", "1 s"]
    assert ("meets at most 1 % false alarms" in out) == (code == 0)
