from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
# Imported before any test: pytester drops the modules a test imported when it ends, and SQLAlchemy
# (which the history stores import when first used) cannot be imported a second time in one process.
import sqlalchemy  # noqa: F401

pytest_plugins = ["pytester"]

# The plugin-level tests are written for the CPU and RAM models (or a powercap tree a test builds), so a
# machine whose kernel shows RAPL must not change what they see; tests/test_source_rapl.py reads the real
# /sys/class/powercap on purpose, by its path.
os.environ.setdefault("PYTEST_ENERGY_POWERCAP", str(Path(__file__).resolve().parent / "no-powercap-here"))


@pytest.fixture(autouse=True)
def _energy_environment_restored() -> Iterator[None]:
    """PYTEST_ENERGY_* as before each test, after it: a pytester conftest that points the plugin at its
    fake powercap tree sets os.environ in this very process (in-process runs share it), and later tests
    then measured a frozen fake counter (every window invalid, net below zero)."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("PYTEST_ENERGY")}
    yield
    for name in [n for n in os.environ if n.startswith("PYTEST_ENERGY") and n not in saved]:
        del os.environ[name]
    os.environ.update(saved)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the current folder, with no PYTEST_ENERGY_* from the environment."""
    for name in [n for n in os.environ if n.startswith("PYTEST_ENERGY")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster for the session (Debian's binaries, a unix socket in a temporary
    folder, stopped at the end); skipped with the reason where none can be started."""
    from pytest_energy.testing.postgres import Cluster, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def history_at(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a new, empty history lives: an SQLite file path, then a database of the session's cluster."""
    if request.param == "sqlite":
        return tmp_path / "reports" / "history.sqlite"
    return request.getfixturevalue("postgres").database()
