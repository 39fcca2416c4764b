"""pytest hooks, wired to the energy session. No logic lives here: each hook delegates in a few lines.

Loading this module imports only the light settings module; the session, the meter and every heavy
library are imported when ``--energy`` is on (or when a case object is collected).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Generator

import pytest

from .core import config as settings_module

if TYPE_CHECKING:
    from .fixture import EnergyFixture
    from .context import TestContext
    from .session import EnergySession

SESSION_KEY = pytest.StashKey["EnergySession"]()
CONTEXT_KEY = pytest.StashKey["TestContext"]()
LEFT_ALONE_KEY = pytest.StashKey[bool]()  # the test's `energy` marker or fixture is the project's own
TOP_KEY = pytest.StashKey["TestContext"]()  # the test's --energy-top window
GPU_BLOCKS_KEY = pytest.StashKey[list[str]]()  # the xdist workers' CUDA_VISIBLE_DEVICES, listed once
SAID_KEY = "pytest-energy/said"  # pytest's cache: the hints already said in this project
MARKER_HELP = (
    "energy(budget=None, per='iteration', basis='gross', rounds=None, min_window=None, warmup=None, "
    "cooldown=None, count_flops=None, threshold=None, thresholds=None, gate=None): an energy budget ('10 J', "
    "'0.2 Wh'; per 'iteration', '1000' or 'test'), measurement settings and verdict thresholds for this test "
    "(pytest-energy). "
    "A marked test that does not use the `energy` fixture is measured as a whole."
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("energy", "energy and CO2 measurement (pytest-energy)")
    group.addoption("--energy", action="store_true", default=False,
                    help="measure energy (ini energy = true, env PYTEST_ENERGY=1)")
    parser.addini("energy", "measure energy (as --energy)", type="bool", default=False)
    for option in settings_module.OPTIONS:
        described = f"{option.help} (ini {option.ini}, env {option.env}; default {option.default})"
        if option.flag:
            group.addoption(option.cli, action="store_true", default=False, dest=option.dest, help=described)
        elif option.switch:
            group.addoption(option.cli, dest=option.dest, default=None, action="store_const", const="true",
                            help=described)
            group.addoption(option.negative_cli, dest=option.dest, action="store_const", const="false",
                            help=f"the opposite of {option.cli}")
        else:
            group.addoption(option.cli, dest=option.dest, default=None, metavar="VALUE", help=described)
        parser.addini(option.ini, option.help, default=settings_module.INI_UNSET)


def _settings(config: pytest.Config) -> settings_module.Settings:
    return settings_module.resolve(settings_module.enabled(config.option.energy, config.getini("energy")),
                                   vars(config.option), config.getini)


def _gpu_blocks(config: pytest.Config, settings: settings_module.Settings) -> list[str]:
    """The xdist workers' GPU blocks (--energy-gpus-per-worker), listed once per run."""
    if GPU_BLOCKS_KEY not in config.stash:
        from .xdist import worker_blocks

        config.stash[GPU_BLOCKS_KEY] = worker_blocks(settings)
    return config.stash[GPU_BLOCKS_KEY]


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # pytest-xdist's, for -n auto (before pytest_configure)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    try:
        settings = _settings(config)
        return len(_gpu_blocks(config, settings)) if settings.gpus_per_worker is not None else None
    except settings_module.SettingError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    try:
        settings = _settings(config)
        if settings.enabled:
            from .measure.sources import check_devices

            check_devices(settings)
        settings_module.check(settings, config.rootpath)
        if settings.gpus_per_worker is not None and _distributing(config):  # each worker's GPUs, before it starts
            from .xdist import with_gpus

            config.option.tx = with_gpus(config.option.tx, _gpu_blocks(config, settings), settings)
    except settings_module.SettingError as error:
        raise pytest.UsageError(str(error)) from None
    if not settings.enabled:
        return
    from .measure.carbon import CarbonError
    from .session import EnergySession
    from .xdist import unused_gpus_option

    try:
        session = EnergySession(
            settings, config.rootpath, worker=hasattr(config, "workerinput"),
            workers=int(getattr(config, "workerinput", {}).get("workercount", 1)),
            update_fingerprint=lambda fingerprint: config.hook.pytest_energy_update_fingerprint(
                config=config, fingerprint=fingerprint),
            update_json=lambda document: config.hook.pytest_energy_update_json(config=config, document=document),
            first_time=lambda hint: _first_time(config, hint),
        )
        session.check_sets()
        session.notes += unused_gpus_option(settings, distributing=_distributing(config), worker=session.worker)
    except (CarbonError, settings_module.SettingError) as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[SESSION_KEY] = session
    if config.pluginmanager.hasplugin("xdist") and not session.worker:
        from .xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(session), "energy-xdist")
    if config.pluginmanager.hasplugin("html") and getattr(config.option, "htmlpath", None):  # writing a page
        from .report.pytest_html import PytestHtmlHooks

        config.pluginmanager.register(PytestHtmlHooks(), "energy-html")


def _distributing(config: pytest.Config) -> bool:
    """This is an xdist controller that will start workers."""
    return (not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist")
            and config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None)))


def _first_time(config: pytest.Config, hint: str) -> bool:
    """Whether ``hint`` was never said in this project, remembered in pytest's cache (without the
    cache, every run is the first)."""
    cache = getattr(config, "cache", None)
    said = cache.get(SAID_KEY, []) if cache is not None else []
    if cache is not None and hint not in said:
        cache.set(SAID_KEY, [*said, hint])
    return hint not in said


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def _context(item: pytest.Item) -> TestContext:
    """The test's measurement context, made once from its `energy` markers (closest wins)."""
    context = item.stash.get(CONTEXT_KEY, None)
    if context is None:
        from .context import TestContext

        session = item.config.stash.get(SESSION_KEY, None)
        context = TestContext.for_test(item.nodeid, session.settings if session else None,
                                       [] if item.stash.get(LEFT_ALONE_KEY, False) else
                                       [(m.args, m.kwargs) for m in item.iter_markers("energy")])
        item.stash[CONTEXT_KEY] = context
    return context


@pytest.fixture
def energy(request: pytest.FixtureRequest) -> EnergyFixture:
    """Measure energy: ``energy(fn, *args)``, ``energy.run(fn, ...)`` or ``with energy.measure():``."""
    from .fixture import EnergyFixture

    session = None if request.node.stash.get(LEFT_ALONE_KEY, False) else request.config.stash.get(SESSION_KEY, None)
    return EnergyFixture(session, _context(request.node))


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> list[pytest.Item] | None:
    # A module that declares cases has imported pytest_energy.cases; without it nothing can be a case.
    cases = sys.modules.get("pytest_energy.cases")
    if cases is None or not isinstance(obj, cases.Case):
        return None
    line = cases.base.declaration_line(collector.path, name)
    items = []
    for test_name, test in obj.tests(name):
        item = CaseFunction.from_parent(collector, name=test_name, callobj=_reporting_skips_here(test))
        item.declared_at = line
        items.append(item)
    return items


class CaseFunction(pytest.Function):
    """A case's test: located where its module declares the case, not where its runner lives."""

    declared_at = 0

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.declared_at, self.name


def _reporting_skips_here(test: Any) -> Any:
    """A case says "skip" with unittest.SkipTest (it imports no pytest); report it at the test."""
    import unittest

    def run(energy: EnergyFixture) -> None:
        __tracebackhide__ = True
        try:
            test(energy)
        except unittest.SkipTest as skip:
            raise pytest.skip.Exception(str(skip), _use_item_location=True) from None

    return run


@pytest.hookimpl(trylast=True)  # after deselection: the tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        from .clashes import survey

        session.notes += survey(items, config.getini("markers"), MARKER_HELP, config.rootpath, LEFT_ALONE_KEY)
        session.collection.scope(config.args, config.invocation_params.dir, config.rootpath)
        session.collection.tests.update(item.nodeid for item in items)


def pytest_deselected(items: list[pytest.Item]) -> None:
    session = items[0].config.stash.get(SESSION_KEY, None) if items else None
    if session is not None:  # deselected tests were collected: their baselines are not orphaned
        session.collection.tests.update(item.nodeid for item in items)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    session = collector.config.stash.get(SESSION_KEY, None)
    if session is not None and not report.passed:  # skipped or broken: its tests' baselines are not orphaned
        session.collection.left_out.add(report.nodeid)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_ignore_collect(collection_path: Any, config: pytest.Config) -> Generator[None, Any, Any]:
    ignored = yield
    session = config.stash.get(SESSION_KEY, None)
    if ignored and session is not None:
        found = session.collection.nodeid(collection_path, config.rootpath)
        if found is not None:
            session.collection.left_out.add(found)
    return ignored


def _measures(item: pytest.Item) -> bool:
    """The test will measure energy: it uses our `energy` fixture or carries our `energy` marker."""
    if item.stash.get(LEFT_ALONE_KEY, False):  # a project's own `energy` fixture or marker
        return False
    return "energy" in getattr(item, "fixturenames", ()) or item.get_closest_marker("energy") is not None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    energy = session.config.stash.get(SESSION_KEY, None)
    if energy is None or session.config.option.collectonly or not session.items:  # (an xdist controller runs none)
        return
    measuring = any(map(_measures, session.items))
    if measuring or energy.top is not None:
        energy.prepare(measuring)  # the meter's start-up, before the first test rather than inside it


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    session = item.config.stash.get(SESSION_KEY, None)
    if session is not None and session.top is not None:  # --energy-top: every test, around all else
        from .context import TestContext

        item.stash[TOP_KEY] = TestContext(item.nodeid, session.settings)
        with session.top_window(item.stash[TOP_KEY]):
            return (yield from _call(item, session))
    return (yield from _call(item, session))


def _call(item: pytest.Item, session: EnergySession | None) -> Generator[None, Any, Any]:
    if session is None or item.stash.get(LEFT_ALONE_KEY, False):
        return (yield)
    context = item.stash.get(CONTEXT_KEY, None)
    if context is None and item.get_closest_marker("energy") is not None:
        context = _context(item)
    if context is not None and context.error:  # a bad marker fails its own test, in one line
        pytest.fail(context.error, pytrace=False)
    if context is not None and "energy" not in getattr(item, "fixturenames", ()):
        with session.measure_test(context):
            result = yield
    else:
        result = yield
    if context is not None:
        from .core.budget import EnergyBudgetExceeded
        from .integrations import to_benchmark

        to_benchmark(getattr(item, "funcargs", {}).get("benchmark"), context.taken)
        message = ""
        try:
            session.after_call(context)
        except EnergyBudgetExceeded as exceeded:
            message = str(exceeded)
        if message:  # failed outside the except block, so no exception chain is printed
            pytest.fail(message, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    context = item.stash.get(CONTEXT_KEY, None)
    session = item.config.stash.get(SESSION_KEY, None)
    if session is None or (context is None and not session.worker and TOP_KEY not in item.stash):
        return (yield)  # nothing measured here: no outcome to note, nothing to send
    if context is not None and call.when == "call":
        from . import integrations

        if integrations.wants_properties(item.config):
            item.user_properties.extend(integrations.properties(context.records))
    report = yield
    payload = session.after_report(context, report.when, report.outcome, hasattr(report, "wasxfail"))
    if TOP_KEY in item.stash:
        session.note_outcome(item.stash[TOP_KEY], report.when, report.outcome, hasattr(report, "wasxfail"))
    if payload:  # an xdist worker's new records travel with the teardown report (see xdist.py)
        report.energy_payload = payload
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    energy = session.config.stash.get(SESSION_KEY, None)
    if energy is None:
        return
    if energy.worker:
        session.config.workeroutput["energy"] = energy.worker_payload(final=True)  # type: ignore[attr-defined]
        return
    ran = bool(session.testscollected) and not session.config.option.collectonly
    final = energy.finish(session.exitstatus, tests_ran=ran)  # the gate's failure included, as the JSON says
    if final != session.exitstatus:
        # An int: pytest returns a status that is none of its own codes (session.WRITE_FAILED) as it is.
        session.exitstatus = final


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    energy = config.stash.get(SESSION_KEY, None)
    if energy is None or energy.worker:
        return
    if energy.report is not None:  # rich and the report model only where a record was judged
        from .report import terminal

        terminal.render(energy.report, terminalreporter, config.get_verbosity())
    if energy.top is not None:
        from .report import top_tests as top

        top.render(energy.top.records(), energy.top.count, terminalreporter)
    for line in energy.summary_lines():
        terminalreporter.write_line(line)

