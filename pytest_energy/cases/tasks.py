"""Running a model on a task: one batch of examples in, predictions and token counts out.

Inputs are tokenized inside the measured call, as a deployed model would have to; that is part of an
inference's energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .data import Task


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
    return reference.lower() if isinstance(reference, str) else reference


@dataclass
class Output:
    """What one batch produced."""

    predictions: list[Any]
    tokens_in: int
    tokens_out: int


class Predictor:
    """Runs one batch of examples through a model for a task."""

    def __init__(self, model: Any, tokenizer: Any, task: Task, *, device: str, prefix: str = "",
                 max_input_tokens: int = 512, max_new_tokens: int = 48, num_beams: int = 1) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        self.device = device
        self.prefix = prefix
        self.max_input_tokens = max_input_tokens
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams

    def encode(self, texts: Sequence[str]) -> dict[str, Any]:
        """Tokenized inputs on the model's device."""
        encoded = self.tokenizer([self.prefix + t for t in texts], return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_input_tokens)
        return {k: v.to(self.device) for k, v in encoded.items()}

    def texts(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """The texts one batch feeds the model (both sentences of every pair for similarity)."""
        if self.task.name == "sentence-similarity":
            return [str(r["sentence1"]) for r in rows] + [str(r["sentence2"]) for r in rows]
        return [str(r[self.task.inputs[0]]) for r in rows]

    def __call__(self, rows: Sequence[dict[str, Any]]) -> Output:
        with torch.inference_mode():
            if self.task.name == "text-classification":
                return self._classify(rows)
            if self.task.name == "summarization":
                return self._generate(rows)
            return self._similarity(rows)

    def _classify(self, rows: Sequence[dict[str, Any]]) -> Output:
        inputs = self.encode(self.texts(rows))
        out = self.model(**inputs)
        logits = out.logits if hasattr(out, "logits") else out
        indices = logits.argmax(-1).tolist()
        config = getattr(self.model, "config", None)
        predictions = [as_reference(config, i, r["label"]) for i, r in zip(indices, rows)]
        return Output(predictions, int(inputs["attention_mask"].sum()), 0)

    def _generate(self, rows: Sequence[dict[str, Any]]) -> Output:
        inputs = self.encode(self.texts(rows))
        generated = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                        do_sample=False)
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        # The first position is the decoder's start token, given rather than generated.
        produced = int((generated[:, 1:] != self.tokenizer.pad_token_id).sum())
        return Output([t.strip() for t in texts], int(inputs["attention_mask"].sum()), produced)

    def _similarity(self, rows: Sequence[dict[str, Any]]) -> Output:
        # Both sentences of every pair go through the encoder as one batch; mean pooling over real tokens
        # (what sentence-transformers' all-MiniLM models use), then cosine similarity per pair.
        inputs = self.encode(self.texts(rows))
        hidden = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        first, second = pooled[: len(rows)].float(), pooled[len(rows):].float()
        cosine = torch.nn.functional.cosine_similarity(first, second, dim=-1)
        return Output([float(c) for c in cosine], int(inputs["attention_mask"].sum()), 0)
