"""``python3 -m bench suites``: the per-suite split read from pytest's JUnit XML, and its table."""

from __future__ import annotations

from bench import suites  # the repository's folder, on the path by pytest's `pythonpath`

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="suites.test_generation" name="prompts_generation" file="suites/test_generation.py" time="41.5"/>
<testcase classname="suites.test_finetune_arms" name="highlights_finetune_t5" time="60.25"><failure message="x"/></testcase>
<testcase classname="suites.test_finetune_arms" name="highlights_finetune_llama" time="70.0"/>
<testcase classname="suites.test_similarity" name="minilm_similarity" time="0.01"><skipped message="not installed"/></testcase>
</testsuite></testsuites>
"""


def test_times_and_outcomes_are_summed_per_suite_file(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    split = suites._per_suite(junit)
    assert list(split) == ["test_finetune_arms.py", "test_generation.py", "test_similarity.py"]
    assert split["test_finetune_arms.py"] == {"seconds": 130.25, "tests": 2, "passed": 1, "failed": 1, "skipped": 0}
    assert split["test_generation.py"]["passed"] == 1 and split["test_similarity.py"]["skipped"] == 1


def test_the_table_says_whether_the_run_kept_to_the_budget(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    data = {"date": "2026-12-02T01:00:00+00:00", "command": "pytest --energy suites/", "device": "2 CPUs",
            "summary": "1 failed, 2 passed, 1 skipped", "exit_code": 1, "wall_seconds": 700.0,
            "cpu_user_seconds": 300.0, "cpu_system_seconds": 5.0, "load_average_before": [9.5, 9.0, 8.0],
            "load_average_after": [10.0, 9.2, 8.1], "budget_seconds": 600.0, "within_budget": False,
            "suites": suites._per_suite(junit)}
    table = suites.markdown(data)
    assert "| `test_finetune_arms.py` | 2 | 1 | 1 | 0 | 130.2 |" in table
    assert "700.0 s wall (OVER the 600 s budget)" in table
    assert "before 9.5, 9.0, 8.0" in table


def test_a_marker_selected_run_gets_its_own_result_file():
    assert suites.result_name("2026-12-02T01:00:00+00:00", "AMD EPYC-2c", []) == "suites-2026-12-02-amd-epyc-2c"
    selected = suites.result_name("2026-12-02T01:00:00+00:00", "AMD EPYC-2c", ["-m", "not heavy", "-x"])
    assert selected == "suites-2026-12-02-amd-epyc-2c-m-not-heavy"
