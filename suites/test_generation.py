"""Text generation by a decoder-only model: energy per 1,000 queries and per generated token, with the
prefill and decode phases measured apart (two records, ``[prefill]`` and ``[decode]``).

distilgpt2 is the AI Energy Score's text-generation reference (about 1.4 Wh per 1,000 queries on an
H100). Without it in the local cache, a 2-layer Llama-architecture model (about 0.1 M parameters) with a
tokenizer trained on suites/data is trained here as a language model on the prompts and runs instead.
Every query writes exactly 16 tokens, greedily, so runs compare. The same model is also served under load
(``served_generation``: one record per concurrency level, ``[concurrency=N]``, energy per output token
over the steady state).
"""

from pathlib import Path

import pytest

from pytest_energy.cases import Fallback, GenerationCase

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.heavy

prompts_generation = GenerationCase(
    model="distilbert/distilgpt2",
    dataset=DATA / "prompts_eval.jsonl",
    inferences=100,  # two passes over the 50 prompts; the records still give energy per 1,000 queries
    max_new_tokens=16,
    fallback=Fallback("llama", DATA / "prompts_train.jsonl", steps=150, batch_size=16, learning_rate=5e-3,
                      overrides={"quality": {"rougeL": 0.65}}),  # measured spread: docs/cases.md
)

# Served under load (the ML.ENERGY benchmark's protocol, in miniature): 64 requests arrive together and are
# decoded as a batch of 1, 8 or 32 sequences that refills as they finish; each request asks for 4 to 12
# tokens. One record per level, [concurrency=N]: energy per output token over the steady state (from when
# the batch first fills until it starts to drain). The fallback is the one above (trained once).
served_generation = GenerationCase(
    model="distilbert/distilgpt2",
    dataset=DATA / "prompts_eval.jsonl",
    inferences=64,
    max_new_tokens=12,
    min_new_tokens=4,
    concurrency=[1, 8, 32],
    fallback=Fallback("llama", DATA / "prompts_train.jsonl", steps=150, batch_size=16, learning_rate=5e-3,
                      overrides={"quality": {"rougeL": 0.5}}),
)
