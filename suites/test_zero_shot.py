"""Task-specific against general-purpose: the sentiment classification of test_classification.py done
zero-shot by a generative (decoder-only) model, on the same 1,000 examples.

"Power Hungry Processing" (Luccioni et al., 2024) finds a multi-purpose generative model spends far more
energy per query than a task-specific one on the same task. Here the generative model is prompted
("Review: ... Is this review positive or negative? Answer:") and the likelier label word is its answer
(no classifier head, no training on the task). bigscience/bloomz-560m is one of that study's
multi-purpose models. Without it in the local cache, a 2-layer Llama-architecture model is trained here
as a language model on the training reviews written as prompt and answer (instruction data in
miniature) and runs instead. The report's accuracy chart and table show it beside sst2_classification:
on this CPU the fallbacks read accuracy about 0.80 (task-specific) and 0.74 (zero-shot), the zero-shot one at
about 4.6 times the FLOPs and twice the energy per query.
"""

from pathlib import Path

from pytest_energy.cases import Fallback, InferenceCase

DATA = Path(__file__).parent / "data"

sentiment_zero_shot = InferenceCase(
    model="bigscience/bloomz-560m",
    task="zero-shot-classification",
    dataset=DATA / "sentiment_eval.jsonl",
    inferences=1000,
    batch_size=1,
    quality={"accuracy": 0.75},
    fallback=Fallback("llama", DATA / "sentiment_train.jsonl", steps=150, batch_size=32, learning_rate=5e-3,
                      overrides={"quality": {"accuracy": 0.66}}),  # measured spread: docs/cases.md
)
