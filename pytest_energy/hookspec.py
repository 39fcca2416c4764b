"""Hooks a ``conftest.py`` or another plugin implements to extend pytest-energy, as pytest-benchmark's
``pytest_benchmark_update_machine_info`` and ``pytest_benchmark_update_json`` do for it.

Both are called only with ``--energy`` on. Under pytest-xdist the fingerprint hook runs in each
worker (each measures its own devices) and the JSON hook on the controller, which writes the file.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_energy_update_fingerprint(config: pytest.Config, fingerprint: dict[str, Any]) -> None:
    """Add to or change this machine's fingerprint, in place, once it has been read.

    Keys added are recorded with every record, in the JSON, the history and the reports (e.g. the CI
    runner's pool or a cloud instance type). ``fingerprint["id"]`` names this runner in verdicts and in
    the baselines it records. Energy baselines are keyed by device kind, made from ``cpu_model`` and
    each GPU's ``name`` (and what ``--energy-device-kind-fields`` adds): change those to join or split
    kinds on purpose, e.g. ``fingerprint["cpu_model"] += " (" + os.environ["RUNNER_POOL"] + ")"`` so
    two pools keep separate CPU energy baselines. Work and quality are judged on every runner.
    """


@pytest.hookspec
def pytest_energy_update_json(config: pytest.Config, document: dict[str, Any]) -> None:
    """Change the ``--energy-json`` document, in place, before it is written (e.g. add CI metadata
    under ``document["session"]``). Its ``records`` follow the schema in docs/record.md."""
