"""The pruning study: energy and quality of the sentiment classifier at 0/30/50/70 % magnitude pruning.

Unstructured zeros save no work in dense kernels, so on a CPU (and on a GPU's dense kernels) energy per
inference should stay flat while quality falls; the proxies show the non-zero parameters shrink while
FLOPs do not. The 2:4 variant converts the pruned weights to semi-structured sparse tensors, which a
GPU's sparse tensor cores (compute capability 8.0+) really skip: it runs only there.
"""

from pathlib import Path

from pytest_energy.cases import Fallback, InferenceCase, PruningSweep

DATA = Path(__file__).parent / "data"

sentiment_pruning = PruningSweep(
    case=InferenceCase(
        model="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        task="text-classification",
        dataset=DATA / "sentiment_eval.jsonl",
        inferences=1000,
        quality={"accuracy": 0.8},
        fallback=Fallback("distilbert", DATA / "sentiment_train.jsonl", steps=150, batch_size=32,
                          learning_rate=2e-3, overrides={"quality": {"accuracy": 0.95}}),
    ),
    sparsity=(0.0, 0.3, 0.5, 0.7),
    quality_at={0.7: {"accuracy": 0.5}},
)
