"""What a measurement states about itself beyond its energy, as typed fields of its record: the model it
ran (:class:`ModelFacts`) and, for a case, what the case ran and how (:class:`CaseFacts`).

They are handed to the one place a record is built (:meth:`pytest_energy.core.record.Record.from_rounds`,
through :class:`RecordFacts`), never written onto a finished record, and renderers read them by
attribute, so a misspelt fact is an error, not a blank in a report. Figures derived from them and the
energy (per 1,000, per token, per epoch, a query's split) are :mod:`pytest_energy.core.figures`'.
Records of ``--energy-json`` schema 3 or older kept these facts under string keys of ``extra``:
:func:`from_old_extra` reads them onto these fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: The kinds of case: ``InferenceCase``, ``FineTuneCase``, ``GenerationCase``.
CASE_KINDS = ("inference", "fine-tune", "generation")


@dataclass
class ModelFacts:
    """The model a measurement ran: what was asked for, what ran (a fallback stands in for a model that
    cannot be loaded), where it came from, a digest of its identity, and how it ran. The gate's model
    verdict compares :meth:`identity`."""

    requested: str  # the model asked for: a hub name, a folder, a factory, the torch modules' classes
    ran: str = ""  # what ran, where it differs from the request (a fallback: "fallback t5 (2 layers...)")
    source: str = ""  # "hub cache" | "folder" | "package" | "factory" | "fallback" | "measured code"
    digest: str = ""  # weights, fallback key or structure: equal digests are the same model
    reason: str = ""  # why a fallback ran instead of the requested model
    parameters: int | None = None  # the torch modules' parameters (a plain test's counted work)
    dtype: str = ""
    device: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # a case's SETTINGS fields: how it runs its model
    details: dict[str, Any] = field(default_factory=dict)  # the loader's other facts (a fallback's training)

    @classmethod
    def of(cls, facts: dict[str, Any], **how: Any) -> ModelFacts:
        """A case loader's facts (``requested``, ``ran``, ``source``, ``digest``, ``reason`` and the rest
        as ``details``) with how the model ran (``dtype``, ``device``, ``settings``)."""
        own = {f.name for f in dataclasses.fields(cls)} - {"details", *how}
        return cls(**{"requested": "", **{k: v for k, v in facts.items() if k in own}}, **how,
                   details={k: v for k, v in facts.items() if k not in own})

    def identity(self) -> dict[str, Any]:
        """The fields that name the model, as a baseline stores them: text, and the settings where a case
        has any; {} where no model was requested."""
        if not self.requested:
            return {}
        identity: dict[str, Any] = {key: str(getattr(self, key)) for key in ("requested", "ran", "source", "digest",
                                                                              "dtype", "device")
                                    if getattr(self, key)}
        if self.settings:
            identity["settings"] = dict(self.settings)
        return identity


@dataclass
class Pruned:
    """How a pruning level changed the model before it was measured (:class:`~pytest_energy.PruningSweep`)."""

    method: str  # "global L1 magnitude, 50% of base-model linear weights" | "2:4 semi-structured (...)"
    linear_layers: int
    weight_sparsity: float  # the share of the linear layers' weights that are zero
    semi_structured_layers: int | None = None  # 2:4 only: layers swapped for sparse tensors, and kept dense
    dense_layers: int | None = None

    @property
    def magnitude(self) -> bool:
        """Global magnitude pruning (a sweep's line), not the 2:4 kind of sparsity."""
        return self.method.startswith("global")


@dataclass
class Trained:
    """What a fine-tune trained and from which weights, for its model card."""

    model: str
    initial_weights: str  # "pre-trained", "random", "unknown (built by the case's factory)", ...
    type: str  # "fine-tuning" | "training from scratch" | "" (not known)


@dataclass
class FineTuneFacts:
    """A fine-tune's recipe and how its training went."""

    steps: int
    steps_per_epoch: int
    optimizer: str
    learning_rate: float
    schedule: str
    loss_first: float | None
    loss_last: float | None
    eval_examples: int
    training: Trained
    adapter: dict[str, Any] = field(default_factory=dict)  # LoRA's settings or a full fine-tune's, the trainable share


@dataclass
class GenerationFacts:
    """One phase of a generation case's queries; the decode record also holds the prefill record's
    energy, so it states the whole query (see :func:`pytest_energy.core.figures.query_split`)."""

    phase: str  # "prefill" | "decode"
    max_new_tokens: int
    prefill_joules_per_query: float | None = None  # decode: the prefill record's gross joules per query


#: Where a served run's steady state starts and ends, and whose definition that is.
STEADY_STATE = ("from when the batch first holds `concurrency` sequences until it starts to drain (a sequence "
                "finishes and no waiting request can take its slot): the ML.ENERGY benchmark's steady state "
                "(v3, Dec 2025)")


@dataclass
class ServingFacts:
    """A generation case served under load at one concurrency level (``GenerationCase(concurrency=...)``):
    its requests arrive together and are decoded as a batch of ``concurrency`` sequences that refills as
    they finish (continuous batching). The record's rounds are the steady state (:data:`STEADY_STATE`)
    and its iterations output tokens; its warm-up window is the ramp before the batch fills and its drain
    window the tail after; :func:`pytest_energy.core.figures.serving_figures` derives the figures."""

    concurrency: int
    requests: int
    new_tokens: tuple[int, int]  # the fewest and most output tokens a request asks for
    output_tokens: int  # the whole run's (the ramp, the steady state and the drain)
    passes: int  # forward passes of the whole run (an admission's prefill or one decode of the batch)
    fill_pass: int  # the pass after which the batch first filled: the steady state starts there
    drain_pass: int  # the pass that freed a slot no waiting request could take: the steady state ends there
    batching: str = ""  # how the batch was run (the case runner's own continuous batching, its cache)
    steady_state: str = STEADY_STATE


@dataclass
class HeldGpu:
    """A GPU a case held (``InferenceCase(gpus=...)``, ``FineTuneCase(gpus=...)``): its number as CUDA counts
    the case's process (``cuda:N``, the meter's ``gpu:N``), its UUID and its product name."""

    index: int
    uuid: str = ""
    product: str = ""


@dataclass
class CaseFacts:
    """What a case ran: its kind, task and batches; its declared work (inferences, or a fine-tune's
    steps) and what it states of itself (a task's reference range, a pruning level, a phase)."""

    kind: str  # one of CASE_KINDS
    task: str = ""
    batch_size: int = 0
    rounds: int = 0
    inferences: int = 0  # inference and generation: the case's own inferences (queries), as declared
    generates: bool = False  # the task writes text: energy per output token is given
    reference_range: tuple[float, float] | None = None  # Wh per 1,000 inferences, the task's lowest and highest
    pruned: Pruned | None = None
    fine_tune: FineTuneFacts | None = None
    generation: GenerationFacts | None = None
    serving: ServingFacts | None = None
    # The measurement protocol (``--energy-profile``, :mod:`pytest_energy.core.profiles`): "default" (the
    # case as declared) or a published one such as "ai-energy-score"; ``profile_note`` says what of it could
    # not be followed here (float16 on a CPU).
    profile: str = "default"
    profile_note: str = ""
    # The GPUs the case held, each its own component of the record (the others measured are left out);
    # [] where it ran without one (a CPU runner) or is no case that holds GPUs (a generation case).
    gpus: list[HeldGpu] = field(default_factory=list)

    @property
    def examples_seen(self) -> int | None:
        """Training examples a fine-tune saw (steps x batch size); None for other cases."""
        return self.fine_tune.steps * self.batch_size if self.fine_tune is not None else None


@dataclass
class RecordFacts:
    """What the code that measures states about the measurement, handed to the record as it is built:
    the model, the work proxies, the case, and how many iterations one measured call counts as (a
    case's batch of inferences)."""

    model: ModelFacts | None = None
    proxies: dict[str, float] = field(default_factory=dict)
    case: CaseFacts | None = None
    iterations_per_call: int = 1


def _read(cls: type, data: Any) -> Any:
    """A facts dataclass from its JSON object (None where there is none): nested facts rebuilt, a list
    read as the tuple a field declares, keys it does not know left out."""
    if not isinstance(data, dict):
        return None
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in known}
    for name, nested in _NESTED.get(cls, {}).items():
        if name in values:
            values[name] = _read(nested, values[name])
    if cls is CaseFacts and isinstance(values.get("reference_range"), list):
        values["reference_range"] = tuple(values["reference_range"])
    if cls is CaseFacts and isinstance(values.get("gpus"), list):
        values["gpus"] = [_read(HeldGpu, gpu) for gpu in values["gpus"] if isinstance(gpu, dict)]
    if cls is ServingFacts and isinstance(values.get("new_tokens"), list):
        values["new_tokens"] = tuple(values["new_tokens"])
    return cls(**values)


def model_from_dict(data: Any) -> ModelFacts | None:
    return _read(ModelFacts, data)


def case_from_dict(data: Any) -> CaseFacts | None:
    return _read(CaseFacts, data)


_NESTED: dict[type, dict[str, type]] = {
    CaseFacts: {"pruned": Pruned, "fine_tune": FineTuneFacts, "generation": GenerationFacts,
                "serving": ServingFacts},
    FineTuneFacts: {"training": Trained},
}


# -- schema 3 and older: the same facts under string keys of ``extra`` ---------------------------------
def _of(value: Any, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """``value`` where it is of ``kind`` (a bool is no number), else ``default``: an old file's key of
    another type reads as absent, as a report showed it."""
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        return default
    return value if isinstance(value, kind) else default


def _number(value: Any) -> float | None:
    found = _of(value, (int, float))
    return None if found is None else float(found)


def _count(value: Any) -> int:
    return _of(value, int, 0)


def _reference_range(raw: Any) -> tuple[float, float] | None:
    if isinstance(raw, dict):
        raw = (raw.get("low"), raw.get("high"))
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(_number(v) is not None for v in raw):
        return float(raw[0]), float(raw[1])
    return None


def from_old_extra(extra: dict[str, Any]) -> tuple[ModelFacts | None, CaseFacts | None, list[str], dict[str, Any]]:
    """The model, case facts and notes a record of schema 3 or older kept in ``extra``, and what is left
    of ``extra`` once they are taken out (keys no writer of pytest-energy used)."""
    rest = dict(extra)
    model = None
    found = rest.pop("model", None)
    how = {key: rest.pop(key, None) for key in ("dtype", "device", "settings")}
    if isinstance(found, dict):
        model = ModelFacts.of(found, dtype=_of(how["dtype"], str, ""), device=_of(how["device"], str, ""),
                              settings=_of(how["settings"], dict, {}))
        model.parameters = _of(model.parameters, int)
        for name in ("requested", "ran", "source", "digest", "reason"):
            setattr(model, name, str(getattr(model, name) or ""))
    notes = [str(note) for note in _of(rest.pop("notes", None), list, [])]
    kind = rest.get("case")
    kind = kind.get("kind") if isinstance(kind, dict) else kind
    if kind not in CASE_KINDS:
        return model, None, notes, rest
    old = {key: rest.pop(key) for key in list(rest) if key in _OLD_CASE_KEYS}
    sparsity = _number(old.get("weight_sparsity"))
    pruned = Pruned(str(old.get("pruning") or ""), _count(old.get("linear_layers")), sparsity,
                    _of(old.get("semi_structured_layers"), int), _of(old.get("dense_layers"), int)) \
        if sparsity is not None else None
    fine_tune = None
    if kind == "fine-tune":
        training = _of(old.get("training"), dict, {})
        fine_tune = FineTuneFacts(
            _count(old.get("steps")), _count(old.get("steps_per_epoch")), str(old.get("optimizer") or ""),
            _number(old.get("learning_rate")) or 0.0, str(old.get("schedule") or ""), _number(old.get("loss_first")),
            _number(old.get("loss_last")), _count(old.get("eval_examples")),
            Trained(str(training.get("model") or ""), str(training.get("initial_weights") or ""),
                    str(training.get("type") or "")),
            _of(old.get("adapter"), dict, {}))
    generation = None
    if kind == "generation":
        split = _of(old.get("generation"), dict, {})
        generation = GenerationFacts(str(old.get("phase") or ""), _count(old.get("max_new_tokens")),
                                     _number(split.get("prefill_joules_per_query"))
                                     if old.get("phase") == "decode" else None)
    case = CaseFacts(kind, str(old.get("task") or ""), _count(old.get("batch_size")), _count(old.get("rounds")),
                     _count(old.get("inferences")),
                     "joules_per_output_token" in old, _reference_range(old.get("reference_range")), pruned,
                     fine_tune, generation)
    return model, case, notes, rest


#: The ``extra`` keys the case runners of schema 3 and older wrote: facts read onto :class:`CaseFacts`,
#: and figures :mod:`pytest_energy.core.figures` now derives.
_OLD_CASE_KEYS = frozenset((
    "case", "task", "batch_size", "rounds", "inferences", "reference_range", "pruning", "linear_layers",
    "weight_sparsity", "semi_structured_layers", "dense_layers", "steps", "steps_per_epoch", "optimizer",
    "learning_rate", "schedule", "loss_first", "loss_last", "eval_examples", "training", "adapter", "phase",
    "max_new_tokens", "generation", "examples_seen", "epochs", "inferences_measured", "inferences_per_round",
    "warmup_inferences", "energy_basis", "joules_per_1000_inferences", "wh_per_1000_inferences",
    "joules_per_gflop", "joules_per_token", "joules_per_output_token", "steps_per_round", "steps_warmup",
    "joules_fine_tune", "joules_warmup", "steps_estimated", "joules_per_step", "joules_per_epoch_estimate",
))
