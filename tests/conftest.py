from __future__ import annotations

import os
import shutil
import sys
import tempfile
from importlib.metadata import entry_points
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

# The pytest sessions these tests start (pytester runs, subprocesses, xdist workers) load the plugins
# the tests are about and no other plugin this machine happens to have: hypothesis's and anyio's, for
# one, imported about a second of modules into every started session and every xdist worker.
_TESTED_PLUGINS = {"energy", "xdist", "xdist.looponfail", "benchmark", "html", "html_fixtures", "metadata"}
_UNTESTED_PLUGINS_OFF = " ".join(
    f"-p no:{entry.name}" for entry in entry_points(group="pytest11") if entry.name not in _TESTED_PLUGINS)
os.environ["PYTEST_ADDOPTS"] = f"{_UNTESTED_PLUGINS_OFF} {os.environ.get('PYTEST_ADDOPTS', '')}".strip()
# Every started session imports the plugin's modules again, assertion-rewritten (pytest rewrites a
# plugin's whole distribution): where PYTHONDONTWRITEBYTECODE is set, as on this project's machines, each
# one compiled them all from source anew (about 40 % of the CPU time of the session tests). The bytecode
# is kept instead, outside the source tree, under one prefix in the temporary folder (also where the
# setting is not made: the files the tests write must keep none, see _no_bytecode_of_written_files).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "pytest-energy-pycache"))
sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]
sys.dont_write_bytecode = False


@pytest.fixture(scope="session", autouse=True)
def _no_bytecode_of_written_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No bytecode is kept of the files the tests write (all under the temporary base folder): a test
    that rewrote a file at the same size within one second (``passed=1.0``, then ``passed=2.0``) ran the
    old code from the cache, whose check is the source's mtime in whole seconds and its size. A file
    where the cache's folder for them would be makes Python and pytest skip writing there."""
    base = tmp_path_factory.getbasetemp()
    blocked = Path(sys.pycache_prefix, *base.parts[1:])
    if blocked.is_dir():
        shutil.rmtree(blocked)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.touch()


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
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, whose sessions leave out the plugins no test is about too: pytester clears
    PYTEST_ADDOPTS, and hypothesis's and anyio's plugins then cost each process it started (each xdist
    worker too) a quarter of a second, about 0.5 s of CPU per session test."""
    monkeypatch.setenv("PYTEST_ADDOPTS", _UNTESTED_PLUGINS_OFF)
    return pytester


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


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``-n 3 --dist loadgroup`` (the README's test command) the tests that share a module-scoped
    fixture run on one worker: such a fixture runs a whole measured session, the bench or Chromium, and
    spread over the workers it ran once on each. Those groups are the longest units of work, so they
    come first, then the tests marked ``slow``: one handed out last kept its worker busy for tens of
    seconds after the others had done."""
    grouped = set()
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info and any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
            grouped.add(item.nodeid)
    # Stable: each part keeps its order.
    items.sort(key=lambda item: (item.nodeid not in grouped, item.get_closest_marker("slow") is None))
