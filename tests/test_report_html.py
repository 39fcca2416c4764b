"""The HTML report: self-contained, escaped, regressions first, numbers as in the records."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from pytest_energy.core.facts import CaseFacts, GenerationFacts, Pruned
from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict
from pytest_energy.report import build_report, html, write_outputs

EVIL = "t.py::test_x[<script>document.title='pwned'</script>]"


class _Page(HTMLParser):
    """Collects the tags, attributes and section order of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "section":
            self.sections.append(attributes.get("id") or "")


def _records():
    return [
        make_record("t.py::test_ok", 3.0, unit="inference", quality={"rougeL": 0.40},
                    timeline=[(0.0, 80.0), (0.1, 300.0), (0.2, 310.0), (0.3, 90.0)]),
        make_record(EVIL, 5.0, unit="inference", quality={"rougeL": 0.35}),
        make_record("t.py::test_regressed", 12.3456789, unit="inference", quality={"rougeL": 0.45}),
    ]


def _render(history=None):
    records = _records()
    verdicts = [make_verdict("t.py::test_ok", "unchanged", 1.0, 0.99, 1.01),
                make_verdict("t.py::test_regressed", "regression", 1.25, 1.2, 1.3)]
    report = build_report(records, make_judgement(verdicts), make_run_info(), history)
    return records, report, html.render(report)


def test_page_is_self_contained_with_no_script_and_no_external_resource():
    _, _, page = _render()
    parser = _Page()
    parser.feed(page)
    assert "<script" not in page.lower()
    assert not re.search(r"https?://", page)
    for tag, attributes in parser.tags:
        for name in ("src", "href", "xlink:href", "action"):
            value = attributes.get(name)
            assert value is None or value.startswith("#"), f"<{tag} {name}={value!r}>"
    assert "@import" not in page and "url(" not in page
    assert {"link", "img", "iframe", "object", "embed"}.isdisjoint(tag for tag, _ in parser.tags)


def test_test_supplied_text_is_escaped():
    _, _, page = _render()
    assert "t.py::test_x[&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;]" in page


def test_regressions_section_comes_first_and_lists_the_regression():
    _, report, page = _render()
    parser = _Page()
    parser.feed(page)
    assert parser.sections.index("regressions") < parser.sections.index("results")
    assert parser.sections[:2] == ["summary", "gate"]
    regressions = page[page.index('<section id="regressions">'):page.index('<section id="results">')]
    assert "t.py::test_regressed" in regressions and "t.py::test_ok" not in regressions
    results = page[page.index('<table id="results-table">'):]
    assert results.index("t.py::test_regressed") < results.index("t.py::test_ok")
    assert 'id="gate-state">FAILED<' in page
    assert '<p class="headline failed" id="headline">FAILED: 1 regression; 3 records: 1 regression, 1 unchanged, ' \
           '1 not judged</p>' in page


@pytest.mark.parametrize("exit_status, state", [(0, "passed"), (5, "passed"), (1, "FAILED"), (74, "FAILED")])
def test_a_run_that_exits_non_zero_is_never_shown_as_passed(exit_status, state):
    from pytest_energy.report.markdown import render as markdown_summary

    run = make_run_info()
    run.exitstatus = exit_status
    report = build_report([make_record("t.py::test_ok", 1.0)], make_judgement([make_verdict("t.py::test_ok",
                                                                                           "unchanged", 1.0)]), run, None)
    decided = "nothing failed the gate" if state == "passed" else f"pytest exits {exit_status}"
    assert report.headline.text == f"{state}: {decided}; 1 record: 1 unchanged"
    page = html.render(report)
    assert f'id="gate-state">{state}<' in page
    assert ('class="gate passed"' in page) is (state == "passed") and ('class="ok"' in page) is (state == "passed")
    assert markdown_summary(report).startswith(f"### pytest-energy {report.headline.text}\n")


def test_regressions_that_cannot_fail_the_gate_are_not_alarmed():
    records = [make_record("t.py::test_modelled", 2.0), make_record("t.py::test_measured", 2.0)]
    card = re.compile(r'<div class="card( alert)?" id="total-regressions">.*?</div></div>', re.S)
    quiet = build_report(records[:1], make_judgement([make_verdict("t.py::test_modelled", "regression", 1.3,
                                                                   gating=False)]), make_run_info(), None)
    page = html.render(quiet)
    shown = card.search(page).group(0)
    assert ' alert"' not in shown and "none can fail the gate" in shown
    assert '<details class="rec s-reg" id="r0">' in page  # its details stay folded, unlike a gating one's
    loud = build_report(records, make_judgement([
        make_verdict("t.py::test_modelled", "regression", 1.3, gating=False),
        make_verdict("t.py::test_measured", "regression", 1.3)]), make_run_info(), None)
    shown = card.search(html.render(loud)).group(0)
    assert 'class="card alert"' in shown and "1 not gating" in shown


def test_a_model_change_is_its_own_status_listed_with_the_regressions():
    records = [make_record("t.py::test_swapped", 0.8), make_record("t.py::test_same", 1.0)]
    swapped = make_verdict("t.py::test_swapped", "model changed", metric="model")
    report = build_report(records, make_judgement([swapped, make_verdict("t.py::test_swapped", "improvement", 0.794),
                                                   make_verdict("t.py::test_same", "unchanged", 1.0)]),
                          make_run_info(), None)
    assert [row.status for row in report.rows] == ["model changed", "unchanged"]  # first: it explains the change
    assert [row.name for row in report.regressions] == ["t.py::test_swapped"] and report.totals.failing == 1
    assert report.rows[0].decided_by == swapped.message and report.rows[0].change.ratio == 0.794
    page = html.render(report)
    assert '<span class="badge s-mod">model changed</span>' in page
    card = re.search(r'<div class="card( alert)?" id="total-regressions">.*?</div></div>', page, re.S).group(0)
    assert 'class="card alert"' in card and "regressions and model changes" in card and "1 model changed" in card
    assert "<h2>Regressions, model changes and failed tests (1)</h2>" in page


def test_numbers_match_the_records():
    records, report, page = _render()
    regressed = records[2]
    row = page[page.index('data-name="t.py::test_regressed"'):]
    row = row[:row.index("</tr>")]
    energy = re.search(r'class="num energy" data-value="([^"]+)">([^<]+) <span class="muted uncertainty" '
                       r'data-value="([^"]+)">± ([^<]+)<', row)
    assert float(energy.group(1)) == regressed.per_iteration_net_joules
    assert energy.group(2) == f"{regressed.per_iteration_net_joules:.4g}"
    assert float(energy.group(3)) == regressed.per_iteration_uncertainty_joules
    assert energy.group(4) == f"{regressed.per_iteration_uncertainty_joules:.2g}"
    wh = re.search(r'class="num wh" data-value="([^"]+)"', row)
    assert float(wh.group(1)) == pytest.approx(regressed.per_iteration_gross_joules / 3.6, rel=1e-12)
    co2 = re.search(r'class="num co2" data-value="([^"]+)"', row)
    assert float(co2.group(1)) == regressed.co2_grams
    assert '+25.0 %<br><span class="muted">[+20.0 %, +30.0 %]</span>' in row
    total = re.search(r'id="total-energy">.*?data-value="([^"]+)"', page, re.S)
    assert float(total.group(1)) == pytest.approx(sum(r.total_gross_joules for r in records))


def test_columns_no_row_fills_are_left_out():
    report = build_report([make_record("t.py::test_plain", 1.0)], None, make_run_info())
    page = html.render(report)
    assert "Wh / 1,000 inferences" not in page and "<th>Rating</th>" not in page
    _, _, full = _render()
    assert "Wh / 1,000 inferences" in full


def test_quality_chart_needs_two_records_and_numbers_its_points_with_the_front_in_its_key():
    cheap_good = make_record("t.py::test_small", 1.0, quality={"accuracy": 0.9})
    dear_worse = make_record("t.py::test_large", 3.0, quality={"accuracy": 0.8})
    dear_better = make_record("t.py::test_huge", 4.0, quality={"accuracy": 0.95})
    page = html.render(build_report([cheap_good, dear_worse, dear_better], None, make_run_info()))
    labels = re.findall(r'<text class="label"[^>]*>([^<]+)</text>', page)
    assert sorted(labels) == ["1", "2", "3"]  # numbered by energy, cheapest first
    key = re.search(r'<table class="key quality-key">.*?</table>', page, re.S).group(0)
    rows = re.findall(r'<tr><td class="num">(\d)</td><td class="name"><a href="#r\d">([^<]+)</a>.*?<td>(yes|)</td></tr>',
                      key)
    # test_large is beaten on both axes: off the front
    assert rows == [("1", "t.py::test_small", "yes"), ("2", "t.py::test_large", ""), ("3", "t.py::test_huge", "yes")]
    alone = html.render(build_report([cheap_good], None, make_run_info()))
    assert '<text class="label"' not in alone
    assert "No chart: a chart needs two or more records of one task with the same quality metric and unit." in alone


def test_charts_are_inline_svg():
    class History:
        def series(self, fingerprint_id=None):
            values = [3.0] * 6 + [3.6] * 6
            return {"t.py::test_ok": [(f"2026-11-{d + 1:02d}", v, "unchanged") for d, v in enumerate(values)]}

    _, report, page = _render(History())
    quality = page[page.index('<section id="quality">'):page.index('<section id="timelines">')]
    assert quality.count("<svg") == 1 and quality.count('class="dot') == 3
    assert '<polyline class="front"' in quality
    timelines = page[page.index('<section id="timelines">'):page.index('<section id="trends">')]
    assert timelines.count("<svg") == 1 and '<polyline class="power"' in timelines
    trends = page[page.index('<section id="trends">'):page.index('<section id="details">')]
    assert trends.count("<svg") == 1 and trends.count('<line class="step"') == 1
    assert "+20.0 % at 2026-11-07" in trends


def test_details_give_method_devices_rounds_and_carbon():
    records, _, page = _render()
    details = page[page.index('<section id="details">'):page.index('<section id="assumptions">')]
    assert details.count("<details") == 3
    assert details.count(" open>") == 1  # the regression is open
    assert "5 valid of 5, 100 iterations after 3 warm-up" in details
    assert "gpu, counter: gross" in details and "idle 77 W" in details
    assert "g CO2eq at 56 g/kWh, PUE 1.2" in details
    assignments = page[page.index('<section id="assumptions">'):]
    assert "NVIDIA H100 80GB HBM3" in assignments and "codecarbon global_energy_mix.json" in assignments


def test_write_outputs_honours_disabled_paths_and_writes_relative_to_root(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    _, report, _ = _render()
    for disabled in ("", "none", "None", None):
        settings = SimpleNamespace(report=disabled, csv=None, model_card=None)
        assert write_outputs(report, settings, root=tmp_path) == []
    settings = SimpleNamespace(report="reports/energy.html", csv="out/emissions.csv", model_card=None)
    lines = write_outputs(report, settings, root=tmp_path)
    assert (tmp_path / "reports" / "energy.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert (tmp_path / "out" / "emissions.csv").exists()
    assert lines[0] == f"HTML report: {tmp_path / 'reports' / 'energy.html'}"
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["energy.html"]  # no temporary left


def test_write_outputs_appends_the_step_summary(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _, report, _ = _render()
    lines = write_outputs(report, SimpleNamespace(report="", csv=None, model_card=None))
    text = summary.read_text()
    assert text.startswith("earlier step\n### pytest-energy FAILED: 1 regression;")
    assert lines == [f"markdown summary appended to $GITHUB_STEP_SUMMARY ({summary})"]


def test_a_pruning_sweep_is_charted_energy_and_quality_against_sparsity():
    levels = []
    for sparsity, accuracy in ((0.0, 0.99), (0.5, 0.97), (0.9, 0.52)):
        pruned = Pruned(f"global L1 magnitude, {sparsity:.0%} of weights", 6, sparsity)
        levels.append(make_record(f"suites/test_pruning.py::sweep[{round(sparsity * 100)}%]", 2.0, unit="inference",
                                  quality={"accuracy": accuracy}, case=CaseFacts("inference", pruned=pruned)))
    two_four = make_record("suites/test_pruning.py::sweep[2:4]", 1.0, unit="inference", quality={"accuracy": 0.9},
                           case=CaseFacts("inference", pruned=Pruned("2:4 semi-structured", 6, 0.5, 6, 0)))
    page = html.render(build_report([*levels, two_four], make_judgement([]), make_run_info(), None))
    [chart] = re.findall(r'<svg class="chart"[^>]*aria-label="energy and quality of [^"]*".*?</svg>', page, re.S)
    assert 'aria-label="energy and quality of suites/test_pruning.py::sweep against sparsity"' in chart
    assert chart.count('class="dot small quality"') == 3  # the 2:4 level is not on the magnitude line
    assert "90 % sparse: accuracy 0.52" in chart and "weight sparsity (%)" in chart
    alone = html.render(build_report(levels[:1], make_judgement([]), make_run_info(), None))
    assert "energy and quality of" not in alone  # one level is no sweep


def test_a_generation_record_shows_its_whole_query_split_in_the_details():
    # The decode record holds the prefill record's joules per query, as the generation runner states it,
    # so it gives the whole query (prefill + decode); its details line is what the suites' HTML report renders.
    record = make_record("suites/test_generation.py::prompts_generation[decode]", 1.0, unit="inference",
                         idle_watts=0.0, spread=0.0, case=CaseFacts("generation", "text-generation", generates=True,
                                                                   generation=GenerationFacts("decode", 16, 0.25)))
    report = build_report([record], make_judgement([]), make_run_info())
    page = html.render(report)
    assert ("prefill 0.25 J + decode 1 J per query (gross, prefill 20 %); 0.3472 Wh per 1,000 queries, "
            "0.07812 J per generated token") in page


def test_a_row_is_one_line_with_its_long_facts_folded_in_the_test_cell():
    _, report, page = _render()
    results = page[page.index('<section id="results">'):page.index('<section id="quality">')]
    assert results.count('<div class="table-box">') == 1  # a wide table scrolls in its box, not the page
    row = results[results.index('data-name="t.py::test_regressed"'):]
    row = row[:row.index("</tr>")]
    cells = re.findall(r"<td[ >]", row)
    assert len(cells) == 8  # verdict, test, energy ± se, per, Wh, CO2, quality, change
    fold = re.search(r'<td class="name"><details><summary>t.py::<wbr>test_regressed</summary>'
                     r'<dl class="facts">(.*?)</dl><a href="#(r\d)">every fact of this record</a></details></td>', row)
    regressed = next(r for r in report.rows if r.name == "t.py::test_regressed")
    assert fold.group(2) == regressed.anchor
    assert fold.group(1) == "".join(f"<dt>{label}</dt><dd>{text}</dd>" for label, text in regressed.folded())
    assert "<dt>decided by</dt><dd>t.py::test_regressed: energy regression +25.0 %</dd>" in fold.group(1)
    assert "<dt>gpu:0</dt><dd>gpu, counter: net " in fold.group(1)


def test_many_gate_lines_are_folded_under_the_first():
    records = [make_record(f"t.py::test_{i}", 1.0) for i in range(6)]
    judgement = make_judgement([make_verdict(r.name, "regression", 1.3) for r in records])
    judgement.summary.insert(0, "pytest-energy gate FAILED: 6 regressions")
    page = html.render(build_report(records, judgement, make_run_info()))
    gate = page[page.index('<section id="gate">'):page.index('<section id="regressions">')]
    assert gate.index("pytest-energy gate FAILED: 6 regressions") < gate.index("<details")
    assert "<summary>6 more lines of the gate, one per verdict it names</summary>" in gate
    assert gate.count("<li>") == 7
    few = html.render(build_report(records[:2], make_judgement([make_verdict(r.name, "regression", 1.3)
                                                                for r in records[:2]]), make_run_info()))
    assert "<details" not in few[few.index('<section id="gate">'):few.index('<section id="regressions">')]
