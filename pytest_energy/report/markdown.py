"""The report in GitHub-flavoured markdown: one renderer for the pull-request comment (``--energy-markdown``,
``pytest-energy report --from-json RUN.json --markdown``) and the job's step summary (``$GITHUB_STEP_SUMMARY``).

Its first line is the run's headline (the outcome and what decided it, the words every report shows); then
the totals, the gate's lines, the regressions, model changes and failed tests with their energy change and
its interval and the budgets they missed with the measured figure; then every record in a folded table;
last, a hidden marker (:data:`MARKER`) by which a workflow finds its own comment to update. The text stays
within ``limit`` characters (GitHub refuses a comment over 65,536): lines are dropped from the end of each
list, the full table's first and the failures' last, each list then saying in one line how many it leaves
out.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..core.units import fmt, percent
from ..judge.verdict import CONFIDENCE
from ..store.locking import atomic_write_text
from .model import Report, Row

#: GitHub's limit on a comment's body, in characters.
COMMENT_LIMIT = 65_536
#: The comment's last line: a workflow finds the comment it updates by it (an HTML comment, not shown).
MARKER = "<!-- pytest-energy -->"
_CHANGE = f"change vs baseline [{percent(CONFIDENCE)} interval]"
_URGENT_HEADER = ["| verdict | test | energy / iteration | " + _CHANGE + " | why |", "| --- | --- | --- | --- | --- |"]
_TABLE_HEADER = ["| verdict | test | energy / iteration | CO2 g | quality | " + _CHANGE + " |",
                 "| --- | --- | --- | --- | --- | --- |"]


def _md(text: str) -> str:
    """Test-supplied text safe in a markdown table cell (GitHub renders inline HTML)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([|`*_\\[\]])", r"\\\1", text).replace("\n", " ")


def _energy(row: Row) -> str:
    energy = f"{fmt(row.per_iteration_net)} J ± {fmt(row.uncertainty)} J per {row.per}"
    if row.wh_per_1000 is not None:
        energy += f" ({fmt(row.wh_per_1000)} Wh gross / 1,000 inferences)"
    return f"{energy} ({_md(row.methods)})"


def _change(row: Row) -> str:
    if row.change is not None:
        return row.change.text
    return f"see note {row.note_ref}" if row.note_ref else _md(row.interval_note) or "-"


def _verdict(row: Row) -> str:
    """The row's status, and that its test failed where it did (its verdicts are shown, not gating)."""
    if not row.test_failed:
        return str(row.status) or "-"
    return f"{row.status}, test failed" if row.status else "test failed"


def _why(row: Row) -> str:
    """What makes the row urgent: the budgets it missed, the verdict that decided it, or its failed test."""
    reasons = row.missed_budgets or ([row.decided_by] if row.decided_by and row.status.fails else [])
    if not reasons and row.test_failed:
        reasons = ["its set-up or teardown failed" if row.record.outcome == "error" else "its test failed"]
    return "<br>".join(_md(reason) for reason in reasons) or "-"


def _urgent_line(row: Row) -> str:
    return f"| {_verdict(row)} | {_md(row.name)} | {_energy(row)} | {_change(row)} | {_why(row)} |"


def _table_line(row: Row) -> str:
    return (f"| {_verdict(row)} | {_md(row.name)} | {_energy(row)} | {fmt(row.record.co2_grams)} | "
            f"{_md(row.quality_text) or '-'} | {_change(row)} |")


def _assemble(report: Report, gate: list[str], urgent: list[str], notes: list[str], table: list[str]) -> list[str]:
    """The markdown's lines around the four lists given (each as much of it as fits, with its note)."""
    lines = [f"### pytest-energy {_md(report.headline.text)}", "", _md(report.totals.line), ""]
    lines += [*gate, ""] if report.gate_summary or report.errors else []
    if report.urgent:
        lines += [f"#### Regressions, model changes and failed tests ({len(report.urgent)})", "", *_URGENT_HEADER,
                  *urgent, ""]
    if report.shared_notes:
        lines += ["Notes shared by many rows:", "", *notes, ""]
    return lines + [f"<details><summary>All {len(report.rows)} results</summary>", "", *_TABLE_HEADER, *table,
                    "", "</details>", "", MARKER]


def render(report: Report, limit: int = COMMENT_LIMIT) -> str:
    """The report as markdown of at most ``limit`` characters (see the module's docstring)."""
    lists = {  # in the order they are given room: what failed first, the full table last
        "urgent": ([_urgent_line(row) for row in report.urgent],
                   "\n... {} more not shown: see the table below, the HTML report or the JSON artifact"),
        "gate": ([f"- {_md(line)}" for line in report.gate_summary + report.errors],
                 "- ... {} more lines not shown: see the job's log or the JSON artifact"),
        "notes": ([f"{number}. {_md(note)}" for number, note in enumerate(report.shared_notes, 1)],
                  "\n... {} more notes not shown: see the HTML report"),
        "table": ([_table_line(row) for row in report.rows],
                  "\n... {} more rows not shown: see the HTML report / JSON artifact"),
    }
    # Each line takes its length and a newline; the note a list may need is set aside until it fits whole.
    reserved = {name: len(more.format(len(lines))) + 1 if lines else 0 for name, (lines, more) in lists.items()}
    room = limit - sum(len(line) + 1 for line in _assemble(report, [], [], [], [])) - sum(reserved.values())
    fitted: dict[str, list[str]] = {}
    for name, (lines, more) in lists.items():
        kept = []
        for line in lines:
            if len(line) + 1 > room:
                break
            kept.append(line)
            room -= len(line) + 1
        if len(kept) < len(lines):
            kept.append(more.format(len(lines) - len(kept)))
        else:
            room += reserved[name]
        fitted[name] = kept
    return "\n".join(_assemble(report, fitted["gate"], fitted["urgent"], fitted["notes"], fitted["table"])) + "\n"


def write(report: Report, path: Path) -> str:
    """``--energy-markdown``: the markdown for a pull-request comment, written atomically at ``path``."""
    text = render(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return f"markdown summary (pull-request comment, {len(text):,} characters): {path}"


def append_step_summary(report: Report, path: Path) -> str:
    """Append the markdown to ``$GITHUB_STEP_SUMMARY``: GitHub collects the step summary by appending, one
    write here."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(render(report))
    return f"markdown summary appended to $GITHUB_STEP_SUMMARY ({path})"
