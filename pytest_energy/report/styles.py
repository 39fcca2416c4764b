"""How each verdict status looks: its CSS class in the HTML report and its charts, and its rich style in
the terminal table, kept in one table so the three never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from ..judge.verdict import Status


@dataclass(frozen=True)
class StatusStyle:
    css: str  # class of badges, rows and chart dots (colours in templates/_style.css.j2)
    terminal: str  # rich style of the verdict and change cells


STYLES = {
    Status.MODEL_CHANGED: StatusStyle("s-mod", "bold magenta"),
    Status.REGRESSION: StatusStyle("s-reg", "bold red"),
    Status.INCONCLUSIVE: StatusStyle("s-inc", "yellow"),
    Status.IMPROVEMENT: StatusStyle("s-imp", "green"),
    Status.NEW: StatusStyle("s-new", "cyan"),
    Status.UNCHANGED: StatusStyle("s-unc", ""),
    Status.INCOMPARABLE: StatusStyle("s-icp", "magenta"),
    Status.NOT_JUDGED: StatusStyle("s-none", "dim"),
}
#: The CSS class per status word, as the templates look it up.
CSS_CLASS = {status: style.css for status, style in STYLES.items()}


def css_class(status: str) -> str:
    """The CSS class of a status ("s-none" for one that is not a status)."""
    return CSS_CLASS.get(status, "s-none")


def terminal_style(status: str) -> str:
    """The rich style of a status ("" for one that is not a status)."""
    style = STYLES.get(status)  # type: ignore[call-overload]
    return style.terminal if style else ""
