"""The bundled tasks, registered through the same :func:`register_task` a user's conftest calls.

Each task's functions take the :class:`~pytest_energy.cases.predictor.Predictor` (model, processor, case)
and import torch only when they run, so importing this module stays cheap.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

from .fallback import class_labels, image_model, text_model
from .predictor import Predictor, as_reference, label_id, normalise_reference, tokens_in
from .tasks import Output, Task, register_task

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
    metrics=("rouge1", "rouge2", "rougeL", "meteor", "moverscore", "bertscore", "scibertscore"),
    # the summarisation study's five; BERTScore where the case gives its model (a MoverScore model too)
    default_metrics=("rouge1", "rouge2", "rougeL", "meteor", "moverscore", "scibertscore"),
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


# -- token classification (named entities) -------------------------------------------------------------
def _words(example: dict[str, Any]) -> dict[str, Any]:
    """Words and tags as lists (a string is split on white space); one tag per word."""
    words, tags = (str(v).split() if isinstance(v, str) else [str(w) for w in v]
                   for v in (example["tokens"], example["tags"]))
    if len(words) != len(tags):
        raise ValueError(f"an example has {len(words)} words but {len(tags)} tags: give one tag per word")
    return dict(example, tokens=words, tags=tags)


def _split_words(predictor: Predictor, rows: Rows, **options: Any) -> Any:
    return predictor.processor([list(r["tokens"]) for r in rows], is_split_into_words=True, truncation=True,
                               max_length=predictor.case.max_input_tokens, **options)


def _encode_words(predictor: Predictor, rows: Rows) -> Mapping[str, Any]:
    return predictor.to_device(_split_words(predictor, rows, return_tensors="pt", padding=True))


def _tag(predictor: Predictor, rows: Rows, inputs: Mapping[str, Any]) -> Output:
    # Each word takes the tag of its first sub-word; words cut off by truncation are tagged "O".
    names = predictor.model.config.id2label
    indices = predictor.model(**inputs).logits.argmax(-1).tolist()
    words = _split_words(predictor, rows)
    predictions = []
    for row_index, row in enumerate(rows):
        tags = ["O"] * len(row["tokens"])
        seen = set()
        for position, word in enumerate(words.word_ids(row_index)):
            if word is not None and word not in seen:
                seen.add(word)
                tags[word] = str(names[indices[row_index][position]])
        predictions.append(tags)
    return Output(predictions, tokens_in(inputs))


def _tagging_batch(model: Any, tokenizer: Any, task: Task, rows: Rows, *, prefix: str, max_input_tokens: int,
                   max_target_tokens: int, pad_to_max: bool) -> dict[str, Any]:
    import torch

    encoded = tokenizer([list(r["tokens"]) for r in rows], is_split_into_words=True, return_tensors="pt",
                        padding=_padding(pad_to_max), truncation=True, max_length=max_input_tokens)
    labels = torch.full(encoded["input_ids"].shape, -100)  # special tokens and later sub-words: no target
    for row_index, row in enumerate(rows):
        seen = set()
        for position, word in enumerate(encoded.word_ids(row_index)):
            if word is not None and word not in seen:
                seen.add(word)
                labels[row_index, position] = label_id(model.config, row["tags"][word])
    return dict(encoded, labels=labels)


def _tag_set(task: Task, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    return sorted({tag for row in rows for tag in row["tags"]})


TOKEN_CLASSIFICATION = register_task(Task(
    "token-classification", inputs=("tokens",), target="tags", metrics=("entity_f1",),
    encode=_encode_words, predict=_tag, model_class="AutoModelForTokenClassification", prepare=_words,
    train_batch=_tagging_batch,
    build_fallback=partial(text_model, labels=_tag_set), texts=lambda example: [" ".join(example["tokens"])],
    description="an IOB2 tag per word (tokens: a list of words or a string; tags: one per word)"))


# -- extractive question answering -------------------------------------------------------------------
def _answerable(example: dict[str, Any]) -> dict[str, Any]:
    if str(example["answer"]) not in str(example["context"]):
        raise ValueError(f"answer {str(example['answer'])!r} is not a span of its context: extractive "
                         "question answering needs the answer written in the context")
    return example


def _question_pairs(predictor: Predictor, rows: Rows, **options: Any) -> Any:
    return predictor.processor([predictor.case.prefix + str(r["question"]) for r in rows],
                               [str(r["context"]) for r in rows], truncation="only_second",
                               max_length=predictor.case.max_input_tokens, **options)


def _encode_questions(predictor: Predictor, rows: Rows) -> Mapping[str, Any]:
    return predictor.to_device(_question_pairs(predictor, rows, return_tensors="pt", padding=True))


#: The longest answer span considered, in tokens (as the SQuAD evaluation scripts' ``max_answer_length``).
MAX_ANSWER_TOKENS = 30


def _answer(predictor: Predictor, rows: Rows, inputs: Mapping[str, Any]) -> Output:
    # The best-scoring span (start + end logit) that lies in the context, ends after it starts and is at
    # most MAX_ANSWER_TOKENS long, read back from the context through the tokenizer's offsets.
    out = predictor.model(**inputs)
    starts, ends = out.start_logits.float().cpu(), out.end_logits.float().cpu()
    pairs = _question_pairs(predictor, rows, return_offsets_mapping=True)
    answers = []
    for index, row in enumerate(rows):
        context_positions = [p for p, s in enumerate(pairs.sequence_ids(index)) if s == 1]
        best, span = float("-inf"), None
        for start in context_positions:
            for end in context_positions:
                if start <= end < start + MAX_ANSWER_TOKENS:
                    value = float(starts[index, start] + ends[index, end])
                    if value > best:
                        best, span = value, (start, end)
        offsets = pairs["offset_mapping"][index]
        answers.append("" if span is None else str(row["context"])[offsets[span[0]][0]:offsets[span[1]][1]])
    return Output(answers, tokens_in(inputs))


def _answer_batch(model: Any, tokenizer: Any, task: Task, rows: Rows, *, prefix: str, max_input_tokens: int,
                  max_target_tokens: int, pad_to_max: bool) -> dict[str, Any]:
    import torch

    encoded = tokenizer([prefix + str(r["question"]) for r in rows], [str(r["context"]) for r in rows],
                        truncation="only_second", max_length=max_input_tokens, padding=_padding(pad_to_max),
                        return_offsets_mapping=True, return_tensors="pt")
    offsets = encoded.pop("offset_mapping")
    starts, ends = [], []
    for index, row in enumerate(rows):
        first = str(row["context"]).index(str(row["answer"]))
        last = first + len(str(row["answer"]))
        start = end = 0  # an answer cut off by truncation points at the first token, as in SQuAD training
        for position, sequence in enumerate(encoded.sequence_ids(index)):
            if sequence != 1:
                continue
            begin, finish = (int(v) for v in offsets[index, position])
            if begin <= first < finish or (not start and begin >= first):
                start = start or position
            if begin < last <= finish:
                end = position
        starts.append(start)
        ends.append(max(end, start))
    return dict(encoded, start_positions=torch.tensor(starts), end_positions=torch.tensor(ends))


QUESTION_ANSWERING = register_task(Task(
    "question-answering", inputs=("question", "context"), target="answer", metrics=("exact_match", "token_f1"),
    encode=_encode_questions, predict=_answer, model_class="AutoModelForQuestionAnswering", prepare=_answerable,
    train_batch=_answer_batch, build_fallback=text_model,
    description="the span of the context that answers the question (SQuAD-style, extractive)"))


# -- image classification ----------------------------------------------------------------------------
def _open_image(source: Any) -> Any:
    """An RGB image from a file path or a ``data:image/...;base64,`` URI."""
    import base64
    import io

    from PIL import Image

    text = str(source)
    if text.startswith("data:"):
        image = Image.open(io.BytesIO(base64.b64decode(text.split(",", 1)[1])))
    else:
        image = Image.open(text)
    return image.convert("RGB")


def _encode_images(predictor: Predictor, rows: Rows) -> Mapping[str, Any]:
    return predictor.to_device(predictor.processor([_open_image(r["image"]) for r in rows], return_tensors="pt"))


def _image_batch(model: Any, processor: Any, task: Task, rows: Rows, *, prefix: str, max_input_tokens: int,
                 max_target_tokens: int, pad_to_max: bool) -> dict[str, Any]:
    import torch

    inputs = processor([_open_image(r["image"]) for r in rows], return_tensors="pt")
    return dict(inputs, labels=torch.tensor([label_id(model.config, r[task.target]) for r in rows]))


IMAGE_CLASSIFICATION = register_task(Task(
    "image-classification", inputs=("image",), target="label", metrics=("accuracy", "f1"),
    default_metrics=("accuracy",), encode=_encode_images, predict=_classify,
    model_class="AutoModelForImageClassification", processor_class="AutoImageProcessor",
    reference=normalise_reference, train_batch=_image_batch, build_fallback=image_model,
    description="a label per image (a file path or a data:image/...;base64 URI)"))
