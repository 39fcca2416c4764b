"""``--energy-profile ai-energy-score``: the AI Energy Score's protocol for the inference cases of its tasks.

The protocol's counts (1,000 queries x 10 runs) are tested with small ones: a conftest replaces the
profile's counts (``Profile.with_counts``), and the cases are the tiny factory models of test_cases.py.
"""

from __future__ import annotations

import json

import pytest

from pytest_energy.core import config
from pytest_energy.core.facts import CaseFacts, GenerationFacts
from pytest_energy.core.figures import case_figures
from pytest_energy.core.profiles import DEFAULT, PROFILES, get_profile, profile_names
from pytest_energy.report.ratings import rating, star_rating
from pytest_energy.testing.records import make_record
from test_cases import CONFTEST, MODELS, run_session  # (tests/ is on sys.path under pytest's default import mode)

AI_ENERGY_SCORE = PROFILES["ai-energy-score"]


def test_the_ai_energy_score_protocol_and_its_counts():
    assert profile_names() == ("default", "ai-energy-score") and get_profile(DEFAULT) is None
    assert (AI_ENERGY_SCORE.queries, AI_ENERGY_SCORE.runs, AI_ENERGY_SCORE.batch_size) == (1000, 10, 1)
    # every run's 1,000 queries are the case's inferences, one measured round per run
    assert AI_ENERGY_SCORE.case_fields() == {"batch_size": 1, "inferences": 10_000, "rounds": 10, "warmup": 10}
    small = AI_ENERGY_SCORE.with_counts(queries=6, runs=2)
    assert small.case_fields() == {"batch_size": 1, "inferences": 12, "rounds": 2, "warmup": 10}
    assert small.tasks == AI_ENERGY_SCORE.tasks and AI_ENERGY_SCORE.queries == 1000  # a copy, not a change
    with pytest.raises(ValueError, match="queries and runs must be >= 1"):
        AI_ENERGY_SCORE.with_counts(queries=0, runs=10)
    with pytest.raises(ValueError, match="unknown profile 'mlperf'; expected one of default, ai-energy-score"):
        get_profile("mlperf")
    assert AI_ENERGY_SCORE.covers("summarization") and not AI_ENERGY_SCORE.covers("token-classification")


def test_float16_for_text_generation_where_the_device_has_it_and_the_cpu_says_why_not():
    assert AI_ENERGY_SCORE.precision("text-generation", "cuda:0") == ("float16", "")
    assert AI_ENERGY_SCORE.precision("summarization", "cuda") == ("float32", "")
    assert AI_ENERGY_SCORE.precision("text-classification", "cpu") == ("float32", "")
    dtype, note = AI_ENERGY_SCORE.precision("text-generation", "cpu")
    assert dtype == "float32"
    assert note == ("ai-energy-score runs text-generation in float16 where the device supports it; cpu has no fast "
                    "float16 kernels, so it ran in float32")


def test_the_option_from_the_command_line_the_environment_and_the_ini():
    def ini(name: str):
        return "AI-Energy-Score" if name == "energy_profile" else config.INI_UNSET

    assert config.resolve(True, {}, lambda name: config.INI_UNSET, {}).profile == "default"
    assert config.resolve(True, {}, ini, {}).profile == "ai-energy-score"
    assert config.resolve(True, {}, ini, {"PYTEST_ENERGY_PROFILE": "default"}).profile == "default"
    assert config.resolve(True, {"energy_profile": "ai-energy-score"}, ini, {}).profile == "ai-energy-score"
    with pytest.raises(config.SettingError) as error:
        config.resolve(True, {"energy_profile": "mlperf"}, ini, {})
    assert str(error.value) == "pytest-energy: --energy-profile has 'mlperf', expected default or ai-energy-score"


def _profiled(task: str, **facts) -> object:
    return make_record("suites/t.py::case", 0.5, unit="inference",
                       case=CaseFacts("inference", task, batch_size=1, profile="ai-energy-score", **facts))


def test_stars_from_the_profiles_published_band_else_the_cases_range_else_unknown(monkeypatch):
    record = _profiled("text-classification")
    assert rating(record) == (None, "ai-energy-score stars: unknown (no published band for text-classification "
                                    "in docs/cases.md)")
    wh = record.components[0].gross_joules / record.iterations * 1000 / 3600
    own = _profiled("text-classification", reference_range=(0.0, 10 * wh))
    stars, basis = rating(own)
    assert stars == star_rating(wh, (0.0, 10 * wh)) == 5 and " in the task range 0-" in basis
    banded = AI_ENERGY_SCORE.__class__(**{**AI_ENERGY_SCORE.__dict__, "bands": {"text-classification": (0.0, wh)}})
    monkeypatch.setitem(PROFILES, "ai-energy-score", banded)
    stars, basis = rating(own)  # the published band wins over the case's own range
    assert stars == 1 and f"in ai-energy-score band ({AI_ENERGY_SCORE.source})" in basis
    # the default profile's records are rated as before: by their own range, or not at all
    assert rating(make_record()) == (None, "")


def test_a_profile_record_states_wh_per_1000_queries_with_the_phases_summed():
    figures = case_figures(_profiled("text-classification"))
    assert figures["profile"] == {"name": "ai-energy-score", "wh_per_1000_queries": figures["wh_per_1000_inferences"],
                                  "phases": ["preprocess", "forward"],
                                  "phases_measured": "measured together, one call per query", "note": ""}
    # a generation case's decode record holds its prefill's energy: the query is the two summed
    decode = make_record("suites/t.py::gen", 0.5, unit="inference", case=CaseFacts(
        "generation", "text-generation", batch_size=1, generates=True, profile="ai-energy-score",
        profile_note="float16 unavailable", generation=GenerationFacts("decode", 16, prefill_joules_per_query=0.2)))
    figures = case_figures(decode)
    assert figures["profile"]["wh_per_1000_queries"] == figures["generation"]["wh_per_1000_queries"]
    assert figures["profile"]["phases"] == ["preprocess", "prefill", "decode"]
    assert figures["profile"]["note"] == "float16 unavailable"
    prefill = make_record("suites/t.py::gen", 0.5, unit="inference", case=CaseFacts(
        "generation", "text-generation", profile="ai-energy-score", generation=GenerationFacts("prefill", 16)))
    assert "profile" not in case_figures(prefill)  # its decode record states the whole query
    assert "profile" not in case_figures(make_record(unit="inference", case=CaseFacts("inference", "summarization")))


SMALL_PROFILE = CONFTEST + """
from pytest_energy.core import profiles

# the protocol as it is, with counts a test can run: 6 queries x 2 runs
profiles.PROFILES["ai-energy-score"] = profiles.PROFILES["ai-energy-score"].with_counts(queries=6, runs=2)
"""

PROFILED_CASES = """
from models import ROWS, case, once
from pytest_energy.cases import InferenceCase

classified = case(once, batch_size=4, inferences=24, rounds=3, warmup=1)
regression = InferenceCase(model=once, task="text-regression", inferences=24, rounds=2, warmup=1,
                           dataset=[{"text": r["text"], "value": r["label"]} for r in ROWS])
"""


@pytest.mark.slow
def test_the_profile_runs_its_tasks_cases_with_its_counts_and_keeps_its_own_baselines(tmp_path):
    files = {"models.py": MODELS, "conftest.py": SMALL_PROFILE, "test_profiled.py": PROFILED_CASES}
    common = ("--energy", "--energy-json", "out.json", "--energy-min-window", "0.01", "--energy-baselines",
              "baselines", "--energy-update-baselines")
    profiled = run_session(tmp_path, files, *common, "--energy-profile", "ai-energy-score")
    assert profiled.outcomes == {"classified": "passed", "regression": "skipped"}, profiled.lines[-30:]
    assert any("--energy-profile ai-energy-score covers text-generation, summarization, question-answering, "
               "text-classification, sentence-similarity, image-classification; this case's task is "
               "text-regression" in line for line in profiled.lines), profiled.lines[-20:]
    record = profiled.records["classified"]
    case, figures = record["case"], record["figures"]
    assert case["profile"] == "ai-energy-score" and case["profile_note"] == ""
    assert (case["batch_size"], case["rounds"], case["inferences"]) == (1, 2, 12)  # not the case's 4, 3, 24
    assert record["model"]["dtype"] == "float32"
    assert len(figures["inferences_per_round"]) == 2 and min(figures["inferences_per_round"]) >= 6
    assert figures["warmup_inferences"] == 10
    assert record["proxies"]["tokens_in"] == 12 * 4  # 12 queries of four words, one per call
    assert figures["profile"]["name"] == "ai-energy-score"
    assert figures["profile"]["wh_per_1000_queries"] == figures["wh_per_1000_inferences"] > 0
    # its baselines are a set of their own, beside the default profile's
    own_set = tmp_path / "baselines" / "default@ai-energy-score" / "test_profiled.py.json"
    assert own_set.is_file() and not (tmp_path / "baselines" / "default").exists()
    stored = own_set.read_text()
    assert list(json.loads(stored)["records"]) == ["test_profiled.py::classified"]  # the skipped case has none
    assert any(line.startswith("pytest-energy gate passed: ") and "(set 'default', profile ai-energy-score, hardware "
               in line for line in profiled.lines), profiled.lines[-20:]

    plain = run_session(tmp_path, {}, *common)
    assert plain.outcomes == {"classified": "passed", "regression": "passed"}
    assert plain.records["classified"]["case"]["profile"] == "default"
    assert plain.records["classified"]["case"]["batch_size"] == 4 and "profile" not in plain.records["classified"]["figures"]
    # judged against no baseline (the profile's are not the default's), then recorded in its own set
    assert any(line.startswith("new ") for line in plain.lines), plain.lines[-30:]
    assert not any("profile ai-energy-score" in line for line in plain.lines if line.startswith("pytest-energy gate"))
    assert not any(line.startswith("test_profiled.py::classified  energy") for line in plain.lines)
    assert (tmp_path / "baselines" / "default" / "test_profiled.py.json").is_file()
    assert own_set.read_text() == stored
