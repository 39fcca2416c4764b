"""Token classification: named entities (people, places, organisations) tagged word by word, entity F1.

Power Hungry Processing's token-classification task, on sentences generated for this project. The
named model is dslim/bert-base-NER (CoNLL-2003 tags). Without it in the local cache, a 2-layer BERT
with a tokenizer trained on suites/data is trained here and runs instead. The evaluation sentences use
names, endings and templates held out from training, so the fallback's entity F1 sits well below 1.0
(about 0.37 here) and a damaged model shows.
"""

from pathlib import Path

from pytest_energy.cases import Fallback, InferenceCase

DATA = Path(__file__).parent / "data"

entity_tagging = InferenceCase(
    model="dslim/bert-base-NER",
    task="token-classification",
    dataset=DATA / "entities_eval.jsonl",
    inferences=1000,
    max_input_tokens=64,
    max_energy="2 Wh",  # per 1,000 inferences, gross
    quality={"entity_f1": 0.6},
    fallback=Fallback("bert", DATA / "entities_train.jsonl", steps=200, batch_size=32, learning_rate=3e-3,
                      overrides={"quality": {"entity_f1": 0.34}}),  # measured spread: docs/cases.md
)
