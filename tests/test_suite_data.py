"""The suites' generated data: reproducible from generate.py, and evaluation that is not a copy of training."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "suites" / "data"


def _generate_module():
    spec = importlib.util.spec_from_file_location("suite_data_generate", DATA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


def test_generate_reproduces_every_committed_file_byte_for_byte(tmp_path, monkeypatch):
    pytest.importorskip("PIL")  # the shapes are drawn with Pillow
    generate = _generate_module()
    monkeypatch.setattr(generate, "HERE", tmp_path)
    generate.main()
    written = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert "sentiment_eval.jsonl" in written and "highlights_eval.jsonl" in written
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), f"{name} differs from generate.py's"


def test_no_sentiment_evaluation_sentence_occurs_in_training():
    train = {row["text"].lower() for row in _rows("sentiment_train.jsonl")}
    for name in ("sentiment_eval.jsonl", "sentiment_heldout.jsonl"):
        rows = _rows(name)
        assert not [row["text"] for row in rows if row["text"].lower() in train], name
        assert abs(sum(row["label"] for row in rows) / len(rows) - 0.5) < 0.05, f"{name}: labels unbalanced"


def test_sentiment_evaluation_has_its_three_kinds_with_their_labels():
    generate = _generate_module()
    rows = _rows("sentiment_eval.jsonl")
    contrasts = [r for r in rows if any(joint in r["text"] for joint in generate.CONTRASTS)]
    unseen = [r for r in rows if r not in contrasts and any(r["text"].endswith(p) for p in generate.EVAL_PHRASES[r["label"]])]
    assert len(unseen) > 250 and len(contrasts) > 300
    # The deciding clause: after "but"/"yet", before "although"/"even though".
    positive = set(generate.POSITIVE + generate.EVAL_PHRASES[1])
    for row in contrasts:
        text = row["text"]
        joint = next(j for j in generate.CONTRASTS if j in text)
        first, second = text.split(joint, 1)
        deciding = first if "though" in joint else second
        assert any(deciding.endswith(p) for p in positive) == (row["label"] == 1), text


#: How a training article's lead sentence begins, per story kind.
CANONICAL_LEAD = re.compile(r"^(The \w+ city council voted|[\w ]+ beat [\w ]+ \d+-\d+ on|[\w ]+, the \w+ company "
                            r"based in|A storm brought|Researchers at the University)")


def test_highlights_evaluation_articles_are_new_with_unseen_names_and_leads_moved_or_reworded():
    generate = _generate_module()
    train, rows = _rows("highlights_train.jsonl"), _rows("highlights_eval.jsonl")
    assert all(CANONICAL_LEAD.match(row["document"]) for row in train)
    assert not {row["document"] for row in rows} & {row["document"] for row in train}
    train_text = " ".join(row["document"] for row in train)
    new_names = [name for names in generate.EVAL_NAMES.values() for name in names]
    assert not [name for name in new_names if name in train_text]
    with_new = [row for row in rows if any(name in row["summary"] for name in new_names)]
    assert 0.25 < len(with_new) / len(rows) < 0.9
    led = [row for row in rows if CANONICAL_LEAD.match(row["document"])]
    assert 0.2 < len(led) / len(rows) < 0.45  # a third as in training; the rest reworded or moved


def test_generation_prompts_for_evaluation_are_new_with_unseen_towns_and_rewordings():
    generate = _generate_module()
    train, rows = _rows("prompts_train.jsonl"), _rows("prompts_eval.jsonl")
    assert not {row["prompt"] for row in rows} & {row["prompt"] for row in train}
    train_text = " ".join(row["prompt"] for row in train)
    assert not [town for town in generate.EVAL_TOWNS if town in train_text]
    assert any(town in row["prompt"] for row in rows for town in generate.EVAL_TOWNS)
    canonical = re.compile(r"^(The forecast for|In [\w ]+, )")
    assert all(canonical.match(row["prompt"]) for row in train)
    reworded = [row for row in rows if not canonical.match(row["prompt"])]
    assert 0.25 < len(reworded) / len(rows) < 0.4
