"""The session's end-of-session stages, in process (no pytester): judge, fail_incomplete,
update_baselines, the JSON written first and rewritten once judged, history, report; each stage
isolated. The xdist hand-over's bookkeeping, and the record's one constructor, as units.

The plugin-level behaviour of the same stages (serially and under ``-n 2``) is in test_plugin.py and
test_faults_session.py; these run in a second and say which stage broke.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pytest_energy.testing.records import CARBON, FINGERPRINT, make_record

from pytest_energy.store import baselines as store
from pytest_energy.judge import gate
from pytest_energy import report
from pytest_energy.core import config
from pytest_energy.core.config import resolve
from pytest_energy.context import Pending
from pytest_energy.xdist import Inbox, Outbox
from pytest_energy.store.history import History
from pytest_energy.core.record import Component, Record, Round
from pytest_energy.session import NOTHING_MEASURED, WRITE_FAILED, EnergySession

NAME = "t.py::test_a"
FACTS = {"fingerprint": FINGERPRINT, "idle_watts": {"gpu:0": 77.0}, "reference_joules": {"gpu:0": 350.0}}


def _session(tmp_path: Path, **values: Any) -> EnergySession:
    """A controller session writing every output under ``tmp_path``."""
    settings = resolve(True, {}, lambda name: None, environ={})
    settings.values.update({"json": "out.json", "history": "history.sqlite", "report": "report.html",
                            "baselines": "baselines", **values})
    return EnergySession(settings, tmp_path)


def _with(session: EnergySession, *records: Record) -> EnergySession:
    """The session holding ``records`` as an xdist worker would send them."""
    session.merge_worker({"records": [r.to_dict() for r in records], **FACTS})
    return session


def _document(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "out.json").read_text())


def _baseline(tmp_path: Path, joules: float) -> None:
    store.update(store.set_folder(tmp_path / "baselines", "default"), [store.from_record(make_record(NAME, joules))])


# -- finish: the stages in order -------------------------------------------------------------------
def test_nothing_measured_writes_the_json_and_says_so(tmp_path: Path) -> None:
    session = _session(tmp_path)
    assert session.finish(0) == 0
    document = _document(tmp_path)
    assert document["gate"] == {"outcome": "nothing measured", "head": NOTHING_MEASURED}
    assert document["records"] == [] and session.output_lines == [
        f"pytest-energy: 0 records written to {tmp_path / 'out.json'}", NOTHING_MEASURED]
    assert session.judgement is None and not (tmp_path / "history.sqlite").exists()


def test_a_new_record_is_judged_stored_and_reported(tmp_path: Path) -> None:
    session = _with(_session(tmp_path), make_record(NAME))
    assert session.finish(0) == 0
    document = _document(tmp_path)
    assert document["gate"]["outcome"] == "passed" and document["gate"]["new"] == [NAME]
    assert [r["name"] for r in document["records"]] == [NAME]
    assert document["session"]["fingerprint"] == FINGERPRINT and document["session"]["exitstatus"] == 0
    [run] = History(tmp_path / "history.sqlite").runs()
    assert run.run_id == session.run_id and not run.gate_failed
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert session.output_lines == [
        f"pytest-energy: 1 records written to {tmp_path / 'out.json'}",
        f"pytest-energy: run {session.run_id} appended to history {tmp_path / 'history.sqlite'}",
        f"HTML report: {tmp_path / 'report.html'}"]


def test_a_regression_fails_the_session_and_the_json_and_history_say_so(tmp_path: Path) -> None:
    _baseline(tmp_path, 10.0)
    session = _with(_session(tmp_path), make_record(NAME, 12.0))
    assert session.finish(0) == 1
    document = _document(tmp_path)
    assert document["gate"]["outcome"] == "failed" and document["session"]["exitstatus"] == 1
    [verdict] = [v for v in document["gate"]["verdicts"] if v["metric"] == "energy"]
    assert verdict["status"] == "regression" and verdict["ratio"] == pytest.approx(1.2, rel=0.01)
    assert History(tmp_path / "history.sqlite").runs()[0].gate_failed
    # Failed tests keep their own exit status: the gate only ever turns a pass into a failure.
    assert _with(_session(tmp_path), make_record(NAME, 12.0)).finish(2) == 2


def test_updating_the_baselines_passes_the_regressions_it_rewrote(tmp_path: Path) -> None:
    _baseline(tmp_path, 10.0)
    session = _with(_session(tmp_path, update_baselines=True), make_record(NAME, 12.0))
    assert session.finish(0) == 0
    assert _document(tmp_path)["session"]["exitstatus"] == 0
    assert session.output_lines[:3] == [
        f"pytest-energy: baselines {tmp_path / 'baselines' / 'default'}: 1 written, 0 unchanged kept",
        f"  refreshed {NAME}",
        f"pytest-energy: 1 regression refreshed by this update no longer fails the gate: {NAME}"]
    again = _with(_session(tmp_path), make_record(NAME, 12.0))  # the 12 J run is the baseline now
    assert again.finish(0) == 0
    [verdict] = [v for v in _document(tmp_path)["gate"]["verdicts"] if v["metric"] == "energy"]
    assert verdict["status"] == "unchanged"


def test_a_crashed_worker_fails_closed_as_incomplete(tmp_path: Path) -> None:
    session = _with(_session(tmp_path), make_record(NAME))
    session.inbox.down("gw1", "worker 'gw1' crashed while running 't.py::test_b'")
    session.inbox.crashed_in("gw1", "t.py::test_b")
    assert session.finish(0) == 1
    gate_section = _document(tmp_path)["gate"]
    assert gate_section["outcome"] == "incomplete"
    assert gate_section["incomplete"] == [
        "pytest-energy: xdist worker gw1 crashed (worker 'gw1' crashed while running 't.py::test_b') while "
        "running t.py::test_b: the records that test took are lost and the gate cannot judge it (the "
        "worker's finished tests had sent theirs)"]


def test_a_gate_that_raises_is_one_failing_line_never_a_pass(tmp_path: Path, monkeypatch) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("the baselines folder vanished")

    monkeypatch.setattr(gate, "judge", broken)
    session = _with(_session(tmp_path), make_record(NAME))
    assert session.finish(0) == 1
    gate_section = _document(tmp_path)["gate"]
    assert gate_section["outcome"] == "failed"
    assert gate_section["head"] == ("pytest-energy gate FAILED: the records could not be judged "
                                    "(RuntimeError: the baselines folder vanished)")


def test_the_json_is_written_before_the_gate_judges(tmp_path: Path, monkeypatch) -> None:
    seen: list[dict[str, Any]] = []
    judge = gate.judge

    def reading(*args: Any) -> gate.Judgement:
        seen.append(_document(tmp_path))
        return judge(*args)

    monkeypatch.setattr(gate, "judge", reading)
    _with(_session(tmp_path), make_record(NAME)).finish(0)
    [pending] = seen
    assert pending["gate"]["outcome"] == "pending" and [r["name"] for r in pending["records"]] == [NAME]
    assert _document(tmp_path)["gate"]["outcome"] == "passed"  # rewritten once judged


def test_a_broken_stage_is_one_line_and_the_later_stages_still_run(tmp_path: Path, monkeypatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report, "build_report", broken)
    session = _with(_session(tmp_path), make_record(NAME))
    # The HTML report it was configured to write is not written: the run fails with WRITE_FAILED.
    assert session.finish(0) == WRITE_FAILED == 74
    assert session.output_lines[-2:] == [
        "pytest-energy: could not write the report: OSError: disk full",
        "pytest-energy: exit 74: the report could not be written (see above), so the run fails though its tests "
        "passed"]
    assert session.report is None and not (tmp_path / "report.html").exists()
    assert _document(tmp_path)["gate"]["outcome"] == "passed" and History(tmp_path / "history.sqlite").runs()
    assert _document(tmp_path)["session"]["exitstatus"] == 74  # rewritten with the status the process returns
    # The JSON stage failing keeps the gate's decision (exit 1, as documented) and the history row.
    (tmp_path / "out.json").unlink()
    (tmp_path / "out.json").mkdir()
    _baseline(tmp_path, 10.0)
    failing = _with(_session(tmp_path), make_record(NAME, 12.0))
    assert failing.finish(0) == 1
    assert [line for line in failing.output_lines if line.startswith("pytest-energy: could not write the energy JSON")]
    assert len(History(tmp_path / "history.sqlite").runs()) == 2


# -- the xdist hand-over -------------------------------------------------------------------------
class _Taken(Pending):
    def __init__(self, record: Record) -> None:
        super().__init__(lambda: record)


def test_a_worker_sends_each_record_once_with_its_facts() -> None:
    outbox, notes = Outbox(), ["rapl: not readable"]
    taken = [_Taken(make_record("t.py::a"))]
    first = outbox.payload(taken, notes, FACTS)
    assert [r["name"] for r in first["records"]] == ["t.py::a"] and first["notes"] == notes
    assert first["fingerprint"] == FINGERPRINT and first["reference_joules"] == {"gpu:0": 350.0}
    assert outbox.payload(taken, notes, FACTS) == {}  # nothing new: nothing sent
    taken.append(_Taken(make_record("t.py::b")))
    second = outbox.payload(taken, notes, FACTS)
    assert [r["name"] for r in second["records"]] == ["t.py::b"] and "notes" not in second
    assert second["fingerprint"] == FINGERPRINT  # records travel with the facts they were measured with
    # A worker whose meter has not started sends nothing until it has facts.
    assert Outbox().payload([], [], dict(FACTS, fingerprint={})) == {}


def test_the_controller_takes_its_facts_from_a_worker_that_measured() -> None:
    inbox, notes = Inbox(), []
    idle = dict(FACTS, fingerprint={"id": "idle-worker"}, reference_joules={"gpu:0": 1.0})
    assert inbox.merge(idle, notes, have_facts=False) == idle  # the first facts, from a worker with no test
    measured = {"records": [make_record("t.py::a").to_dict()], "notes": ["gpu:0: throttled"], **FACTS}
    assert inbox.merge(measured, notes, have_facts=True) == FACTS  # its records were judged with these
    later = {"records": [make_record("t.py::b").to_dict()], "notes": ["gpu:0: throttled"], **idle}
    assert inbox.merge(later, notes, have_facts=True) is None
    assert [r.name for r in inbox.records] == ["t.py::a", "t.py::b"] and notes == ["gpu:0: throttled"]
    assert inbox.records[0] == make_record("t.py::a")


def test_a_worker_that_crashed_outside_a_test_is_named() -> None:
    inbox = Inbox()
    inbox.down("gw0", None)  # a worker that ended normally
    inbox.down("gw1", "  ")
    assert inbox.lost() == [
        "pytest-energy: xdist worker gw1 crashed (no reason given) outside a test: what it measured after its "
        "last test is lost and the gate cannot judge it (the worker's finished tests had sent theirs)"]


# -- Record.from_rounds: a record's derived numbers --------------------------------------------------
def _rounds() -> tuple[list[Round], list[Component]]:
    rounds = [Round(10, 1.0, 150.0, 100.0, True, {"gpu:0": 80.0, "cpu": 20.0}),
              Round(10, 1.0, 170.0, 120.0, True, {"gpu:0": 96.0, "cpu": 24.0}),
              Round(10, 1.0, 0.0, 0.0, False)]
    components = [Component("gpu:0", "gpu", "counter", 280.0, 176.0, 50.0, 3.0, 30, 0.3),
                  Component("cpu", "cpu", "modelled", 40.0, 44.0, 0.0, 3.0, 0, 0.4)]
    return rounds, components


def test_from_rounds_derives_every_number_from_the_valid_rounds() -> None:
    rounds, components = _rounds()
    record = Record.from_rounds(rounds, components, carbon=CARBON, reference_joules={"gpu:0": 4.0, "cpu": 2.0, "x": 1.0},
                                name="t.py::a", nodeid="t.py::a", form="call", warmup_iterations=2,
                                fingerprint=FINGERPRINT, timestamp="2026-11-23T12:00:00+00:00")
    assert record.per_iteration_gross_joules == 16.0 and record.per_iteration_net_joules == 11.0
    # The standard error over the two valid rounds (10 and 12 J) with the components' systematic 0.5 J.
    assert record.per_iteration_uncertainty_joules == pytest.approx(math.sqrt(1.0**2 + (0.5 / 20) ** 2))
    assert (record.total_gross_joules, record.total_net_joules) == (320.0, 220.0)
    assert record.duration_seconds == 3.0  # every window's wall time, the invalid one's too
    assert record.co2_grams == pytest.approx(320.0 / 3.6e6 * 1.2 * 56.0)
    assert record.reference_joules == {"gpu:0": 4.0, "cpu": 2.0}  # its own devices' only
    # Normalised by the judged devices' own reference: the GPU's, not the modelled CPU's.
    assert record.normalised == {"per_iteration_gross": 280.0 / 20 / 4.0, "per_iteration_net": 176.0 / 20 / 4.0}
    assert Record.from_rounds(rounds, components, carbon=CARBON, name="t.py::a", nodeid="t.py::a", form="call",
                              warmup_iterations=2, fingerprint=FINGERPRINT, timestamp="").normalised == {}


def test_a_call_counted_as_a_batch_divides_every_per_iteration_number() -> None:
    rounds, components = _rounds()
    facts = dict(carbon=CARBON, reference_joules={"gpu:0": 4.0}, name="t.py::a", nodeid="t.py::a", form="call",
                 warmup_iterations=2, fingerprint=FINGERPRINT, timestamp="")
    before = Record.from_rounds(rounds, components, **facts)
    record = Record.from_rounds(rounds, components, iterations_per_call=8, **facts)
    assert [r.iterations for r in record.rounds] == [80, 80, 80] and record.warmup_iterations == 16
    assert [r.iterations for r in rounds] == [10, 10, 10]  # the meter's rounds, counted in calls, are left as they are
    assert record.iterations_per_call == 8
    for name in ("per_iteration_gross_joules", "per_iteration_net_joules", "per_iteration_uncertainty_joules"):
        assert getattr(record, name) == pytest.approx(getattr(before, name) / 8)
    assert record.normalised["per_iteration_net"] == pytest.approx(before.normalised["per_iteration_net"] / 8)
    assert (record.total_gross_joules, record.co2_grams) == (before.total_gross_joules, before.co2_grams)


def test_a_schema_2_record_reads_its_budget_as_criteria() -> None:
    record = make_record(NAME, criteria={"threshold": 0.1, "gate": False})
    data = record.to_dict()
    assert data["criteria"] == {"threshold": 0.1, "gate": False} and "budget" not in data
    data["budget"] = data.pop("criteria")
    assert Record.from_dict(data) == record


# -- the report files: one table of outputs --------------------------------------------------------
WRITTEN: list[tuple[str, Path]] = []


def _text_summary(report_: report.Report, path: Path) -> str:
    """A writer a new output row names by module and function."""
    WRITTEN.append((report_.rows[0].name, path))
    return f"text summary: {path}"


def test_the_table_of_outputs_is_the_one_list_of_output_settings() -> None:
    """Config's overlap checks and the report's writers read one table: every output setting has its row."""
    assert {option.name for option in config.OPTIONS if option.output} == {
        output.setting for output in config.OUTPUTS if output.setting}
    assert [o.setting or o.environ for o in report.report_outputs()] == ["report", "csv", "model_card", "markdown",
                                                                         "GITHUB_STEP_SUMMARY"]


def test_each_output_in_the_table_is_written_where_its_setting_or_variable_points(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    session = _with(_session(tmp_path, csv="emissions.csv", report=""), make_record(NAME))
    session.finish(0)
    WRITTEN.clear()
    # A new format is one row: its writer and the setting (or environment variable) naming its path.
    writer = f"{__name__}:_text_summary"
    monkeypatch.setattr(config, "OUTPUTS", (*config.OUTPUTS, config.Output("json", writer=writer),
                                            config.Output(environ="ENERGY_TEXT", writer=writer)))
    monkeypatch.setenv("ENERGY_TEXT", str(tmp_path / "elsewhere.txt"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    lines = report.write_outputs(session.report, session.settings, root=tmp_path)
    assert lines == [f"emissions CSV (CodeCarbon columns): 1 rows added to {tmp_path / 'emissions.csv'}",
                     f"text summary: {tmp_path / 'out.json'}", f"text summary: {tmp_path / 'elsewhere.txt'}"]
    assert (tmp_path / "emissions.csv").exists() and not (tmp_path / "report.html").exists()
    assert WRITTEN == [(NAME, tmp_path / "out.json"), (NAME, tmp_path / "elsewhere.txt")]


# -- the trackers: last, with the files written, never the exit status --------------------------------
SENT: list[tuple[int, str, list[Path]]] = []
#: What a failing tracker's line adds (every tracker module has one per writer).
HINTS = {"_tracker": "check {source}"}


def _tracker(report_: report.Report, target: str, attached: list[Path]) -> str:
    """A tracker a new output row names: remembers what it was sent; "down" does not answer."""
    SENT.append((report_.headline.exit_status, target, attached))
    if target == "down":
        raise ConnectionError("refused\nsecond line")
    return f"sent to {target}"


def _with_tracker(monkeypatch) -> None:
    tracker = config.Output("compare", "service", writer=f"{__name__}:_tracker", what="the test tracker", tracker=True)
    monkeypatch.setattr(config, "OUTPUTS", (*config.OUTPUTS, tracker))
    SENT.clear()


def test_the_trackers_come_last_with_the_files_this_run_wrote(tmp_path: Path, monkeypatch) -> None:
    """After a report file failed (exit 74): the tracker sees the final headline and attaches the JSON
    (rewritten with 74), not the HTML report that could not be written."""
    _with_tracker(monkeypatch)
    (tmp_path / "blocker").write_text("a file, not a folder")
    session = _with(_session(tmp_path, report="blocker/report.html", compare="up"), make_record(NAME))
    assert session.finish(0) == WRITE_FAILED
    assert SENT == [(WRITE_FAILED, "up", [tmp_path / "out.json"])]
    assert _document(tmp_path)["session"]["exitstatus"] == WRITE_FAILED
    failed = next(i for i, line in enumerate(session.output_lines) if "could not write the HTML report" in line)
    assert session.output_lines.index("sent to up") > failed


def test_a_tracker_that_fails_is_one_line_and_keeps_the_exit_status(tmp_path: Path, monkeypatch) -> None:
    _with_tracker(monkeypatch)
    session = _with(_session(tmp_path, compare="down"), make_record(NAME))
    assert session.finish(0) == 0 and session.unwritten == []
    assert SENT == [(0, "down", [tmp_path / "out.json", tmp_path / "report.html"])]
    assert session.output_lines[-1] == (
        "pytest-energy: could not send the test tracker (--energy-compare (default)): ConnectionError: refused; "
        "check --energy-compare (default); the run's other outputs and exit status are unaffected")
    assert _document(tmp_path)["gate"]["headline"]["outcome"] == "passed"
