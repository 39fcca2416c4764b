"""The bundled tasks, registered through the same :func:`register_task` a user's conftest calls.

Each task's functions take the :class:`~pytest_energy.cases.tasks.Predictor` (model, processor, case)
and import torch only when they run, so importing this module stays cheap.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

from .fallback import class_labels, text_model
from .registry import Output, Task, register_task
from .tasks import Predictor, as_reference, label_id, normalise_reference, tokens_in

Rows = Sequence[Mapping[str, Any]]


# -- text classification ---------------------------------------------------------------------------
def _encode_text(predictor: Predictor, rows: Rows) -> Mapping[str, Any]:
    return predictor.tokenize([str(r[predictor.task.inputs[0]]) for r in rows])


def _classify(predictor: Predictor, rows: Rows, inputs: Mapping[str, Any]) -> Output:
    out = predictor.model(**inputs)
    logits = out.logits if hasattr(out, "logits") else out
    config = getattr(predictor.model, "config", None)
    predictions = [as_reference(config, i, r[predictor.task.target]) for i, r in zip(logits.argmax(-1).tolist(), rows)]
    return Output(predictions, tokens_in(inputs))


def _padding(pad_to_max: bool) -> Any:
    return "max_length" if pad_to_max else True


def _classification_batch(model: Any, tokenizer: Any, task: Task, rows: Rows, *, prefix: str, max_input_tokens: int,
                          max_target_tokens: int, pad_to_max: bool) -> dict[str, Any]:
    import torch

    inputs = tokenizer([prefix + str(r[task.inputs[0]]) for r in rows], return_tensors="pt",
                       padding=_padding(pad_to_max), truncation=True, max_length=max_input_tokens)
    return dict(inputs, labels=torch.tensor([label_id(model.config, r[task.target]) for r in rows]))


TEXT_CLASSIFICATION = register_task(Task(
    "text-classification", inputs=("text",), target="label", metrics=("accuracy", "f1"),
    encode=_encode_text, predict=_classify, model_class="AutoModelForSequenceClassification",
    reference=normalise_reference, train_batch=_classification_batch,
    build_fallback=partial(text_model, labels=class_labels),
    description="a label per text (an integer class index or the model's label name)"))


# -- summarisation ---------------------------------------------------------------------------------
def _generate(predictor: Predictor, rows: Rows, inputs: Mapping[str, Any]) -> Output:
    case = predictor.case
    generated = predictor.model.generate(**inputs, max_new_tokens=case.max_new_tokens, num_beams=case.num_beams,
                                         do_sample=False)
    texts = predictor.processor.batch_decode(generated, skip_special_tokens=True)
    # The first position is the decoder's start token, given rather than generated.
    produced = int((generated[:, 1:] != predictor.processor.pad_token_id).sum())
    return Output([t.strip() for t in texts], tokens_in(inputs), produced)


def _seq2seq_batch(model: Any, tokenizer: Any, task: Task, rows: Rows, *, prefix: str, max_input_tokens: int,
                   max_target_tokens: int, pad_to_max: bool) -> dict[str, Any]:
    inputs = tokenizer([prefix + str(r[task.inputs[0]]) for r in rows], return_tensors="pt",
                       padding=_padding(pad_to_max), truncation=True, max_length=max_input_tokens)
    labels = tokenizer([str(r[task.target]) for r in rows], return_tensors="pt", padding=_padding(pad_to_max),
                       truncation=True, max_length=max_target_tokens)["input_ids"]
    labels[labels == tokenizer.pad_token_id] = -100  # padding is not a target
    return dict(inputs, labels=labels)


SUMMARIZATION = register_task(Task(
    "summarization", inputs=("document",), target="summary",
    metrics=("rouge1", "rouge2", "rougeL", "meteor", "bertscore"),
    default_metrics=("rouge1", "rouge2", "rougeL", "meteor"),
    encode=_encode_text, predict=_generate, model_class="AutoModelForSeq2SeqLM", generates=True,
    work_by_shape=False, train_batch=_seq2seq_batch, build_fallback=partial(text_model, seq2seq=True),
    description="a summary generated per document"))


# -- sentence similarity ---------------------------------------------------------------------------
def _encode_pairs(predictor: Predictor, rows: Rows) -> Mapping[str, Any]:
    # Both sentences of every pair go through the encoder as one batch.
    return predictor.tokenize([str(r["sentence1"]) for r in rows] + [str(r["sentence2"]) for r in rows])


def _similarity(predictor: Predictor, rows: Rows, inputs: Mapping[str, Any]) -> Output:
    # Mean pooling over real tokens (what sentence-transformers' all-MiniLM models use), then the
    # cosine similarity of each pair.
    import torch

    hidden = predictor.model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    first, second = pooled[: len(rows)].float(), pooled[len(rows):].float()
    cosine = torch.nn.functional.cosine_similarity(first, second, dim=-1)
    return Output([float(c) for c in cosine], tokens_in(inputs))


def _graded(example: dict[str, Any]) -> dict[str, Any]:
    return dict(example, score=float(example["score"]))


SENTENCE_SIMILARITY = register_task(Task(
    "sentence-similarity", inputs=("sentence1", "sentence2"), target="score", metrics=("spearman",),
    encode=_encode_pairs, predict=_similarity, model_class="AutoModel", prepare=_graded,
    description="the cosine similarity of a pair's mean-pooled embeddings against a graded score"))
