"""Decoder-only (causal) language models: their tokenizer and training batches, prefill and decode run
apart, and zero-shot classification by label likelihood.

Prefill is the prompt's forward pass up to the first generated token; decode is every token after it,
one forward pass each over the key/value cache prefill left (the AI Energy Score's and the ML.ENERGY
benchmark's phases). Generation is greedy with a fixed number of new tokens (``min_new_tokens =
max_new_tokens``), so every run does the same work whatever the model happens to write.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch

#: The cue between a document and its summary for a decoder-only model (the GPT-2 paper's "TL;DR:").
SUMMARY_CUE = "\nTL;DR:"


def is_causal(model: Any) -> bool:
    """Whether a model is a decoder-only language model (a LoRA-wrapped one too)."""
    config = getattr(model, "config", None)
    return (config is not None and not getattr(config, "is_encoder_decoder", False)
            and type(model).__name__.endswith("ForCausalLM"))


def causal_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """The fallback's WordPiece tokenizer (see ``fallback.train_tokenizer``) for a decoder-only model:
    every text starts with ``[EOS]`` as its beginning-of-text token (GPT-2's convention) and nothing is
    appended, so a prompt ends where the model is to continue; batches are padded on the left, as
    generation needs."""
    from tokenizers import processors

    from ..fallback import train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size, seq2seq=True)
    eos = tokenizer.eos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[EOS] $A", special_tokens=[("[EOS]", eos)])
    tokenizer.bos_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def prompt_ids(tokenizer: Any, text: str, max_tokens: int, cue: str = "") -> list[int]:
    """A prompt's tokens: ``text`` truncated so that ``cue`` (what tells the model what to write) fits
    after it within ``max_tokens``."""
    tail = tokenizer(cue, add_special_tokens=False)["input_ids"] if cue else []
    return tokenizer(text, truncation=True, max_length=max(1, max_tokens - len(tail)))["input_ids"] + tail


def lm_batch(tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], *, max_prompt_tokens: int,
             max_completion_tokens: int, pad_to_max: bool, loss_on_prompt: bool, cue: str = "") -> dict[str, Any]:
    """Training inputs of a causal LM: prompt, ``cue``, completion, ``eos``, padded on the right.

    ``loss_on_prompt`` False trains on the completion only (a fine-tune on a task); True on every token
    (language-model pre-training). With ``pad_to_max`` every batch has the same shape.
    """
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = []
    for prompt, completion in zip(prompts, completions):
        head = prompt_ids(tokenizer, prompt, max_prompt_tokens, cue)
        tail = tokenizer(completion, add_special_tokens=False, truncation=True,
                         max_length=max_completion_tokens - 1)["input_ids"] + [eos]
        rows.append((head, tail))
    width = max_prompt_tokens + max_completion_tokens if pad_to_max else max(len(h) + len(t) for h, t in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (head, tail) in enumerate(rows):
        sequence = torch.tensor(head + tail)
        ids[i, :len(sequence)] = sequence
        mask[i, :len(sequence)] = 1
        start = 0 if loss_on_prompt else len(head)
        labels[i, start:len(sequence)] = sequence[start:]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _positions(mask: torch.Tensor) -> torch.Tensor:
    # Left padding: real tokens count from 0 (what transformers' generate does).
    return (mask.cumsum(-1) - 1).clamp(min=0)


@dataclass
class Prefilled:
    """What prefill leaves for decode: the cache over the prompt, the first token, the mask."""

    cache: Any
    first: torch.Tensor  # (batch, 1) the first generated token
    mask: torch.Tensor  # (batch, prompt length) attention mask of the prompt
    length: int  # the cache's length after prefill (decode crops it back to this)


def cache_keyword(model: Any) -> str:
    """The keyword ``model.forward`` takes its key/value cache by (the serving batch passes it too)."""
    # transformers 5.2x names the key/value cache ``cache``; earlier versions ``past_key_values``.
    # A LoRA wrapper (peft) passes keywords through: ask the model inside it.
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def prefill(model: Any, inputs: Mapping[str, torch.Tensor]) -> Prefilled:
    """The prompt's forward pass to the first (greedy) token."""
    mask = inputs["attention_mask"]
    out = model(input_ids=inputs["input_ids"], attention_mask=mask, position_ids=_positions(mask), use_cache=True)
    first = out.logits[:, -1].argmax(-1, keepdim=True)
    return Prefilled(getattr(out, cache_keyword(model)), first, mask, int(inputs["input_ids"].shape[1]))


def decode(model: Any, state: Prefilled, new_tokens: int) -> torch.Tensor:
    """The remaining ``new_tokens - 1`` greedy tokens, one forward pass each over the cache; returns all
    ``new_tokens`` (the first included). End-of-text does not stop it: the length is fixed.

    The cache is cropped back to the prompt afterwards, so the same prefill serves the next decode
    (a measured round repeats decodes without repeating their prefills).
    """
    tokens = [state.first]
    mask = state.mask
    position = _positions(mask)[:, -1:]
    cache = {cache_keyword(model): state.cache}
    try:
        for _ in range(new_tokens - 1):
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            position = position + 1
            out = model(input_ids=tokens[-1], attention_mask=mask, position_ids=position, use_cache=True, **cache)
            tokens.append(out.logits[:, -1].argmax(-1, keepdim=True))
    finally:
        grown = state.cache.get_seq_length() - state.length
        if grown > 0:  # a negative count removes that many tokens (transformers 4.4x and 5.x alike)
            state.cache.crop(-grown)
    return torch.cat(tokens, dim=1)


def generate_fixed(model: Any, inputs: Mapping[str, torch.Tensor], new_tokens: int) -> torch.Tensor:
    """Prefill then decode: exactly ``new_tokens`` greedy tokens per prompt."""
    return decode(model, prefill(model, inputs), new_tokens)


def text_until_eos(tokenizer: Any, tokens: torch.Tensor) -> list[str]:
    """The generated text of each row up to its first end-of-text (what quality is scored on)."""
    out = []
    for row in tokens.tolist():
        if tokenizer.eos_token_id in row:
            row = row[:row.index(tokenizer.eos_token_id)]
        out.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return out


def label_batch(tokenizer: Any, prompts: Sequence[str], words: Sequence[str], max_input_tokens: int) -> dict[str, Any]:
    """Zero-shot classification's inputs: every (prompt, label words) pair as one row, padded on the
    right, with ``targets`` holding the label's tokens where they sit (-100 elsewhere)."""
    heads = [prompt_ids(tokenizer, p, max_input_tokens) for p in prompts]
    tails = [tokenizer(" " + word, add_special_tokens=False)["input_ids"] for word in words]
    rows = [(head, tail) for head in heads for tail in tails]
    width = max(len(h) + len(t) for h, t in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    targets = torch.full_like(ids, -100)
    for i, (head, tail) in enumerate(rows):
        ids[i, :len(head) + len(tail)] = torch.tensor(head + tail)
        mask[i, :len(head) + len(tail)] = 1
        targets[i, len(head):len(head) + len(tail)] = torch.tensor(tail)
    return {"input_ids": ids, "attention_mask": mask, "targets": targets}


def label_scores(model: Any, inputs: Mapping[str, torch.Tensor], labels: int) -> torch.Tensor:
    """The log-likelihood of each label's words after each prompt, ``(prompts, labels)``: one forward
    pass over every pair, the sum of the label tokens' log-probabilities (how lm-evaluation-harness
    scores multiple choice)."""
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = inputs["targets"][:, 1:]
    picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (targets != -100)
    return picked.sum(-1).view(-1, labels)
