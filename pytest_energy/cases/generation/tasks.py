"""The decoder-only (causal LM) tasks, registered like the bundled ones: text generation and zero-shot
classification.

``text-generation`` continues a prompt with exactly ``max_new_tokens`` greedy tokens (prefill, then
decode: :mod:`pytest_energy.cases.generation.causal`); a :class:`~pytest_energy.cases.GenerationCase` measures the
two phases apart. Its fine-tune trains on the continuation given the prompt, which is how a decoder-only
model learns summarisation too (``columns={"prompt": "document", "continuation": "summary"}``).

``zero-shot-classification`` is the general-purpose side of "Power Hungry Processing"'s comparison: a
generative model prompted with the text and scored on each label's words (no classifier head, no task
training). :func:`zero_shot_task` makes one for other labels and prompts, for a conftest to register.

Importing this module is cheap: torch (and :mod:`.causal`) load when a batch runs.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

from ..base import Fallback
from ..predictor import Predictor, normalise_reference, tokens_in
from ..tasks import Output, Task, register_task

Rows = Sequence[Mapping[str, Any]]


def ready(tokenizer: Any) -> Any:
    """A tokenizer made fit for batched generation: left padding, and a pad token (GPT-2 has none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def causal_model(fallback: Fallback, task: Task, rows: Rows, *, prefix: str,
                 max_input_tokens: int) -> tuple[Any, Any, str]:
    """An untrained decoder-only fallback (``Fallback.model_type``, e.g. "llama", at the small sizes of
    ``fallback.TINY``) and a WordPiece tokenizer learnt from ``rows`` (see :func:`causal_tokenizer`)."""
    import transformers

    from .causal import causal_tokenizer
    from ..fallback import TINY

    texts = (prefix + text if i < len(task.inputs) else text
             for row in rows for i, text in enumerate(task.example_texts(row)))
    tokenizer = causal_tokenizer(texts, fallback.vocab_size)
    tokenizer.model_max_length = max_input_tokens
    sizes = {**TINY.get(fallback.model_type, {}), **fallback.config}
    settings = dict(sizes, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                    bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    if "max_position_embeddings" in settings:  # prompt, then what is generated or trained after it
        settings["max_position_embeddings"] = max(settings["max_position_embeddings"], 2 * max_input_tokens)
    try:
        config = transformers.AutoConfig.for_model(fallback.model_type, **settings)
    except ValueError as error:
        raise ValueError(f"fallback model_type {fallback.model_type!r}: {error}") from None
    model = transformers.AutoModelForCausalLM.from_config(config)
    size = ", ".join(f"{k}={v}" for k, v in sizes.items())
    return model, tokenizer, f"decoder-only, {size}; vocab {len(tokenizer)}"


# -- text generation -------------------------------------------------------------------------------
def _encode_prompts(predictor: Predictor, rows: Rows) -> Mapping[str, Any]:
    ready(predictor.processor)
    return predictor.tokenize([str(r["prompt"]) for r in rows])


def _continue(predictor: Predictor, rows: Rows, inputs: Mapping[str, Any]) -> Output:
    from .causal import generate_fixed, text_until_eos

    tokens = generate_fixed(predictor.model, inputs, predictor.case.max_new_tokens)
    return Output(text_until_eos(predictor.processor, tokens), tokens_in(inputs), int(tokens.numel()))


def _continuation_batch(model: Any, tokenizer: Any, task: Task, rows: Rows, *, prefix: str, max_input_tokens: int,
                        max_target_tokens: int, pad_to_max: bool) -> dict[str, Any]:
    from .causal import lm_batch

    return lm_batch(tokenizer, [prefix + str(r["prompt"]) for r in rows], [str(r["continuation"]) for r in rows],
                    max_prompt_tokens=max_input_tokens, max_completion_tokens=max_target_tokens,
                    pad_to_max=pad_to_max, loss_on_prompt=False)


TEXT_GENERATION = register_task(Task(
    "text-generation", inputs=("prompt",), target="continuation",
    metrics=("rouge1", "rouge2", "rougeL", "meteor", "moverscore", "bertscore", "scibertscore"),
    default_metrics=("rougeL",),
    encode=_encode_prompts, predict=_continue, model_class="AutoModelForCausalLM", generates=True,
    work_by_shape=False, train_batch=_continuation_batch, build_fallback=causal_model,
    description="a decoder-only model continues each prompt with exactly max_new_tokens greedy tokens; "
                "quality compares the text up to its first end-of-text with the continuation"))


# -- zero-shot classification ----------------------------------------------------------------------
def _prompt(task: Task, prefix: str, row: Mapping[str, Any]) -> str:
    return prefix + task.extra["template"].format(text=row["text"])


def _words(task: Task) -> list[str]:
    return list(task.extra["labels"].values())


def _encode_choices(predictor: Predictor, rows: Rows) -> Mapping[str, Any]:
    from .causal import label_batch

    task, case = predictor.task, predictor.case
    batch = label_batch(ready(predictor.processor), [_prompt(task, case.prefix, r) for r in rows], _words(task),
                        case.max_input_tokens)
    return predictor.to_device(batch)


def _choose(predictor: Predictor, rows: Rows, inputs: Mapping[str, Any]) -> Output:
    from .causal import label_scores

    labels = list(predictor.task.extra["labels"])
    best = label_scores(predictor.model, inputs, len(labels)).argmax(-1).tolist()
    return Output([normalise_reference(labels[i]) for i in best], tokens_in(inputs))


def _choice_batch(model: Any, tokenizer: Any, task: Task, rows: Rows, *, prefix: str, max_input_tokens: int,
                  max_target_tokens: int, pad_to_max: bool) -> dict[str, Any]:
    from .causal import lm_batch

    words = task.extra["labels"]
    return lm_batch(tokenizer, [_prompt(task, prefix, r) for r in rows], [words[r["label"]] for r in rows],
                    max_prompt_tokens=max_input_tokens, max_completion_tokens=max_target_tokens,
                    pad_to_max=pad_to_max, loss_on_prompt=False)


def _choice_texts(template: str, labels: Mapping[Any, str], row: Mapping[str, Any]) -> list[str]:
    return [template.format(text=row["text"]), labels[row["label"]]]


def zero_shot_task(name: str, labels: Mapping[Any, str], template: str) -> Task:
    """A zero-shot classification task: ``template`` (with ``{text}``) prompts a decoder-only model and
    the label whose words (``labels``: dataset label -> words) are likeliest after it is the prediction.

    Register it with :func:`~pytest_energy.cases.register_task`. Its fallback is a small decoder-only
    model trained as a language model on prompts followed by their label's words: the instruction data a
    general-purpose model has seen, in miniature, not a classifier head.
    """
    if "{text}" not in template or len(labels) < 2:
        raise ValueError(f"zero_shot_task({name!r}): the template needs '{{text}}' and there must be two labels or more")
    task = Task(name, inputs=("text",), target="label", metrics=("accuracy", "f1"), encode=_encode_choices,
                predict=_choose, model_class="AutoModelForCausalLM", reference=normalise_reference,
                train_batch=_choice_batch, build_fallback=causal_model,
                texts=partial(_choice_texts, template, dict(labels)),
                extra={"labels": dict(labels), "template": template},
                description=f"a decoder-only model prompted zero-shot; the likeliest of {', '.join(labels.values())}")
    return task


ZERO_SHOT_CLASSIFICATION = register_task(zero_shot_task(
    "zero-shot-classification", {0: "negative", 1: "positive"},
    "Review: {text}\nIs this review positive or negative?\nAnswer:"))
