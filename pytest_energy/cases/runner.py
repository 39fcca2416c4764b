"""Running a case in its test: load, predict (measured with ``--energy``), score, fill the record, check
the budgets.

Without ``--energy`` a case is an ordinary test: every distinct example is predicted once, unmeasured,
and the quality budgets are checked. With it, the inferences are measured in rounds, each at least its
share of the case's inferences and at least the minimum window long (the case cycles through its data
until then, so a round reads enough counter ticks); the record then holds energy per inference, the
proxies of the case's own inferences, the quality of the measured predictions and what ran.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import unittest
from typing import Any, Callable, Mapping, Sequence

from ..core.budget import EnergyBudget
from ..core.facts import CaseFacts, FineTuneFacts, GenerationFacts, HeldGpu, ModelFacts, Pruned, RecordFacts, Trained
from ..core.profiles import DEFAULT, Profile
from ..core.units import parse_energy
from .base import DTYPES, QualityBudgetError, apply_quality_budget
from .data import example_keys, examples
from .evaluate import score
from .gpus import Replicas, hold, replica_devices
from .lora import adapt
from .models import Loaded, load, pick_device, place, weights_digest
from .predictor import Predictor, input_shapes, tokens_in
from .proxies import count_flops, parameters
from .pruning import Pruning
from .reruns import Quality, add_runs, mark_trained
from .tasks import Task, get_task, registered_by
from .training import step_plan, steps_per_epoch, train, training_batch

# The cases arrive as arguments (InferenceCase, FineTuneCase): the declarations import this module
# when a test runs, never the other way round. The public helpers below are the steps every runner
# shares (generation_runner.py uses them too).


def batch_at(number: int, examples: int, batch_size: int) -> list[int]:
    """Example indices of batch ``number`` when batches cycle through the dataset."""
    return [(number * batch_size + j) % examples for j in range(batch_size)]


def cycle_batches(examples: int, batch_size: int, count: int) -> list[list[int]]:
    """Example indices of the first ``count`` batches cycling through the dataset."""
    return [batch_at(i, examples, batch_size) for i in range(count)]


def own_batches(examples: int, batch_size: int, inferences: int, first: int = 0) -> list[list[int]]:
    """Example indices of a case's own calls from call number ``first`` on (its warm-up calls come
    before): exactly ``inferences`` examples, cycling through the dataset, the last batch cut to the
    rest where they are no multiple of the batch size."""
    count = math.ceil(inferences / batch_size)
    batches = [batch_at(first + number, examples, batch_size) for number in range(count)]
    batches[-1] = batches[-1][:inferences - (count - 1) * batch_size]
    return batches


def distinct_batches(examples: int, batch_size: int) -> int:
    """How many batches before the cycle through the dataset repeats."""
    return examples // math.gcd(examples, batch_size)


def load_case(case: Any, spec: Task, device: str, dtype: str) -> tuple[Any, Loaded]:
    """The loaded model, and the case as it runs: with the fallback's overrides where the fallback ran."""
    loaded = load(case.model, spec, fallback=case.fallback, prefix=case.prefix, columns=dict(case.columns),
                  max_input_tokens=case.max_input_tokens)
    loaded.model = place(loaded.model, device, dtype)
    loaded.model.eval()
    if loaded.facts["source"] == "fallback" and case.fallback is not None and case.fallback.overrides:
        loaded.facts["overrides"] = dict(case.fallback.overrides)
        case = dataclasses.replace(case, **case.fallback.overrides)
    return case, loaded


def trained_fallback(loaded: Loaded) -> bool:
    """Whether the model that ran is a fallback trained in this session (its quality varies by seed)."""
    return loaded.facts.get("source") == "fallback" and bool(loaded.facts.get("training_steps"))


def with_fallback_seed(case: Any, seed: int) -> Any:
    """The case with its fallback trained from another seed."""
    return dataclasses.replace(case, fallback=dataclasses.replace(case.fallback, seed=seed))


def keep_fallback_runs(quality: Quality, case: Any, loaded: Loaded, energy: Any,
                       retrain: Callable[[Any], Quality]) -> None:
    """Mark the quality of a fallback trained here and, with ``--energy-quality-seeds``, add the figures of
    fallbacks trained from the next seeds (``retrain(case with that seed)``; one thread, as every
    fallback trains)."""
    if not trained_fallback(loaded):
        return
    mark_trained(quality, weights_digest(loaded.model))
    add_runs(quality, runs=energy.quality_seeds, seed=case.fallback.seed, threads=1, trained_with=1,
             retrain=lambda seed: retrain(with_fallback_seed(case, seed)))


def check_quality(quality: dict[str, dict[str, Any]], budget: dict[str, float]) -> None:
    """Mark each score against ``budget``; raise QualityBudgetError (the test fails) when one is not met."""
    message = apply_quality_budget(quality, budget)
    if message:
        raise QualityBudgetError(message)


def predict_all(predictor: Predictor, rows: list[dict[str, Any]], batches: Sequence[list[int]]) -> dict[int, Any]:
    """Every example's prediction by its index, unmeasured (the last batch to predict an example wins)."""
    predictions: dict[int, Any] = {}
    for indices in batches:
        for index, prediction in zip(indices, predictor([rows[i] for i in indices]).predictions):
            predictions[index] = prediction
    return predictions


def case_quality(case: Any, spec: Task, rows: list[dict[str, Any]], predictions: dict[int, Any],
                 keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The case's metrics over the predicted examples, in index order, against their targets; ``keys``
    are the rows' example keys (:func:`~pytest_energy.cases.data.example_keys`), which pair examples
    with a baseline's."""
    order = sorted(predictions)
    normalise = spec.reference or (lambda reference: reference)
    references = [normalise(rows[i][spec.target]) for i in order]
    return score(spec, case, [predictions[i] for i in order], references, [keys[i] for i in order])


def _batch_proxies(predictor: Predictor, spec: Task, rows: list[dict[str, Any]],
                   batches: Sequence[list[int]]) -> list[tuple[int, int, int]]:
    """(FLOPs, tokens in, tokens out) of each batch. Where the task's work depends on the input shapes
    alone (``Task.work_by_shape``: an encoder) each shape is counted once; otherwise (generation) every
    call is counted."""
    by_shape: dict[tuple[Any, ...], int] = {}
    out = []
    for indices in batches:
        batch = [rows[i] for i in indices]
        if not spec.work_by_shape:
            result, flops = count_flops(lambda: predictor(batch))
            out.append((flops, result.tokens_in, result.tokens_out))
            continue
        inputs = predictor.encode(batch)
        shape = input_shapes(inputs)
        if shape not in by_shape:
            by_shape[shape] = count_flops(lambda: predictor(batch))[1]
        out.append((by_shape[shape], tokens_in(inputs), 0))
    return out


def profile_precision(profile: Profile | None, spec: Task, device: str, dtype: str) -> tuple[str, str]:
    """The dtype a case runs in under ``profile`` (its own without one) and the profile's note; a case of a
    task the profile does not cover is skipped, with the reason."""
    if profile is None:
        return dtype, ""
    if not profile.covers(spec.name):
        raise unittest.SkipTest(f"--energy-profile {profile.name} covers {', '.join(profile.tasks)}; "
                                f"this case's task is {spec.name}")
    return profile.precision(spec.name, device)


def run_inference(case: Any, energy: Any, transform: Pruning | None = None,
                  quality: Mapping[str, float] | None = None) -> None:
    """Run an inference case in its test (see the module docstring).

    ``transform`` changes the model after loading (a pruning level); ``quality`` replaces the case's
    budget (a fallback's own ``overrides`` still win where the fallback runs). Under a measurement
    profile (``energy.profile``) the profile's batch size, counts and precision replace the case's.
    """
    spec = get_task(case.task, "InferenceCase")
    device = pick_device(case.device)
    held = hold(case.gpus, device)
    profile = energy.profile
    dtype, profile_note = profile_precision(profile, spec, device, DTYPES[case.dtype])
    if transform is not None:
        dtype = transform.prepare(device, dtype)
    if quality is not None:
        case = dataclasses.replace(case, quality=dict(quality))
    declared = case
    case, loaded = load_case(case, spec, device, dtype)
    if profile is not None:  # after the fallback's overrides: the protocol's counts win
        case = dataclasses.replace(case, **profile.case_fields())
    rows = examples(case.dataset, spec, case.columns)
    keys = example_keys(case.dataset, spec, case.columns)
    pruned = transform.apply(loaded.model) if transform is not None else None
    predictor = Predictor(loaded.model, loaded.processor, spec, device=device, case=case)
    distinct = distinct_batches(len(rows), case.batch_size)

    def retrained(variant: Any, batches: list[list[int]]) -> Quality:  # on a fallback from another seed
        variant, other = load_case(variant, spec, device, dtype)
        if transform is not None:
            transform.apply(other.model)
            transform.compress(other.model)
        found = predict_all(Predictor(other.model, other.processor, spec, device=device, case=variant), rows, batches)
        return case_quality(variant, spec, rows, found, keys)

    if not energy.enabled:
        if transform is not None:
            transform.compress(loaded.model)
        predictions = predict_all(predictor, rows, own_batches(len(rows), case.batch_size,
                                                              min(case.inferences, distinct * case.batch_size)))
        check_quality(case_quality(case, spec, rows, predictions, keys), dict(case.quality))
        return

    # A measured call runs one batch on each replica (one on a case of one GPU). The case's own batches
    # follow its warm-up (whole calls of it): exactly its inferences (see own_batches). Each round makes at
    # least its share of them, and more where it fills its window: those extra calls are measured, not counted.
    devices = replica_devices(held, device)
    group = len(devices)
    first = math.ceil(case.warmup / group) * group
    own = own_batches(len(rows), case.batch_size, case.inferences, first=first)
    batches = first + len(own)
    per_round = math.ceil(len(own) / group / case.rounds)
    # Proxies are counted before the measured run (and, for 2:4, on the masked dense weights).
    work = _batch_proxies(predictor, spec, rows, cycle_batches(len(rows), case.batch_size, min(batches, distinct)))
    planned = [work[i % distinct] for i in range(first, batches)]
    if len(own[-1]) < case.batch_size:  # a cut last batch: the work of its own examples only
        planned[-1] = _batch_proxies(predictor, spec, rows, own[-1:])[0]
    total_params, nonzero_params = parameters(loaded.model)
    if transform is not None:  # 2:4: how many layers the sparse kernels took
        pruned = dataclasses.replace(pruned, **transform.compress(loaded.model))
    if case.max_energy is not None:
        energy.add_budget(EnergyBudget(parse_energy(case.max_energy), per="1000"))
    replicas = Replicas(predictor, devices)  # after 2:4 compressed the weights it copies

    predictions: dict[int, Any] = {}
    numbers = itertools.count()

    def step() -> None:
        numbered = [next(numbers) for _ in range(group)]
        chosen = [batch_at(number, len(rows), case.batch_size) for number in numbered]
        outputs = replicas([[rows[i] for i in indices] for indices in chosen])  # whole batches, as every call
        for number, indices, output in zip(numbered, chosen, outputs):
            if number < batches:  # the warm-up's and the case's own: the extra ones filling a window change no score
                kept = own[number - first] if number >= first else indices
                for index, prediction in zip(kept, output.predictions):
                    predictions[index] = prediction

    try:
        record = measure_inferences(energy, step, case, spec, per_round, planned, (total_params, nonzero_params),
                                    ModelFacts.of(loaded.facts, dtype=dtype, device=device, settings=case.settings()),
                                    pruned, profile=(profile.name if profile is not None else DEFAULT, profile_note),
                                    held=held, replicas=group)
    finally:
        replicas.close()
    record.quality = case_quality(case, spec, rows, predictions, keys)
    record.criteria["quality"] = dict(case.quality)
    # The examples the case's calls made (every one where they went round the dataset).
    scored = cycle_batches(len(rows), case.batch_size, distinct) if batches > distinct else \
        cycle_batches(len(rows), case.batch_size, first) + own
    keep_fallback_runs(record.quality, declared, loaded, energy, lambda variant: retrained(variant, scored))
    check_quality(record.quality, dict(case.quality))


def measure_inferences(energy: Any, step: Callable[[], None], case: Any, spec: Task, per_round: int,
                       planned: list[tuple[int, int, int]], params: tuple[int, int], model: ModelFacts,
                       pruned: Pruned | None = None, generation: GenerationFacts | None = None,
                       label: str = "", profile: tuple[str, str] = (DEFAULT, ""),
                       held: Sequence[HeldGpu] | None = None, replicas: int = 1) -> Any:
    """Measure ``step`` (one call: one batch on each of ``replicas``) in the case's rounds and return its
    record.

    Each round makes at least ``per_round`` calls and lasts at least the minimum window (a short round
    reads few counter ticks: its energy would be mostly the edges' uncertainty); one iteration of the
    record is one inference (a call counts as a batch of them). ``planned`` holds the (FLOPs, tokens in,
    tokens out) of each call of the case's own inferences, exactly its ``inferences``: the proxies come
    from those, so they are the same in every run (the gate judges FLOPs), while the rounds may make
    more calls to fill the minimum window, which only the energy, a mean per inference, includes.
    ``profile`` is the measurement protocol's name and its note (``CaseFacts.profile``). ``held``: the
    GPUs the case holds, the record's only GPUs (None: every device measured, a generation case's); the
    warm-up is ``case.warmup`` batches in whole calls.
    """
    inferences = case.inferences
    flops, tokens_in, tokens_out = (sum(w[k] for w in planned) for k in range(3))
    proxies = {
        "parameters": float(params[0]),
        "parameters_nonzero": float(params[1]),
        "flops": float(flops),
        "flops_per_inference": flops / inferences,
        "tokens_in": float(tokens_in),
        "tokens_out": float(tokens_out),
        "tokens_in_per_inference": tokens_in / inferences,
        "tokens_out_per_inference": tokens_out / inferences,
    }
    reference = getattr(case, "reference_range", None)
    facts = CaseFacts("generation" if generation is not None else "inference", spec.name, case.batch_size,
                      case.rounds, inferences, spec.generates,
                      (float(reference[0]), float(reference[1])) if reference else None, pruned,
                      generation=generation, profile=profile[0], profile_note=profile[1], gpus=list(held or []))
    energy.run(step, iterations=per_round, rounds=case.rounds, warmup=math.ceil(case.warmup / replicas),
               unit="inference", label=label, fill_window=True,
               count_flops=False,  # the case counted its own calls' work (``planned``)
               facts=RecordFacts(model, proxies, facts, iterations_per_call=case.batch_size * replicas),
               gpus=None if held is None else [gpu.index for gpu in held])
    return energy.last


def _training_tokens(tokenizer: Any, spec: Task, rows: list[dict[str, Any]], steps: int,
                     case: Any) -> tuple[int, int]:
    """Real (unpadded) input and target tokens over every step of the fine-tune; none where the inputs
    are not text (an image task's processor is no tokenizer)."""
    from transformers import PreTrainedTokenizerBase

    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor that wraps one (text + images)
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        return 0, 0
    seen = [i for indices in step_plan(len(rows), steps, case.batch_size, case.seed) for i in indices]
    counts: dict[int, tuple[int, int]] = {}
    for index in set(seen):
        row = rows[index]
        source = tokenizer(case.prefix + str(row[spec.inputs[0]]), truncation=True, max_length=case.max_input_tokens)
        target = tokenizer(str(row[spec.target]), truncation=True, max_length=case.max_target_tokens) \
            if spec.generates else {"input_ids": []}
        counts[index] = (len(source["input_ids"]), len(target["input_ids"]))
    return sum(counts[i][0] for i in seen), sum(counts[i][1] for i in seen)


@dataclasses.dataclass
class _FineTune:
    """A fine-tune ready to train: the case as it runs, its model (adapted), data and step plan, and the
    GPUs it holds (several: it trains in torchrun processes, one per GPU)."""

    case: Any
    loaded: Loaded
    model: Any
    adapter: dict[str, Any]
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    eval_keys: list[str]
    steps: int
    per_epoch: int
    options: dict[str, Any]
    held: list[HeldGpu]

    def train(self, spec: Task, block: Any = None) -> list[float]:
        """Train the model in place, marking each step in ``block`` (a measured block: its rounds' edges);
        the loss of every step."""
        case = self.case
        recipe = dict(steps=self.steps, batch_size=case.batch_size, learning_rate=case.learning_rate,
                      weight_decay=case.weight_decay, max_grad_norm=case.max_grad_norm, optimizer=case.optimizer,
                      schedule=case.schedule, warmup_steps=case.warmup_steps, seed=case.seed)
        if len(self.held) < 2:
            return train(self.model, self.loaded.processor, spec, self.train_rows, **recipe,
                         on_step=block.step if block is not None else None, **self.options)
        from .torchrun import launch

        # The processes' start is measured with the warm-up: it is then one step at the least, and the
        # rounds open after it (a single step is one window). Saving and the processes' end drain after them.
        warmup = max(1, min(case.warmup, self.steps - 1))
        marks = 0

        def on_step() -> None:
            nonlocal marks
            marks += 1
            if block is None:
                return
            block.step()
            if marks == warmup and self.steps > 1:
                block.open_rounds(self.steps - warmup)
            if marks == self.steps:
                block.close_rounds()

        options = {k: v for k, v in self.options.items() if k != "device"}
        job = {"model": self.model, "processor": self.loaded.processor, "task": spec.name,
               "task_registered_by": registered_by(spec.name), "rows": self.train_rows,
               "backend": "nccl" if self.options["device"].startswith("cuda") else "gloo",
               "options": {**recipe, **options}}
        losses = launch(job, len(self.held), on_step=on_step)
        self.model.eval()
        return losses

    def quality(self, spec: Task) -> Quality:
        """The trained model's quality on the evaluation examples."""
        predictor = Predictor(self.model, self.loaded.processor, spec, device=self.options["device"], case=self.case)
        predictions = predict_all(predictor, self.eval_rows, cycle_batches(len(self.eval_rows), 1, len(self.eval_rows)))
        return case_quality(self.case, spec, self.eval_rows, predictions, self.eval_keys)


def _prepare_finetune(case: Any, spec: Task, device: str, dtype: str, held: list[HeldGpu]) -> _FineTune:
    case, loaded = load_case(case, spec, device, dtype)
    train_rows = examples(case.train, spec, case.columns)
    per_epoch = steps_per_epoch(len(train_rows), case.batch_size)
    model, adapter = adapt(loaded.model, case.lora)
    return _FineTune(
        case, loaded, model, adapter, train_rows, examples(case.eval, spec, case.columns)[: case.eval_examples],
        example_keys(case.eval, spec, case.columns)[: case.eval_examples],
        case.steps if case.steps is not None else math.ceil(case.epochs * per_epoch), per_epoch,
        {"prefix": case.prefix, "max_input_tokens": case.max_input_tokens,
         "max_target_tokens": case.max_target_tokens, "pad_to_max": True, "device": device}, held)


def _with_seed(case: Any, seed: int) -> Any:
    """The fine-tune case trained from another seed: its data order, and its fallback's initial weights."""
    offset = seed - case.seed
    fallback = case.fallback if case.fallback is None else dataclasses.replace(case.fallback,
                                                                               seed=case.fallback.seed + offset)
    return dataclasses.replace(case, seed=seed, fallback=fallback)


def run_finetune(case: Any, energy: Any) -> None:
    """Run a fine-tune case in its test: the whole fine-tune is one measured block whose steps are taken
    in rounds (its first ``case.warmup`` steps a measured warm-up, see ``energy.measure``), then quality
    (and, with ``--energy-quality-seeds``, the quality of further unmeasured fine-tunes from the next
    seeds, which mark no rounds)."""
    spec = get_task(case.task, "FineTuneCase")
    if energy.profile is not None:
        raise unittest.SkipTest(f"--energy-profile {energy.profile.name} measures inference cases; a fine-tune is "
                                "measured with the default profile")
    device = pick_device(case.device)
    held = hold(case.gpus, device)
    dtype = DTYPES[case.dtype]
    declared = case
    run = _prepare_finetune(case, spec, device, dtype, held)
    case, loaded, model, steps, per_epoch = run.case, run.loaded, run.model, run.steps, run.per_epoch

    proxies: dict[str, float] = {}
    if energy.enabled:
        proxies = _training_proxies(model, loaded.processor, spec, run.train_rows, steps, case, run.options)
        proxies["parameters_trainable"] = float(run.adapter["parameters_trainable"])
        if case.max_energy is not None:
            energy.add_budget(EnergyBudget(parse_energy(case.max_energy), per="test"))

    threads = _torch_threads()
    # On several GPUs the steps run in torchrun processes, which mark them (its rounds are placed by
    # _FineTune.train): the block covers the processes from their launch to their end.
    with energy.measure(unit="step", iterations=steps, rounds=case.rounds, warmup=case.warmup,
                        marked=len(held) > 1, gpus=[gpu.index for gpu in held]) as block:
        losses = run.train(spec, block)
        recipe = FineTuneFacts(steps, per_epoch, case.optimizer, case.learning_rate, case.schedule,
                               losses[0] if losses else None, losses[-1] if losses else None, len(run.eval_rows),
                               _how_trained(loaded.facts), run.adapter)
        block.facts = RecordFacts(ModelFacts.of(loaded.facts, dtype=dtype, device=device, settings=case.settings()),
                                  proxies, CaseFacts("fine-tune", spec.name, case.batch_size, case.rounds,
                                                     fine_tune=recipe, gpus=held))

    quality = run.quality(spec)
    mark_trained(quality, weights_digest(run.model))

    def retrained(seed: int) -> Quality:
        again = _prepare_finetune(_with_seed(declared, seed), spec, device, dtype, held)
        again.train(spec)
        return again.quality(spec)

    add_runs(quality, runs=energy.quality_seeds, seed=declared.seed, threads=threads, trained_with=threads,
             retrain=retrained)
    record = block.record
    if record is not None:
        record.quality = quality
        record.criteria["quality"] = dict(case.quality)
    check_quality(quality, dict(case.quality))


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _how_trained(facts: dict[str, Any]) -> Trained:
    """What a fine-tune trained and from which weights, for its model card: a fallback given no training
    steps of its own starts from random weights, so the case trains it from scratch."""
    source, steps = facts.get("source"), facts.get("training_steps")
    if source == "factory":  # it may build from a config or load weights: not known here
        return Trained(facts["ran"], "unknown (built by the case's factory)", "")
    if source == "fallback" and not steps:
        return Trained(facts["ran"], "random", "training from scratch")
    start = f"pre-trained in this test ({steps} steps, not measured)" if source == "fallback" else "pre-trained"
    return Trained(facts["ran"], start, "fine-tuning")


def _training_proxies(model: Any, tokenizer: Any, spec: Task, rows: list[dict[str, Any]], steps: int,
                      case: Any, options: dict[str, Any]) -> dict[str, float]:
    """Parameters, FLOPs and tokens of the fine-tune, counted before it (not measured).

    Every step has the same shape (padded to the maximum), so one counted forward and backward pass
    gives every step's FLOPs; the gradients it leaves are cleared.
    """
    first = step_plan(len(rows), 1, case.batch_size, case.seed)[0]
    batch = training_batch(model, tokenizer, spec, [rows[i] for i in first], **options)
    model.train()
    _, step_flops = count_flops(lambda: model(**batch).loss.backward())
    model.zero_grad(set_to_none=True)
    read, written = _training_tokens(tokenizer, spec, rows, steps, case)
    total, _ = parameters(model)
    return {"parameters": float(total), "flops_per_step": float(step_flops), "flops": float(step_flops * steps),
            "tokens_in": float(read), "tokens_out": float(written)}
