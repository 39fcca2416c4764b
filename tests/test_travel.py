"""Baselines that travel between runners, and the model identity the gate checks.

Work (FLOPs) and quality are judged against a baseline from any runner; energy only against one
measured on the same device kind (GPU product and count, CPU model), so two H100 runners on different
host CPUs share their GPU baseline. A changed model (its request, or the digest of what ran) fails
the gate until the baselines record it.

Plugin-level tests run case files in a pytest subprocess (serially and with ``-n 2``), as
test_cases.py does, and play another runner through the ``pytest_energy_update_fingerprint`` hook.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_energy.core.facts import ModelFacts
from pytest_energy.testing.records import FINGERPRINT, make_record, make_run_info
from test_gate_integration import store_run

from pytest_energy.store import baselines as store
from pytest_energy.core.config import resolve
from pytest_energy.measure.fingerprint import device_kinds, fingerprint
from pytest_energy.judge.gate import judge
from pytest_energy.measure.sources import detect
from pytest_energy.testing import FakeGpu, install_fake_nvml


def _settings(tmp_path: Path, **values):
    settings = resolve(True, {}, lambda name: None, environ={})
    settings.values.update(history="none", **values)
    return settings


# -- device kinds ------------------------------------------------------------------------------------
def _runner(monkeypatch, cpu: str, runner: str, **gpu) -> dict:
    """The fingerprint of a fake-NVML H100 runner whose host CPU is ``cpu`` (as the hook would set it)."""
    install_fake_nvml(monkeypatch, [FakeGpu(**gpu)])
    found = detect("gpu")
    try:
        facts = fingerprint(found.channels)
    finally:
        for channel in found.channels:
            channel.close()
    facts.update(cpu_model=cpu, id=f"{runner}-{facts['id']}")
    return facts


def _gpu_record(facts: dict, joules: float, name: str = "t.py::infer", **kwargs):
    record = make_record(name, joules, **kwargs)
    record.fingerprint = facts
    return record


def test_nvml_identity_records_power_limit_driver_and_clocks(monkeypatch):
    facts = _runner(monkeypatch, "AMD EPYC 9654", "a", power_limit_watts=700.0)
    [gpu] = facts["gpus"]
    assert (gpu["power_limit_watts"], gpu["driver_version"]) == (700.0, "580.159.04")
    assert (gpu["sm_clock_max_mhz"], gpu["applications_sm_clock_mhz"]) == (1980, 1755)
    [kind] = device_kinds(make_record().components, facts)
    assert kind.id == "gpu: NVIDIA H100 80GB HBM3 x1"
    assert kind.facts["power_limit_watts"] == "700" and kind.facts["driver_version"] == "580.159.04"
    # A user may split kinds by more fields (--energy-device-kind-fields); the host never by default.
    [split] = device_kinds(make_record().components, facts, ("product", "count", "power_limit", "host_cpu"))
    assert split.id == "gpu: NVIDIA H100 80GB HBM3 x1 700 W on AMD EPYC 9654"


def test_two_h100_runners_on_different_host_cpus_share_the_gpu_baseline(tmp_path, monkeypatch):
    epyc = _runner(monkeypatch, "AMD EPYC 9654", "runner-a")
    xeon = _runner(monkeypatch, "Intel(R) Xeon(R) Platinum 8480C", "runner-b")
    settings = _settings(tmp_path, update_baselines=True)
    recorded = [_gpu_record(epyc, 10.0)]
    store_run(recorded, judge(recorded, settings, epyc, tmp_path), settings, make_run_info())
    same, more = _gpu_record(xeon, 10.0), _gpu_record(xeon, 12.0)
    judgement = judge([same], _settings(tmp_path), xeon, tmp_path)
    [energy] = [v for v in judgement.verdicts if v.metric == "energy"]
    assert energy.status == "unchanged" and energy.baseline_hardware == epyc["id"]
    assert energy.message.endswith(f"; baseline from other hardware ({epyc['id']})")
    assert judgement.summary[0].endswith("baselines: 0 verdicts from this hardware, 1 from other hardware, 0 with none)")
    worse = judge([more], _settings(tmp_path), xeon, tmp_path)
    assert worse.gate_failed and any(line.startswith("t.py::infer  energy (gpu:0) +20.0 %") and epyc["id"] in line
                                     for line in worse.summary)
    # A lower power limit is the same kind of GPU, and the line says the limit differs.
    capped = _runner(monkeypatch, "AMD EPYC 9654", "runner-c", power_limit_watts=400.0)
    [verdict] = [v for v in judge([_gpu_record(capped, 10.0)], _settings(tmp_path), capped, tmp_path).verdicts
                 if v.metric == "energy"]
    assert verdict.status == "unchanged" and "power limit 400 W here, 700 W in the baseline" in verdict.message
    # Another GPU product is another kind: its energy is never compared, and a refresh keeps both.
    a100 = dict(epyc, id="a100-runner", gpus=[dict(epyc["gpus"][0], name="NVIDIA A100-SXM4-80GB")])
    other = [_gpu_record(a100, 30.0)]
    judgement = judge(other, settings, a100, tmp_path)
    assert {v.status for v in judgement.verdicts if v.metric == "energy"} == {"incomparable"}
    store_run(other, judgement, settings, make_run_info())
    [entry] = store.load_set(tmp_path / "baselines" / "default").baselines.values()
    assert sorted(entry.energy) == ["gpu: NVIDIA A100-SXM4-80GB x1", "gpu: NVIDIA H100 80GB HBM3 x1"]


def test_kind_fields_option_splits_kinds_and_a_bad_one_is_a_usage_error(tmp_path, monkeypatch, pytester):
    full = _runner(monkeypatch, "AMD EPYC 9654", "runner-a")
    capped = _runner(monkeypatch, "AMD EPYC 9654", "runner-c", power_limit_watts=400.0)
    by_limit = _settings(tmp_path, update_baselines=True, device_kind_fields="product,count,power_limit")
    first = [_gpu_record(full, 10.0)]
    store_run(first, judge(first, by_limit, full, tmp_path), by_limit, make_run_info())
    [entry] = store.load_set(tmp_path / "baselines" / "default").baselines.values()
    assert list(entry.energy) == ["gpu: NVIDIA H100 80GB HBM3 x1 700 W"]
    [verdict] = [v for v in judge([_gpu_record(capped, 10.0)], by_limit, capped, tmp_path).verdicts
                 if v.metric == "energy"]
    assert verdict.status == "incomparable" and "gpu: NVIDIA H100 80GB HBM3 x1 400 W" in verdict.message
    result = pytester.runpytest_subprocess("--energy", "--energy-device-kind-fields", "product,colour")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*pytest-energy: --energy-device-kind-fields has 'product,colour', expected a comma "
                                 "list of product, count, power_limit, driver, clocks, host_cpu, logical_cpus*"])


def test_gpu_order_does_not_change_the_fingerprint(monkeypatch):
    install_fake_nvml(monkeypatch, [FakeGpu(name="NVIDIA H100 80GB HBM3"), FakeGpu(name="NVIDIA A100-SXM4-80GB")])
    found = detect("gpu")
    forward = fingerprint(found.channels)
    backward = fingerprint(list(reversed(found.channels)))
    for channel in found.channels:
        channel.close()
    assert forward["id"] == backward["id"] and forward["id"].startswith("nvidia-a100-sxm4-80gb-x2-")
    assert [g["name"] for g in forward["gpus"]] == ["NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"]


def test_work_quality_and_energy_recorded_on_one_runner_are_judged_on_another(tmp_path):
    """Unit level: the work and quality of another CPU's baseline are judged, its modelled energy is not."""
    modelled = dict(FINGERPRINT, id="amd-epyc-2c-00000000", cpu_model="AMD EPYC", gpus=[])
    here = dict(FINGERPRINT, id="intel-xeon-2c-11111111", cpu_model="Intel(R) Xeon(R) Processor", gpus=[])

    def record(fingerprint_: dict, flops: float, accuracy: float):
        made = make_record("t.py::case", 0.2, device="cpu", kind="cpu", method="modelled", quality={"accuracy": accuracy})
        made.fingerprint, made.unit = fingerprint_, "inference"
        made.proxies = {"flops_per_inference": flops}
        return made

    settings = _settings(tmp_path, update_baselines=True)
    first = [record(modelled, 1.5e6, 0.95)]
    store_run(first, judge(first, settings, modelled, tmp_path), settings, make_run_info())
    same = judge([record(here, 1.5e6, 0.95)], _settings(tmp_path), here, tmp_path)
    statuses = {v.metric: v.status for v in same.verdicts}
    assert statuses == {"energy": "incomparable", "accuracy": "unchanged", "flops_per_inference": "unchanged"}
    assert same.summary[0].startswith("pytest-energy gate passed: 1 unchanged (set 'default'")
    more = judge([record(here, 3.0e6, 0.95)], _settings(tmp_path), here, tmp_path)
    assert more.gate_failed
    assert (f"t.py::case  flops_per_inference 3e+06 vs 1.5e+06 (+100.0 %) in 'default': regression (threshold 5 %); "
            f"baseline from other hardware ({modelled['id']})") in more.summary
    worse = judge([record(here, 1.5e6, 0.80)], _settings(tmp_path), here, tmp_path)
    assert worse.gate_failed and any("accuracy 0.8 vs 0.95" in line for line in worse.summary)


# -- model identity ----------------------------------------------------------------------------------
def _case_record(requested: str, ran: str, digest: str, flops: float = 1e6):
    record = make_record("t.py::case", 0.2, device="cpu", kind="cpu", method="modelled", unit="inference",
                         proxies={"flops_per_inference": flops},
                         model=ModelFacts(requested, ran, "fallback", digest, dtype="float32", device="cpu"))
    return record


def test_a_cheaper_model_is_a_model_change_with_its_cost_said_not_a_regression(tmp_path):
    """A replacement model that costs less read "regression -20.6 %": it is "model changed" (failing the gate
    until recorded, as a snapshot mismatch) and says what it costs against the old one, either way."""
    from pytest_energy.report import build_report
    from pytest_energy.core.units import percent

    old = _case_record("distilbert/sst2", "distilbert/sst2", "aaaa")
    recording = _settings(tmp_path, update_baselines=True)
    store_run([old], judge([old], recording, FINGERPRINT, tmp_path), recording, make_run_info())
    cheaper = _case_record("distilbert/sst2", "distilbert/sst2", "bbbb", flops=0.52e6)
    cheaper.model.dtype = "bfloat16"
    for round_ in cheaper.rounds:  # 0.794 of the energy
        round_.net_joules *= 0.794
        round_.by_device = {device: joules * 0.794 for device, joules in round_.by_device.items()}
    judgement = judge([cheaper], _settings(tmp_path), FINGERPRINT, tmp_path)
    verdicts = {v.metric: v for v in judgement.verdicts}
    assert {m: v.status for m, v in verdicts.items()} == {
        "model": "model changed", "energy": "improvement", "flops_per_inference": "improvement"}
    saving = percent(1 - verdicts["energy"].ratio)
    assert verdicts["model"].message == (
        "model changed: distilbert/sst2: digest aaaa -> bbbb, dtype float32 -> bfloat16; the gate fails until "
        f"--energy-update-baselines records the new model; it costs {saving} less energy and 48 % fewer FLOPs than "
        "the old model")
    assert judgement.gate_failed and judgement.summary[0].startswith("pytest-energy gate FAILED: 1 model changed ")
    assert f"t.py::case  {verdicts['model'].message}" in judgement.summary
    [row] = build_report([cheaper], judgement, make_run_info(), None).rows
    assert row.status == "model changed" and row.gating and row.decided_by == verdicts["model"].message
    assert row.change.ratio == verdicts["energy"].ratio < 0.8  # the energy change, no longer read as a regression
    # A dearer one says so the other way; a test marked gate=False shows it, not gating.
    dearer = _case_record("distilbert/sst2", "distilbert/sst2", "cccc", flops=2e6)
    dearer.criteria["gate"] = False
    quiet = judge([dearer], _settings(tmp_path), FINGERPRINT, tmp_path)
    [model] = [v for v in quiet.verdicts if v.metric == "model"]
    assert model.message.endswith("it costs 100 % more FLOPs than the old model, and the same energy")
    assert not quiet.gate_failed and "1 model changed (not gating)" in quiet.summary[0]
    assert f"t.py::case  {model.message}  [not gating]" in quiet.summary
    # The JSON and the history keep the word; an update run records the new model and passes for it.
    from pytest_energy.store.history import History

    assert judgement.document({})["verdicts"][0]["status"] == "model changed"
    run = make_run_info()
    storing = _settings(tmp_path)
    storing.values["history"] = str(tmp_path / "history.sqlite")
    store_run([cheaper], judgement, storing, run)
    stored = History(tmp_path / "history.sqlite").verdicts(run.run_id)
    assert {v["metric"]: v["status"] for v in stored}["model"] == "model changed"
    updating = judge([cheaper], recording, FINGERPRINT, tmp_path)
    assert updating.gate_failed
    lines = store_run([cheaper], updating, recording, make_run_info())
    assert not updating.gate_failed and "pytest-energy: 1 regression refreshed by this update no longer fails the " \
        "gate: t.py::case" in lines


def test_a_change_of_how_a_case_runs_its_model_fails_on_any_runner_naming_the_quality_it_cost(tmp_path):
    """Fewer new tokens (or a fifth of a fine-tune's steps) moved ROUGE by less than the spread between
    training runs on another CPU, so it passed there as inconclusive: a case's settings are part of its
    model's identity, and changing them fails the gate until recorded, saying what changed and its cost."""
    settings = {"prefix": "summarize: ", "max_input_tokens": 128, "max_new_tokens": 40, "num_beams": 1}
    old = _case_record("google-t5/t5-small", "fallback t5", "aaaa")
    old.model.settings = settings
    old.quality = {"rouge1": {"value": 0.773}, "meteor": {"value": 0.774}}
    recording = _settings(tmp_path, update_baselines=True)
    store_run([old], judge([old], recording, FINGERPRINT, tmp_path), recording, make_run_info())
    [entry] = store.load_set(tmp_path / "baselines" / "default").baselines.values()
    assert entry.model["settings"] == settings
    shorter = _case_record("google-t5/t5-small", "fallback t5", "aaaa", flops=0.3e6)
    shorter.model.settings = {**settings, "max_new_tokens": 12}
    shorter.quality = {"rouge1": {"value": 0.692}, "meteor": {"value": 0.599}}
    judgement = judge([shorter], _settings(tmp_path), {**FINGERPRINT, "id": "another-cpu"}, tmp_path)
    [model] = [v for v in judgement.verdicts if v.metric == "model"]
    assert model.status == "model changed" and model.gating and judgement.gate_failed
    assert model.message.startswith("model changed: google-t5/t5-small (ran fallback t5): max_new_tokens 40 -> 12; "
                                    "the gate fails until --energy-update-baselines records the new model; ")
    assert "it costs 70 % fewer FLOPs than the old model" in model.message
    assert "quality against it: meteor -22.6 %, rouge1 -10.5 %" in model.message
    # The same settings in another key order, or a baseline recorded before settings were kept: no change.
    same = _case_record("google-t5/t5-small", "fallback t5", "aaaa")
    same.model.settings = dict(reversed(list(settings.items())))
    assert {v.metric: v.status for v in judge([same], _settings(tmp_path), FINGERPRINT, tmp_path).verdicts}["model"] \
        == "unchanged"
    assert store.model_changes({"requested": "m"}, {"requested": "m", "settings": settings}) == []


def test_a_changed_model_fails_until_the_new_one_is_recorded(tmp_path):
    settings = _settings(tmp_path, update_baselines=True)
    old = [_case_record("distilbert/sst2", "fallback distilbert (dim=64)", "aaaa")]
    store_run(old, judge(old, settings, FINGERPRINT, tmp_path), settings, make_run_info())
    [entry] = store.load_set(tmp_path / "baselines" / "default").baselines.values()
    assert entry.model == {"requested": "distilbert/sst2", "ran": "fallback distilbert (dim=64)", "source": "fallback",
                           "digest": "aaaa", "dtype": "float32", "device": "cpu"}
    new = [_case_record("FacebookAI/roberta-large-mnli", "fallback distilbert (dim=64)", "aaaa", flops=2e6)]
    judgement = judge(new, _settings(tmp_path), FINGERPRINT, tmp_path)
    [model] = [v for v in judgement.verdicts if v.metric == "model"]
    assert model.status == "model changed" and model.gating and judgement.gate_failed
    assert model.message == ("model changed: distilbert/sst2 -> FacebookAI/roberta-large-mnli (both ran fallback "
                             "distilbert (dim=64)); the gate fails until --energy-update-baselines records the new "
                             "model; it costs 100 % more FLOPs than the old model, and the same energy")
    assert judgement.summary[0].startswith("pytest-energy gate FAILED: 1 model changed (set 'default'")
    # The same request with another digest (a fallback's changed config) is a change too.
    digest = judge([_case_record("distilbert/sst2", "fallback distilbert (dim=64)", "bbbb")], _settings(tmp_path),
                   FINGERPRINT, tmp_path)
    [changed] = [v for v in digest.verdicts if v.metric == "model"]
    assert changed.status == "model changed" and changed.message.startswith(
        "model changed: distilbert/sst2 (ran fallback distilbert (dim=64)): digest aaaa -> bbbb; the gate fails")
    # Recorded: the next run passes; the old model's energy on another runner's CPU kind goes with it.
    epyc = dict(FINGERPRINT, id="epyc-runner", cpu_model="AMD EPYC 7763")
    on_epyc = _case_record("distilbert/sst2", "fallback distilbert (dim=64)", "aaaa")
    on_epyc.fingerprint = epyc
    store_run([on_epyc], judge([on_epyc], settings, epyc, tmp_path), settings, make_run_info())
    [entry] = store.load_set(tmp_path / "baselines" / "default").baselines.values()
    assert len(entry.energy) == 2
    lines = store_run(new, judge(new, settings, FINGERPRINT, tmp_path), settings, make_run_info())
    assert "  refreshed t.py::case  (model changed: the old model's energy on every device kind dropped)" in lines
    [entry] = store.load_set(tmp_path / "baselines" / "default").baselines.values()
    assert entry.model["requested"] == "FacebookAI/roberta-large-mnli" and len(entry.energy) == 1
    again = judge(new, _settings(tmp_path), FINGERPRINT, tmp_path)
    assert not again.gate_failed and {v.status for v in again.verdicts if v.metric == "model"} == {"unchanged"}


# -- cases in a pytest subprocess, serial and with -n 2 ----------------------------------------------
CONFTEST = '''
import os


def pytest_energy_update_fingerprint(config, fingerprint):
    # Play another runner: its CPU model and id, as a CI fleet's next job would have.
    played = os.environ.get("PLAY_CPU")
    if played:
        fingerprint["cpu_model"] = played
        fingerprint["id"] = "played-" + played.lower().replace(" ", "-")
'''

FALLBACK_DATA = "".join(json.dumps({"text": f"the {n} was {a}", "label": int(a in ("good", "great"))}) + "\n"
                        for n in ("film", "plot", "show") for a in ("good", "great", "bad", "awful"))

FALLBACK_CASE = '''
from pathlib import Path
from pytest_energy.cases import Fallback, InferenceCase

case = InferenceCase(
    model={model!r}, task="text-classification", dataset=Path(__file__).parent / "data.jsonl", inferences=8,
    rounds=2, warmup=1, max_input_tokens={tokens},
    fallback=Fallback("bert", Path(__file__).parent / "data.jsonl", steps=0, vocab_size=60,
                      config={{"hidden_size": {hidden}, "intermediate_size": 32, "num_hidden_layers": 1,
                              "num_attention_heads": 2}}),
)
'''


@pytest.fixture(params=["serial", "xdist"])
def session(request, tmp_path):
    """Run pytest --energy on ``files`` in tmp_path as the runner with CPU ``cpu``; (lines, code)."""
    from test_cases import MODELS, pytest_subprocess

    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "data.jsonl").write_text(FALLBACK_DATA)
    workers = ["-n", "2"] if request.param == "xdist" else ["-p", "no:xdist"]

    def go(files: dict[str, str], cpu: str, *extra: str) -> tuple[list[str], int]:
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        done = pytest_subprocess(tmp_path, "--energy", "--energy-idle-seconds", "0.05", "--energy-min-window", "0.05",
                                 "--energy-report", "none", "--energy-history", "none", "--energy-json", "out.json",
                                 "-p", "no:cacheprovider", *workers, *extra, env={"PLAY_CPU": cpu})
        return done.stdout.splitlines(), done.returncode

    go.document = lambda: json.loads((tmp_path / "out.json").read_text())  # the last run's JSON
    return go


def _gate(lines: list[str]) -> list[str]:
    head = next(i for i, line in enumerate(lines) if line.startswith("pytest-energy gate "))
    return lines[head:]


@pytest.mark.slow
def test_another_cpu_runner_judges_work_and_quality_and_fails_on_each_changed_model(session):
    """Cases recorded on one CPU runner, run on another: one stays as recorded (its work and quality judged
    against the other runner's baseline), and each of four changes one thing of its model (the model's
    work, its name, a fallback's config, how its inputs are cut); all in one pair of runs."""
    once = "from models import once, case\nmodel = case(once)\n"
    fallback = {"model": "no-such-org/model-a", "hidden": 16, "tokens": 512}
    recorded, code = session({"test_model.py": once, "test_changed.py": once,
                              **{f"test_{name}.py": FALLBACK_CASE.format(**fallback)
                                 for name in ("renamed", "resized", "cut")}},
                             "AMD EPYC 7B13", "--energy-update-baselines")
    assert code == 0, "\n".join(recorded)
    assert "model: fallback bert, standing in for no-such-org/model-a" in [line.strip() for line in recorded]
    changed, code = session({
        "test_changed.py": "from models import twice, case\nmodel = case(twice)\n",  # twice the work
        "test_renamed.py": FALLBACK_CASE.format(**{**fallback, "model": "no-such-org/model-b"}),
        "test_resized.py": FALLBACK_CASE.format(**{**fallback, "hidden": 32}),
        # How the case runs its model is part of its identity: inputs cut to 4 tokens fail on this other CPU too.
        "test_cut.py": FALLBACK_CASE.format(**{**fallback, "tokens": 4})}, "Intel Xeon Gold 6338")
    assert code == 1, "\n".join(changed)
    # Model, accuracy, f1 and FLOPs of the unchanged case judged against the other runner's baseline; its
    # modelled energy not.
    verdicts = {v["metric"]: v for v in session.document()["gate"]["verdicts"] if v["name"] == "test_model.py::model"}
    assert {m: v["status"] for m, v in verdicts.items()} == {
        "model": "unchanged", "accuracy": "unchanged", "f1": "unchanged", "flops_per_inference": "unchanged",
        "energy": "incomparable"}
    assert {v["baseline_hardware"] for m, v in verdicts.items() if m != "energy"} == {"played-amd-epyc-7b13"}
    gate = _gate(changed)
    assert gate[0].startswith("pytest-energy gate FAILED: 4 model changed") and "1 unchanged" in gate[0], gate[0]
    assert gate[0].endswith("(set 'default', hardware played-intel-xeon-gold-6338; baselines: 0 verdicts from this "
                            "hardware, 20 from other hardware, 5 with none)"), gate[0]
    assert not any(line.startswith("test_model.py::model") for line in gate)
    assert any(line.startswith("test_changed.py::model  flops_per_inference") and "(+100.0 %)" in line
               and "baseline from other hardware (played-amd-epyc-7b13)" in line for line in gate)
    assert any(line.startswith("test_changed.py::model  model changed: once -> twice; the gate fails until ")
               and line.endswith("100 % more FLOPs than the old model; quality against it: accuracy the same, "
                                 "f1 the same") for line in gate), "\n".join(gate)
    assert any(line.startswith("test_renamed.py::case  model changed: no-such-org/model-a -> no-such-org/model-b "
                               "(both ran fallback bert (hidden_size=16") for line in gate)
    assert any(line.startswith("test_resized.py::case  model changed: no-such-org/model-a (ran fallback bert "
                               "(hidden_size=16") and "-> no-such-org/model-a (ran fallback bert (hidden_size=32" in line
               for line in gate)
    assert any(line.startswith("test_cut.py::case  model changed: no-such-org/model-a (ran fallback bert (")
               and ", max_input_tokens 512 -> 4; the gate fails until" in line and "quality against it: accuracy" in line
               for line in gate), "\n".join(changed)


# -- reports -----------------------------------------------------------------------------------------
def test_reports_name_the_model_that_ran_its_work_and_the_deciding_verdict(tmp_path, pytestconfig, monkeypatch):
    import io

    from _pytest.terminal import TerminalReporter

    from pytest_energy.report import build_report, html, terminal

    def case(name: str, flops: float = 1e6):
        made = _case_record("distilbert/sst2", "fallback distilbert (dim=64)", "aaaa", flops=flops)
        made.name = made.nodeid = name
        return made

    settings = _settings(tmp_path, update_baselines=True)
    old = [case("t.py::case"), case("t.py::doubled")]
    store_run(old, judge(old, settings, FINGERPRINT, tmp_path), settings, make_run_info())
    short = case("t.py::case")
    short.rounds = short.rounds[:3]  # three rounds: no rank interval at 98 %, judged as single windows are
    doubled = case("t.py::doubled", flops=2e6)
    judgement = judge([short, doubled], _settings(tmp_path), FINGERPRINT, tmp_path)
    report = build_report([short, doubled], judgement, make_run_info(), None)
    rows = {row.name: row for row in report.rows}
    assert [row.name for row in report.rows] == ["t.py::doubled", "t.py::case"]  # regression first
    assert rows["t.py::case"].model == "fallback distilbert, standing in for distilbert/sst2"
    assert rows["t.py::case"].model_detail == "fallback distilbert (dim=64), standing in for distilbert/sst2"
    assert rows["t.py::doubled"].work == 2e6 and rows["t.py::doubled"].work_label == "FLOPs / inference"
    # The FLOPs decided the regression, whatever the energy column reads.
    assert rows["t.py::doubled"].decided_by.startswith("flops_per_inference 2e+06 vs 1e+06 (+100.0 %)")
    assert rows["t.py::case"].change.interval and rows["t.py::case"].interval_note == ""
    assert any("3 rounds here and 5 in the baseline are too few for the rank interval" in message
               for message in rows["t.py::case"].messages)
    page = html.render(report)
    # The model on the row's line; the work and the verdict that decided it in the row's fold.
    assert "<th>Model that ran</th>" in page
    assert "<dt>work</dt><dd>2,000,000 FLOPs / inference</dd>" in page and "<dt>decided by</dt><dd>flops_per_inference" in page
    assert 'title="fallback distilbert (dim=64), standing in for distilbert/sst2">fallback distilbert, standing in ' in page
    assert "J / iteration" not in page and "per inference" in page
    assert rows["t.py::case"].change.interval in page
    out = io.StringIO()
    terminal.render(report, TerminalReporter(pytestconfig, out), 0)
    lines = out.getvalue().splitlines()
    names = [line for line in lines if line in ("t.py::doubled", "t.py::case")]
    assert names == ["t.py::doubled", "t.py::case"]  # the HTML order
    assert any("model: fallback distilbert, standing in for distilbert/sst2" in line for line in lines)


def test_a_fallback_digest_follows_its_definition_not_its_path(tmp_path):
    from pytest_energy.cases import Fallback, get_task
    from pytest_energy.cases.fallback import _key

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "data.jsonl").write_text(FALLBACK_DATA)
    spec = get_task("text-classification", "test")

    def key(folder: str, **fields) -> str:
        return _key(Fallback("bert", tmp_path / folder / "data.jsonl", **fields), spec, "", {}, 64)

    assert key("a") == key("b")  # another checkout, the same model
    assert key("a", overrides={"quality": {"accuracy": 0.9}}) == key("a")  # a case's budget is not the model
    assert key("a", config={"hidden_size": 32}) != key("a") and key("a", steps=10) != key("a")
    (tmp_path / "b" / "data.jsonl").write_text(FALLBACK_DATA + FALLBACK_DATA)
    assert key("b") != key("a")  # other training data, another model


def test_a_row_without_an_energy_change_says_why(tmp_path):
    from pytest_energy.report import build_report, html

    settings = _settings(tmp_path, update_baselines=True)
    first = [_case_record("distilbert/sst2", "fallback distilbert (dim=64)", "aaaa")]
    store_run(first, judge(first, settings, FINGERPRINT, tmp_path), settings, make_run_info())
    elsewhere = _case_record("distilbert/sst2", "fallback distilbert (dim=64)", "aaaa")
    elsewhere.fingerprint = dict(FINGERPRINT, id="epyc-runner", cpu_model="AMD EPYC 7763")
    report = build_report([elsewhere], judge([elsewhere], _settings(tmp_path), elsewhere.fingerprint, tmp_path),
                          make_run_info(), None)
    [row] = report.rows
    assert row.status == "unchanged" and row.change is None
    assert row.interval_note == ("not compared: energy: no baseline measured on modelled: AMD EPYC 7763 x1 in "
                                 "'default' yet (it holds modelled: Intel(R) Xeon(R) Platinum 8480C x1)")
    assert row.interval_note.replace("'", "&#39;") in html.render(report)
