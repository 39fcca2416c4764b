"""Running a model on a task: one batch of examples in, predictions and token counts out.

The :class:`Predictor` is what a task's ``encode`` and ``predict`` functions receive: the model, its
processor (a tokenizer, or an image processor), the task, the device and the case as it runs (its
``prefix``, ``max_input_tokens``, ``max_new_tokens``, ``num_beams`` and any other field). Inputs are
encoded inside the measured call, as a deployed model would have to; that is part of an inference's
energy. torch is imported when a batch runs, not with this module.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import CaseFailure
from .tasks import Output, Task


def label_id(config: Any, label: Any) -> int:
    """The model's class index for a dataset label: by name where the model knows it, else the integer."""
    names = {str(k).lower(): v for k, v in (getattr(config, "label2id", None) or {}).items()}
    if str(label).lower() in names:
        return int(names[str(label).lower()])
    try:
        return int(label)
    except (TypeError, ValueError):
        raise ValueError(f"label {label!r} is not one of the model's labels ({', '.join(names)})") from None


def as_reference(config: Any, index: int, reference: Any) -> Any:
    """A predicted class index in the same form as the dataset's label (a name, or an integer)."""
    name = str((getattr(config, "id2label", None) or {}).get(index, index))
    if isinstance(reference, str):
        return name.lower()
    return int(name) if name.lstrip("-").isdigit() else index


def normalise_reference(reference: Any) -> Any:
    """A label as predictions are compared with it: names in lower case, anything else as it is."""
    return reference.lower() if isinstance(reference, str) else reference


def tokens_in(inputs: Mapping[str, Any] | Any) -> int:
    """Real (unpadded) input tokens of an encoded batch: its attention mask's ones (0 without a mask, and
    for inputs that are one tensor: pixels or token ids, it cannot tell)."""
    mask = inputs.get("attention_mask") if isinstance(inputs, Mapping) else None
    return int(mask.sum()) if mask is not None else 0


def input_shapes(inputs: Mapping[str, Any] | Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The shapes of an encoded batch, by input name ("" for inputs that are one tensor), as the work of
    a call that depends on its shapes alone is keyed."""
    named = inputs.items() if isinstance(inputs, Mapping) else [("", inputs)]
    return tuple(sorted((str(name), tuple(getattr(value, "shape", ()))) for name, value in named))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Predictor:
    """Runs one batch of examples through a model for a task (see the module docstring)."""

    def __init__(self, model: Any, processor: Any, task: Task, *, device: str, case: Any) -> None:
        self.model = model
        self.processor = processor
        self.task = task
        self.device = device
        self.case = case

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
        """Texts (with the case's prefix; optionally paired) tokenized to tensors on the model's device."""
        settings = {"return_tensors": "pt", "padding": True, "truncation": True,
                    "max_length": self.case.max_input_tokens, **options}
        texts = [self.case.prefix + t for t in texts]
        encoded = self.processor(texts, pairs, **settings) if pairs is not None else self.processor(texts, **settings)
        return self.to_device(encoded)

    def to_device(self, encoded: Mapping[str, Any]) -> dict[str, Any]:
        """Every tensor of an encoding on the model's device (other entries dropped)."""
        return {k: v.to(self.device) for k, v in encoded.items() if hasattr(v, "to")}

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | Any:
        """The model's inputs for one batch, as the task encodes them: a mapping of tensors (the model's
        keyword inputs) or one tensor; anything else fails the case in one line naming the task."""
        inputs = self.task.encode(self, rows)
        if not isinstance(inputs, Mapping) and not hasattr(inputs, "shape"):
            raise CaseFailure(f"task {self.task.name!r}: encode(predictor, rows) returned {type(inputs).__name__} "
                              f"{_shown(inputs)}; it must return the model's inputs for the batch: a mapping of "
                              "tensors such as predictor.tokenize(texts) gives, or one tensor")
        return inputs

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> Output:
        """One inference call: encode the batch and predict, without gradients."""
        import torch

        with torch.inference_mode():
            return self.task.predict(self, rows, self.encode(rows))
