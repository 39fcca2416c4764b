"""The HTML report's charts per task: each answers one question, none mixes tasks, and every label lies
inside its chart and clear of the others (text taken as 0.6 x font size wide per character)."""

from __future__ import annotations

import html as html_text
import itertools
import math
import re

import pytest

from pytest_energy.core.facts import CaseFacts, FineTuneFacts, GenerationFacts, ModelFacts, Pruned, Trained
from pytest_energy.core.units import JOULES_PER_WH
from pytest_energy.report import build_report, html
from pytest_energy.report.model import GENERAL_PURPOSE_RULE, MAX_KEYED
from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict

FONT = 11  # svg.chart's font in the report's CSS, where a text sets none
LONG = "suites/test_classification.py::sst2_classification_with_a_rather_long_name_to_place"


def _inference(name, joules, task, model, quality=None, **case):
    return make_record(name, joules, unit="inference", quality=quality, model=ModelFacts(model),
                       case=CaseFacts("inference", task, **case))


def _fine_tune(name, joules, task, model, quality):
    recipe = FineTuneFacts(300, 100, "adamw", 5e-5, "linear", 3.2, 1.1, 40,
                           Trained(model, "pre-trained", "fine-tuning"))
    return make_record(name, joules, unit="step", quality=quality, model=ModelFacts(model),
                       case=CaseFacts("fine-tune", task, 16, fine_tune=recipe))


SENTIMENT_EVAL = [f"{i:04x}" for i in range(40)]  # the evaluation examples' content keys


def _scored_on(record, keys):
    """``record`` with its accuracy scored on the examples ``keys``, as a case's quality entry keeps them."""
    record.quality["accuracy"]["example_keys"] = list(keys)
    return record


def _records():
    records = [
        _scored_on(_inference(f"{LONG}[fp32]", 0.80, "text-classification", "distilbert-sst2",
                              {"accuracy": 0.91, "f1": 0.9}), SENTIMENT_EVAL),
        _scored_on(_inference(f"{LONG}[bf16]", 0.79, "text-classification", "distilbert-sst2",
                              {"accuracy": 0.905, "f1": 0.89}), SENTIMENT_EVAL),
        # a generative model prompted zero-shot on the very examples sst2 was scored on
        _scored_on(_inference("suites/test_zero_shot.py::sentiment_zero_shot", 9.5, "zero-shot-classification",
                              "bigscience/bloomz-560m", {"accuracy": 0.74}), reversed(SENTIMENT_EVAL)),
        _inference("suites/test_image_classification.py::shapes_vit", 2.0, "image-classification", "vit",
                   {"accuracy": 0.85}),
        _inference("suites/test_image_classification.py::shapes_resnet", 1.1, "image-classification", "resnet",
                   {"accuracy": 0.80}),
        _inference("suites/test_generation.py::prompts[prefill]", 1.0, "text-generation", "gpt2",
                   generation=GenerationFacts("prefill", 20)),
        _inference("suites/test_generation.py::prompts[decode]", 30.0, "text-generation", "gpt2",
                   generation=GenerationFacts("decode", 20, prefill_joules_per_query=40.0)),
        _fine_tune("suites/test_finetune.py::highlights_finetune", 50.0, "summarization", "facebook/bart-base",
                   {"rouge1": 0.56, "rougeL": 0.55, "meteor": 0.57}),
        _fine_tune("suites/test_finetune_arms.py::highlights_finetune_t5", 80.0, "summarization", "google-t5/t5-base",
                   {"rouge1": 0.64, "rougeL": 0.63, "meteor": 0.64}),
        _fine_tune("suites/test_finetune_arms.py::highlights_finetune_llama", 400.0, "text-generation",
                   "meta-llama/Meta-Llama-3-8B", {"rouge1": 0.33, "rougeL": 0.33, "meteor": 0.33, "bertscore": 0.8}),
        make_record("tests/test_plain.py::test_sort", 0.2, quality={"accuracy": 1.0}),
        make_record("tests/test_plain.py::test_search", 0.3, quality={"accuracy": 0.99}),
    ]
    for sparsity, accuracy in ((0.0, 0.80), (0.3, 0.80), (0.5, 0.79), (0.7, 0.78), (0.8, 0.77), (0.9, 0.76),
                               (0.95, 0.72)):
        records.append(_inference(f"suites/test_pruning.py::sentiment_pruning[{sparsity:.0%}]", 0.81,
                                  "text-classification", "distilbert-sst2", {"accuracy": accuracy},
                                  pruned=Pruned(f"global L1 magnitude, {sparsity:.0%}", 6, sparsity)))
    return records


class _History:
    def series(self, fingerprint_id=None):
        flat = [(f"2026-11-{day:02d}T00:00:00", 0.8, "unchanged") for day in range(1, 13)]
        jump = [(f"2026-11-{day:02d}T00:00:00", 1.0 if day < 7 else 1.3, "unchanged") for day in range(1, 13)]
        return {f"{LONG}[fp32]": flat, "suites/test_image_classification.py::shapes_vit": jump}


@pytest.fixture(scope="module")
def built():
    records = _records()
    judgement = make_judgement([make_verdict("suites/test_image_classification.py::shapes_vit", "regression",
                                             1.3, 1.25, 1.35),
                                make_verdict(f"{LONG}[fp32]", "unchanged", 1.0, 0.99, 1.01)])
    report = build_report(records, judgement, make_run_info(), _History())
    return records, report, html.render(report)


def _section(page, start, end):
    return page[page.index(start):page.index(end)]


def _svgs(page):
    return re.findall(r'<svg class="chart" viewBox="0 0 ([\d.]+) ([\d.]+)"[^>]*aria-label="([^"]*)">(.*?)</svg>',
                      page, re.S)


def _texts(body):
    """Each <text> of an SVG as (box, text): (x0, y0, x1, y1) as drawn, a quarter turn included."""
    texts = []
    for attributes, content in re.findall(r"<text ([^>]*)>(.*?)</text>", body, re.S):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', attributes))
        text = html_text.unescape(re.sub(r"<title>.*?</title>", "", content, flags=re.S))
        size = float(attrs.get("font-size", FONT))
        width = 0.6 * size * len(text)
        shift = {"start": 0.0, "middle": 0.5, "end": 1.0}[attrs.get("text-anchor", "start")]
        turned = re.fullmatch(r"translate\(([-\d.]+) ([-\d.]+)\) rotate\((-?90)\)", attrs.get("transform", ""))
        if turned:
            x, y, angle = float(turned.group(1)), float(turned.group(2)), int(turned.group(3))
            along = (y - width * shift, y + width * (1 - shift)) if angle == 90 else (y - width * (1 - shift),
                                                                                     y + width * shift)
            across = (x - 0.2 * size, x + 0.8 * size) if angle == 90 else (x - 0.8 * size, x + 0.2 * size)
            texts.append(((across[0], along[0], across[1], along[1]), text))
        else:
            assert "transform" not in attrs, attrs
            x, y = float(attrs["x"]), float(attrs["y"])
            texts.append(((x - width * shift, y - 0.8 * size, x + width * (1 - shift), y + 0.2 * size), text))
    return texts


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _assert_labels_inside_and_apart(page):
    svgs = _svgs(page)
    assert svgs
    for width, height, label, body in svgs:
        texts = _texts(body)
        for (x0, y0, x1, y1), text in texts:
            assert 0 <= x0 and x1 <= float(width) and 0 <= y0 and y1 <= float(height), (label, text, (x0, y0, x1, y1))
        for (box_a, a), (box_b, b) in itertools.combinations(texts, 2):
            assert not _overlap(box_a, box_b), (label, a, b)


def test_every_label_of_every_chart_is_inside_its_box_and_clear_of_the_others(built):
    _, _, page = built
    _assert_labels_inside_and_apart(page)


def test_a_crowd_of_points_keeps_its_labels_apart_and_long_names_are_cut_with_their_whole_in_a_tooltip():
    task = "a-task-with-a-name-longer-than-its-margin"
    crowd = [_inference(f"t.py::test_{'very_long_' * 4}{i}", 1.0 + i * 0.001, task,
                        f"model-{i}", {"accuracy": 0.8 + i * 0.0005}) for i in range(12)]
    page = html.render(build_report(crowd, None, make_run_info()))
    _assert_labels_inside_and_apart(page)
    [chart] = [body for _, _, label, body in _svgs(page) if label.startswith("energy against accuracy")]
    assert sorted(int(t) for t in re.findall(r'<text class="label"[^>]*>(\d+)</text>', chart)) == list(range(1, 13))
    x_ticks = re.findall(  # under the plot (its bottom at 276)
        r'<text class="tick" x="[\d.]+" y="290.0" text-anchor="\w+">([^<]+)</text>', chart)
    assert len(x_ticks) >= 3 and len(set(x_ticks)) == len(x_ticks)  # close ticks still read apart
    [by_task] = [body for _, _, label, body in _svgs(page) if label.startswith("energy per 1,000")]
    # twelve points within 1 % of each other: each numbered, in lanes of its task's band
    assert sorted(int(t) for t in re.findall(r'<text class="label"[^>]*>(\d+)</text>', by_task)) == list(range(1, 13))
    assert re.search(rf">a-task-with-a-name[^<]*…<title>{task}</title></text>", by_task)


def test_energy_per_1000_inferences_by_task_is_on_a_log_axis_with_one_point_per_record(built):
    records, report, page = built
    chart = report.task_energy
    # the pruning levels are in their sweep's chart, the prefill record in its decode record's whole query
    # the zero-shot model answers sst2's task on its examples: a general-purpose point on that row
    assert chart.tasks == ["text-classification", "image-classification", "text-generation"]  # cheapest first
    by_name = {p.name: p for p in chart.points}
    assert len(chart.points) == 6 and "suites/test_generation.py::prompts[prefill]" not in by_name
    decode = by_name["suites/test_generation.py::prompts[decode]"]
    assert decode.wh_per_1000 == pytest.approx((40.0 + records[6].per_iteration_gross_joules) * 1000 / JOULES_PER_WH)
    [general] = [p for p in chart.points if p.general_purpose]
    assert general.name == "suites/test_zero_shot.py::sentiment_zero_shot"
    assert general.task == "text-classification" and general.case_task == "zero-shot-classification"
    assert [p.name for p in chart.points if p.task == "text-classification"] == \
        [f"{LONG}[bf16]", f"{LONG}[fp32]", "suites/test_zero_shot.py::sentiment_zero_shot"]
    assert chart.left_out == 0

    [(width, height, _, body)] = [s for s in _svgs(page) if s[2] == "energy per 1,000 inferences by task, log scale"]
    assert "gross Wh per 1,000 inferences (log scale)" in body
    assert body.count('<circle class="dot') == 5 and body.count('class="dot s-none general"') == 1
    # Tick labels sit at equal distances per decade: a log axis.
    ticks = [(float(x), float(v.replace(",", ""))) for x, v in
             re.findall(r'<text class="tick" x="([\d.]+)" y="[\d.]+" text-anchor="middle">([\d.,e+-]+)</text>', body)]
    assert len(ticks) >= 3
    per_decade = {round((x1 - x0) / math.log10(v1 / v0), 1) for (x0, v0), (x1, v1) in zip(ticks, ticks[1:])}
    assert max(per_decade) - min(per_decade) < 1.0, per_decade
    rows = {p.name: p for p in chart.points}
    zero_shot, sst2 = rows["suites/test_zero_shot.py::sentiment_zero_shot"], rows[f"{LONG}[fp32]"]
    assert f'<a href="#r{zero_shot.row}"><path class="dot s-none general"' in body
    assert zero_shot.wh_per_1000 > sst2.wh_per_1000
    section = _section(page, '<section id="quality">', '<section id="timelines">')
    assert GENERAL_PURPOSE_RULE in section
    key = re.search(r'<table class="key" id="energy-by-task-key">.*?</table>', section, re.S).group(0)
    assert key.count("<tr><td") == 6 and key.count("general-purpose (zero-shot-classification)") == 1


def test_energy_against_quality_is_charted_per_task_never_mixing_tasks(built):
    records, report, page = built
    tasks = {r.name: (r.case.task if r.case else "") for r in records}
    tasks["suites/test_zero_shot.py::sentiment_zero_shot"] = "text-classification"  # it answers sst2's examples
    charts = {(c.task, c.metric, c.unit): c for c in report.quality_charts}
    assert set(charts) == {("text-classification", "accuracy", "inference"), ("text-classification", "f1", "inference"),
                           ("image-classification", "accuracy", "inference"), ("summarization", "rouge1", "step"),
                           ("summarization", "rougeL", "step"), ("summarization", "meteor", "step"),
                           ("", "accuracy", "iteration")}
    for chart in report.quality_charts:
        assert {tasks[p.name] for p in chart.points} == {chart.task}  # no chart mixes tasks
        assert not any("pruning" in p.name for p in chart.points)  # the sweep has its own chart
        assert chart.front and all(p.on_front for p in chart.front)
    section = _section(page, '<section id="quality">', '<section id="timelines">')
    scatters = [s for s in _svgs(section) if s[2].startswith("energy against ")]
    assert len(scatters) == len(report.quality_charts)
    sentiment = charts[("text-classification", "accuracy", "inference")]
    assert [(p.name, p.general_purpose, p.on_front) for p in sentiment.points] == [
        (f"{LONG}[bf16]", False, True), (f"{LONG}[fp32]", False, True),
        ("suites/test_zero_shot.py::sentiment_zero_shot", True, False)]  # dearer and worse
    [(_, _, _, body)] = [s for s in scatters if s[2] == "energy against accuracy (text-classification), Pareto front "
                         "marked"]
    assert body.count('<circle class="dot') == 2 and body.count('class="dot s-none general"') == 1
    image = charts[("image-classification", "accuracy", "inference")]
    [(_, _, _, body)] = [s for s in scatters if s[2] == "energy against accuracy (image-classification), Pareto front "
                         "marked"]
    assert body.count('<circle class="dot') == 2 and '<polyline class="front"' in body  # both on the front
    assert {p.name for p in image.front} == {"suites/test_image_classification.py::shapes_vit",
                                            "suites/test_image_classification.py::shapes_resnet"}
    keys = re.findall(r'<table class="key quality-key">.*?</table>', section, re.S)
    assert len(keys) == len(report.quality_charts)
    for key, chart in zip(keys, report.quality_charts):
        assert [html_text.unescape(n) for n in re.findall(r'<a href="#r\d+">([^<]+)</a>', key)] == \
            [p.name for p in chart.points]


def test_the_pruning_sweep_is_one_curve_of_sparsity_against_energy_and_quality(built):
    _, report, page = built
    [sweep] = report.sweeps
    assert sweep.name == "suites/test_pruning.py::sentiment_pruning" and sweep.metric == "accuracy"
    assert [level.sparsity for level in sweep.levels] == pytest.approx([0, 30, 50, 70, 80, 90, 95])
    [(_, _, _, body)] = [s for s in _svgs(page) if s[2].startswith("energy and quality of")]
    assert body.count('<circle class="dot small quality"') == 7 and '<polyline class="quality"' in body
    assert "95 % sparse: accuracy 0.72" in body


def test_the_fine_tune_arms_stand_side_by_side_with_energy_co2_and_quality(built):
    records, report, page = built
    arms = report.fine_tune_arms
    assert [arm.model for arm in arms] == ["facebook/bart-base", "meta-llama/Meta-Llama-3-8B", "google-t5/t5-base"]
    bart = next(arm for arm in arms if arm.model == "facebook/bart-base")
    record = records[7]
    whole = record.total_gross_joules + record.per_iteration_gross_joules * record.warmup_iterations
    assert bart.wh == pytest.approx(whole / JOULES_PER_WH)  # the whole fine-tune, its warm-up steps included
    assert bart.co2_grams == pytest.approx(record.carbon.grams(whole))
    assert bart.quality == {"rouge1": 0.56, "rougeL": 0.55, "meteor": 0.57}
    section = _section(page, '<h3 id="fine-tune-arms">', '<section id="timelines">')
    table = re.search(r'<table class="key" id="fine-tune-arms-table">.*?</table>', section, re.S).group(0)
    assert table.count("<tr><td") == 3 and "<th class=\"num\">bertscore</th>" in table
    bars = {label: body for _, _, label, body in _svgs(section)}
    assert set(bars) == {f"{title} per fine-tune arm" for title in (
        "energy of the whole fine-tune (gross)", "CO2eq of that energy", "rouge1", "rougeL", "meteor", "bertscore")}
    assert bars["bertscore per fine-tune arm"].count('<rect class="bar"') == 1  # only the llama arm computed it
    assert bars["energy of the whole fine-tune (gross) per fine-tune arm"].count('<rect class="bar"') == 3
    assert f"{bart.key}. suites/test_finetune.py::highlights_finetune:" in bars["rouge1 per fine-tune arm"]


def test_one_fine_tune_is_no_comparison():
    one = _fine_tune("t.py::tune", 5.0, "summarization", "bart", {"rouge1": 0.5})
    report = build_report([one], None, make_run_info())
    assert report.fine_tune_arms == []
    assert 'id="fine-tune-arms"' not in html.render(report)


def test_the_regressed_tests_trends_come_first_the_others_folded(built):
    _, report, page = built
    assert [t.name for t in report.regressed_trends] == ["suites/test_image_classification.py::shapes_vit"]
    assert [t.name for t in report.other_trends] == [f"{LONG}[fp32]"]
    section = _section(page, '<section id="trends">', '<section id="details">')
    regressed = _section(section, '<h3 id="regressed-trends">', '<details id="other-trends">')
    assert [label for _, _, label, _ in _svgs(regressed)] == [
        "trend of suites/test_image_classification.py::shapes_vit"]
    assert '<details id="other-trends"><summary>Other tests with history (1)</summary>' in section


def test_test_supplied_names_are_escaped_in_every_chart():
    evil = "t.py::test_x[<script>alert(1)</script>]"
    records = [_inference(evil, 1.0, "<b>task</b>", "<i>model</i>", {"<m>": 0.5}),
               _inference("t.py::ok", 2.0, "<b>task</b>", "m", {"<m>": 0.6})]
    page = html.render(build_report(records, None, make_run_info()))
    assert "<script>" not in page and "<b>task</b>" not in page and "<i>model</i>" not in page
    assert "&lt;b&gt;task&lt;/b&gt;" in page
    _assert_labels_inside_and_apart(page)


def test_past_the_key_limit_only_the_front_and_each_tasks_ends_are_numbered():
    many = [_inference(f"t.py::test_{i}", 1.0 + i / 10, "text-classification" if i % 2 else "image-classification",
                       f"m{i}", {"accuracy": 0.5 + (i % 7) / 20}) for i in range(2 * MAX_KEYED + 4)]
    report = build_report(many, None, make_run_info())
    assert len(report.quality_charts) == 2  # a task each, of MAX_KEYED + 2 points
    for chart in report.quality_charts:
        assert [p.key for p in chart.keyed] == list(range(1, len(chart.front) + 1))
        assert {p.name for p in chart.keyed} == {p.name for p in chart.front}
    by_task = report.task_energy
    ends = {"t.py::test_0", f"t.py::test_{2 * MAX_KEYED + 2}", "t.py::test_1", f"t.py::test_{2 * MAX_KEYED + 3}"}
    assert {p.name for p in by_task.keyed} == ends
    page = html.render(report)
    _assert_labels_inside_and_apart(page)
    assert "Past 60 points only the front is numbered" in page
    key = re.search(r'<table class="key" id="energy-by-task-key">.*?</table>', page, re.S).group(0)
    assert key.count("<tr><td") == 4


def test_a_zero_shot_record_on_other_examples_keeps_its_own_task():
    sst2 = _scored_on(_inference("t.py::sst2", 1.0, "text-classification", "distilbert", {"accuracy": 0.9}),
                      SENTIMENT_EVAL)
    other = _scored_on(_inference("t.py::zero_shot", 5.0, "zero-shot-classification", "bloomz", {"accuracy": 0.7}),
                       ["ffff"])
    report = build_report([sst2, other], None, make_run_info())
    assert report.task_energy.tasks == ["text-classification", "zero-shot-classification"]
    assert [p.case_task for p in report.task_energy.points] == ["", ""]
    assert report.quality_charts == []  # one record per task: no trade-off to chart


def test_wide_tick_values_widen_the_margin_beside_the_axis_title():
    records = [make_record(f"t.py::t{i}", 1234567.0 + 3 * i, quality={"accuracy": 0.000123 + i * 1e-7})
               for i in range(3)]

    class History:
        def series(self, fingerprint_id=None):
            return {"t.py::t0": [(f"2026-11-{day:02d}", 1234567.0 + day, "unchanged") for day in range(1, 9)]}

    page = html.render(build_report(records, None, make_run_info(), History()))
    _assert_labels_inside_and_apart(page)
    [trend] = [body for _, _, label, body in _svgs(page) if label == "trend of t.py::t0"]
    y_ticks = re.findall(r'text-anchor="end">([\d,]+)</text>', trend)
    assert len(y_ticks) >= 3 and all(len(t) == 9 for t in y_ticks)  # "1,234,568": none left out for room
    [scatter] = [body for _, _, label, body in _svgs(page) if label.startswith("energy against accuracy")]
    assert "0.00012305" in scatter


def _served_level(level, joules, tokens=508):
    from pytest_energy.core.facts import ServingFacts

    return make_record("suites/test_generation.py::served_generation", joules, unit="output token",
                       label=f"concurrency={level}", seconds_per_iteration=0.01,
                       case=CaseFacts("generation", "text-generation", level, 5, 64, True,
                                      serving=ServingFacts(level, 64, (4, 12), tokens, 90, 1, 80)))


def test_a_served_case_charts_energy_per_output_token_against_concurrency():
    import dataclasses

    from pytest_energy.core.record import Round

    levels = {32: _served_level(32, 0.02), 1: _served_level(1, 0.4), 8: _served_level(8, 0.07)}
    # A drain window that was invalid leaves the level's whole-run figure unknown: no amber dot for it.
    levels[8] = dataclasses.replace(levels[8], drain_round=Round(20, 0.3, math.nan, math.nan, False))
    report = build_report(list(levels.values()), None, make_run_info())
    [sweep] = report.served
    assert sweep.name == "suites/test_generation.py::served_generation"
    assert [level.concurrency for level in sweep.levels] == [1, 8, 32]
    assert [level.steady for level in sweep.levels] == [levels[c].per_iteration_gross_joules for c in (1, 8, 32)]
    assert sweep.levels[0].whole_run == pytest.approx(levels[1].total_gross_joules / 508)
    assert sweep.levels[1].whole_run is None
    page = html.render(report)
    [(_, _, _, body)] = [s for s in _svgs(page) if s[2].endswith("served_generation against concurrency")]
    assert body.count('<circle class="dot small"') == 3 and body.count('<circle class="dot small quality"') == 2
    assert "concurrency 32, whole run" in body and "concurrency 8, whole run" not in body
    assert "gross J per output token" in body and "concurrent requests" in body
    _assert_labels_inside_and_apart(page)
    assert "steady state at concurrency 8:" in page and "whole run n/a (a window of it was invalid)" in page


def test_one_served_level_is_no_chart():
    report = build_report([_served_level(4, 0.1)], None, make_run_info())
    assert report.served == [] and 'id="served-generation"' not in html.render(report)
