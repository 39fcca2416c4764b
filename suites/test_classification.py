"""Text classification: 1,000 batch-1 inferences of a sentiment model, with an accuracy budget.

The AI Energy Score's text-classification reference is distilbert SST-2 (about 0.22 Wh per 1,000
queries on an H100). Without that model in the local cache, a 2-layer DistilBERT with a tokenizer
trained on suites/data is trained here for 150 steps (seconds on a CPU) and runs instead.
"""

from pathlib import Path

from pytest_energy.cases import Fallback, InferenceCase

DATA = Path(__file__).parent / "data"

sst2_classification = InferenceCase(
    model="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    task="text-classification",
    dataset=DATA / "sentiment_eval.jsonl",
    inferences=1000,
    batch_size=1,
    max_energy="1 Wh",  # per 1,000 inferences, gross
    quality={"accuracy": 0.85, "f1": 0.85},
    fallback=Fallback("distilbert", DATA / "sentiment_train.jsonl", steps=150, batch_size=32, learning_rate=2e-3,
                      overrides={"quality": {"accuracy": 0.68, "f1": 0.67}}),  # measured spread: docs/cases.md
    variants={"fp32": {"dtype": "float32"}, "bf16": {"dtype": "bfloat16"}},
)
