from __future__ import annotations

import os
from pathlib import Path

import pytest
# Imported before any test: pytester drops the modules a test imported when it ends, and SQLAlchemy
# (which the history stores import when first used) cannot be imported a second time in one process.
import sqlalchemy  # noqa: F401

pytest_plugins = ["pytester"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the current folder, with no PYTEST_ENERGY_* from the environment."""
    for name in [n for n in os.environ if n.startswith("PYTEST_ENERGY")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder
