"""The end-of-session energy table in pytest's terminal summary, drawn with rich.

Rich renders into a string sized to pytest's terminal writer and the string goes through the terminal
reporter, so output capture, ``-q``, ``NO_COLOR`` and a non-terminal output (a pipe, a CI log) behave
as the rest of pytest's output does. Regressions come last, next to the summary line people read.
"""

from __future__ import annotations

import os
from io import StringIO
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .model import Report, Row, fmt

STYLE = {"regression": "bold red", "inconclusive": "yellow", "improvement": "green", "new": "cyan",
         "unchanged": "", "incomparable": "magenta", "": "dim"}
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


def _energy(row: Row) -> Text:
    text = Text(f"{fmt(row.per_iteration_net)} J")
    if row.wh_per_1000 is not None:
        text.append(f"\n{fmt(row.wh_per_1000)} Wh/1k inf", style="dim")
    return text


def _table(rows: list[Row], verbosity: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=False)
    table.add_column("verdict", no_wrap=True)
    table.add_column("test", overflow="fold", ratio=1)
    table.add_column("energy/iter", justify="right", no_wrap=True)
    table.add_column("±", justify="right", no_wrap=True)
    table.add_column("CO2 g", justify="right", no_wrap=True)
    table.add_column("quality", overflow="fold")
    table.add_column("vs baseline [interval]", justify="right", overflow="fold")
    table.add_column("method", overflow="fold")
    for row in rows:
        status = row.status or "-"
        verdict = Text(status, style=STYLE.get(row.status, ""))
        if row.status == "regression" and not row.gating:
            verdict.append(" (not gating)", style="dim")
        if row.record.outcome == "failed":
            verdict.append("\ntest failed", style="red")
        table.add_row(
            verdict,
            Text(row.name),
            _energy(row),
            Text(fmt(row.uncertainty, 2)),
            Text(fmt(row.record.co2_grams, 3)),
            Text("\n".join(q.text for q in row.quality)),
            Text(row.change.text if row.change else "", style=STYLE.get(row.status, "")),
            Text(row.methods),
        )
        if verbosity > 0:
            for message in row.messages:
                table.add_row("", Text(message, style="dim"), "", "", "", "", "", "")
    return table


def render(report: Report, terminalreporter: Any, verbosity: int) -> None:
    """Write the energy table, the totals line and the gate's lines to pytest's terminal reporter.

    ``verbosity < 0`` (``-q``): the totals line and the regressions only; ``0``: up to
    :data:`DEFAULT_ROWS` rows with every regression; ``> 0``: every row with its verdict messages.
    """
    console = _console(terminalreporter)
    rows = list(reversed(report.rows))  # regressions last
    if verbosity < 0:
        rows = [row for row in rows if row.status == "regression"]
    elif verbosity == 0 and len(rows) > DEFAULT_ROWS:
        hidden = len(rows) - DEFAULT_ROWS
        keep = {id(row) for row in report.regressions}
        rows = [row for i, row in enumerate(rows) if i >= hidden or id(row) in keep]
        console.print(Text(f"{len(report.rows) - len(rows)} rows not shown here (-v shows all, "
                           "the HTML report has every one)", style="dim"))
    if rows:
        console.print(_table(rows, verbosity))
    console.print(Text(report.totals.line))
    for line in report.gate_summary:
        console.print(Text(line, style="bold red" if report.gate_failed else "yellow"))
    for line in report.errors:
        console.print(Text(line, style="red"))
    terminalreporter.write_sep("=", "energy", bold=True)
    terminalreporter.write(console.file.getvalue())  # type: ignore[attr-defined]
