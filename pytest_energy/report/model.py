"""The report object: everything the terminal, HTML and export renderers show, computed once.

As syrupy builds its report once and lets every renderer read it, :func:`build_report` turns the
records, the gate's judgement, the run facts and the history into plain rows, totals, chart data and
trend series with their step changes. Renderers only format; they never recompute a number.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import groupby
from typing import Any

from ..core.budget import SHARED_OVER, failed_budgets, missed_lines, missed_quality
from ..core.facts import Pruned
from ..core.figures import devices_net_per_iteration, fine_tune_energy, query_split, serving_figures, wh_per_1000
from ..core.record import Carbon, Record, RunInfo
from ..core.units import JOULES_PER_WH, finite_number, fmt, percent_change
from ..judge.gate import FAILED_OUTCOMES
from ..judge.verdict import Judgement, Status, Verdict, fails_gate, most_urgent
from ..measure.conditions import describe as describe_conditions
from ..measure.fingerprint import DEFAULT_KIND_FIELDS
from ..store.baselines import record_kinds
from .ratings import carbon_efficiency_class, is_fine_tune, rating
from .trends import Trend, session_trends


@dataclass
class Change:
    """This run against the baseline: the ratio current / baseline and its confidence interval."""

    ratio: float
    low: float | None
    high: float | None

    @property
    def interval(self) -> str:
        if self.low is None or self.high is None:
            return ""
        return f"[{percent_change(self.low)}, {percent_change(self.high)}]"

    @property
    def text(self) -> str:
        return f"{percent_change(self.ratio)} {self.interval}".rstrip()


@dataclass
class QualityValue:
    """One quality metric of a record, what computed it, and its verdict if the gate judged it."""

    metric: str
    value: float | None
    computed_by: str
    higher_is_better: bool
    status: Status = Status.NOT_JUDGED
    change: Change | None = None
    interval: tuple[float, float] | None = None  # over its examples (98 %), where the metric keeps them

    @property
    def text(self) -> str:
        bounds = f" [{fmt(self.interval[0], 3)}, {fmt(self.interval[1], 3)}]" if self.interval else ""
        return f"{self.metric} {fmt(self.value)}{bounds}"


@dataclass
class KindEnergy:
    """A record's energy on one device kind (its devices of one source's group), as its energy is judged."""

    kind: str  # the device kind's id, as baselines are keyed ("gpu: NVIDIA H100 80GB HBM3 x1")
    net_per_unit: float  # net joules per unit of those devices (NaN without a valid iteration)


@dataclass
class Row:
    """One record as every renderer shows it."""

    index: int
    anchor: str  # HTML id of its details
    record: Record
    status: Status  # the most urgent verdict of the record (NOT_JUDGED, "", where nothing judged it)
    gating: bool  # False where its regression or model change cannot fail the gate (e.g. modelled energy)
    change: Change | None  # energy against baseline
    messages: list[str]
    quality: list[QualityValue]
    # Gross Wh per 1,000 inferences, for inference cases only: the one per-1,000 definition everywhere
    # (the AI Energy Score's basis, the budgets', the record's and the cases' figures["wh_per_1000_inferences"]).
    wh_per_1000: float | None
    stars: int | None = None  # AI-Energy-Score-style rating where a task reference range is given
    star_basis: str = ""
    carbon_class: str | None = None  # A-E for a fine-tune, from its task's fixed reference table
    carbon_class_basis: str = ""
    methods: str = ""  # "counter, modelled": read by every renderer, so joined once
    valid_rounds: int = 0
    model: str = ""  # the model that ran, naming the stand-in where a fallback ran for the requested one
    stand_in: bool = False  # a fallback ran instead of the requested model
    model_detail: str = ""  # the model in full (a fallback's sizes and vocabulary), for details and tooltips
    work: float | None = None  # the counted FLOP proxy the gate judges (per inference, else per run)
    work_label: str = ""  # which proxy: "FLOPs / inference" or "FLOPs"
    decided_by: str = ""  # the verdict line that gave the record its status
    # Why the energy change has no interval, or no change at all, where it has none; "" where that
    # reason is one of the report's shared notes (said once above the table), then ``note_ref`` numbers it.
    interval_note: str = ""
    note_ref: int | None = None  # 1-based index into Report.shared_notes
    # Each budget the record missed, failing its test: the figure against the budget, one line each.
    missed_budgets: list[str] = field(default_factory=list)
    kinds: list[KindEnergy] = field(default_factory=list)  # by the run's --energy-device-kind-fields

    @property
    def per(self) -> str:
        """What one figure of the energy column is per: a single-window record is the whole test."""
        return per_unit(self.record)

    @property
    def test_failed(self) -> bool:
        """Whether the record's test failed (a missed budget included) or its set-up or teardown did."""
        return self.record.outcome in FAILED_OUTCOMES

    @property
    def urgent(self) -> bool:
        """Shown first and with ``-q``: a regression or model change, or a failed test."""
        return self.status.fails or self.test_failed

    # Shortcuts the templates read often.
    @property
    def name(self) -> str:
        return self.record.name

    @property
    def per_iteration_net(self) -> float:
        return self.record.per_iteration_net_joules

    @property
    def uncertainty(self) -> float:
        return self.record.per_iteration_uncertainty_joules

    @property
    def is_fine_tune(self) -> bool:
        return is_fine_tune(self.record)

    @property
    def quality_text(self) -> str:
        return ", ".join(q.text for q in self.quality)

    @property
    def generation_text(self) -> str:
        """A text-generation record's whole query: prefill and decode (each also a record), per token."""
        split = query_split(self.record)
        if split is None:
            return ""
        share = finite_number(split.prefill_share)
        return (f"prefill {fmt(finite_number(split.prefill_joules_per_query))} J + decode "
                f"{fmt(finite_number(split.decode_joules_per_query))} J per query (gross"
                + (f", prefill {share * 100:.0f} %" if share is not None else "") + "); "
                f"{fmt(finite_number(split.wh_per_1000_queries))} Wh per 1,000 queries, "
                f"{fmt(finite_number(split.joules_per_generated_token))} J per generated token")

    @property
    def serving_text(self) -> str:
        """A served generation record's steady state and whole run, per output token (gross)."""
        served = serving_figures(self.record)
        if served is None:
            return ""
        serving = self.record.case.serving
        rate = finite_number(served.steady_tokens_per_second)
        whole = finite_number(served.whole_run_joules_per_output_token)
        return (f"steady state at concurrency {served.concurrency}: "
                f"{fmt(finite_number(served.steady_joules_per_output_token))} J gross per output token over "
                f"{served.steady_tokens} tokens in {fmt(served.steady_seconds)} s"
                + (f" ({fmt(rate)} tokens/s)" if rate is not None else "")
                + f", passes {serving.fill_pass + 1}-{serving.drain_pass} of {serving.passes}; whole run "
                + (f"{fmt(whole)} J gross per output token" if whole is not None else "n/a (a window of it was invalid)")
                + f" over {served.whole_run_tokens} tokens")

    def folded(self) -> list[tuple[str, str]]:
        """What a results row folds away to stay one line, as (label, text) lines: the model in full, what
        decided its verdict, why it has no energy change, its quality metrics with their verdicts, its work,
        its measuring methods, its rating and its energy split per device (the record's details give every fact)."""
        r = self.record
        lines = [*([("model", self.model_detail)] if self.model else []),
                 *([("decided by", self.decided_by)] if self.decided_by else []),
                 *([("change", self.interval_note)] if self.interval_note else [])]
        lines += [(q.metric, f"{fmt(q.value)}" + (f", {q.status}" if q.status else "")
                   + (f" ({q.change.text} vs baseline)" if q.change else "")
                   + (f"; {q.computed_by}" if q.computed_by else "")) for q in self.quality]
        if self.work is not None:
            lines.append(("work", f"{fmt(self.work, 6)} {self.work_label}"))
        lines.append(("method", self.methods))
        if self.star_basis:
            lines.append(("rating", self.star_basis))
        if self.carbon_class:
            lines.append(("carbon efficiency", f"class {self.carbon_class}: {self.carbon_class_basis}"))
        net = math.fsum(c.net_joules for c in r.components if math.isfinite(c.net_joules))
        for c in r.components:
            share = f", {c.net_joules / net * 100:.0f} % of net" if len(r.components) > 1 and net > 0 \
                and math.isfinite(c.net_joules) else ""
            lines.append((c.device, f"{c.kind}, {c.method}: net {fmt(c.net_joules)} J{share}"))
        return lines

    def facts(self) -> list[tuple[str, str]]:
        """How the numbers were obtained, as (label, text) lines for the details of a record."""
        r = self.record
        per = f"per {r.unit}"
        lines = [
            ("test", f"{r.nodeid}" + (f" [{r.label}]" if r.label else "") + f", {r.form} form, outcome "
             f"{r.outcome or 'n/a'}"),
            *([("model", self.model_detail)] if self.model else []),
            ("rounds", f"{self.valid_rounds} valid of {len(r.rounds)}, {r.iterations} iterations after "
             f"{r.warmup_iterations} warm-up, {fmt(r.duration_seconds)} s measured"),
            (per, f"gross {fmt(r.per_iteration_gross_joules)} J, net {fmt(r.per_iteration_net_joules)} J, "
             f"standard error {fmt(r.per_iteration_uncertainty_joules, 2)} J"
             + (f"; {fmt(self.wh_per_1000)} Wh gross per 1,000 inferences" if self.wh_per_1000 is not None else "")),
            ("total", f"gross {fmt(r.total_gross_joules)} J, net {fmt(r.total_net_joules)} J; "
             f"{fmt(r.co2_grams)} g CO2eq at {fmt(r.carbon.intensity_g_per_kwh)} g/kWh, PUE {fmt(r.carbon.pue)}"
             + (f"; its warm-up's own window included ({fmt(r.warmup_round.gross_joules)} J gross over "
                f"{r.warmup_round.iterations} {r.unit}s)" if r.warmup_round is not None and r.warmup_round.valid
                else "")),
        ]
        for c in r.components:
            lines.append((c.device, f"{c.kind}, {c.method}: gross {fmt(c.gross_joules)} J, net "
                          f"{fmt(c.net_joules)} J, idle {fmt(c.idle_watts)} W over {fmt(c.window_seconds)} s, "
                          f"{c.ticks} ticks, ± {fmt(c.uncertainty_joules, 2)} J"
                          + ("" if c.valid else ", invalid") + (f"; {c.note}" if c.note else "")))
            if c.conditions:
                lines.append((f"{c.device} conditions", describe_conditions(c.conditions)))
        lines.append((f"rounds, net J {per}", ", ".join(
            (fmt(rd.net_per_iteration) if rd.iterations else "n/a") + ("" if rd.valid else " (invalid)")
            for rd in r.rounds)))
        for q in self.quality:
            lines.append((q.metric, f"{fmt(q.value)} ({q.computed_by or 'source not given'})"
                          + (f", {q.change.text} vs baseline" if q.change else "")))
        if self.generation_text:
            lines.append(("generation", self.generation_text))
        if self.serving_text:
            lines.append(("served", self.serving_text))
            lines.append(("steady state", self.record.case.serving.steady_state))
        if self.star_basis:
            lines.append(("rating", (f"{'★' * self.stars}{'☆' * (5 - self.stars)} " if self.stars else "")
                          + self.star_basis))
        if self.is_fine_tune:
            lines.append(("carbon efficiency", (f"class {self.carbon_class}" if self.carbon_class else "not classed")
                          + f": {self.carbon_class_basis}"))
        lines += [(str(k), fmt(v) if isinstance(v, (int, float)) else str(v)) for k, v in r.proxies.items()]
        lines += [(f"budget {k}", str(v)) for k, v in r.criteria.items()]
        lines += [("verdict", m) for m in self.messages]
        return lines


@dataclass
class Totals:
    """The summary figures at the top of every report."""

    records: int
    gross_joules: float
    net_joules: float
    co2_grams: float
    counts: dict[str, int]  # rows per status ("" = not judged)
    failed: int  # records of tests that failed (budgets included) or errored
    not_gating: int = 0  # regressions and model changes that cannot fail the gate (e.g. modelled energy)
    no_figure: int = 0  # records with no valid window: their energy is unknown, counted nowhere

    @property
    def gross_wh(self) -> float:
        return self.gross_joules / JOULES_PER_WH

    @property
    def regressions(self) -> int:
        return self.counts.get("regression", 0)

    @property
    def model_changes(self) -> int:
        return self.counts.get("model changed", 0)

    @property
    def failing(self) -> int:
        """Rows whose status fails the gate where it gates: regressions and model changes."""
        return self.regressions + self.model_changes

    @property
    def line(self) -> str:
        judged = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items(), key=lambda i: Status(i[0]).urgency)
                           if s)
        unknown = f"{self.no_figure} without a valid energy figure (every window invalid)"
        if self.records and self.no_figure == self.records:  # never "0 J" for readings that do not exist
            energy = f"no energy figure: {unknown}"
        else:
            energy = (f"{fmt(self.gross_joules)} J gross ({fmt(self.gross_wh)} Wh), {fmt(self.net_joules)} J net, "
                      f"{fmt(self.co2_grams)} g CO2eq" + (f"; {unknown}, not counted" if self.no_figure else ""))
        return f"{self.records} measured, {energy}" + (f"; {judged}" if judged else "")


#: A chart numbers every point up to this many (each a row of its key table); past it, only a quality
#: chart's Pareto front and each task's cheapest and dearest record on the per-1,000 chart are numbered,
#: the others keep their tooltips: a label per point of a 10,000-record suite would be unreadable and slow.
MAX_KEYED = 60


@dataclass
class QualityPoint:
    row: int  # index into Report.rows
    name: str
    energy: float  # net J per iteration
    quality: float
    status: str
    on_front: bool = False
    key: int = 0  # its number on the chart and in the key table under it (1-based, by energy); 0: not numbered
    general_purpose: bool = False  # drawn as a diamond (:data:`GENERAL_PURPOSE_RULE`)
    case_task: str = ""  # the record's own task, where it answers the chart's task as another (zero-shot)


@dataclass
class QualityChart:
    """Energy against one quality metric for the records of one task and unit, with the Pareto front
    marked. ``task`` is the task the records answer (:func:`answered_tasks`); "" for records of no case
    (plain tests state no task)."""

    metric: str
    unit: str
    higher_is_better: bool
    points: list[QualityPoint]
    task: str = ""

    @property
    def front(self) -> list[QualityPoint]:
        """The Pareto front, cheapest first."""
        return [p for p in self.points if p.on_front]

    @property
    def keyed(self) -> list[QualityPoint]:
        """The points numbered on the chart, as its key table lists them."""
        return [p for p in self.points if p.key]


#: How a record is told general-purpose (the charts' captions say it): the record states its task and its
#: model, not what else the model was trained for, so the one sign is a zero-shot task.
GENERAL_PURPOSE_RULE = ("general-purpose: a case of a zero-shot task (a generative model prompted to answer a "
                        "task it has no head for, as the multi-purpose models of Power Hungry Processing), shown "
                        "with the task whose very examples it was scored on; every other case counts as "
                        "task-specific")


@dataclass
class TaskPoint:
    """One record on the energy-per-1,000-inferences chart."""

    row: int  # index into Report.rows
    name: str
    model: str
    task: str
    wh_per_1000: float  # gross Wh per 1,000 inferences (a generated query whole: prefill and decode)
    general_purpose: bool
    status: str
    key: int = 0  # its number on the chart and in the key table (1-based); 0: not numbered
    case_task: str = ""  # the record's own task, where it answers ``task`` as another (zero-shot)


@dataclass
class TaskEnergyChart:
    """Energy per 1,000 inferences by task, one point per record, on a log axis."""

    tasks: list[str]  # in the chart's order: cheapest median first
    points: list[TaskPoint]
    left_out: int = 0  # inference records that state no task, not charted
    rule: str = GENERAL_PURPOSE_RULE  # how general-purpose is told, for the caption

    @property
    def keyed(self) -> list[TaskPoint]:
        """The points numbered on the chart, as its key table lists them."""
        return [p for p in self.points if p.key]


@dataclass
class SweepLevel:
    row: int  # index into Report.rows
    name: str
    sparsity: float  # percent of the linear layers' weights that are zero
    energy: float  # net J per unit
    quality: float | None  # the sweep's metric at this level, None where the level lacks it


@dataclass
class SparsitySweep:
    """A pruning sweep's magnitude levels by sparsity: energy and one quality metric at each."""

    name: str
    unit: str
    metric: str  # "" where no level has a quality figure
    levels: list[SweepLevel]


@dataclass
class ServedLevel:
    row: int  # index into Report.rows
    name: str
    concurrency: int
    steady: float  # gross J per output token over the steady state
    whole_run: float | None  # gross J per output token over the whole run, None where a window was invalid


@dataclass
class ServedSweep:
    """A served generation case's levels (``GenerationCase(concurrency=...)``) by concurrency: energy per
    output token in the steady state, and over the whole run."""

    name: str  # the test's, before "::concurrency="
    levels: list[ServedLevel]


@dataclass
class FineTuneArm:
    """One fine-tune of the run beside the others: its whole energy, CO2 and quality."""

    row: int  # index into Report.rows
    key: int  # 1-based, as the bars name it
    name: str
    model: str
    task: str
    wh: float  # the whole fine-tune, gross, warm-up included (the record's figures.joules_fine_tune)
    co2_grams: float  # of that energy
    quality: dict[str, float]


@dataclass(frozen=True)
class Headline:
    """The run's outcome in one line: the same words head the terminal summary, the HTML report, the
    energy JSON (``gate.headline``) and the GitHub step summary. Built once (:func:`build_headline`)."""

    outcome: str  # "FAILED", "INCOMPLETE" or "passed"; never "passed" where the run exits non-zero
    decided_by: tuple[str, ...]  # what decided it: "1 regression", "2 quality budgets missed", ...
    counts: str  # "5 records: 2 in failed tests, 1 regression, 2 unchanged"
    exit_status: int

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def text(self) -> str:
        return f"{self.outcome}: {', '.join(self.decided_by)}; {self.counts}"

    def to_dict(self) -> dict[str, Any]:
        """The headline as the energy JSON holds it."""
        return {"outcome": self.outcome, "decided_by": list(self.decided_by), "counts": self.counts,
                "exit_status": self.exit_status, "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Headline:
        """The headline the energy JSON holds (:meth:`to_dict`), for a report made from the file."""
        return cls(str(data["outcome"]), tuple(map(str, data["decided_by"])), str(data["counts"]),
                   int(data["exit_status"]))


@dataclass
class Report:
    """Everything the renderers need, computed once by :func:`build_report`."""

    title: str
    generated: str
    rows: list[Row]  # model changes and regressions first
    totals: Totals
    run: RunInfo | None
    gate_failed: bool
    baseline_set: str
    gate_summary: list[str]
    errors: list[str]
    hardware: list[tuple[str, str]]
    carbon: list[tuple[str, str]]
    idle: list[tuple[str, str]]
    notes: list[str]
    headline: Headline
    shared_notes: list[str] = field(default_factory=list)  # a reason many rows share, said once above the table
    quality_charts: list[QualityChart] = field(default_factory=list)  # one per task, metric and unit
    task_energy: TaskEnergyChart | None = None  # None where no inference record states its task
    sweeps: list[SparsitySweep] = field(default_factory=list)
    served: list[ServedSweep] = field(default_factory=list)  # served generation: two levels or more each
    fine_tune_arms: list[FineTuneArm] = field(default_factory=list)  # two or more, else none
    trends: list[Trend] = field(default_factory=list)
    trends_note: str = ""  # why trends are missing or cut, shown under the section
    rootdir: str = ""  # where relative output paths resolve (pytest's rootdir, from the judgement)

    @property
    def passed(self) -> bool:
        """Whether the run passed (:attr:`Headline.passed`): never where it exits non-zero."""
        return self.headline.passed

    @property
    def regressions(self) -> list[Row]:
        """The rows whose status fails the gate where it gates: model changes and regressions."""
        return [row for row in self.rows if row.status.fails]

    @property
    def urgent(self) -> list[Row]:
        """Regressions, model changes and the records of failed tests: the rows shown first."""
        return [row for row in self.rows if row.urgent]

    @property
    def has_inference(self) -> bool:
        return any(row.wh_per_1000 is not None for row in self.rows)

    @property
    def has_quality(self) -> bool:
        return any(row.quality for row in self.rows)

    @property
    def has_models(self) -> bool:
        return any(row.model for row in self.rows)

    @property
    def has_ratings(self) -> bool:
        return any(row.stars or row.carbon_class for row in self.rows)

    @property
    def timelines(self) -> list[Row]:
        return [row for row in self.rows if len(row.record.timeline) >= 2]

    @property
    def steps(self) -> int:
        return sum(len(t.steps) for t in self.trends)

    @property
    def regressed_trends(self) -> list[Trend]:
        """The trends of the tests that regressed in this run, drawn first."""
        regressed = {row.name for row in self.rows if row.status == Status.REGRESSION}
        return [trend for trend in self.trends if trend.name in regressed]

    @property
    def other_trends(self) -> list[Trend]:
        regressed = {trend.name for trend in self.regressed_trends}
        return [trend for trend in self.trends if trend.name not in regressed]

    @property
    def fine_tune_metrics(self) -> list[str]:
        """The quality metrics of the fine-tune arms, in the order the arms give them."""
        return list(dict.fromkeys(metric for arm in self.fine_tune_arms for metric in arm.quality))

    @property
    def fine_tune_bars(self) -> list[tuple[str, str, list[tuple[int, str, float | None]]]]:
        """The arms' figures as bar charts draw them: (title, unit, [(key, name, value)]) for the energy,
        the CO2 and each quality metric (None for an arm without it)."""
        arms = self.fine_tune_arms
        return [("energy of the whole fine-tune (gross)", "Wh", [(a.key, a.name, a.wh) for a in arms]),
                ("CO2eq of that energy", "g", [(a.key, a.name, a.co2_grams) for a in arms]),
                *((metric, "", [(a.key, a.name, a.quality.get(metric)) for a in arms])
                  for metric in self.fine_tune_metrics)]


def per_unit(record: Record) -> str:
    """What one energy figure of a record is per: its unit, or "test" for a single window (the whole test)."""
    return "test" if record.form == "block" and record.iterations <= 1 else record.unit


def _quality(record: Record, verdicts: dict[str, Verdict]) -> list[QualityValue]:
    values = []
    for metric, data in record.quality.items():
        data = data if isinstance(data, dict) else {"value": data}
        verdict = verdicts.get(metric)
        values.append(QualityValue(
            metric=str(metric),
            value=finite_number(data.get("value")),
            computed_by=str(data.get("computed_by", "")),
            higher_is_better=bool(data.get("higher_is_better", True)),
            status=verdict.status if verdict else Status.NOT_JUDGED,
            change=_change(verdict),
            interval=_bounds(data.get("interval")),
        ))
    return values


def _missed_quality(record: Record, quality: list[QualityValue]) -> list[str]:
    """Each quality budget the record missed: the value (its interval where kept) against the budget."""
    lines = []
    missed = missed_quality(record)
    for value in quality:
        entry = missed.get(value.metric)
        if entry is not None:
            lines.append(f"quality budget: {value.text} {'<' if value.higher_is_better else '>'} budget "
                         f"{fmt(finite_number(entry.get('budget')))}")
    return lines


def _bounds(value: Any) -> tuple[float, float] | None:
    """A stored ``[low, high]`` interval, or None where there is none (or it is not two finite numbers)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    low, high = (finite_number(v) for v in value)
    return (low, high) if low is not None and high is not None else None


def _change(verdict: Verdict | None) -> Change | None:
    if verdict is None or verdict.ratio is None or not math.isfinite(verdict.ratio):
        return None
    return Change(verdict.ratio, verdict.low, verdict.high)


def model_text(record: Record, detail: bool = False) -> str:
    """The model a case ran: its request, and the stand-in that ran where it is not the requested one
    (a fallback by its type only, unless ``detail``: its sizes make a long line)."""
    facts = record.model
    if facts is None or not facts.requested:
        return ""
    requested, ran = facts.requested, facts.ran or facts.requested
    if ran == requested:
        return requested
    return f"{ran if detail else ran.split(' (')[0]}, standing in for {requested}"


def _requested(record: Record) -> str:
    return record.model.requested if record.model is not None else ""


def _work(record: Record) -> tuple[float | None, str]:
    for key, label in (("flops_per_inference", "FLOPs / inference"), ("flops", "FLOPs"),
                       ("flops_per_iteration", "FLOPs / iteration")):
        value = finite_number(record.proxies.get(key))
        if value:
            return value, label
    return None, ""


def _interval_note(energy: Verdict | None) -> str:
    """Why a row shows no energy change: no comparable baseline or no figure (first clause of the
    verdict, e.g. "energy: no baseline measured on modelled: AMD EPYC x2 ..."). Every compared energy
    verdict has an interval: rounds too few for the rank interval are judged as single windows are."""
    if energy is None or energy.ratio is not None:
        return ""
    return f"not compared: {_first_clause(energy.message)}"


def _first_clause(message: str) -> str:
    """``message`` up to its first "; " outside parentheses: a clause's own list, "(it holds X; Y)" of a
    baseline with several device kinds, stays whole."""
    depth = 0
    for index, character in enumerate(message):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth <= 0 and message.startswith("; ", index):
            return message[:index]
    return message


def _status(verdicts: list[Verdict], new: bool) -> Status:
    """A record's status: its most urgent verdict against any set (either can fail the gate)."""
    return most_urgent(v.status for v in verdicts) or (Status.NEW if new else Status.NOT_JUDGED)


def _row(index: int, record: Record, verdicts: list[Verdict], new: bool, baseline_set: str,
         test_records: list[Record]) -> Row:
    """The record's status is its most urgent verdict against any set (either can fail the gate); the
    change and the quality statuses shown are against ``baseline_set``, the one compared and updated.
    ``test_records``: the records of the record's test (a per-test budget is on their sum)."""
    by_metric = {v.metric: v for v in verdicts if v.baseline_set == baseline_set}
    energy = by_metric.get("energy")
    status = _status(verdicts, new)
    gating = fails_gate(verdicts) if status.fails else True
    stars, basis = rating(record)
    carbon_class, carbon_basis = carbon_efficiency_class(record) if is_fine_tune(record) else (None, "")
    deciding = [v for v in verdicts if v.status == status and (v.gating or not status.fails)] or \
        [v for v in verdicts if v.status == status]
    work, work_label = _work(record)
    quality = _quality(record, by_metric)
    return Row(
        index=index,
        anchor=f"r{index}",
        record=record,
        status=status,
        gating=gating,
        change=_change(energy),
        messages=[v.message for v in verdicts if v.message],
        quality=quality,
        wh_per_1000=wh_per_1000(record.per_iteration_gross_joules) if record.unit == "inference" else None,
        stars=stars,
        star_basis=basis,
        carbon_class=carbon_class,
        carbon_class_basis=carbon_basis,
        methods=", ".join(record.methods) or "n/a",
        valid_rounds=sum(1 for r in record.rounds if r.valid),
        model=model_text(record),
        model_detail=model_text(record, detail=True),
        stand_in=model_text(record) != _requested(record),
        work=work,
        work_label=work_label,
        decided_by=deciding[0].message if deciding and status not in (Status.NOT_JUDGED, Status.UNCHANGED) else "",
        interval_note=_interval_note(energy),
        missed_budgets=missed_lines(record, test_records) + _missed_quality(record, quality),
    )


def _kinds(record: Record, fields: list[str]) -> list[KindEnergy]:
    """The record's energy per device kind it spans, most trusted source first."""
    return [KindEnergy(kind.id, devices_net_per_iteration(record.components, kind.devices, record.iterations))
            for kind in record_kinds(record, fields)]


def _order(rows: list[Row]) -> list[Row]:
    """Model changes and regressions first, then the records of failed tests, then the other verdicts by
    urgency; by name within a verdict."""
    rows = sorted(rows, key=lambda r: (not r.status.fails, not r.test_failed, r.status.urgency, r.name))
    for index, row in enumerate(rows):
        row.index, row.anchor = index, f"r{index}"
    return rows


def _share_notes(rows: list[Row]) -> list[str]:
    """The reasons two or more rows give for showing no energy change (the same baseline on another
    device kind, typically every row's): each becomes one numbered note, said once above the table, and
    those rows refer to it by number instead of repeating it, in their change and their decided-by
    cells alike (where the verdict that decided the row is the one that gives the reason, and the same
    for them all, the note says it whole)."""
    held = Counter(row.interval_note for row in rows if row.interval_note)
    shared = [note for note, count in held.items() if count >= 2]
    for number, note in enumerate(shared, 1):
        group = [row for row in rows if row.interval_note == note]
        reason = note.removeprefix("not compared: ")
        deciding = {row.decided_by for row in group if row.decided_by.startswith(reason)}
        if len(deciding) == 1:
            shared[number - 1] = f"not compared: {deciding.pop()}"
        for row in group:
            row.note_ref, row.interval_note = number, ""
            if row.decided_by.startswith(reason):
                row.decided_by = f"see note {number}"
    return shared


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def build_headline(records: list[Record], judgement: Judgement | None, exit_status: int, *, lost: int = 0,
                   unwritten: tuple[str, ...] = ()) -> Headline:
    """The run's outcome and what decided it, then the counts (:class:`Headline`).

    ``exit_status`` is the one the process returns (the session's, the gate's decision in it); ``lost``
    how many xdist workers crashed and lost records; ``unwritten`` the outputs the session could not
    write. INCOMPLETE where the gate could not judge all it should, FAILED where the run exits non-zero
    or the gate failed, else passed.
    """
    judgement = judgement or Judgement()
    by_name: dict[str, list[Verdict]] = {}
    for verdict in judgement.verdicts:
        by_name.setdefault(verdict.name, []).append(verdict)
    new = set(judgement.new)
    failed = [r for r in records if r.outcome in FAILED_OUTCOMES]
    failed_names = {r.name for r in failed}
    judged = {r.name: _status(by_name.get(r.name, []), r.name in new) for r in records if r.name not in failed_names}
    regressed = [name for name, status in judged.items() if status.fails]
    gating = Counter(judged[name] for name in regressed if fails_gate(by_name.get(name, [])))
    quiet = len(regressed) - sum(gating.values())
    quality_missed = sum(len(missed_quality(r)) for r in failed)
    energy_missed = sum(len(failed_budgets(r)) for r in failed)
    on_budget = {r.nodeid for r in failed if failed_budgets(r) or missed_quality(r)}
    other_failed = {r.nodeid for r in failed} - on_budget

    unchecked = len(judgement.incomplete) - lost
    decided = [*([f"{_plural(lost, 'xdist worker')} crashed, records lost"] if lost else []),
               *([f"{_plural(unchecked, 'check')} the gate could not make"] if unchecked > 0 else [])]
    if judgement.gate_failed:  # regressions decide only where they fail the gate
        decided += [_plural(gating[Status.REGRESSION], "regression")] if gating[Status.REGRESSION] else []
        decided += [_plural(gating[Status.MODEL_CHANGED], "model change")] if gating[Status.MODEL_CHANGED] else []
    decided += [f"{_plural(energy_missed, 'energy budget')} missed"] if energy_missed else []
    decided += [f"{_plural(quality_missed, 'quality budget')} missed"] if quality_missed else []
    decided += [f"{_plural(len(other_failed), 'test')} failed"] if other_failed else []
    if "" in judgement.failed:  # pytest fails the run and no measured test explains it
        decided.append(judgement.failed[""])
    if unwritten:
        decided.append(f"{' and '.join(unwritten)} could not be written")
    if not decided and judgement.gate_failed:  # e.g. the records could not be judged, baselines required
        head = judgement.summary[0] if judgement.summary else ""
        decided.append(f"the gate failed ({head.split(': ', 1)[-1]})" if head else "the gate failed")
    if not decided and exit_status not in (0, 5):
        decided.append(f"pytest exits {exit_status}")

    if lost or judgement.incomplete:
        outcome = "INCOMPLETE"
    elif decided or judgement.gate_failed or exit_status not in (0, 5):
        outcome = "FAILED"
    else:
        outcome = "passed"
        decided += [f"{_plural(quiet, 'regression')} not gating"] if quiet else []
        shared = sum(SHARED_OVER in line for line in judgement.over_budget)
        over = ((len(judgement.over_budget) - shared, "a modelled estimate"), (shared, "a shared device"))
        decided += [f"{_plural(count, 'energy budget')} over on {what} only, not gating" for count, what in over if count]
        if not decided:
            decided.append("nothing failed the gate" if judgement.verdicts
                           else "nothing compared with a baseline")

    statuses = Counter(judged.values())
    parts = ([f"{len(failed)} in failed tests"] if failed else []) + [
        f"{n} {status or 'not judged'}" for status, n in sorted(statuses.items(), key=lambda i: i[0].urgency)]
    counts = _plural(len(records), "record") + (f": {', '.join(parts)}" if parts else "")
    return Headline(outcome, tuple(decided), counts, int(exit_status))


def _pareto(points: list[QualityPoint], higher_is_better: bool) -> None:
    """Mark the points no other point beats on both energy (lower) and quality."""
    sign = 1 if higher_is_better else -1
    best = -math.inf
    for point in sorted(points, key=lambda p: (p.energy, -sign * p.quality)):
        if sign * point.quality > best:
            point.on_front = True
            best = sign * point.quality


def _task(record: Record) -> str:
    return record.case.task if record.case is not None else ""


def _examples(record: Record) -> frozenset[str] | None:
    """The evaluation examples a record's quality was scored on (their content keys, where a metric
    keeps them), None where no metric does."""
    for entry in record.quality.values():
        keys = entry.get("example_keys") if isinstance(entry, dict) else None
        if isinstance(keys, list) and keys:
            return frozenset(map(str, keys))
    return None


def answered_tasks(rows: list[Row]) -> dict[int, str]:
    """The task each row's record answers, by row index: its case's task, except a general-purpose record
    scored on the very examples of a task-specific record of another task, which answers that task (a
    zero-shot model doing sst2's sentiment classification: Power Hungry Processing's comparison)."""
    by_examples: dict[frozenset[str], str] = {}
    for row in rows:
        examples = _examples(row.record)
        if examples and _task(row.record) and not general_purpose(row.record):
            by_examples.setdefault(examples, _task(row.record))
    return {row.index: (general_purpose(row.record) and by_examples.get(_examples(row.record))) or _task(row.record)
            for row in rows}


def _quality_charts(rows: list[Row], answered: dict[int, str]) -> list[QualityChart]:
    """One chart per task answered, metric and unit that two records or more share: a trade-off is read
    between models of one task. A pruning sweep's levels are left to their own chart (:func:`_sweeps`)."""
    groups: dict[tuple[str, str, str], QualityChart] = {}
    for row in rows:
        energy = row.per_iteration_net
        if not math.isfinite(energy) or (row.record.case is not None and row.record.case.pruned is not None):
            continue
        task, own = answered[row.index], _task(row.record)
        for quality in row.quality:
            if quality.value is None:
                continue
            key = (task, quality.metric, row.record.unit)
            chart = groups.setdefault(key, QualityChart(quality.metric, row.record.unit,
                                                        quality.higher_is_better, [], task))
            chart.points.append(QualityPoint(row.index, row.name, energy, quality.value, row.status,
                                             general_purpose=general_purpose(row.record),
                                             case_task=own if own != task else ""))
    # One point is no trade-off: a chart needs two records of the same unit to compare.
    charts = [chart for chart in groups.values() if len(chart.points) >= 2]
    for chart in charts:
        _pareto(chart.points, chart.higher_is_better)
        chart.points.sort(key=lambda p: (p.energy, p.name))
        keyed = [p for p in chart.points if p.on_front or len(chart.points) <= MAX_KEYED]
        for number, point in enumerate(keyed, 1):
            point.key = number
    return sorted(charts, key=lambda c: (c.task == "", c.task, c.metric, c.unit))


def general_purpose(record: Record) -> bool:
    """Whether a record's model counts as general-purpose (:data:`GENERAL_PURPOSE_RULE`)."""
    return _task(record).startswith("zero-shot")


def _task_energy(rows: list[Row], answered: dict[int, str]) -> TaskEnergyChart | None:
    """Gross Wh per 1,000 inferences of every inference record that states its task; a generated query
    counts whole (its decode record holds the prefill's energy, so the prefill record is not charted
    again); a pruning level is left to its sweep's chart."""
    points, left_out = [], 0
    for row in rows:
        case, value = row.record.case, row.wh_per_1000
        if case is not None and (case.pruned is not None or  # a pruning level is charted in its sweep
                                 case.generation is not None and case.generation.phase == "prefill"):
            continue
        split = query_split(row.record)
        value = finite_number(split.wh_per_1000_queries) if split is not None else value
        if value is None or not math.isfinite(value) or value <= 0:
            continue
        task, own = answered[row.index], _task(row.record)
        if not task:
            left_out += 1
            continue
        points.append(TaskPoint(row.index, row.name, row.model or row.name.rsplit("::", 1)[-1], task, value,
                                general_purpose(row.record), row.status, case_task=own if own != task else ""))
    if not points:
        return None
    by_task: dict[str, list[float]] = {}
    for point in points:
        by_task.setdefault(point.task, []).append(point.wh_per_1000)
    tasks = sorted(by_task, key=lambda t: (sorted(by_task[t])[len(by_task[t]) // 2], t))
    points.sort(key=lambda p: (tasks.index(p.task), p.wh_per_1000, p.name))
    ends = [p for _, group in groupby(points, key=lambda p: p.task) for p in _ends(list(group))]
    keyed = points if len(points) <= MAX_KEYED else [p for p in points if any(p is end for end in ends)]
    for number, point in enumerate(keyed, 1):
        point.key = number
    return TaskEnergyChart(tasks, points, left_out)


def _ends(group: list[TaskPoint]) -> list[TaskPoint]:
    """The cheapest and the dearest of a task's points (one where it has one)."""
    return group[:1] + group[1:][-1:]


def _sweeps(rows: list[Row]) -> list[SparsitySweep]:
    """The pruning sweeps among the rows: the levels of one sweep (its name before "[") pruned by
    global magnitude pruning (``case.pruned``; the 2:4 level is another kind of sparsity and is left
    off the line), by sparsity; a sweep needs two levels or more."""
    found: dict[str, list[tuple[Row, Pruned]]] = {}
    for row in rows:
        pruned = row.record.case.pruned if row.record.case is not None else None
        if pruned is not None and pruned.magnitude:
            found.setdefault(row.name.split("[", 1)[0], []).append((row, pruned))
    sweeps = []
    for name, levels in found.items():
        if len(levels) < 2:
            continue
        metric = next((q.metric for row, _ in levels for q in row.quality if q.value is not None), "")
        points = [SweepLevel(row.index, row.name, 100 * pruned.weight_sparsity, row.per_iteration_net,
                             next((q.value for q in row.quality if q.metric == metric), None))
                  for row, pruned in levels]
        sweeps.append(SparsitySweep(name, levels[0][0].record.unit, metric, sorted(points, key=lambda p: p.sparsity)))
    return sweeps


def _served(rows: list[Row]) -> list[ServedSweep]:
    """The served generation cases among the rows: each test's levels by concurrency, where it has two or
    more with a finite steady-state figure."""
    found: dict[str, list[ServedLevel]] = {}
    for row in rows:
        served = serving_figures(row.record)
        steady = finite_number(served.steady_joules_per_output_token) if served is not None else None
        if served is not None and steady is not None:
            found.setdefault(row.record.nodeid, []).append(ServedLevel(
                row.index, row.name, served.concurrency, steady,
                finite_number(served.whole_run_joules_per_output_token)))
    return [ServedSweep(name, sorted(levels, key=lambda level: level.concurrency))
            for name, levels in found.items() if len(levels) >= 2]


def _fine_tune_arms(rows: list[Row]) -> list[FineTuneArm]:
    """Every fine-tune of the run, side by side (two or more; one is no comparison), in the rows' order."""
    arms = []
    for row in rows:
        if not row.is_fine_tune:
            continue
        joules = fine_tune_energy(row.record).joules
        arms.append(FineTuneArm(row.index, len(arms) + 1, row.name, row.model, _task(row.record),
                                joules / JOULES_PER_WH, row.record.carbon.grams(joules),
                                {q.metric: q.value for q in row.quality if q.value is not None}))
    return arms if len(arms) >= 2 else []


def _hardware(fingerprint: dict[str, Any]) -> list[tuple[str, str]]:
    items = [("fingerprint", str(fingerprint.get("id", "n/a")))]
    for gpu in fingerprint.get("gpus") or []:
        details = ", ".join(f"{k} {v}" for k, v in gpu.items() if k not in ("device", "name") and v is not None)
        items.append((str(gpu.get("device", "gpu")), f"{gpu.get('name', 'unknown GPU')}" +
                      (f" ({details})" if details else "")))
    labels = (("cpu_model", "CPU"), ("logical_cpus", "logical CPUs"), ("memory_gib", "memory GiB"),
              ("methods", "methods"), ("os", "OS"), ("python", "Python"), ("torch", "torch"),
              ("torch_cuda", "torch CUDA"), ("transformers", "transformers"),
              ("pytest_energy", "pytest-energy"))
    for key, label in labels:
        value = fingerprint.get(key)
        if value not in (None, "", []):
            items.append((label, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return items


def _carbon(carbon: Carbon | None) -> list[tuple[str, str]]:
    if carbon is None:
        return [("carbon", "n/a")]
    return [
        ("intensity", f"{fmt(carbon.intensity_g_per_kwh)} gCO2eq/kWh"),
        ("source", carbon.source),
        ("country", carbon.country_iso_code or "not given"),
        ("PUE", fmt(carbon.pue)),
        ("formula", "g = gross kWh x PUE x intensity"),
    ]


def build_report(
    records: list[Record],
    judgement: Judgement | None,
    run_info: RunInfo | None,
    history: Any = None,
    *,
    title: str = "pytest-energy report",
    headline: Headline | None = None,
) -> Report:
    """Compute once everything the renderers show: the headline, totals, ordered rows, charts, trends,
    assumptions.

    ``history`` is a :class:`pytest_energy.store.history.History` (or None): its ``series()`` on this run's
    hardware give the trend lines (:func:`pytest_energy.report.trends.session_trends`). ``headline`` is the
    one the session built (:func:`build_headline`, with the exit status it returns and what it lost or could
    not write) and wrote in the energy JSON; without it, it is built from ``run_info``'s exit status.
    """
    judgement = judgement or Judgement()
    by_name: dict[str, list[Verdict]] = {}
    for verdict in judgement.verdicts:
        by_name.setdefault(verdict.name, []).append(verdict)
    new = set(judgement.new)
    by_test: dict[str, list[Record]] = {}
    for record in records:
        by_test.setdefault(record.nodeid, []).append(record)
    rows = _order([_row(i, r, by_name.get(r.name, []), r.name in new, judgement.baseline_set, by_test[r.nodeid])
                   for i, r in enumerate(records)])
    fields = (run_info.settings.get("device_kind_fields") if run_info else None) or ",".join(DEFAULT_KIND_FIELDS)
    for row in rows:
        row.kinds = _kinds(row.record, str(fields).split(","))
    counts = Counter(row.status for row in rows)
    measured = [r for r in records if r.valid]
    totals = Totals(
        records=len(rows),
        gross_joules=math.fsum(r.total_gross_joules for r in measured if math.isfinite(r.total_gross_joules))
        if measured or not records else math.nan,
        net_joules=math.fsum(r.total_net_joules for r in measured if math.isfinite(r.total_net_joules))
        if measured or not records else math.nan,
        co2_grams=math.fsum(r.co2_grams for r in measured if math.isfinite(r.co2_grams)),
        counts=dict(counts),
        failed=sum(1 for r in records if r.outcome in FAILED_OUTCOMES),
        not_gating=sum(1 for r in rows if r.status.fails and not r.gating),
        no_figure=len(records) - len(measured),
    )
    fingerprint = run_info.fingerprint if run_info else (records[0].fingerprint if records else {})
    trends, trends_note = session_trends(history, (fingerprint or {}).get("id"), [row.name for row in rows])
    carbon = run_info.carbon if run_info else (records[0].carbon if records else None)
    idle = run_info.idle_watts if run_info else {}
    answered = answered_tasks(rows)
    if headline is None:
        headline = build_headline(records, judgement, run_info.exitstatus if run_info else 0)
    return Report(
        title=title,
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        headline=headline,
        shared_notes=_share_notes(rows),
        rows=rows,
        totals=totals,
        run=run_info,
        gate_failed=judgement.gate_failed,
        baseline_set=judgement.baseline_set,
        gate_summary=list(judgement.summary),
        errors=list(judgement.errors),
        hardware=_hardware(fingerprint or {}),
        carbon=_carbon(carbon),
        idle=[(device, f"{fmt(watts)} W") for device, watts in sorted(idle.items())],
        notes=list(run_info.notes) if run_info else [],
        quality_charts=_quality_charts(rows, answered),
        task_energy=_task_energy(rows, answered),
        sweeps=_sweeps(rows),
        served=_served(rows),
        fine_tune_arms=_fine_tune_arms(rows),
        trends=trends,
        trends_note=trends_note,
        rootdir=str(getattr(judgement, "rootdir", "") or ""),
    )

