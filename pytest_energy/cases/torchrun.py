"""A fine-tune on several GPUs (``FineTuneCase(gpus=N)``): torch's own launcher runs one process per GPU.

The case's process writes the job (its model as loaded, the processor, the training rows and recipe) to a
throwaway folder and launches ``python -m torch.distributed.run --standalone --nproc-per-node N -m
pytest_energy.cases.torchrun FOLDER`` (torchrun). Each process trains the model under
DistributedDataParallel (NCCL on CUDA, one GPU each; gloo on the CPU) on its share of every step's batch
(:func:`~pytest_energy.cases.training.train`), so a step is the same step as on one GPU. Rank 0 says each
step on its standard output, where the case's process marks it in its measured block, and saves the
trained weights, which the case's process loads into its own model: quality is evaluated there, as for a
fine-tune on one GPU. A task a user registered (in a conftest) is registered in each process by importing
the module that registered it. A launch that fails is one line: the failing process's error, else the launcher's
last lines.
"""

from __future__ import annotations

import importlib
import os
import pickle
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from .base import CaseFailure

#: What rank 0 prints when a step has ended.
STEP = "pytest-energy-torchrun: step"
#: How many of the launcher's last standard-error lines a failure without an error of its own shows.
ERROR_LINES = 3


def launch(job: dict[str, Any], processes: int, *, on_step: Callable[[], None]) -> list[float]:
    """Train ``job["model"]`` in place in ``processes`` torchrun processes; the loss of every step (the mean
    of the processes' shares). ``job``: ``model``, ``processor``, ``task`` (a registered task's name),
    ``rows``, ``backend`` ("nccl" or "gloo") and ``options`` (:func:`~pytest_energy.cases.training.train`'s
    recipe). ``on_step`` is called after each step.
    Raises :class:`CaseFailure` (one line) where they fail."""
    import torch

    with tempfile.TemporaryDirectory(prefix="pytest-energy-torchrun-") as folder:
        try:
            torch.save(job, Path(folder) / "job.pt")
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise CaseFailure(f"the fine-tune's model cannot be handed to its torchrun processes ({error}): define "
                              "its classes and factory at a module's top level") from None
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   "-m", __name__, folder]
        # The processes import what this one could: a model's class or a factory defined beside the tests.
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        with open(Path(folder) / "stderr.txt", "w+", encoding="utf-8", errors="replace") as errors:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=environment)
            try:
                for line in process.stdout or ():
                    if STEP in line:
                        on_step()
                code = process.wait()
            finally:
                if process.poll() is None:  # the test was stopped (a timeout, Ctrl-C): so are the processes
                    process.kill()
                    process.wait()
            errors.seek(0)
            if code != 0:
                raise CaseFailure(_failure(Path(folder), errors.read(), processes, code))
        trained = torch.load(Path(folder) / "trained.pt", map_location="cpu", weights_only=False)
    job["model"].load_state_dict(trained["state"])
    return trained["losses"]


def _failure(folder: Path, stderr: str, processes: int, code: int) -> str:
    """One line: the first process error written, else the launcher's last lines."""
    own = sorted(folder.glob("error-*.txt"))
    if own:
        said = own[0].read_text(encoding="utf-8").strip()
    else:
        said = " | ".join([line.strip() for line in stderr.splitlines() if line.strip()][-ERROR_LINES:])
    return f"the fine-tune's {processes} torchrun processes failed (exit {code}): {said or 'no error output'}"


def _train(folder: Path, rank: int, processes: int, local: int) -> None:
    """One process's part of the job in ``folder`` (see the module docstring)."""
    import torch
    import torch.distributed as distributed
    from torch.nn.parallel import DistributedDataParallel

    from .tasks import get_task
    from .training import train

    job = torch.load(folder / "job.pt", map_location="cpu", weights_only=False)
    on_cuda = job["backend"] == "nccl"
    device = f"cuda:{local}" if on_cuda else "cpu"
    if on_cuda:
        torch.cuda.set_device(local)
    distributed.init_process_group(job["backend"])
    try:
        module = _import_registering(*job.get("task_registered_by", ("", "")))
        try:
            task = get_task(job["task"])
        except ValueError:
            raise ValueError(f"task {job['task']!r} is not registered in the torchrun processes, which import "
                             f"{module or 'pytest_energy.cases'} for it: register it at that module's top level, "
                             "whatever the process") from None
        model = job["model"].to(device)
        forward = DistributedDataParallel(model, device_ids=[local] if on_cuda else None,
                                          find_unused_parameters=True)  # a head the task's loss skips is no error
        losses = train(model, job["processor"], task, job["rows"], device=device, forward=forward,
                       shard=(rank, processes), on_step=(lambda: print(STEP, flush=True)) if rank == 0 else None,
                       **job["options"])
        mean = torch.tensor(losses, dtype=torch.float64, device=device)
        distributed.all_reduce(mean)
        del forward  # DistributedDataParallel's reducer holds the process group: freed before it is destroyed
        if rank == 0:
            torch.save({"state": {name: value.cpu() for name, value in model.state_dict().items()},
                        "losses": (mean / processes).tolist()}, folder / "trained.pt")
        distributed.barrier()  # every process ends together: a peer gone before gloo's shutdown can hang it
    finally:
        distributed.destroy_process_group()


def _import_registering(module: str, path: str) -> str:
    """Import the module that registered the job's task where it is not a bundled one (a user's conftest),
    so that it registers the task in this process too; its name ("" for a bundled task)."""
    if not module or module == "__main__" or module.startswith("pytest_energy."):
        return ""
    try:
        importlib.import_module(module)
    except ImportError:  # a conftest pytest imported under a name of its own (--import-mode=importlib)
        if not path:
            raise
        runpy.run_path(path)
    return module


def main(arguments: Sequence[str]) -> int:
    """A torchrun process: train its share of the job; its error, as one line, to ``error-RANK.txt``."""
    folder = Path(arguments[0])
    rank = int(os.environ["RANK"])
    try:
        _train(folder, rank, int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    except Exception as error:  # the case's process reports it: one line, no traceback
        text = " ".join(str(error).split())
        (folder / f"error-{rank}.txt").write_text(f"rank {rank}: {type(error).__name__}: {text}", encoding="utf-8")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
