"""`pytest_energy.testing` as a user meets it: the example of docs/sources.md run as written, and the
fakes kept out of the plugin's start-up."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = (Path(__file__).resolve().parent.parent / "docs" / "sources.md").read_text(encoding="utf-8")


def _block(first_line: str) -> str:
    """The python block of docs/sources.md that starts with ``first_line``."""
    [code] = [c for c in re.findall(r"```python\n(.*?)```", DOC, re.S) if c.startswith(first_line)]
    return code


@pytest.mark.parametrize("watts, outcome", [(300.0, "passed"), (600.0, "failed")])
def test_the_documented_fake_gpu_session_judges_the_budget(pytester, monkeypatch, watts, outcome):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pytester.makeconftest(_block("# conftest.py"))
    tests = _block("# test_budget.py")
    assert "pynvml.set_power(0, 300.0)" in tests
    pytester.makepyfile(test_budget=tests.replace("set_power(0, 300.0)", f"set_power(0, {watts})"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "--energy",
                                           "--energy-devices", "gpu", "--energy-idle-seconds", "0.3",
                                           "--energy-report", "none", "--energy-json", "out.json")
    result.assert_outcomes(**{outcome: 1})
    [record] = json.loads((pytester.path / "out.json").read_text())["records"]
    [gpu] = record["components"]
    assert (gpu["device"], gpu["method"]) == ("gpu:0", "counter")
    # Idle (80 W) is subtracted for net energy; the budget is on gross, ~0.05 s at the test's power.
    per_inference = record["per_iteration_gross_joules"]
    assert per_inference == pytest.approx(watts * 0.05, rel=0.25)
    assert record["criteria"]["energy"][0]["met"] is (outcome == "passed")


def test_loading_the_plugin_does_not_import_the_fakes():
    code = "import sys, pytest_energy.plugin; print(sorted(m for m in sys.modules if 'testing' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pytest_energy.testing" not in done.stdout
