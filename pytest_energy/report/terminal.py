"""The end-of-session energy table in pytest's terminal summary, drawn with rich.

Rich renders into a string sized to pytest's terminal writer and the string goes through the terminal
reporter, so output capture, ``-q``, ``NO_COLOR`` and a non-terminal output (a pipe, a CI log) behave
as the rest of pytest's output does. The report's headline comes first, in the HTML report's words;
rows come in its order (regressions and failed tests first); the gate's lines after the table repeat
every regression next to the summary line people read.
"""

from __future__ import annotations

import os
from io import StringIO
from typing import Any

from rich.console import Console
from rich.text import Text

from ..core.units import fmt
from ..judge.verdict import Status
from .fleet import Fleet
from .model import Report, Row
from .styles import terminal_style

#: Rows shown at default verbosity (regressions always shown); -v shows every row.
DEFAULT_ROWS = 40


def _console(terminalreporter: Any) -> Console:
    writer = getattr(terminalreporter, "_tw", None)
    markup = bool(getattr(terminalreporter, "hasmarkup", getattr(writer, "hasmarkup", False)))
    plain = not markup or bool(os.environ.get("NO_COLOR"))
    return Console(
        file=StringIO(),
        force_terminal=markup,
        color_system=None if plain else "auto",
        no_color=plain,
        width=int(getattr(writer, "fullwidth", 80) or 80),
        highlight=False,
        emoji=False,
    )


# Net energy (above idle) per iteration is what verdicts compare; budgets say their own basis.
HEADERS = ("verdict", "net energy ± se", "CO2 g total", "method", "vs baseline [interval]", "quality")
RIGHT = (False, True, True, False, True, False)


def _cells(row: Row) -> tuple[str, ...]:
    verdict = (row.status or "-") + (" (not gating)" if row.status.fails and not row.gating else "")
    return (
        verdict,
        f"{fmt(row.per_iteration_net)} J/{row.per} ± {fmt(row.uncertainty, 2)} J",
        fmt(row.record.co2_grams, 3),
        row.methods,
        row.change.text if row.change else "",
        ", ".join(q.text for q in row.quality),
    )


def _table(rows: list[Row], verbosity: int, width: int) -> Text:
    """Each record as a bold name line (never cut: names are what people grep for) over a line of
    figures in aligned columns, so the table reads the same in an 80-column CI log as on a wide screen."""
    cells = [_cells(row) for row in rows]
    # Columns no row fills (no baseline yet, no quality) are left out, to keep lines short.
    shown = [i for i in range(len(HEADERS)) if i < 4 or any(c[i] for c in cells)]
    widths = {i: max([len(HEADERS[i])] + [len(c[i]) for c in cells]) for i in shown}

    def line(values: tuple[str, ...], styles: tuple[str, ...]) -> Text:
        text = Text()
        for i in shown:
            padded = values[i].rjust(widths[i]) if RIGHT[i] else values[i].ljust(widths[i])
            text.append(padded, style=styles[i])
            if i != shown[-1]:
                text.append("  ")
        text.rstrip()
        return text

    out = line(HEADERS, ("bold",) * len(HEADERS))
    out.append("\n" + "─" * min(width, sum(widths.values()) + 2 * (len(widths) - 1)) + "\n")
    for row, values in zip(rows, cells):
        style = terminal_style(row.status)
        out.append(row.name + "\n", style=style if row.status.fails else "bold")
        out.append_text(line(values, (style, "", "", "dim", style, "")))
        out.append("\n")
        extra = []
        if row.model and (row.stand_in or verbosity > 0):  # a stand-in is always named
            extra.append(f"model: {row.model}")
        if row.work is not None and verbosity > 0:
            extra.append(f"{row.work_label}: {fmt(row.work, 6)}")
        if row.decided_by and verbosity <= 0 and row.status in (Status.MODEL_CHANGED, Status.REGRESSION,
                                                                Status.INCONCLUSIVE, Status.IMPROVEMENT):
            extra.append(f"decided by: {row.decided_by}")
        if row.interval_note and (row.change or verbosity > 0):  # the not-compared reason is in -v's messages
            extra.append(row.interval_note)
        elif row.note_ref and verbosity > 0:
            extra.append(f"not compared: see note {row.note_ref} above the table")
        if row.wh_per_1000 is not None:
            extra.append(f"{fmt(row.wh_per_1000)} Wh per 1,000 inferences (gross)")
        if row.generation_text and row.record.label == "decode":  # once per generation test, after both phases
            extra.append(row.generation_text)
        if row.serving_text:
            extra.append(row.serving_text)
        if row.record.outcome in ("failed", "error"):  # what changed is shown; the failure fails the run
            extra.append(f"the test {row.record.outcome}: its verdicts are shown, not gating")
        elif not row.record.judgeable:  # skipped, xfailed, xpassed: recorded, never judged
            extra.append(f"the test {row.record.outcome or 'reported no outcome'}: not judged")
        if verbosity > 0:
            extra += row.messages
        for note in extra:
            out.append(" " * (widths[0] + 2) + note + "\n", style="dim")
    out.rstrip()
    return out


def render(report: Report, terminalreporter: Any, verbosity: int) -> None:
    """Write the energy table, the totals line and the gate's lines to pytest's terminal reporter.

    The report's headline comes first. ``verbosity < 0`` (``-q``): the totals line and the regressions,
    model changes and failed tests only; ``0``: up to :data:`DEFAULT_ROWS` rows with every one of those;
    ``> 0``: every row with its verdict messages, the notes many rows share said once above them.
    """
    console = _console(terminalreporter)
    # The headline first, as in the HTML report and the step summary; green only on a run that passes.
    console.print(Text(f"pytest-energy {report.headline.text}", style="bold green" if report.passed else "bold red"),
                  soft_wrap=True)
    rows = list(report.rows)  # the HTML report's order
    if verbosity < 0:
        rows = [row for row in rows if row.urgent]
    elif verbosity == 0 and len(rows) > DEFAULT_ROWS:
        keep = {id(row) for row in report.urgent}
        rows = [row for i, row in enumerate(rows) if i < DEFAULT_ROWS or id(row) in keep]
        console.print(Text(f"{len(report.rows) - len(rows)} rows not shown here (-v shows all, "
                           "the HTML report has every one)", style="dim"), soft_wrap=True)
    # soft_wrap: rich never inserts line breaks, so a long name stays one greppable line in a log.
    if rows and verbosity > 0:  # a reason many rows share, once (their messages below say it in full)
        for number, note in enumerate(report.shared_notes, 1):
            console.print(Text(f"note {number}: {note}", style="dim"), soft_wrap=True)
    if rows:
        console.print(_table(rows, verbosity, console.width), soft_wrap=True)
    console.print(Text(report.totals.line), soft_wrap=True)
    for line in report.gate_summary:
        console.print(Text(line, style="yellow" if report.passed else "bold red"), soft_wrap=True)
    for line in report.errors:
        console.print(Text(line, style="red"), soft_wrap=True)
    terminalreporter.write_sep("=", "energy", bold=True)
    terminalreporter.write(console.file.getvalue())  # type: ignore[attr-defined]


def fleet_lines(fleet: Fleet) -> list[str]:
    """The nightly report in plain lines: what changed (each change with its test's full name, for
    searching a CI log), then per device kind each test with change points or an urgent latest verdict
    (its verdict, latest joules, change points with their commit range, runners), then how many others
    are steady. The HTML report lists every test."""
    lines = [f"{fleet.title}: {fleet.window}, {fleet.first[:19]} to {fleet.last[:19]}, "
             f"{len(fleet.runners)} runner{'s' if len(fleet.runners) != 1 else ''}; {fleet.tests} tests, "
             f"{fleet.steps} change point{'s' if fleet.steps != 1 else ''}, {fleet.regressions} latest regression"
             f"{'s' if fleet.regressions != 1 else ''}",
             f"What changed: {fleet.changed.summary}"]
    for group in fleet.changed.groups:
        lines += [f"  {group.heading}:"] if group.changes else []
        lines += [f"    {change.test.name} on {change.test.kind}: {change.text}"
                  + (f" ({change.commits})" if change.commits else "") for change in group.changes]
    for kind in fleet.kinds:
        lines.append(f"{kind.kind}: {kind.runs} runs, {len(kind.tests)} tests, runners {', '.join(kind.runners)}")
        steady = 0
        for test in kind.tests:
            if not test.trend.steps and test.status not in ("regression", "inconclusive", "incomparable"):
                steady += 1
                continue
            steps = "; ".join(f"step {step.text}" for step in test.trend.steps) or "no change point"
            lines.append(f"  {test.name}")
            lines.append(f"    {test.status or 'not judged'}, {fmt(test.latest_joules)} J/iteration on "
                         f"{test.last_started[:10]}, {test.runs} runs; {steps}; runners {', '.join(test.runners)}")
        if steady:
            lines.append(f"  {steady} more test{'s' if steady != 1 else ''} without change points or an urgent "
                         "latest verdict")
    return lines + fleet.notes
