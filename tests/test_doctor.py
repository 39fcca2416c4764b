"""`pytest-energy doctor`: on this machine, on a fake RAPL tree (readable and root-only), on fake NVML GPUs,
and on a real GPU where there is one."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from pytest_energy.commands import cli, doctor
from pytest_energy.commands.project import find_project, settings_for
from pytest_energy.testing import FakeGpu, install_fake_nvml, make_powercap, run_unprivileged

DEVICE_KEYS = {"device", "kind", "method", "how", "gates", "tick_seconds", "ticks_seen", "read_seconds",
               "sample_interval_seconds", "idle_watts", "power_limit_watts", "mig_enabled", "other_processes",
               "nvml_index", "identity", "problem"}
TOP_KEYS = {"schema_version", "fingerprint_id", "devices", "gpu", "rapl", "settings", "gating", "notes",
            "baselines", "requirements", "ok"}


def _real_gpu() -> str | None:
    """Why this machine has no NVIDIA GPU to measure, or None where it has one."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # ImportError or any NVMLError
        return f"no NVIDIA GPU/NVML on this machine ({error})"
    try:
        return None if pynvml.nvmlDeviceGetCount() else "NVML sees no GPU"
    finally:
        pynvml.nvmlShutdown()




def _json(capsys: pytest.CaptureFixture, *arguments: str) -> tuple[int, dict, str]:
    code = cli.main(["doctor", "--json", "--idle-seconds", "0.05", *arguments])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


# -- this machine ----------------------------------------------------------------------------------------
def test_on_this_cpu_machine_it_says_what_it_measures_and_why_not_rapl(project, capsys):
    if _real_gpu() is None or Path("/sys/class/powercap").exists():
        pytest.skip("this machine has a GPU or a powercap tree; the fake-tree tests cover those")
    code = cli.main(["doctor", "--idle-seconds", "0.05"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "cpu: modelled: TDP" in out and "ram: modelled" in out
    assert ("RAPL (/sys/class/powercap): absent: no RAPL on this machine (/sys/class/powercap: no powercap "
            "folder)") in out
    assert "sudo modprobe intel_rapl_msr" in out
    assert "GPU: not measured:" in out
    assert "only modelled energy here (cpu, ram): verdicts are shown but never fail the session" in out
    code, document, err = _json(capsys, "--require", "gpu")
    assert code == doctor.UNMET_EXIT == 3
    [line] = err.splitlines()
    assert line.startswith("pytest-energy doctor: --require gpu: no GPU is measured: ")
    assert document["requirements"] == {"gpu": {"met": False, "reason": line.removeprefix("pytest-energy doctor: ")}}
    assert not document["ok"] and document["gpu"]["available"] is False
    assert [d["method"] for d in document["devices"]] == ["modelled", "modelled"]
    assert document["devices"][0]["identity"]["tdp_watts"] > 0 and document["devices"][0]["gates"] is False


def test_every_unmet_requirement_gets_its_own_line(project, capsys, tmp_path):
    code, document, err = _json(capsys, "--devices", "cpu", "--powercap", str(tmp_path / "none"),
                                "--require", "gpu", "--require", "rapl", "--require", "counter", "--require", "rapl")
    assert code == 3
    lines = err.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["--require gpu", "--require rapl", "--require counter"]
    assert "GPUs are not among the devices measured (energy_devices = 'cpu')" in lines[0]
    assert "only modelled" in lines[2]
    assert set(document) == TOP_KEYS
    assert all(set(device) == DEVICE_KEYS for device in document["devices"])
    assert document["rapl"]["state"] == "absent" and document["rapl"]["readable"] == []


def test_settings_come_from_the_projects_ini_and_the_environment(project, capsys, monkeypatch, tmp_path):
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nenergy_rounds = "9"\nenergy_gate_modelled = "true"\n')
    monkeypatch.setenv("PYTEST_ENERGY_MIN_EFFECT", "0.02")
    code, document, _ = _json(capsys, "--devices", "cpu", "--powercap", str(tmp_path / "none"))
    settings = document["settings"]
    assert code == 0 and settings["inifile"] == str(project / "pyproject.toml")
    assert (settings["values"]["rounds"], settings["sources"]["rounds"]) == (9, "ini energy_rounds")
    assert (settings["values"]["min_effect"], settings["sources"]["min_effect"]) == (0.02, "PYTEST_ENERGY_MIN_EFFECT")
    assert settings["sources"]["devices"] == "pytest-energy doctor --devices"
    assert settings["values"]["min_window"] == 1.0 and settings["sources"]["min_window"] == "default"
    assert (settings["values"]["cooldown"], settings["values"]["top"]) == (None, 0)  # the newer settings shown too
    assert document["devices"][0]["gates"] is True  # modelled, and energy_gate_modelled is true
    assert "gating as energy_gate_modelled is true: a regression fails the session" in document["gating"][0]


def test_it_names_the_file_a_baseline_recorded_here_goes_to(project, capsys, tmp_path):
    """Not the first layout's ``baselines/<fingerprint id>/``: ``<baselines>/<set>/<test module>.json``, the file
    a baseline update writes, with the device kind its energy is kept under."""
    from pytest_energy.store import baselines as store

    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\nenergy_baseline_set = "ci"\n')
    assert cli.main(["doctor", "--idle-seconds", "0.05", "--devices", "cpu", "--powercap", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    file = project / "baselines" / "ci" / "<test module>.json"
    kind = next(line for line in out.splitlines() if line.startswith("baselines recorded here"))
    assert kind.startswith(f"baselines recorded here go to {file} (set 'ci', one file per test module); their "
                           "energy is kept per device kind (modelled: ")
    assert "/baselines/ci/" in kind and "intel-" not in kind.split("(set")[0]  # never the fingerprint folder
    code, document, _ = _json(capsys, "--devices", "cpu", "--powercap", str(tmp_path / "none"))
    assert document["baselines"]["file"] == str(file) and document["baselines"]["set"] == "ci"
    assert [k.split(":")[0] for k in document["baselines"]["device_kinds"]] == ["modelled"]
    # The file an update writes for tests/test_x.py is the one named, with <test module> filled in.
    assert store.file_for(store.set_folder(project / "baselines", "ci"), "tests/test_x.py::test_a") == \
        file.with_name("tests") / "test_x.py.json"
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\nenergy_baselines = "none"\n')
    assert cli.main(["doctor", "--idle-seconds", "0.05", "--devices", "cpu", "--powercap", str(tmp_path / "none")]) == 0
    assert "baselines: off (energy_baselines is none), so nothing is compared or recorded" in capsys.readouterr().out


def test_the_modelled_cpus_tdp_says_where_it_came_from(project, capsys, tmp_path):
    code, document, _ = _json(capsys, "--devices", "cpu", "--powercap", str(tmp_path / "none"), "--cpu-tdp", "12")
    [cpu] = document["devices"]
    assert code == 0 and cpu["identity"]["tdp_watts"] == 12.0
    assert cpu["how"].endswith("; the TDP is set by pytest-energy doctor --cpu-tdp")
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\nenergy_cpu_tdp = "28"\n')
    _, document, _ = _json(capsys, "--devices", "cpu", "--powercap", str(tmp_path / "none"))
    assert document["devices"][0]["how"].endswith("; the TDP is set by ini energy_cpu_tdp")
    (project / "pyproject.toml").unlink()
    _, document, _ = _json(capsys, "--devices", "cpu", "--powercap", str(tmp_path / "none"))
    source = document["devices"][0]["identity"]["tdp_source"]  # this CPU's: in CodeCarbon's table or not
    assert source.startswith("from CodeCarbon's cpu_power.csv (") or source == (
        "a default guess (CodeCarbon's 85 W: this CPU is not in its cpu_power.csv)")
    assert document["devices"][0]["how"].endswith(f"; the TDP is {source}")


def test_a_bad_setting_is_one_line_and_exit_2(project, capsys):
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\nenergy_rounds = "many"\n')
    assert cli.main(["doctor"]) == 2
    assert capsys.readouterr().err == "pytest-energy: ini energy_rounds has 'many', expected an integer >= 1 and <= 1000\n"
    (project / "pyproject.toml").unlink()
    assert cli.main(["doctor", "--devices", "tpu"]) == 2
    assert "pytest-energy doctor --devices: unknown device 'tpu'" in capsys.readouterr().err


# -- RAPL on a fake tree ----------------------------------------------------------------------------------
def test_a_readable_rapl_tree_is_measured_with_its_read_cost(project, capsys, tmp_path):
    tree = make_powercap(tmp_path, packages=1)
    code, document, err = _json(capsys, "--devices", "cpu,ram", "--powercap", str(tree.root),
                                "--require", "rapl", "--require", "counter")
    assert code == 0 and err == "" and document["ok"]
    package, dram = document["devices"]
    assert (package["device"], package["method"], dram["device"]) == ("cpu:package-0", "counter", "dram:package-0")
    assert package["how"] == "RAPL package-0 counter (intel-rapl:0/energy_uj)"
    assert 0 < package["read_seconds"] < 0.01
    assert package["ticks_seen"] == 0 and package["tick_seconds"] is None  # the fake counter never moves
    assert package["gates"] is True
    assert document["rapl"]["state"] == "readable" and document["rapl"]["fix"] == []


@pytest.fixture
def shared_dir():
    """A folder user ``nobody`` can enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="energy-doctor-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_root_only_rapl_gets_the_exact_fix(project, shared_dir):
    tree = make_powercap(shared_dir, packages=2)
    tree.deny_energy()
    found = find_project()
    settings = settings_for(found, {"devices": "cpu", "powercap": str(tree.root), "idle_seconds": "0.05"},
                            "pytest-energy doctor", environ={})
    diagnosis = run_unprivileged(lambda: doctor.diagnose(settings, found))
    rapl = diagnosis.sections["rapl"].document
    assert rapl["state"] == "root-only" and rapl["readable"] == []
    assert rapl["reason"].startswith(f"the RAPL counters are readable by root only ({tree.root}/intel-rapl:0")
    assert f"sudo chmod a+r {tree.root}/intel-rapl:*/energy_uj" in rapl["fix"][0]
    assert any('RUN+="/bin/chmod a+r /sys%p/energy_uj"' in line for line in rapl["fix"])
    assert any("udevadm trigger --action=add --subsystem-match=powercap" in line for line in rapl["fix"])
    assert [d.method for d in diagnosis.devices] == ["modelled"]
    [line] = doctor.unmet(diagnosis, ["rapl"]).values()
    assert "readable by root only" in line and "lists the commands that fix it" in line


# -- NVML through the fake pynvml -------------------------------------------------------------------------
def test_fake_gpus_report_counter_tick_mig_processes_and_the_cuda_mapping(project, capsys, monkeypatch, tmp_path):
    install_fake_nvml(monkeypatch, [
        FakeGpu(power=150.0, tick_seconds=0.05, processes=[4242], power_limit_watts=500.0),
        FakeGpu(mig=True),
        FakeGpu(name="Tesla P100-PCIE-16GB", has_counter=False, power=40.0),
    ], cuda_visible_devices="2,0,1")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # two models: else a note says gpu:N may not be cuda:N
    code, document, err = _json(capsys, "--devices", "gpu", "--powercap", str(tmp_path / "none"),
                                "--require", "gpu", "--require", "counter", "--idle-seconds", "0.3")  # 6 ticks
    assert code == 0 and err == "" and document["ok"]
    sampled, counted = document["devices"]
    assert (sampled["device"], sampled["nvml_index"], sampled["method"]) == ("gpu:0", 2, "sampled")
    assert (counted["device"], counted["nvml_index"], counted["method"]) == ("gpu:1", 0, "counter")
    assert counted["tick_seconds"] == pytest.approx(0.05, rel=0.25) and counted["ticks_seen"] >= 3
    assert counted["read_seconds"] < 0.01
    assert counted["idle_watts"] == pytest.approx(150.0, rel=0.1)
    assert counted["power_limit_watts"] == 500.0 and counted["mig_enabled"] is False
    assert counted["other_processes"] == [4242] and sampled["other_processes"] == []
    assert sampled["sample_interval_seconds"] >= 0.01 and sampled["tick_seconds"] is None
    assert sampled["idle_watts"] == pytest.approx(40.0, rel=0.1)
    assert (document["gpu"]["cuda_visible_devices"], document["gpu"]["cuda_device_order"]) == ("2,0,1", "PCI_BUS_ID")
    [mig] = document["gpu"]["notes"]
    assert mig.startswith("gpu:2 (NVIDIA H100 80GB HBM3, GPU-00000000-0000-0000-0000-000000000001) not measured: "
                          "MIG is enabled")
    assert all(device["gates"] for device in document["devices"])
    code = cli.main(["doctor", "--idle-seconds", "0.05", "--devices", "gpu", "--powercap", str(tmp_path / "none")])
    out = capsys.readouterr().out
    assert code == 0
    assert "gpu:1: cuda:1 = NVML index 0 (GPU-00000000-0000-0000-0000-000000000000); power limit 500 W; MIG off; " \
           "other processes on it: 4242 (their energy is counted too)" in out
    assert "gpu:1: NVIDIA H100 80GB HBM3: NVML total-energy counter" in out
    assert "gpu:0: Tesla P100-PCIE-16GB: no energy counter (before Volta)" in out
    assert "note: gpu:2 (NVIDIA H100 80GB HBM3" in out


def test_no_gpu_visible_to_cuda_is_the_reason_given(project, capsys, monkeypatch, tmp_path):
    install_fake_nvml(monkeypatch, [FakeGpu()], cuda_visible_devices="")
    code, document, err = _json(capsys, "--powercap", str(tmp_path / "none"), "--require", "gpu")
    assert code == 3
    assert document["gpu"]["reason"] == "no GPU is visible to CUDA (CUDA_VISIBLE_DEVICES='')"
    assert err == "pytest-energy doctor: --require gpu: no GPU is measured: no GPU is visible to CUDA " \
                  "(CUDA_VISIBLE_DEVICES='')\n"


# -- a real GPU -------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_a_real_gpu_shows_its_counter_tick(project, capsys, tmp_path):
    reason = _real_gpu()
    if reason:
        pytest.skip(reason)
    code, document, err = _json(capsys, "--devices", "gpu", "--powercap", str(tmp_path / "none"),
                                "--require", "gpu", "--require", "counter")
    assert code == 0, err
    first = document["devices"][0]
    assert first["method"] == "counter" and 0.01 < first["tick_seconds"] < 0.5
    assert first["read_seconds"] > 0 and first["idle_watts"] > 0 and first["power_limit_watts"] > 0
