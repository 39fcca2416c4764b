"""Energy budgets: parsed from the ``energy`` marker (or added by a case), checked after a test's call.

A budget is on gross joules by default (what the device drew, as the AI Energy Score counts it);
``basis="net"`` budgets the energy above idle. The one failure message names the measured value, its
uncertainty, the budget and the method, so a red test says everything needed to judge it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from .record import Record
from .units import EnergyValueError, format_energy, parse_energy

PER = {"iteration": 1, "1000": 1000, "test": None}
BASES = ("gross", "net")


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


def _measured(records: list[Record], budget: EnergyBudget) -> tuple[float, float, str, str]:
    """(value, uncertainty, methods, what) of the records under one budget's terms."""
    methods = ",".join(sorted({m for r in records for m in r.methods}))
    if budget.per == "test":
        value = sum(r.total_gross_joules if budget.basis == "gross" else r.total_net_joules for r in records)
        spread = math.sqrt(sum((r.per_iteration_uncertainty_joules * r.iterations) ** 2 for r in records))
        return value, spread, methods, "for the test"
    record = records[0]
    scale = PER[budget.per]
    value = (record.per_iteration_gross_joules if budget.basis == "gross" else record.per_iteration_net_joules)
    return value * scale, record.per_iteration_uncertainty_joules * scale, methods, _per_text(budget.per)


def _no_figure(record: Record) -> str:
    """Why a record has no energy figure a budget could be checked on."""
    if not record.rounds:
        return "the measurement did not finish"
    if not record.components:
        return "no device could be measured"
    notes = [f"{c.device}: {c.note}" for c in record.components if c.note]
    return "every window was invalid" + (f" ({notes[0]})" if notes else "")


def not_checked(record: Record) -> list[dict[str, Any]]:
    """The record's budgets that could not be checked (see :func:`check`), each with its ``state``."""
    entries = record.criteria.get("energy")
    return [e for e in entries if isinstance(e, dict) and e.get("met") is None] if isinstance(entries, list) else []


def check(budgets: Iterable[EnergyBudget], records: list[Record], nodeid: str) -> None:
    """Raise :class:`EnergyBudgetExceeded` for the first budget the test's records exceed.

    Per-iteration budgets apply to every measurement of the test; the per-test budget to their sum.
    Every budget is kept on the records it applies to (``criteria["energy"]``) with whether it was met.
    A record with no valid window has no figure to check: its budgets are kept with ``met`` None and the
    state "not checked: <why>", and so is a per-test budget its other records stay under (their sum
    lacks it), for the gate to fail on (a budget nobody could check never passes).
    """
    valid = [r for r in records if r.valid]
    invalid = [r for r in records if not r.valid]
    failure = ""
    for budget in budgets:
        terms = {"limit_joules": budget.limit_joules, "per": budget.per, "basis": budget.basis}
        unchecked = {id(r): (r, f"not checked: {_no_figure(r)}") for r in invalid}
        groups = ([valid] if valid else []) if budget.per == "test" else [[r] for r in valid]
        for group in groups:
            value, uncertainty, methods, what = _measured(group, budget)
            met = value <= budget.limit_joules
            if met and budget.per == "test" and invalid:  # under it without them: the test's total is unknown
                why = (f"not checked: {len(invalid)} of the test's measurements have no energy figure, so its "
                       "total is unknown")
                unchecked.update({id(r): (r, why) for r in group})
                continue
            for record in group:  # every budget is recorded, the exceeded ones too, before failing
                record.criteria.setdefault("energy", []).append({**terms, "met": met})
            if not met and not failure:
                label = f" [{group[0].label}]" if budget.per != "test" and group[0].label else ""
                failure = (f"energy budget exceeded{label}: {format_energy(value)} ± {format_energy(uncertainty)} "
                           f"{what} ({budget.basis}, {methods}) > budget {budget.describe()}")
        for record, state in unchecked.values():
            record.criteria.setdefault("energy", []).append({**terms, "met": None, "state": state})
    if failure:
        raise EnergyBudgetExceeded(failure)
