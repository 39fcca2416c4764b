"""The energy session: one per pytest session (per xdist worker), kept on ``config.stash``.

It owns the meter (started before the first test when a collected test measures, so no test pays
for the idle window and the reference workload; a run that measures nothing imports no meter, reads
no git state unless it writes a JSON file, and pays next to nothing), turns
what the meter took into records, and at the end runs the stages in one direction: judge against
baselines, store (JSON, baselines, history), report, then the trackers' copies (MLflow, W&B, Prometheus),
whose failure is one line and never the exit status. Every stage after the JSON write is isolated, so
a broken report can never lose the records or turn CI red. Under xdist the workers' records come to
the controller through :mod:`pytest_energy.xdist`.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from . import xdist
from .context import VERDICT_KEYS, Block, Pending, TestContext, record_outcome
from .core import budget as budgets
from .core.config import Settings, hidden_secrets, is_database_url, path_setting, store_setting
from .core.facts import RecordFacts
from .core.record import Collection, Record, RunInfo, session_document
from .measure.carbon import resolve_carbon
from .measure.conditions import throttled_line
from .measure.top_tests import FORM as TOP_FORM
from .measure.top_tests import TopTests
from .measure.work import Work, torch_loaded

if TYPE_CHECKING:  # the meter, the sources and the fingerprint are imported by the first measurement
    from .measure.meter import Meter, Taken

NOTHING_MEASURED = "pytest-energy: no test measured energy (use the `energy` fixture)"
#: The idle window of a session whose only measurements are ``--energy-top``'s (listed, never judged)
#: where ``--energy-idle-seconds`` is not set: the listing's net figures need less than a verdict's.
LISTING_IDLE_SECONDS = 0.2
#: The exit status of a run whose tests passed and whose gate did not fail, but where an output it was
#: configured to write (the energy JSON, the report files) or a baseline update it was asked for could
#: not be written: EX_IOERR of sysexits.h, apart from pytest's own 0-5, so a job never turns green
#: without the artifact the next step needs. A run that fails anyway keeps its own status (1 for a
#: failed gate, as documented).
WRITE_FAILED = 74


def _one_line(error: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class EnergySession:
    """Measures, collects records, and runs the end-of-session stages."""

    def __init__(self, settings: Settings, rootpath: Path, *, worker: bool = False, workers: int = 1,
                 update_fingerprint: Callable[[dict[str, Any]], Any] = lambda fingerprint: None,
                 update_json: Callable[[dict[str, Any]], Any] = lambda document: None,
                 first_time: Callable[[str], bool] = lambda hint: True) -> None:
        """``update_fingerprint`` and ``update_json`` change those dicts in place: the plugin passes its
        hooks (:mod:`pytest_energy.hookspec`) in, so this module knows nothing of pytest; ``first_time``
        says whether a hint was never said in this project before (and remembers it: the plugin's
        keeps it in pytest's cache), so a hint is said once, not on every run. ``workers``: how many
        xdist workers the run has, where this session is one of them (their shared devices do not gate)."""
        self.settings = settings
        self.update_fingerprint = update_fingerprint
        self.update_json = update_json
        self.first_time = first_time
        self.rootpath = rootpath
        self.worker = worker
        self.workers = workers
        self.carbon = resolve_carbon(settings.country, settings.carbon_intensity, settings.pue)
        self.started = _now()
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)
        self.notes: list[str] = []
        self.fingerprint: dict[str, Any] = {}
        self.reference_joules: dict[str, float] = {}
        self.idle_watts: dict[str, float] = {}
        self.taken: list[Pending] = []
        self.collection = Collection()  # what the run collected: tells the baselines no test matched
        self.inbox = xdist.Inbox()  # controller: what the xdist workers sent
        self.outbox = xdist.Outbox()  # worker: what went to the controller
        self.output_lines: list[str] = []
        self.unwritten: list[str] = []  # outputs that could not be written: the run exits WRITE_FAILED
        self._failed_stages: set[str] = set()  # each stage's failure is said once
        self.judgement: Any = None
        self.report: Any = None
        self._meter: Meter | None = None
        self._idle_window: float | None = None  # seconds of the idle window taken (None: none yet)
        self._reference_taken = False
        self.top = TopTests(settings.top) if settings.values.get("top") else None  # --energy-top N

    def check_sets(self) -> None:
        """Refuse a baseline set that does not exist where the baselines folder holds others (a typo
        would read every test as new); see :func:`pytest_energy.store.baselines.check_sets`. An update run
        records the set; without a baselines folder this costs one ``stat`` and imports no store."""
        folder = path_setting(self.settings.baselines, self.rootpath)
        if folder is not None and folder.is_dir() and not self.settings.update_baselines:
            from .store.baselines import check_sets

            check_sets(self.settings, folder)

    # -- measuring ------------------------------------------------------------------------------
    @cached_property
    def _git(self) -> tuple[str | None, str | None]:
        """The commit and branch, read once when first needed (a run that measures nothing runs no git)."""
        from .measure.fingerprint import git_state

        return git_state(self.rootpath)

    @property
    def git_commit(self) -> str | None:
        return self._git[0]

    @property
    def git_branch(self) -> str | None:
        return self._git[1]

    def prepare(self, measuring: bool = True) -> None:
        """Start the meter before the first test, so no test's duration, timeout or JUnit time pays for
        it: where a collected test measures (``measuring``), with the idle window and the reference
        workload; else only what ``--energy-top``'s listing reads (:meth:`listing_meter`)."""
        _ = self._git  # read now: the tree as the tests found it
        try:
            if measuring:
                self.meter()
            else:
                self.listing_meter()
        except Exception as error:  # each measuring test meets the error itself, in its own call
            self.notes.append(f"the meter could not start before the tests ({_one_line(error)}); "
                              "each measuring test tries again")

    def meter(self) -> Meter:
        """The session's meter for measurements that are judged, started on first use: sources,
        calibration, the idle window (``--energy-idle-seconds``), the reference workload."""
        meter = self._opened_meter()
        if self._idle_window is None or self._idle_window < self.settings.idle_seconds:
            self._take_idle(meter, self.settings.idle_seconds)
        if not self._reference_taken:
            from .measure import reference

            self._reference_taken = True
            self.reference_joules = reference.measure(meter, self.settings.min_window)
        return meter

    def listing_meter(self) -> Meter:
        """The meter as ``--energy-top`` reads it: its records are listed, never judged, so no reference
        workload, and where no test measures and ``--energy-idle-seconds`` is not set an idle window of
        :data:`LISTING_IDLE_SECONDS` (for the listing's net figures)."""
        meter = self._opened_meter()
        if self._idle_window is None:
            default = self.settings.sources.get("idle_seconds", "default") == "default"
            self._take_idle(meter, min(self.settings.idle_seconds, LISTING_IDLE_SECONDS) if default
                            else self.settings.idle_seconds)
        return meter

    def _opened_meter(self) -> Meter:
        """The meter with its sources detected, started and calibrated, and the runner's fingerprint."""
        if self._meter is None:
            from .measure.fingerprint import fingerprint
            from .measure.meter import Meter
            from .measure.sources import cpu_tdp, detect

            found = detect(self.settings.devices, rapl_root=self.settings.powercap, cpu_tdp=cpu_tdp(self.settings))
            self.notes += found.notes
            own_gpus = self.settings.gpus_per_worker is not None  # the controller gave them out
            xdist.share(found.channels, self.workers, own_gpus)
            meter = Meter(found.channels)
            meter.start(None)
            self._take_notes(meter)
            self.fingerprint = fingerprint(found.channels)
            self.update_fingerprint(self.fingerprint)
            self._meter = meter
        return self._meter

    def _take_idle(self, meter: Meter, seconds: float) -> None:
        self.idle_watts = meter.measure_idle(seconds)
        self._idle_window = seconds
        self._take_notes(meter)

    def _take_notes(self, meter: Meter) -> None:
        """The meter's new lines (an idle window not measured, a cooldown target missed) as session notes."""
        self.notes += [note for note in meter.notes if note not in self.notes]

    def measure_call(
        self,
        context: TestContext,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        label: str,
        unit: str,
        iterations: int | None,
        rounds: int | None,
        min_window: float | None,
        warmup: int | None,
        fill_window: bool = False,
        count_flops: bool | None = None,
        facts: RecordFacts | None = None,
        gpus: Sequence[int] | None = None,
    ) -> Any:
        """Measure ``fn`` in rounds (:meth:`Meter.take_rounds`); with ``count_flops`` (None: the test's
        setting) its FLOPs are counted on the first warm-up call (:mod:`pytest_energy.measure.work`).
        ``facts``, the caller's, are built into the record; a call holding ``gpus`` is recorded on those
        GPUs alone (:meth:`Meter.held`)."""
        settings = context.settings
        meter = self.meter()
        warmup = settings.warmup if warmup is None else warmup
        work = Work.of_call(fn, args, kwargs)
        counting = (settings.count_flops if count_flops is None else count_flops) and torch_loaded()
        if counting and warmup == 0 and work.model is not None:  # a torch model's work goes uncounted: say so
            work.notes.append("FLOPs not counted: they are counted on the first warm-up call, and warm-up is 0")
        try:
            taken = meter.take_rounds(
                fn, args, kwargs,
                rounds=rounds or settings.rounds,
                min_window=min_window or settings.min_window,
                warmup=warmup,
                iterations=iterations,
                fill_window=fill_window,
                cooldown=settings.cooldown,
                first_call=work.count if counting and warmup > 0 else None,
            )
        except BaseException as error:  # a timeout or failure inside: record that it did not finish
            from .measure.meter import Taken

            self._keep(context, label, unit, "call", Taken([], []), stopped=_one_line(error), work=work, facts=facts,
                       gpus=gpus)
            raise
        finally:
            self._take_notes(meter)  # a cooldown that missed its target says so once
        self._keep(context, label, unit, "call", taken, work=work, facts=facts, gpus=gpus)
        return taken.result

    @contextmanager
    def measure_block(self, context: TestContext, block: Block, *, label: str, unit: str, rounds: int | None = None,
                      min_window: float | None = None, warmup: int | None = None,
                      work: Callable[[], Any] | None = None, marked: bool = False,
                      gpus: Sequence[int] | None = None) -> Iterator[None]:
        """Measure a block: one window, or rounds of the steps it marks (:class:`StepRounds`; ``marked``:
        the block opens and closes its rounds itself), on the ``gpus`` it holds where it says (as
        :meth:`measure_call`); the
        ``rounds``, ``min_window`` and ``warmup`` given override the test's settings. ``work``, one
        iteration's work, is called once before it, unmeasured, for its FLOPs where the test counts them
        (``count_flops``), and names the torch modules it runs; a block without it counts none."""
        from .measure.meter import END, START, StepRounds

        settings = context.settings
        meter = self.meter()
        counted = None
        if work is not None:
            counted = Work.of_call(work)
            if settings.count_flops and torch_loaded():
                counted.count(work)
            elif settings.count_flops:
                counted.notes.append("FLOPs not counted: torch was not imported when the block's work was given")
        cooled = meter.cool_down(settings.cooldown)
        self._take_notes(meter)
        start = meter.edge(START)
        marks = StepRounds(meter, start, planned=block.iterations, rounds=rounds or settings.rounds,
                           warmup=settings.warmup if warmup is None else warmup,
                           min_window=min_window or settings.min_window, marked=marked)
        block.on_step, block.on_rounds = marks.step, (marks.open_rounds, marks.close_rounds)
        try:
            yield
        finally:  # energy spent by a block that raised is still energy spent: keep its record
            end = meter.edge(END)
            block.on_step = block.on_rounds = None
            block.taken = self._keep(context, label, unit, "block", marks.taken(end, block.iterations, cooled),
                                     work=counted, facts=block.facts, gpus=gpus)

    def _keep(self, context: TestContext, label: str, unit: str, form: str, taken: Taken, stopped: str = "",
              work: Work | None = None, facts: RecordFacts | None = None, gpus: Sequence[int] | None = None) -> Pending:
        name = context.name_for(label)
        kept = Pending(lambda: self._build(context, name, label, unit, form, taken, stopped, work, facts, gpus))
        context.taken.append(kept)
        self.taken.append(kept)
        return kept

    def _build(self, context: TestContext, name: str, label: str, unit: str, form: str, taken: Taken,
               stopped: str, work: Work | None = None, facts: RecordFacts | None = None,
               gpus: Sequence[int] | None = None) -> Record:
        """The record of what the meter took, with the ``work`` it counted and the caller's ``facts`` (a
        case's: its model and proxies replace the counted work's), on the ``gpus`` it held (None: every
        device measured); ``stopped`` says why a measurement ended before its rounds did (it then has no
        round and no energy figure, but it is not lost)."""
        from .measure.meter import Measured

        meter = self._opened_meter()  # opened by the measurement; a listed one takes no reference
        measured = Measured([], []) if stopped else meter.account(taken, gpus)
        notes = [f"{c.device}: {c.note}" for c in measured.components if c.note]
        notes += taken.notes
        if measured.warmup is not None and not measured.warmup.valid:
            notes.append(f"the warm-up window ({taken.warmup_iterations} {unit}s) was invalid: the totals hold the "
                         "rounds only")
        if measured.drain is not None and not measured.drain.valid:
            notes.append(f"the drain window ({taken.drain_iterations} {unit}s) was invalid: the totals leave it out")
        if stopped:
            notes.append(f"the measurement did not finish ({stopped}): no energy figure")
        elif not any(r.valid for r in measured.rounds):
            notes.append("every window was invalid: no energy figure for this measurement, budgets not checked"
                         if measured.components else
                         "no device could be measured (see the session's notes): no energy figure, "
                         "budgets not checked")
        notes += self._other_processes(meter, gpus)
        counted = work.proxies(sum(taken.iterations) if form == "block" else None) if work is not None else {}
        model = work.model_facts() if work is not None else None
        if work is not None:
            notes += work.notes
        if facts is not None:
            counted, model = facts.proxies, facts.model or model
        record = Record.from_rounds(
            measured.rounds, measured.components,
            carbon=self.carbon,
            reference_joules=self.reference_joules,
            name=name,
            nodeid=context.nodeid,
            form="case" if facts is not None and facts.case is not None else form,
            warmup_iterations=taken.warmup_iterations,
            warmup_round=measured.warmup,
            drain_round=measured.drain,
            fingerprint=self.fingerprint,
            timestamp=_now(),
            git_commit=self.git_commit,
            label=label,
            unit=unit,
            timeline=measured.timeline,
            criteria={k: context.marker[k] for k in VERDICT_KEYS if k in context.marker},
            outcome=context.outcome,
            proxies=counted,
            model=model,
            case=facts.case if facts is not None else None,
            iterations_per_call=facts.iterations_per_call if facts is not None else 1,
            notes=notes,
        )
        return record

    def _other_processes(self, meter: Meter, gpus: Sequence[int] | None = None) -> list[str]:
        """NVML counts the whole device: say so when another process computes on a GPU measured (of the
        ``gpus`` held, where a measurement holds some)."""
        lines = []
        for channel in meter.held(gpus):
            others = getattr(channel, "other_processes", lambda: [])()
            if others:
                pids = ", ".join(str(p) for p in others[:5])
                lines.append(f"{channel.device}: other processes compute on this GPU (pid {pids}); "
                             "their energy is counted too")
        for line in lines:
            if line not in self.notes:
                self.notes.append(line)
        return lines

    @contextmanager
    def top_window(self, context: TestContext) -> Iterator[None]:
        """``--energy-top``: the test's call as one window of its own (:mod:`pytest_energy.measure.top_tests`). A
        meter that cannot start or read leaves the test unmeasured with a note, never changes it."""
        from .measure.meter import BOUNDARY, Taken

        assert self.top is not None
        try:
            meter = self.listing_meter()
            start = meter.edge(BOUNDARY)
        except Exception as error:
            line = f"--energy-top: a test could not be measured ({_one_line(error)})"
            if line not in self.notes:
                self.notes.append(line)
            yield
            return
        try:
            yield
        finally:
            end = meter.edge(BOUNDARY)
            taken = Taken([start, end], [1])
            self.top.add(lambda: self._build(context, context.nodeid, "", TOP_FORM, TOP_FORM, taken, ""),
                         taken.gross_joules)

    @contextmanager
    def measure_test(self, context: TestContext) -> Iterator[None]:
        """Measure a marked test that does not use the fixture: its whole call is one window."""
        with self.measure_block(context, Block(), label="", unit="test"):
            yield

    def after_call(self, context: TestContext) -> None:
        """After a test's call: check its budgets (raising in the call phase, so an over-budget test
        fails with the one message; on modelled energy only with ``--energy-gate-modelled``)."""
        if context.budgets and context.taken:
            budgets.check(context.budgets, context.records, context.nodeid,
                          gate_modelled=bool(context.settings.gate_modelled))

    def after_report(self, context: TestContext | None, when: str, outcome: str, xfail: bool) -> dict[str, Any]:
        """After each phase report of a test: note the test's outcome on its records; on an xdist
        worker, return what the teardown report carries to the controller (empty: nothing to send)."""
        self.note_outcome(context, when, outcome, xfail)
        return self.worker_payload() if self.worker and when == "teardown" else {}

    def note_outcome(self, context: TestContext | None, when: str, outcome: str, xfail: bool) -> None:
        """Note the test's outcome from one phase's report on the records of ``context``."""
        phase = record_outcome(when, outcome, xfail)
        if context is not None and phase:
            context.set_outcome(phase)

    def close(self) -> None:
        if self._meter is not None:
            self._meter.close()

    # -- the end of the session ------------------------------------------------------------------
    def records(self) -> list[Record]:
        """Every record of the session (and of its xdist workers), by name."""
        return sorted([t.record for t in self.taken] + self.inbox.records, key=lambda r: r.name)

    def run_info(self, exitstatus: int) -> RunInfo:
        return RunInfo(
            run_id=self.run_id,
            started=self.started,
            finished=_now(),
            fingerprint=self.fingerprint,
            git_commit=self.git_commit,
            branch=self.git_branch,
            settings=hidden_secrets(self.settings.values, drop=True),  # uploaded and imported: never a password
            carbon=self.carbon,
            idle_watts=self.idle_watts,
            reference_joules=self.reference_joules,
            notes=list(self.notes),
            exitstatus=int(exitstatus),
        )

    def worker_payload(self, final: bool = False) -> dict[str, Any]:
        """What this xdist worker has not sent the controller yet (see :class:`xdist.Outbox`); at
        the session's end (``final``) also its ``--energy-top`` records."""
        payload = self.outbox.payload(self.taken, self.notes, {"fingerprint": self.fingerprint,
                                                               "idle_watts": self.idle_watts,
                                                               "reference_joules": self.reference_joules},
                                      self.collection.to_dict())
        if final and self.top is not None:
            payload["top"] = self.top.payload()
        return payload

    def merge_worker(self, payload: dict[str, Any]) -> None:
        """Take one worker's records, notes and facts (controller side)."""
        facts = self.inbox.merge(payload, self.notes, have_facts=bool(self.fingerprint))
        self.collection.merge(payload.get("collection", {}))
        if facts is not None:
            self.fingerprint, self.idle_watts, self.reference_joules = (facts[k] for k in xdist.FACTS)
        if self.top is not None:
            self.top.merge(payload.get("top", []))

    def finish(self, exitstatus: int, tests_ran: bool = True) -> int:
        """Judge, store and report; return the session's exit status with the gate's decision in it
        (1 where the tests passed and the gate failed) and the outputs' (:data:`WRITE_FAILED` where
        they passed and an output could not be written), the one the JSON and history also hold.
        ``tests_ran``: false where no test ran (``--collect-only``, none selected)."""
        records = self.records()
        throttled = throttled_line({r.name: [c.conditions for c in r.components] for r in records})
        if throttled and throttled not in self.notes:  # in the terminal, not only in each record's JSON
            self.notes.append(throttled)
        lost = self.inbox.lost()
        if not records and not lost:
            if path_setting(self.settings.json, self.rootpath) is not None:  # its run info reads git
                self._stage("the energy JSON", lambda: self._write_json(
                    records, self.run_info(exitstatus), {"outcome": "nothing measured", "head": NOTHING_MEASURED}),
                    output=True)
            # A hint where tests ran and none could have measured, once per project: with --energy-top
            # every test measured (though none is judged).
            if tests_ran and self.top is None and self.first_time(NOTHING_MEASURED):
                self.output_lines.append(NOTHING_MEASURED)
            return self._closing(exitstatus)
        run_info = self.run_info(exitstatus)
        # First, so the records survive whatever a later stage meets; rewritten once judged.
        self._stage("the energy JSON", lambda: self._write_json(records, run_info, {
            "outcome": "pending", "head": "pytest-energy gate pending: the session ended before the gate judged"}, announce=False))
        from .judge import gate
        from . import report
        from .store.history import History

        try:
            self.judgement = gate.judge(records, self.settings, self.fingerprint, self.rootpath, self.collection)
        except Exception as error:  # never an empty judgement that reads as passed, nor stores in the cwd
            self.judgement = gate.unjudged(error, self.settings, self.rootpath)
        if lost:
            gate.fail_incomplete(self.judgement, lost)
        gate.account_for_exit(self.judgement, exitstatus, self.settings)
        # Before the exit status: an update run passes for the regressions whose baselines it rewrote.
        self._stage("the baselines", lambda: self._update_baselines(records, run_info), output=True)
        if self.judgement.gate_failed and exitstatus == 0:
            run_info.exitstatus = 1
        run_info.exitstatus = self._exit_status(run_info.exitstatus)
        gate_document = self.judgement.document({r.name: r.outcome or "no outcome" for r in records if not r.judgeable})
        # The run's headline, built once with the exit status the session returns: the JSON holds it and
        # every report shows it in the same words.
        headline = self._headline(records, run_info.exitstatus, len(lost))
        if headline is not None:
            gate_document["headline"] = headline.to_dict()
        self._stage("the energy JSON", lambda: self._write_json(records, run_info, gate_document), output=True)
        if self._exit_status(run_info.exitstatus) != run_info.exitstatus:  # the JSON itself failed
            headline = self._headline(records, self._exit_status(run_info.exitstatus), len(lost))
        run_info.exitstatus = self._exit_status(run_info.exitstatus)  # the history row holds it too
        self._stage("the history", lambda: self.output_lines.extend(
            gate.append_history(records, self.judgement, self.settings, run_info)))
        history_at = store_setting(self.settings.history, self.rootpath)
        history = History(history_at) if history_at and (is_database_url(history_at) or history_at.exists()) else None
        # A report that cannot be built leaves every report file configured unwritten.
        files = any(output.path(self.settings, self.rootpath) is not None for output in report.report_outputs())
        self._stage("the report", lambda: setattr(
            self, "report", report.build_report(records, self.judgement, run_info, history, headline=headline)),
            output=files)
        if self.report is not None:  # each file its own stage: one that cannot be written costs no other
            for output in report.report_outputs():
                what = output.what or f"the {output.setting or output.environ} output"
                self._stage(what, lambda output=output: self.output_lines.extend(
                    report.write_output(output, self.report, self.settings)), output=True)
                if what in self.unwritten:  # the files written after it head with the failure too
                    failed = self._headline(records, self._exit_status(run_info.exitstatus), len(lost))
                    self.report.headline = failed or self.report.headline
        final = self._exit_status(run_info.exitstatus)
        if final != run_info.exitstatus:  # a report file failed after the JSON was written: it says so too
            run_info.exitstatus = final
            headline = self._headline(records, final, len(lost))
            if headline is not None:  # the terminal summary, rendered after this, says it too
                gate_document["headline"] = headline.to_dict()
                if self.report is not None:
                    self.report.headline = headline
            if "the energy JSON" not in self.unwritten:
                self._stage("the energy JSON", lambda: self._write_json(records, run_info, gate_document,
                                                                        announce=False), output=True)
        if self.report is not None:  # last, attaching the files written above; never the exit status
            attached = report.attachments(self.settings, self.rootpath, self.unwritten)
            for output in report.tracker_outputs():
                self._stage(output.what, lambda output=output: self.output_lines.extend(
                    report.write_output(output, self.report, self.settings, attached=attached)))
        return self._closing(final)

    def _headline(self, records: list[Record], exitstatus: int, lost: int) -> Any:
        """The run's :class:`pytest_energy.report.model.Headline` for the exit status it returns (None
        where it cannot be built: a stage of the report, it must not cost the JSON)."""
        made: list[Any] = []

        def build() -> None:
            from .report.model import build_headline

            made.append(build_headline(records, self.judgement, exitstatus, lost=lost, unwritten=tuple(self.unwritten)))

        self._stage("the report", build)
        return made[0] if made else None

    def summary_lines(self) -> list[str]:
        """What the terminal summary says after its tables: the session's notes, then the lines of its
        end stages (files written, failures), each as one "pytest-energy:" line."""
        return [line if line.startswith("pytest-energy") else f"pytest-energy: {line}"
                for line in [*self.notes, *self.output_lines]]

    def _update_baselines(self, records: list[Record], run_info: RunInfo) -> None:
        from .judge import gate

        update = gate.update_baselines(records, self.judgement, self.settings, run_info)
        self.output_lines.extend(update.lines)
        if update.failed and "the baselines" not in self.unwritten:
            self.unwritten.append("the baselines")

    def _exit_status(self, status: int) -> int:
        """``status``, or :data:`WRITE_FAILED` where it is 0 and an output could not be written."""
        return WRITE_FAILED if status == 0 and self.unwritten else status

    def _closing(self, status: int) -> int:
        """The session's final exit status; where the outputs alone make it fail, the line saying so,
        after the lines of the stages."""
        final = self._exit_status(status)
        if final == WRITE_FAILED and self.unwritten:
            self.output_lines.append(f"pytest-energy: exit {WRITE_FAILED}: {' and '.join(self.unwritten)} could not "
                                     "be written (see above), so the run fails though its tests passed")
        return final

    def _stage(self, what: str, action: Callable[[], Any], *, output: bool = False) -> None:
        """Run one stage; an error is one line (once per stage) and the remaining stages still run.
        ``output``: the stage writes something the run was configured or asked to write, so its
        failure makes the run exit :data:`WRITE_FAILED`."""
        try:
            action()
        except Exception as error:
            if what not in self._failed_stages:
                self.output_lines.append(f"pytest-energy: could not write {what}: {type(error).__name__}: {error}")
                self._failed_stages.add(what)
            if output and what not in self.unwritten:
                self.unwritten.append(what)

    def _write_json(self, records: list[Record], run_info: RunInfo, gate: dict[str, Any], announce: bool = True) -> None:
        path = path_setting(self.settings.json, self.rootpath)
        if path is None:
            return
        from .store.locking import atomic_write_text

        document = session_document(records, run_info.to_dict(), gate)
        if self.top is not None:  # apart from "records": what the gate, baselines and history read
            document["top"] = [record.to_dict() for record in self.top.records()]
        self.update_json(document)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(document, indent=1, allow_nan=False) + os.linesep)
        if announce:
            listed = f" and {len(document['top'])} --energy-top tests" if "top" in document else ""
            self.output_lines.append(f"pytest-energy: {len(records)} records{listed} written to {path}")

