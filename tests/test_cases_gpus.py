"""Cases on several GPUs (issue 25): ``gpus=N`` holds the first N GPUs of the case's process, its record keeps
them alone (each its own component) and its device kind counts them; an inference case runs one replica per
GPU, a fine-tune one torchrun process per GPU.

The sessions run on a fake NVML of four GPUs (pytest_energy.testing), each idling at its own power (GPU i:
50 + 10 i W), so a component's idle watts name the GPU it read. torch has no CUDA here: the replicas and the
torchrun processes (gloo) run on the CPU while the meter measures the held fake GPUs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_energy.core.record import Record
from pytest_energy.measure.fingerprint import device_kinds
from test_generation import MODELS as LLM
from test_cases import MODELS, run_session  # (tests/ is on sys.path under pytest's default import mode)

UUIDS = [f"GPU-{i}{i}{i}{i}a0b1-0000-4000-8000-00000000000{i}" for i in range(4)]

CONFTEST = f'''
import sys

from pytest_energy.testing import FakeGpu, FakeNvmlModule

sys.modules["pynvml"] = FakeNvmlModule([FakeGpu(uuid=uuid, power=50.0 + 10 * i) for i, uuid in enumerate({UUIDS!r})])
'''

INFERENCE = '''
from models import case, once

one = case(once, inferences=24, warmup=2)
pair = case(once, gpus=2, inferences=24, warmup=2)
pair_batched = case(once, gpus=2, batch_size=5, inferences=23, warmup=3)
batched = case(once, batch_size=5, inferences=23, warmup=4)
eight = case(once, gpus=8)

from llm import llama
from pytest_energy.cases import GenerationCase

generation = GenerationCase(model=llama, dataset=[{"prompt": "the weather in alderley is", "continuation": "grey"}],
                            inferences=2, max_new_tokens=2, rounds=1, warmup=0)
'''

ARGS = ("--energy", "--energy-json", "out.json", "--energy-devices", "gpu", "--energy-min-window", "0.15",
        "--energy-idle-seconds", "0.5")


def _kind(record: dict) -> str:
    [kind] = device_kinds(Record.from_dict(record).components, record["fingerprint"])
    return kind.id


def _held(record: dict) -> list[tuple[int, str, str]]:
    return [(g["index"], g["uuid"], g["product"]) for g in record["case"]["gpus"]]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("PYTEST_ENERGY_GPUS_PER_WORKER", raising=False)


@pytest.mark.slow
def test_a_case_of_two_gpus_records_those_two_apart_and_its_kind_counts_them(tmp_path: Path) -> None:
    session = run_session(tmp_path, {"conftest.py": CONFTEST, "models.py": MODELS, "llm.py": LLM,
                                     "test_here.py": INFERENCE}, *ARGS)
    assert session.outcomes == {"one": "passed", "pair": "passed", "pair_batched": "passed", "batched": "passed",
                                "eight": "skipped", "generation": "passed"}, session.lines[-30:]
    # A generation case holds the one GPU it runs on, as an inference case of one GPU does.
    assert [c["device"] for c in session.records["decode"]["components"]] == ["gpu:0"]
    assert any("needs 8 GPUs, this process sees 4 (CUDA_VISIBLE_DEVICES=unset): run on a runner with 8" in line
               for line in session.lines), session.lines[-10:]
    one, pair = session.records["one"], session.records["pair"]
    assert [c["device"] for c in pair["components"]] == ["gpu:0", "gpu:1"]  # of the four measured, its own two
    assert [c["device"] for c in one["components"]] == ["gpu:0"]
    # Idle read on each held GPU: the nearest of the four GPUs' powers (10 W apart) is its own.
    assert [min(range(4), key=lambda i: abs(c["idle_watts"] - (50 + 10 * i))) for c in pair["components"]] == [0, 1]
    assert _held(pair) == [(0, UUIDS[0], "NVIDIA H100 80GB HBM3"), (1, UUIDS[1], "NVIDIA H100 80GB HBM3")]
    assert _held(one) == [(0, UUIDS[0], "NVIDIA H100 80GB HBM3")]
    assert (_kind(pair), _kind(one)) == ("gpu: NVIDIA H100 80GB HBM3 x2", "gpu: NVIDIA H100 80GB HBM3 x1")
    # The split per GPU sums to the record: every round's GPUs, and the components over the rounds.
    valid = [round_ for round_ in pair["rounds"] if round_["valid"]]  # a loaded host may lose a window's edge
    assert valid and all(sorted(round_["by_device"]) == ["gpu:0", "gpu:1"] for round_ in valid)
    assert sum(c["gross_joules"] for c in pair["components"]) == pytest.approx(pair["total_gross_joules"])
    assert sum(c["net_joules"] for c in pair["components"]) == pytest.approx(pair["total_net_joules"])
    assert all(c["gross_joules"] > 0 for c in pair["components"])
    # Data-parallel: the same predictions as one GPU on the same rows, each call a batch on each replica.
    assert pair["quality"] == one["quality"] and pair["quality"]["accuracy"]["examples"] == 12
    assert session.records["pair_batched"]["quality"] == session.records["batched"]["quality"]
    assert pair["iterations_per_call"] == 2 and one["iterations_per_call"] == 1
    assert pair["proxies"]["flops"] == one["proxies"]["flops"] > 0  # its own 24 inferences, as one GPU's


@pytest.mark.slow
def test_two_workers_each_hold_their_own_block_and_nothing_is_shared(tmp_path: Path) -> None:
    cases = "from models import case, once\n\n" + "".join(f"pair_{n} = case(once, gpus=2, inferences=12)\n"
                                                         for n in range(4))
    session = run_session(tmp_path, {"conftest.py": CONFTEST, "models.py": MODELS, "test_here.py": cases}, *ARGS,
                          "-n", "2", "--energy-gpus-per-worker", "2", xdist=True)
    assert set(session.outcomes.values()) == {"passed"} and len(session.outcomes) == 4, session.lines[-30:]
    blocks = set()
    for record in session.records.values():
        own = [g["uuid"] for g in record["fingerprint"]["gpus"]]  # the worker's block: the GPUs it sees
        assert [uuid for _, uuid, _ in _held(record)] == own and len(own) == 2
        blocks.add(tuple(own))
        assert all(c["shared_with"] == 0 and "shared" not in c["note"] for c in record["components"])
        assert _kind(record) == "gpu: NVIDIA H100 80GB HBM3 x2"
    assert blocks == {(UUIDS[0], UUIDS[1]), (UUIDS[2], UUIDS[3])}  # each worker on its own two GPUs


@pytest.mark.slow
def test_a_case_of_two_gpus_on_a_worker_of_one_is_skipped_with_what_to_do(tmp_path: Path) -> None:
    cases = "from models import case, once\n\npair = case(once, gpus=2)\none = case(once, inferences=12)\n"
    session = run_session(tmp_path, {"conftest.py": CONFTEST, "models.py": MODELS, "test_here.py": cases}, *ARGS,
                          "-n", "2", "--energy-gpus-per-worker", "1", xdist=True)
    assert session.outcomes == {"pair": "skipped", "one": "passed"}, session.lines[-30:]
    assert any("needs 2 GPUs, this worker sees 1: run with --energy-gpus-per-worker 2 or on a runner with 2" in line
               for line in session.lines), session.lines[-10:]
    assert sorted(session.records) == ["one"]


FINETUNE = '''
import json
from pytest_energy.cases import Fallback, FineTuneCase

ROWS = [{"text": f"the {n} was {a}", "label": int(a in ("good", "great", "fine"))}
        for n in ("film", "plot", "cast") for a in ("good", "great", "fine", "bad", "awful", "poor")]
with open("train.jsonl", "w") as handle:
    handle.write("\\n".join(json.dumps(r) for r in ROWS))

# Without dropout a step on two processes' halves of a batch is the step one process takes on all of it.
FIELDS = dict(model="no-such-org/no-such-model", task="text-classification", train=ROWS, eval=ROWS, steps=6,
              warmup=2, rounds=2, batch_size=8, learning_rate=3e-3, max_input_tokens=16,
              fallback=Fallback("distilbert", "train.jsonl", steps=0,
                                config={"dim": 16, "hidden_dim": 32, "n_heads": 2, "n_layers": 1, "dropout": 0.0,
                                        "attention_dropout": 0.0, "seq_classif_dropout": 0.0}))
one = FineTuneCase(**FIELDS)
pair = FineTuneCase(**FIELDS, gpus=2)
'''


@pytest.mark.slow
def test_a_finetune_on_two_gpus_trains_in_two_torchrun_processes_and_its_model_comes_back(tmp_path: Path) -> None:
    session = run_session(tmp_path, {"conftest.py": CONFTEST, "test_tune.py": FINETUNE}, *ARGS)
    assert session.outcomes == {"one": "passed", "pair": "passed"}, session.lines[-30:]
    one, pair = session.records["one"], session.records["pair"]
    assert [c["device"] for c in pair["components"]] == ["gpu:0", "gpu:1"]
    assert _kind(pair) == "gpu: NVIDIA H100 80GB HBM3 x2" and len(_held(pair)) == 2
    # The processes' steps are marked here: the warm-up (with their start), the rounds, the drain (their end).
    assert pair["warmup_round"]["iterations"] == 2
    assert sum(r["iterations"] for r in pair["rounds"]) == 4 and pair["drain_round"] is not None
    # The totals hold the warm-up and drain windows where they are valid (on a loaded host one can be not).
    outside = [pair[w]["gross_joules"] for w in ("warmup_round", "drain_round") if pair[w]["valid"]]
    assert pair["total_gross_joules"] == pytest.approx(sum(c["gross_joules"] for c in pair["components"]) + sum(outside))
    # The same training as on one process (the losses of the same steps), and the trained model evaluated.
    first, last = (pair["case"]["fine_tune"][k] for k in ("loss_first", "loss_last"))
    assert first == pytest.approx(one["case"]["fine_tune"]["loss_first"], rel=1e-5)
    assert last == pytest.approx(one["case"]["fine_tune"]["loss_last"], rel=1e-3) and last < first
    assert pair["quality"]["accuracy"]["examples"] == 18
    assert pair["quality"]["accuracy"]["value"] == one["quality"]["accuracy"]["value"]


@pytest.mark.slow
def test_a_task_a_conftest_registers_trains_in_torchrun_and_a_failure_there_is_one_line(tmp_path: Path) -> None:
    """The torchrun processes import the conftest that registered a case's task, so a user's own task
    trains there too; one the conftest registers in the case's process alone fails in one line."""
    conftest = CONFTEST + '''
import dataclasses
import os
from pytest_energy.cases import get_task, register_task

register_task(dataclasses.replace(get_task("text-classification"), name="my-classification"))
if "RANK" not in os.environ:  # not in the torchrun processes, which import this conftest too
    register_task(dataclasses.replace(get_task("text-classification"), name="here-only"))
'''
    tune = FINETUNE.replace('task="text-classification"', 'task="my-classification"').replace(
        "one = FineTuneCase(**FIELDS)\n", "") + 'missing = FineTuneCase(**{**FIELDS, "task": "here-only"}, gpus=2)\n'
    session = run_session(tmp_path, {"conftest.py": conftest, "test_tune.py": tune}, *ARGS)
    assert session.outcomes == {"pair": "passed", "missing": "failed"}, session.lines[-30:]
    assert session.records["pair"]["case"]["task"] == "my-classification"
    assert session.errors("missing") == [
        "E   CaseFailure: the fine-tune's 2 torchrun processes failed (exit 1): rank 0: ValueError: task 'here-only' is "
        "not registered in the torchrun processes, which import conftest for it: register it at that module's top "
        "level, whatever the process"]
    assert not any("Traceback" in line for line in session.lines)


def test_energy_run_keeps_the_gpus_it_is_told_the_code_holds(pytester: pytest.Pytester) -> None:
    """The fixture's own form of it: ``gpus=[1]`` records cuda:1 alone; a bad value fails in one line."""
    from test_xdist_gpus import ARGS as XDIST_ARGS, CONFTEST as XDIST_CONFTEST

    pytester.makeconftest(XDIST_CONFTEST)
    pytester.makepyfile(test_gpus='''
def test_second(energy, load):
    energy.run(load, rounds=2, min_window=0.1, warmup=0, gpus=[1])


def test_twice(energy, load):
    energy.run(load, rounds=2, min_window=0.1, warmup=0, gpus=[0, 0])
''')
    result = pytester.runpytest_subprocess(*XDIST_ARGS)
    result.assert_outcomes(passed=1, failed=1)
    assert ("pytest-energy: energy.run(gpus=[0, 0]): expected the GPUs held as distinct CUDA numbers in this process "
            "(gpus=[0, 1] for cuda:0 and cuda:1), or None for every device") in result.outlines
    [record] = json.loads((pytester.path / "out.json").read_text())["records"]
    [component] = record["components"]
    assert component["device"] == "gpu:1" and abs(component["idle_watts"] - 60) < 5  # GPU 1's, not 0's or 2's


def test_a_case_of_two_gpus_on_a_runner_without_any_is_skipped_with_the_reason(tmp_path: Path) -> None:
    """No NVML GPU here (this machine's own NVML, not the fake): a case of two is skipped, one of one runs on the
    CPU as ever; without --energy too."""
    cases = "from models import case, once\n\npair = case(once, gpus=2)\none = case(once, inferences=12)\n"
    session = run_session(tmp_path, {"models.py": MODELS, "test_here.py": cases})
    assert session.outcomes == {"pair": "skipped", "one": "passed"}, session.lines[-20:]
    [line] = [line for line in session.lines if "needs 2 GPUs" in line]
    assert "needs 2 GPUs and this machine shows none (" in line and line.endswith("): run it on a runner with 2")
