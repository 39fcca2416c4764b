"""Work counted for any measured code: a plain `energy` test around a torch model gates on its FLOPs and
model on any runner (issue 28, item 1).

Sessions that use torch run in a pytest subprocess (torch's C extension cannot be imported twice in one
process, which pytester's in-process runs would need), serially and with ``-n 2``, in a fresh project of
their own, and are read from their JSON, baselines and terminal lines.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cases import pytest_subprocess  # (tests/ is on sys.path under pytest's default import mode)

FAST = ["--energy", "--energy-json", "out.json", "--energy-min-window", "0.02", "--energy-rounds", "3",
        "--energy-warmup", "1", "--energy-idle-seconds", "0.05", "--energy-report", "none",
        "--energy-history", "none", "-p", "no:cacheprovider", "-rf"]

#: A user's own test of a small MLP; HIDDEN is the hidden size the change under review doubles.
MLP_TESTS = """
import os

import pytest
import torch

HIDDEN = int(os.environ.get("HIDDEN", "64"))


class MLP(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(32, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 4))

    def forward(self, x):
        return self.net(x)


def build():
    torch.manual_seed(0)
    return MLP(HIDDEN), torch.randn(8, 32)


def test_mlp(energy):
    model, x = build()
    with torch.no_grad():
        assert energy(model, x).shape == (8, 4)


def test_mlp_in_a_lambda_then_checked(energy):
    model, x = build()
    with torch.no_grad():
        energy(lambda: model(x))
    assert HIDDEN == 64, "the hidden size changed"


def test_training_block(energy):
    model, x = build()
    with energy.measure("train", unit="step", iterations=4, work=lambda: model(x).sum().backward()):
        for _ in range(4):
            model(x).sum().backward()


@pytest.mark.energy(count_flops=False)
def test_opted_out(energy):
    model, x = build()
    with torch.no_grad():
        energy(model, x)


def test_no_warmup(energy):
    model, x = build()
    with torch.no_grad():
        energy.run(model, args=(x,), warmup=0)
"""

#: FLOPs of one forward pass of the MLP on 8 rows (2 per multiply-add of each Linear).
def forward_flops(hidden: int) -> int:
    return 2 * 8 * (32 * hidden + hidden * 4)


@pytest.fixture(params=["serial", "xdist"])
def mode(request) -> list[str]:
    return ["-p", "no:xdist"] if request.param == "serial" else ["-p", "xdist", "-n", "2"]


@dataclass
class Run:
    lines: list[str]
    records: dict[str, dict]
    verdicts: dict[tuple[str, str], dict]
    returncode: int

    def line(self, start: str) -> str:
        found = [line for line in self.lines if line.startswith(start)]
        assert len(found) == 1, (start, self.lines)
        return found[0]


def run(folder: Path, *args: str, hidden: int = 64, files: dict[str, str] | None = None) -> Run:
    for name, source in (files or {"test_mlp.py": MLP_TESTS}).items():
        (folder / name).write_text(source)
    (folder / "pytest.ini").touch()  # the project's root: its baselines/ and node ids
    done = pytest_subprocess(folder, *FAST, *args, env={"HIDDEN": str(hidden)})
    document = json.loads((folder / "out.json").read_text())
    records = {record["name"].split("::", 1)[1]: record for record in document["records"]}
    verdicts = {(v["name"].split("::", 1)[1], v["metric"]): v for v in document["gate"]["verdicts"]}
    return Run(done.stdout.splitlines(), records, verdicts, done.returncode)


@pytest.mark.slow
def test_a_plain_test_gates_on_its_counted_work_and_model(tmp_path, mode):
    recorded = run(tmp_path, "--energy-update-baselines", *mode)
    assert recorded.returncode == 0, recorded.lines
    plain, lambda_, block = (recorded.records[name] for name in
                             ("test_mlp", "test_mlp_in_a_lambda_then_checked", "test_training_block::train"))
    for record in (plain, lambda_):
        assert record["proxies"] == {"flops_per_iteration": forward_flops(64), "parameters": 32 * 64 + 64 + 64 * 4 + 4}
        assert record["model"]["requested"] == "test_mlp.MLP"
        assert record["model"]["dtype"] == "float32" and record["model"]["device"] == "cpu"
    assert plain["model"] == lambda_["model"]  # the same modules, found in a closure too
    # A block counts the call given as its work (one step: forward and backward), times its iterations.
    step = block["proxies"]["flops_per_iteration"]
    assert step > forward_flops(64) and block["proxies"]["flops"] == 4 * step
    baseline = json.loads((tmp_path / "baselines" / "default" / "test_mlp.py.json").read_text())["records"]
    assert baseline["test_mlp.py::test_mlp"]["work"] == {"flops_per_iteration": forward_flops(64)}
    assert baseline["test_mlp.py::test_mlp"]["model"]["digest"] == plain["model"]["digest"]
    assert baseline["test_mlp.py::test_training_block::train"]["work"] == {"flops": 4 * step}
    # Opted out by the marker: no FLOPs (the model is still named: naming it runs nothing). No warm-up
    # call to count on: none, and the record says why.
    opted_out, no_warmup = recorded.records["test_opted_out"], recorded.records["test_no_warmup"]
    assert "flops_per_iteration" not in opted_out["proxies"]
    assert opted_out["model"]["requested"] == "test_mlp.MLP"
    assert "flops_per_iteration" not in no_warmup["proxies"]
    assert ("FLOPs not counted: they are counted on the first warm-up call, and warm-up is 0"
            in no_warmup["notes"])

    again = run(tmp_path, *mode)  # unchanged code passes: its work and model as in the baseline
    assert again.returncode == 0, again.lines
    assert again.line("pytest-energy gate passed")
    for name in ("test_mlp", "test_mlp_in_a_lambda_then_checked"):
        assert again.verdicts[name, "flops_per_iteration"]["status"] == "unchanged"
        assert again.verdicts[name, "model"]["status"] == "unchanged"
    assert again.verdicts["test_training_block::train", "flops"]["status"] == "unchanged"

    doubled = run(tmp_path, *mode, hidden=128)  # on this CPU runner, whose modelled energy does not gate
    assert doubled.returncode == 1
    assert doubled.line("pytest-energy gate FAILED")
    work = doubled.line("test_mlp.py::test_mlp  flops_per_iteration")
    assert work.startswith("test_mlp.py::test_mlp  flops_per_iteration 7.373e+04 vs 3.686e+04 (+100.0 %) in "
                           "'default': regression")
    assert doubled.verdicts["test_mlp", "flops_per_iteration"]["gating"] is True
    model = doubled.line("test_mlp.py::test_mlp  model changed: test_mlp.MLP: digest ")
    assert "100 % more FLOPs" in model  # what the new model costs against the old
    assert doubled.verdicts["test_mlp", "model"]["status"] == "model changed"
    # The test that fails on the change still shows its work and model comparison, not gating.
    failed = "test_mlp.py::test_mlp_in_a_lambda_then_checked"
    assert doubled.line(f"{failed}  flops_per_iteration 7.373e+04 vs 3.686e+04 (+100.0 %)").endswith("[test failed]")
    assert doubled.line(f"{failed}  model changed: test_mlp.MLP").endswith("[test failed]")
    assert doubled.records["test_mlp_in_a_lambda_then_checked"]["outcome"] == "failed"


def test_the_option_turns_counting_off_for_every_test(tmp_path, mode):
    off = run(tmp_path, "--energy-no-count-flops", *mode)
    assert off.returncode == 0, off.lines
    assert len(off.records) == 5
    assert all("flops_per_iteration" not in r["proxies"] and "flops" not in r["proxies"] for r in off.records.values())


NO_TORCH = """
import sys

def work(n=20000):
    return sum(i * i for i in range(n))

def test_plain(energy):
    assert energy(work) == work()
    assert "torch" not in sys.modules
"""


def test_a_test_without_torch_counts_nothing_and_imports_no_torch(tmp_path, mode):
    measured = run(tmp_path, *mode, files={"test_plain.py": NO_TORCH})
    assert measured.returncode == 0, measured.lines
    record = measured.records["test_plain"]
    assert record["proxies"] == {} and record["model"] is None


# -- the pieces, in this process ------------------------------------------------------------------------
def test_model_identity_is_the_structure_not_the_weights():
    torch = pytest.importorskip("torch")
    from pytest_energy.measure.work import Model, modules_in

    def mlp(hidden: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))

    first, retrained, wider, half = mlp(8), mlp(8), mlp(16), mlp(8).to(torch.bfloat16)
    with torch.no_grad():
        retrained[0].weight.add_(1.0)
    assert Model.of([first]).digest == Model.of([retrained]).digest != Model.of([wider]).digest
    assert (Model.of([first]).dtype, Model.of([half]).dtype) == ("float32", "bfloat16")
    assert Model.of([half]).digest != Model.of([first]).digest  # the dtype is part of the structure
    facts = Model.of([wider])
    assert (facts.requested, facts.parameters) == ("torch.nn.modules.container.Sequential", 4 * 16 + 16 + 16 * 2 + 2)
    x = torch.ones(1, 4)
    # The function itself, a bound method's object, a partial, a closure, the arguments: each module once.
    assert modules_in(wider, (x,)) == [wider]
    assert modules_in(wider.forward, (x,)) == [wider]
    assert modules_in(functools.partial(wider, x)) == [wider]
    assert sorted(map(id, modules_in(lambda: wider(x) + first(x)))) == sorted([id(wider), id(first)])
    assert modules_in(print, (), {"model": wider}) == [wider]
    assert modules_in(print, (x, 3)) == []


def test_a_call_failing_under_the_counter_says_how_to_measure_without_it():
    pytest.importorskip("torch")
    from pytest_energy.measure.work import COUNTER_NOTE, Work

    def broken() -> None:
        raise RuntimeError("an op the counter cannot run")

    with pytest.raises(RuntimeError) as error:
        Work().count(broken)
    assert error.value.__notes__ == [COUNTER_NOTE]
    assert "--energy-no-count-flops" in COUNTER_NOTE
