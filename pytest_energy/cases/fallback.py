"""The fallback: a small model built from a transformers config, with a tokenizer trained here.

Used where a case's hub model is not in the local cache. The task builds the model
(``Task.build_fallback``; :func:`text_model` for the bundled text tasks, whose WordPiece tokenizer
learns its vocabulary from the fallback's data file); the model is then trained on the same file for
``Fallback.steps`` steps with the task's training batches. Trained fallbacks are kept in memory, keyed by everything that shapes them,
so the variants of a case (and cases sharing a fallback) train once per session; each caller gets its
own copy, because a case may change weights (pruning).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from dataclasses import asdict
from typing import Any, Callable, Iterable, Sequence

from .base import Fallback
from .data import examples, fingerprint
from .tasks import Task
from .training import train

#: Small sizes per model type; ``Fallback.config`` overrides them.
TINY: dict[str, dict[str, Any]] = {
    "distilbert": {"dim": 64, "hidden_dim": 128, "n_layers": 2, "n_heads": 2, "max_position_embeddings": 256},
    "bert": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
             "max_position_embeddings": 256},
    "bart": {"d_model": 128, "encoder_ffn_dim": 256, "decoder_ffn_dim": 256, "encoder_layers": 2,
             "decoder_layers": 2, "encoder_attention_heads": 4, "decoder_attention_heads": 4,
             "max_position_embeddings": 256, "dropout": 0.0},
    "t5": {"d_model": 128, "d_ff": 256, "d_kv": 32, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
           "dropout_rate": 0.0},
    "vit": {"image_size": 16, "patch_size": 4, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_channels": 3},
    "resnet": {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "num_channels": 3,
               "downsample_in_first_stage": False},
    # Llama's architecture (RMSNorm, rotary positions, SwiGLU, grouped-query attention as in Llama 3), tiny.
    "llama": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 256, "tie_word_embeddings": True},
}
#: The square image side an image fallback reads (its processor resizes to it).
IMAGE_SIDE = 16

#: The small models take no token type ids (DistilBERT and BART have none).
INPUT_NAMES = ["input_ids", "attention_mask"]

_TRAINED: dict[str, tuple[Any, Any, dict[str, Any]]] = {}

#: How every fallback trains beside its own fields: part of its key, so a change of recipe is another
#: model to the gate (its quality is another draw), never the baseline's model trained anew.
RECIPE: dict[str, Any] = {"max_target_tokens": 64, "pad_to_max": False, "max_grad_norm": 1.0,
                          "warmup": "min(30, steps // 10)"}


def _key(fallback: Fallback, task: Task, prefix: str, columns: dict[str, str], max_input_tokens: int) -> str:
    """Everything that shapes a fallback (its definition, sizes, data, task): its cache key and the
    digest its records and baselines carry. Library versions and the data's path are left out: the
    same definition in another checkout or on another runner is the same model to the gate (its
    weights may differ in the last bits there)."""
    # The data by its content, not its path (a checkout elsewhere is the same fallback); overrides are
    # case fields applied after the build, so they shape no fallback.
    definition = {k: v for k, v in asdict(fallback).items() if k not in ("data", "overrides")}
    shape = {"fallback": definition, "sizes": TINY.get(fallback.model_type, {}),
             "data": fingerprint(fallback.data), "task": task.name, "prefix": prefix, "columns": columns,
             "max_input_tokens": max_input_tokens, "recipe": RECIPE}
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, seq2seq: bool) -> Any:
    """A lower-casing WordPiece tokenizer whose vocabulary is learnt from ``texts``, for transformers.

    The vocabulary is every character (alone and as a ``##`` continuation), then the most frequent
    words seen at least twice, up to ``vocab_size``; numbers are always spelt in digits, so a number
    never seen in training is read the way every other number was. Built this way rather than with
    ``tokenizers``' trainer, whose merges break ties in a different order in every process: the same
    data must give the same tokens, or the fallback's outputs and FLOP proxies would drift between runs.
    Encoders get BERT's ``[CLS] text [SEP]``; seq2seq models get ``text [EOS]`` (the target too).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    specials = ["[PAD]", "[UNK]", "[EOS]"] if seq2seq else ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = sorted({c for word in counts for c in word})
    pieces = specials + characters + ["##" + c for c in characters]
    words = [w for w, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
             if n >= 2 and len(w) > 1 and not w.isdigit()]
    pieces += words[: max(0, vocab_size - len(pieces))]
    tokenizer = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = splitter
    tokenizer.decoder = decoders.WordPiece()
    if seq2seq:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A [EOS]", special_tokens=[("[EOS]", tokenizer.token_to_id("[EOS]"))])
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                       eos_token="[EOS]", model_input_names=INPUT_NAMES)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=INPUT_NAMES)


def class_labels(task: Task, rows: Sequence[dict[str, Any]]) -> list[Any]:
    """The classes a classifier head needs: every distinct target of the training rows."""
    return sorted({row[task.target] for row in rows}, key=repr)


def text_model(fallback: Fallback, task: Task, rows: Sequence[dict[str, Any]], *, prefix: str, max_input_tokens: int,
               labels: Callable[[Task, Sequence[dict[str, Any]]], list[Any]] | None = None,
               seq2seq: bool = False) -> tuple[Any, Any, str]:
    """A text task's untrained fallback: a WordPiece tokenizer learnt from ``rows``, and the task's
    ``model_class`` built from ``Fallback.model_type``'s config at the small sizes (``TINY``).

    ``labels`` gives the classes of a classification head (``num_labels``, ``id2label``); ``seq2seq``
    makes a tokenizer ending every text with ``[EOS]`` and sets the decoder's special tokens.
    """
    import transformers

    texts = (prefix + text if i < len(task.inputs) else text
             for row in rows for i, text in enumerate(task.example_texts(row)))
    tokenizer = train_tokenizer(texts, fallback.vocab_size, seq2seq=seq2seq)
    tokenizer.model_max_length = max_input_tokens
    sizes = {**TINY.get(fallback.model_type, {}), **fallback.config}
    settings = dict(sizes, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if "max_position_embeddings" in settings:
        settings["max_position_embeddings"] = max(settings["max_position_embeddings"], max_input_tokens + 2)
    if seq2seq:
        eos = tokenizer.eos_token_id
        # T5 starts decoding from the pad token, BART-like models from the end-of-sequence token.
        start = tokenizer.pad_token_id if fallback.model_type in ("t5", "mt5", "umt5") else eos
        settings.update(eos_token_id=eos, bos_token_id=eos, decoder_start_token_id=start, forced_eos_token_id=eos)
    if labels is not None:
        names = labels(task, rows)
        settings.update(num_labels=len(names), id2label={i: str(label) for i, label in enumerate(names)},
                        label2id={str(label): i for i, label in enumerate(names)})
    try:
        config = transformers.AutoConfig.for_model(fallback.model_type, **settings)
    except ValueError as error:
        raise ValueError(f"fallback model_type {fallback.model_type!r}: {error}") from None
    model = getattr(transformers, task.model_class).from_config(config)
    size = ", ".join(f"{k}={v}" for k, v in sizes.items() if k not in ("dropout", "dropout_rate"))
    return model, tokenizer, f"{size}; vocab {len(tokenizer)}"


def image_model(fallback: Fallback, task: Task, rows: Sequence[dict[str, Any]], *, prefix: str,
                max_input_tokens: int) -> tuple[Any, Any, str]:
    """An image task's untrained fallback: ``Fallback.model_type`` (``vit`` or ``resnet``) built from its
    config at the small sizes, with an image processor resizing to ``image_size`` and scaling to [-1, 1]."""
    import transformers

    sizes = {**TINY.get(fallback.model_type, {}), **fallback.config}
    names = class_labels(task, rows)
    try:
        config = transformers.AutoConfig.for_model(
            fallback.model_type, **sizes, num_labels=len(names), id2label={i: str(n) for i, n in enumerate(names)},
            label2id={str(n): i for i, n in enumerate(names)})
    except ValueError as error:
        raise ValueError(f"fallback model_type {fallback.model_type!r}: {error}") from None
    side = sizes.get("image_size", IMAGE_SIDE)
    # The PIL backend by name: the default one wants torchvision, which the suites do not need.
    processor = transformers.ViTImageProcessorPil(size={"height": side, "width": side}, image_mean=[0.5] * 3,
                                                  image_std=[0.5] * 3)
    model = getattr(transformers, task.model_class).from_config(config)
    return model, processor, ", ".join(f"{k}={v}" for k, v in sizes.items())


def build(fallback: Fallback, task: Task, *, prefix: str, columns: dict[str, str],
          max_input_tokens: int) -> tuple[Any, Any, dict[str, Any]]:
    """A copy of the trained fallback, its processor, and facts for the record (``ran`` names it)."""
    if task.build_fallback is None:
        raise ValueError(f"no fallback can be built for task {task.name!r}; give a real model")
    key = _key(fallback, task, prefix, columns, max_input_tokens)
    trained_now = key not in _TRAINED
    if trained_now:
        _TRAINED[key] = _train_new(fallback, task, prefix, columns, max_input_tokens, key)
    model, processor, facts = _TRAINED[key]
    return copy.deepcopy(model), processor, dict(facts, trained_in_this_test=trained_now)


def _train_new(fallback: Fallback, task: Task, prefix: str, columns: dict[str, str], max_input_tokens: int,
               key: str) -> tuple[Any, Any, dict[str, Any]]:
    import torch

    rows = examples(fallback.data, task, columns)
    torch.manual_seed(fallback.seed)
    model, processor, size = task.build_fallback(fallback, task, rows, prefix=prefix,  # type: ignore[misc]
                                                 max_input_tokens=max_input_tokens)
    losses: list[float] = []
    threads = torch.get_num_threads()
    # One thread: a tiny model's steps are too small to share, and on a busy machine the threads'
    # spin-waits made them many times slower (a 40k-parameter ViT step: 1.2 s on 2 threads, 35 ms on 1).
    torch.set_num_threads(1)
    try:
        if fallback.steps:
            losses = train(model, processor, task, rows, steps=fallback.steps, batch_size=fallback.batch_size,
                           learning_rate=fallback.learning_rate, seed=fallback.seed, device="cpu", prefix=prefix,
                           max_input_tokens=max_input_tokens, max_target_tokens=RECIPE["max_target_tokens"],
                           pad_to_max=RECIPE["pad_to_max"], max_grad_norm=RECIPE["max_grad_norm"],
                           warmup_steps=min(30, fallback.steps // 10))
    finally:
        torch.set_num_threads(threads)  # the measured run keeps the machine's setting
    model.eval()
    facts = {
        "ran": f"fallback {fallback.model_type} ({size})",
        "fallback_key": key,
        "trained_on": str(fallback.data),
        "training_steps": fallback.steps,
        "training_loss_first_last": [losses[0], losses[-1]] if losses else None,
    }
    return model, processor, facts
