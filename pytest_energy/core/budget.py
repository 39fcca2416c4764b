"""Energy budgets: parsed from the ``energy`` marker (or added by a case), checked after a test's call.

A budget is on gross joules by default (what the device drew, as the AI Energy Score counts it);
``basis="net"`` budgets the energy above idle. The one failure message names the measured value, its
uncertainty, the budget and the method, so a red test says everything needed to judge it.

Modelled energy does not gate (the gate's rule for energy verdicts): a budget that only a modelled
estimate puts over (CPU time times a rated power that may be CodeCarbon's 85 W guess) is kept as
:data:`MODELLED_OVER`, not failed, unless ``--energy-gate-modelled``; its measured devices alone over
the budget still fail the test. Either way the model's TDP and where it came from are said. Energy of a
device other xdist workers used in the same windows (a GPU they share, the RAPL package) does not gate
either (:data:`SHARED_OVER`): it holds their work too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from .record import Record
from .units import EnergyValueError, format_energy, parse_energy

PER = {"iteration": 1, "1000": 1000, "test": None}
BASES = ("gross", "net")
#: The state of a budget that only modelled energy exceeds, kept without failing the test.
MODELLED_OVER = "over budget (modelled, not gating)"
#: The state of a budget that only the energy of a device shared with other xdist workers puts over.
SHARED_OVER = "over budget (shared with other workers, not gating)"


class BudgetError(ValueError):
    """A budget in a marker cannot be used; the message is one line."""


class EnergyBudgetExceeded(AssertionError):
    """Raised in the test's call phase, so the test fails (not errors) with the one message."""


@dataclass(frozen=True)
class EnergyBudget:
    """At most ``limit_joules`` per iteration, per 1,000 iterations, or for the whole test."""

    limit_joules: float
    per: str = "iteration"
    basis: str = "gross"

    def describe(self) -> str:
        return f"{format_energy(self.limit_joules)} {_per_text(self.per)}"


def _per_text(per: str) -> str:
    return {"iteration": "per iteration", "1000": "per 1,000 iterations", "test": "per test"}[per]


def marker_keywords(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """One ``energy`` marker's keywords, its one positional argument being the budget:
    ``@pytest.mark.energy("10 J")`` is ``@pytest.mark.energy(budget="10 J")``.

    Raises :class:`BudgetError` (one line) for more positional arguments, or a budget given both ways.
    """
    if not args:
        return dict(kwargs)
    if len(args) > 1:
        raise BudgetError(f"energy marker: positional arguments {', '.join(map(repr, args))}: the only one it "
                          "takes is the budget, as in energy('10 J'); give the others by keyword (per=, rounds=, ...)")
    if "budget" in kwargs:
        raise BudgetError(f"energy marker: the budget is given twice, as {args[0]!r} and budget={kwargs['budget']!r}")
    return {"budget": args[0], **kwargs}


def budget_from_marker(kwargs: dict[str, Any]) -> EnergyBudget | None:
    """The budget declared by ``@pytest.mark.energy(budget=..., per=..., basis=...)``, if any."""
    if kwargs.get("budget") is None:
        return None
    per = str(kwargs.get("per", "iteration"))
    if per not in PER:
        raise BudgetError(f"energy marker per={per!r}: expected 'iteration', '1000' or 'test'")
    basis = str(kwargs.get("basis", "gross"))
    if basis not in BASES:
        raise BudgetError(f"energy marker basis={basis!r}: expected 'gross' or 'net'")
    try:
        limit = parse_energy(kwargs["budget"])
    except EnergyValueError as error:
        raise BudgetError(f"energy marker budget={kwargs['budget']!r}: {error.reason}") from None
    return EnergyBudget(limit, per, basis)


@dataclass(frozen=True)
class Figure:
    """What a budget is checked on: the records' energy under its terms, and the part of it measured."""

    value: float
    uncertainty: float
    methods: str  # "counter,modelled"
    what: str  # "per iteration", "for the test"
    measured: float  # the part of ``value`` the devices that are neither modelled nor shared drew
    modelled: str  # "" where no part is modelled, else where the model's figures come from
    shared: str = ""  # "" where no device is shared with other xdist workers, else which and with how many

    def describe(self, budget: EnergyBudget) -> str:
        return (f"{format_energy(self.value)} ± {format_energy(self.uncertainty)} {self.what} ({budget.basis}, "
                f"{self.methods}) > budget {budget.describe()}")


def _device_joules(record: Record, basis: str) -> float:
    """The record's joules (over its valid rounds) on the devices that are neither modelled nor shared."""
    return sum(c.gross_joules if basis == "gross" else c.net_joules for c in record.components
               if c.method != "modelled" and c.shared_with < 2)


def shared_from(records: list[Record]) -> str:
    """The records' devices shared with other xdist workers: "gpu:0 shared with 2 workers"; "" where none."""
    shared = {c.device: c.shared_with for r in records for c in r.components if c.shared_with > 1}
    return ", ".join(f"{device} shared with {workers} workers" for device, workers in sorted(shared.items()))


def modelled_from(records: list[Record]) -> str:
    """Where the records' modelled energy comes from: the modelled CPU's TDP and its source (CodeCarbon's
    table, its 85 W default, or ``--energy-cpu-tdp``), or the RAM's rule; "" where nothing is modelled."""
    devices = {c.device for r in records for c in r.components if c.method == "modelled"}
    if not devices:
        return ""
    fingerprint = records[0].fingerprint
    if "cpu" in devices and fingerprint.get("cpu_tdp_watts"):
        source = fingerprint.get("cpu_tdp_source") or "of unknown source"
        return f"modelled CPU TDP {fingerprint['cpu_tdp_watts']:g} W, {source}"
    return f"modelled {', '.join(sorted(devices))}"


def _measured(records: list[Record], budget: EnergyBudget) -> Figure:
    """The records' figure under one budget's terms."""
    methods = ",".join(sorted({m for r in records for m in r.methods}))
    modelled = modelled_from(records)
    if budget.per == "test":
        value = sum(r.total_gross_joules if budget.basis == "gross" else r.total_net_joules for r in records)
        spread = math.sqrt(sum((r.per_iteration_uncertainty_joules * r.iterations) ** 2 for r in records))
        return Figure(value, spread, methods, "for the test", sum(_device_joules(r, budget.basis) for r in records),
                      modelled, shared_from(records))
    record = records[0]
    scale = PER[budget.per]
    value = (record.per_iteration_gross_joules if budget.basis == "gross" else record.per_iteration_net_joules)
    return Figure(value * scale, record.per_iteration_uncertainty_joules * scale, methods, _per_text(budget.per),
                  _device_joules(record, budget.basis) / record.iterations * scale, modelled, shared_from([record]))


def _no_figure(record: Record) -> str:
    """Why a record has no energy figure a budget could be checked on."""
    if not record.rounds:
        return "the measurement did not finish"
    if not record.components:
        return "no device could be measured"
    notes = [f"{c.device}: {c.note}" for c in record.components if c.note]
    return "every window was invalid" + (f" ({notes[0]})" if notes else "")


def _entries(record: Record) -> list[dict[str, Any]]:
    entries = record.criteria.get("energy")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def not_checked(record: Record) -> list[dict[str, Any]]:
    """The record's budgets that could not be checked (see :func:`check`), each with its ``state``."""
    return [e for e in _entries(record) if e.get("met") is None]


def missed_quality(record: Record) -> dict[str, dict[str, Any]]:
    """The record's quality entries whose budget it missed, by metric (a quality budget always gates)."""
    return {metric: entry for metric, entry in record.quality.items()
            if isinstance(entry, dict) and entry.get("budget_met") is False}


def failed_budgets(record: Record) -> list[dict[str, Any]]:
    """The record's budgets it exceeded that fail its test (not those only a modelled estimate exceeded)."""
    return [e for e in _entries(record) if e.get("met") is False and e.get("gating", True) is not False]


def missed_lines(record: Record, test_records: list[Record]) -> list[str]:
    """Each budget of ``record`` it exceeded and failed its test on, as one line with the figure that
    exceeded it (:meth:`Figure.describe`); a per-test budget's figure sums ``test_records``, the records of
    the record's test, as :func:`check` did."""
    lines = []
    for entry in failed_budgets(record):
        try:
            budget = EnergyBudget(float(entry["limit_joules"]), str(entry["per"]), str(entry["basis"]))
            group = [r for r in test_records if r.valid] if budget.per == "test" else [record]
            lines.append(f"energy budget: {_measured(group, budget).describe(budget)}")
        except (KeyError, TypeError, ValueError, ZeroDivisionError):  # an entry from an odd document: say the terms
            lines.append(f"energy budget: {entry.get('limit_joules')} J per {entry.get('per')} exceeded")
    return lines


def over_modelled(record: Record) -> list[dict[str, Any]]:
    """The record's budgets only a modelled estimate (:data:`MODELLED_OVER`) or a device shared with other
    xdist workers (:data:`SHARED_OVER`) exceeded, with their ``state`` and ``detail``."""
    return [e for e in _entries(record) if e.get("met") is False and e.get("gating", True) is False]


def check(budgets: Iterable[EnergyBudget], records: list[Record], nodeid: str, *, gate_modelled: bool = False) -> None:
    """Raise :class:`EnergyBudgetExceeded` for the first budget the test's records exceed.

    Per-iteration budgets apply to every measurement of the test; the per-test budget to their sum.
    Every budget is kept on the records it applies to (``criteria["energy"]``) with whether it was met.
    A record with no valid window has no figure to check: its budgets are kept with ``met`` None and the
    state "not checked: <why>", and so is a per-test budget its other records stay under (their sum
    lacks it), for the gate to fail on (a budget nobody could check never passes).

    A budget exceeded only with modelled energy in the figure (its measured devices alone stay under it)
    fails nothing unless ``gate_modelled``: it is kept with ``met`` False, ``gating`` False, the state
    :data:`MODELLED_OVER` and a ``detail`` naming the figure and the model's TDP, for the gate to report.
    A budget exceeded only with a shared device's energy in the figure is kept so too, with the state
    :data:`SHARED_OVER`, whatever ``gate_modelled`` says.
    """
    valid = [r for r in records if r.valid]
    invalid = [r for r in records if not r.valid]
    failure = ""
    for budget in budgets:
        terms = {"limit_joules": budget.limit_joules, "per": budget.per, "basis": budget.basis}
        unchecked = {id(r): (r, f"not checked: {_no_figure(r)}") for r in invalid}
        groups = ([valid] if valid else []) if budget.per == "test" else [[r] for r in valid]
        for group in groups:
            figure = _measured(group, budget)
            met = figure.value <= budget.limit_joules
            if met and budget.per == "test" and invalid:  # under it without them: the test's total is unknown
                why = (f"not checked: {len(invalid)} of the test's measurements have no energy figure, so its "
                       "total is unknown")
                unchecked.update({id(r): (r, why) for r in group})
                continue
            # Modelled and shared energy do not gate: only the part measured on the test's own devices over the
            # budget fails the test (modelled energy does with --energy-gate-modelled).
            estimated = bool(figure.modelled) and not gate_modelled
            gating = met or not (estimated or figure.shared) or figure.measured > budget.limit_joules
            entry: dict[str, Any] = {**terms, "met": met}
            if not gating:
                why = "; ".join(part for part in (figure.shared, figure.modelled) if part)
                entry.update(gating=False, state=SHARED_OVER if figure.shared else MODELLED_OVER,
                             detail=f"{figure.describe(budget)}; {why}")
            for record in group:  # every budget is recorded, the exceeded ones too, before failing
                record.criteria.setdefault("energy", []).append(dict(entry))
            if gating and not met and not failure:
                label = f" [{group[0].label}]" if budget.per != "test" and group[0].label else ""
                failure = f"energy budget exceeded{label}: {figure.describe(budget)}"
                failure += "".join(f"; {part}" for part in (figure.modelled, figure.shared) if part)
                if estimated or figure.shared:  # it fails on what its own devices measured, whatever else adds
                    failure += f"; the measured devices alone: {format_energy(figure.measured)}"
        for record, state in unchecked.values():
            record.criteria.setdefault("energy", []).append({**terms, "met": None, "state": state})
    if failure:
        raise EnergyBudgetExceeded(failure)
