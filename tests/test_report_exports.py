"""Exports: CodeCarbon CSV, model-card blocks, JUnit properties, benchmark extra_info, ratings,
the step summary."""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import re
from html import unescape
from pathlib import Path

import pytest
import yaml

from pytest_energy.core.facts import CaseFacts, FineTuneFacts, Trained
from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict
from pytest_energy.report import build_report, html
from pytest_energy.report.exports import CODECARBON_COLUMNS, benchmark_extra_info, junit_properties, write_emissions_csv, write_model_cards
from pytest_energy.report.markdown import render as markdown_summary
from pytest_energy.report.ratings import carbon_efficiency_class, rating, star_rating


def test_csv_columns_are_codecarbons():
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.origin:
        pytest.skip("codecarbon is not installed: its column names cannot be compared")
    source = Path(spec.origin).parent / "output_methods" / "emissions_data.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    emissions_data, = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "EmissionsData")
    fields = [n.target.id for n in emissions_data.body if isinstance(n, ast.AnnAssign)]
    assert list(CODECARBON_COLUMNS) == fields


def test_csv_rows_carry_codecarbon_units_and_append(tmp_path):
    record = make_record("t.py::test_a", 10.0)
    report = build_report([record], None, make_run_info())
    path = tmp_path / "emissions.csv"
    write_emissions_csv(report, path)
    line = write_emissions_csv(report, path)
    assert line == f"emissions CSV (CodeCarbon columns): 1 rows added to {path}"
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 2 and path.read_text().count("timestamp,project_name") == 1
    row = rows[0]
    assert row["project_name"] == "t.py::test_a" and row["run_id"] == "20261123T120000Z-ab12"
    assert float(row["emissions"]) == pytest.approx(record.co2_grams / 1000)
    # CodeCarbon's invariant: emissions (kg) = energy_consumed (kWh, x PUE) x intensity (g/kWh) / 1000.
    assert float(row["energy_consumed"]) * 56.0 / 1000 == pytest.approx(float(row["emissions"]))
    assert float(row["gpu_energy"]) == pytest.approx(record.total_gross_joules * 1.2 / 3.6e6)
    assert float(row["cpu_energy"]) == 0.0
    assert float(row["gpu_power"]) == pytest.approx(record.total_gross_joules * 1.2 / record.duration_seconds)
    assert row["country_iso_code"] == "FRA" and row["pue"] == "1.2" and row["gpu_count"] == "1"


def test_csv_with_other_columns_is_kept_aside(tmp_path):
    path = tmp_path / "emissions.csv"
    path.write_text("a,b\n1,2\n")
    write_emissions_csv(build_report([make_record()], None, make_run_info()), path)
    assert (tmp_path / "emissions.csv.bak").read_text() == "a,b\n1,2\n"
    assert path.read_text().startswith(",".join(CODECARBON_COLUMNS))


def _fine_tune(name: str, joules: float, rouge: float, examples: int = 4800):
    # As the cases module states a fine-tune record: a case of kind "fine-tune", with its task, the
    # examples it trained on (steps x batch) and how it trained (a hub model's pre-trained weights, fine-tuned).
    recipe = FineTuneFacts(examples // 8, examples // 8, "adamw", 5e-5, "linear", 2.0, 1.0, 8,
                           Trained("t5-base", "pre-trained", "fine-tuning"))
    return make_record(name, joules, rounds=1, iterations=1, unit="step", quality={"rougeL": rouge},
                       case=CaseFacts("fine-tune", "summarization", batch_size=8, rounds=1, fine_tune=recipe),
                       proxies={"parameters": 60_000_000, "tokens_in": 51_200})


def test_model_card_block_parses_as_yaml_and_matches_the_record(tmp_path):
    records = [_fine_tune("suites/test_ft.py::t5_highlights", 9000.0, 0.40),
               _fine_tune("suites/test_ft.py::bart_highlights", 20000.0, 0.38, examples=32),
               make_record("t.py::test_inference", 1.0)]
    report = build_report(records, None, make_run_info())
    lines = write_model_cards(report, tmp_path / "cards")
    assert len(lines) == 2
    card = yaml.safe_load((tmp_path / "cards" / "suites_test_ft.py_t5_highlights.yaml").read_text())
    emissions = card["co2_eq_emissions"]
    assert emissions["emissions"] == records[0].co2_grams
    assert emissions["training_type"] == "fine-tuning"
    assert emissions["geographical_location"] == "FRA"
    assert emissions["hardware_used"] == "1 x NVIDIA H100 80GB HBM3"
    assert "56 gCO2eq/kWh" in emissions["source"] and "PUE 1.2" in emissions["source"]
    assert card["carbon_efficiency"]["class"] == "A"  # 0.035 g per 1,000 examples: the table's lowest fifth
    other = yaml.safe_load((tmp_path / "cards" / "suites_test_ft.py_bart_highlights.yaml").read_text())
    assert other["carbon_efficiency"]["class"] == "E"  # 11.7 g per 1,000 examples, beyond the range's top
    assert "gCO2eq per 1,000 training examples; summarization table" in other["carbon_efficiency"]["basis"]
    # The HTML report shows the same block in the fine-tune's details, escaped, parsing to the same YAML.
    page = html.render(report)
    blocks = re.findall(r'<pre class="model-card">(.*?)</pre>', page, re.S)
    assert len(blocks) == 2
    assert yaml.safe_load(unescape(blocks[0])) in (card, other)


def test_carbon_efficiency_classes_a_single_fine_tune_from_the_table():
    grade, basis = carbon_efficiency_class(_fine_tune("a", 10.0, 0.4))
    assert grade == "A" and "summarization table" in basis
    # 1.5, 3.5, ... 9.5 fifths of the top of a 0-11.97 g range per 1,000 examples: one class each.
    grades = []
    for fifths in (0.5, 1.5, 2.5, 3.5, 4.5):
        record = _fine_tune(str(fifths), 10.0, 0.4, examples=1000)
        record.co2_grams = fifths * 11.97 / 5
        grades.append(carbon_efficiency_class(record)[0])
    assert grades == ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize(("value", "stars"), [
    (0.5, 5), (1.0, 5), (1.99, 5), (2.0, 4), (3.5, 3), (4.99, 2), (5.0, 1), (6.0, 1), (60.0, 1),
])
def test_star_rating_bands_are_fifths_of_the_task_range(value, stars):
    assert star_rating(value, (1.0, 6.0)) == stars


def test_star_rating_refuses_an_empty_range():
    with pytest.raises(ValueError, match="highest > lowest"):
        star_rating(1.0, (2.0, 2.0))


def test_rating_uses_gross_gpu_wh_per_1000():
    record = make_record("t.py::test_cls", 0.5, unit="inference",
                         case=CaseFacts("inference", "text-classification", reference_range=(0.1, 3.0)))
    stars, basis = rating(record)
    wh = record.components[0].gross_joules / record.iterations * 1000 / 3600
    assert stars == star_rating(wh, (0.1, 3.0))
    assert basis.startswith(f"{wh:.4g} Wh per 1,000 (gross GPU energy)")
    assert rating(make_record()) == (None, "")


def test_junit_properties_and_benchmark_extra_info():
    record = make_record("t.py::test_infer", 2.5, unit="inference", quality={"accuracy": 0.875})
    properties = dict(junit_properties(record))
    assert properties["energy_record"] == "t.py::test_infer"
    assert float(properties["energy_joules_per_iteration"]) == pytest.approx(record.per_iteration_net_joules, rel=1e-5)
    assert float(properties["energy_wh_per_1000_inferences"]) == pytest.approx(
        record.per_iteration_gross_joules / 3.6, rel=1e-5)
    assert properties["energy_method"] == "counter" and properties["energy_devices"] == "gpu:0"
    assert properties["energy_quality_accuracy"] == "0.875"
    assert all(name.startswith("energy_") for name, _ in junit_properties(record))
    info = benchmark_extra_info(record)
    assert json.loads(json.dumps(info)) == info
    assert info["energy_joules_per_iteration"] == record.per_iteration_net_joules
    assert info["energy_co2_grams"] == record.co2_grams and info["energy_iterations"] == 100


def test_markdown_summary_escapes_test_text():
    name = "t.py::test_x[a|b<script>]"
    report = build_report([make_record(name, 3.0)],
                          make_judgement([make_verdict(name, "regression", 1.3, 1.2, 1.4)]), make_run_info())
    text = markdown_summary(report)
    assert text.startswith("### pytest-energy FAILED: 1 regression; 1 record: 1 regression\n")
    assert "t.py::test\\_x\\[a\\|b&lt;script&gt;\\]" in text
    assert "<script>" not in text
    assert "+30.0 % [+20.0 %, +40.0 %]" in text
