"""The RAPL source against a fake powercap tree (pytest_energy.testing), and the real one where readable."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from pytest_energy.measure.sources import SourceError, detect, rapl
from pytest_energy.testing import make_powercap, run_unprivileged

REAL_ROOT = Path("/sys/class/powercap")


@pytest.fixture
def opened():
    """Open channels and close them (stopping wrap guards) after the test."""
    detections = []

    def _open(root):
        found = rapl.open_channels(str(root))
        detections.append(found)
        return found

    yield _open
    for found in detections:
        for channel in found.channels:
            channel.close()


def test_missing_root_is_silent(opened, tmp_path):
    found = opened(tmp_path / "absent")
    assert (found.channels, found.notes) == ([], [])


def test_powercap_without_rapl_zones_is_silent(opened, tmp_path):
    (tmp_path / "dtpm").mkdir()
    found = opened(tmp_path)
    assert (found.channels, found.notes) == ([], [])


def test_package_and_dram_channels_read_joules(opened, tmp_path):
    tree = make_powercap(tmp_path, energy_uj=1_000_000)
    found = opened(tree.root)
    assert found.notes == []
    package, dram = found.channels
    assert [(c.device, c.kind, c.method, c.tick_seconds) for c in found.channels] == [
        ("cpu:package-0", "cpu", "counter", 0.0),
        ("dram:package-0", "dram", "counter", 0.0),
    ]
    assert package.read() == 0.0  # relative to opening
    tree.set_energy("intel-rapl:0", 3_500_000)
    tree.set_energy("intel-rapl:0:1", 1_250_000)
    assert package.read() == pytest.approx(2.5)
    assert dram.read() == pytest.approx(0.25)
    assert dram.identity() == {
        "device": "dram:package-0",
        "rapl_zone": "intel-rapl:0:1",
        "rapl_domain": "dram",
        "max_energy_range_uj": 262_143_328_850,
        "method": "counter",
    }


def test_two_sockets_and_zones_that_would_double_count_are_left_out(opened, tmp_path):
    tree = make_powercap(tmp_path, packages=2, psys=True, mmio=True)
    found = opened(tree.root)
    assert [c.device for c in found.channels] == [
        "cpu:package-0",
        "dram:package-0",
        "cpu:package-1",
        "dram:package-1",
    ]
    assert "psys" not in {c.identity()["rapl_domain"] for c in found.channels}
    assert "intel-rapl-mmio:0" not in {c.identity()["rapl_zone"] for c in found.channels}


def test_dram_subzone_inside_its_package_folder_is_found(opened, tmp_path):
    tree = make_powercap(tmp_path, dram=False)
    sub = tree.root / "intel-rapl:0" / "intel-rapl:0:1"  # the /sys/devices layout
    sub.mkdir()
    (sub / "name").write_text("dram\n")
    (sub / "energy_uj").write_text("7\n")
    assert [c.device for c in opened(tree.root).channels] == ["cpu:package-0", "dram:package-0"]


def test_wraparound_adds_the_range(opened, tmp_path):
    tree = make_powercap(tmp_path, dram=False, energy_uj=900_000, max_range_uj=1_000_000)
    (package,) = opened(tree.root).channels
    tree.set_energy("intel-rapl:0", 100_000)
    assert package.read() == pytest.approx(0.2)
    tree.set_energy("intel-rapl:0", 600_000)
    assert package.read() == pytest.approx(0.7)


def test_wrap_guard_counts_wraps_between_two_distant_reads(opened, tmp_path):
    tree = make_powercap(tmp_path, dram=False, energy_uj=900, max_range_uj=1_000)
    (package,) = opened(tree.root).channels
    assert package.guard_seconds == rapl.GUARD_MIN_SECONDS  # a tiny range: the guard reads as often as it may
    package.guard_seconds = 0.01
    package.start()
    for value in (400, 900, 400):  # +500 uJ each, two of them wrapping
        tree.set_energy("intel-rapl:0", value)
        time.sleep(0.1)
    assert package.read() == pytest.approx(1500e-6)  # without the guard only the last +500 would show
    package.close()
    assert package._guard is None


def test_guard_interval_is_half_the_fastest_wrap_within_bounds(opened, tmp_path):
    tree = make_powercap(tmp_path, dram=False, max_range_uj=65_532_610_987)
    (package,) = opened(tree.root).channels
    assert package.guard_seconds == pytest.approx(65_532.610987 / rapl.WATTS_CEILING / 2)
    big = make_powercap(tmp_path / "big", dram=False)
    (package,) = opened(big.root).channels
    assert package.guard_seconds == rapl.GUARD_MAX_SECONDS


def test_going_back_without_a_known_range_is_an_error_then_counting_goes_on(opened, tmp_path):
    tree = make_powercap(tmp_path, dram=False, energy_uj=5_000_000, max_range_uj=None)
    (package,) = opened(tree.root).channels
    assert package.guard_seconds is None
    tree.set_energy("intel-rapl:0", 1_000_000)
    with pytest.raises(SourceError, match="cpu:package-0: RAPL counter went back"):
        package.read()
    tree.set_energy("intel-rapl:0", 3_000_000)
    assert package.read() == pytest.approx(2.0)


def test_vanished_counter_is_a_source_error(opened, tmp_path):
    tree = make_powercap(tmp_path, dram=False)
    (package,) = opened(tree.root).channels
    (tree.root / "intel-rapl:0" / "energy_uj").unlink()
    with pytest.raises(SourceError, match="unreadable"):
        package.read()


def test_uncertainty_is_the_update_period_and_energy_unit(opened, tmp_path):
    (package, _) = opened(make_powercap(tmp_path).root).channels
    assert package.uncertainty(100.0, 2.0) == pytest.approx(2 * (0.001 * 50.0 + 2.0**-14))


@pytest.fixture
def shared_dir():
    """A folder user ``nobody`` can enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="energy-powercap-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_permission_denied_gives_one_note_with_the_fix_and_no_channels(shared_dir):
    tree = make_powercap(shared_dir, packages=2)
    tree.deny_energy()

    def look() -> tuple[list[str], list[str]]:
        found = rapl.open_channels(str(tree.root))
        return [c.device for c in found.channels], found.notes

    devices, notes = run_unprivileged(look)
    assert devices == []
    (note,) = notes
    assert "root only" in note and "CVE-2020-8694" in note
    assert "sudo chmod -R a+r /sys/class/powercap/intel-rapl" in note
    assert "\n" not in note


def test_detect_prefers_rapl_and_models_what_it_lacks(tmp_path):
    tree = make_powercap(tmp_path, dram=False)
    found = detect("cpu,ram", rapl_root=str(tree.root))
    try:
        assert [(c.device, c.method) for c in found.channels] == [("cpu:package-0", "counter"), ("ram", "modelled")]
    finally:
        for channel in found.channels:
            channel.close()


def _real_rapl_skip_reason() -> str | None:
    found = rapl.open_channels(str(REAL_ROOT))
    for channel in found.channels:
        channel.close()
    if found.channels:
        return None
    if found.notes:
        return f"RAPL present but unreadable here: {found.notes[0]}"
    return "no RAPL counters at /sys/class/powercap on this machine"


def test_real_rapl_counts_energy_while_the_cpu_works():
    reason = _real_rapl_skip_reason()
    if reason:
        pytest.skip(reason)
    found = rapl.open_channels(str(REAL_ROOT))
    try:
        package = next(c for c in found.channels if c.kind == "cpu")
        start = package.read()
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            sum(i * i for i in range(1000))
        joules = package.read() - start
        assert 0.0 < joules < 0.3 * 1000  # some energy, and less than 1 kW for 0.3 s
        assert package.identity()["rapl_domain"].startswith("package-")
    finally:
        for channel in found.channels:
            channel.close()
