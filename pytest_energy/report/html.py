"""The self-contained HTML report: one file, inline CSS and SVG, no script and no external resource.

Jinja2 renders it with autoescaping on, so every test name, label, metric or message supplied by a
test is shown as text, never interpreted as markup.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape
from pathlib import Path

import jinja2
from markupsafe import Markup

from ..core.units import fmt, percent_change
from ..store.locking import atomic_write_text
from . import charts, exports
from .fleet import Fleet
from .model import MAX_KEYED, Report
from .sparkline import SPARKLINE_RUNS, sparkline
from .styles import CSS_CLASS

TEMPLATES = Path(__file__).parent / "templates"
STARS = "★★★★★"


def facts(lines: list[tuple[str, str]]) -> Markup:
    """(label, text) lines (a row's :meth:`Row.facts` or :meth:`Row.folded`) as ``<dt>``/``<dd>`` pairs,
    every text escaped. Built here rather than in the template because a 10,000-record report has
    100,000 of them: one escape call per text and one join keep the whole page under the 2 s render bound."""
    return Markup("".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in lines))


def breakable(name: str) -> Markup:
    """A test name, escaped, that a narrow column wraps after a ``::`` or before a ``[`` rather than
    inside a word."""
    return Markup(escape(name).replace("::", "::<wbr>").replace("[", "<wbr>["))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The report's Jinja2 environment (autoescape on for every template)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(fmt=fmt, percent=percent_change, breakable=breakable)
    env.globals.update(
        task_energy_chart=charts.task_energy_chart,
        quality_scatter=charts.quality_scatter,
        sparsity_chart=charts.sparsity_chart,
        served_chart=charts.served_chart,
        arm_bars=charts.arm_bars,
        max_keyed=MAX_KEYED,
        power_timeline=charts.power_timeline,
        trend_line=charts.trend_line,
        sparkline=sparkline,
        sparkline_runs=SPARKLINE_RUNS,
        facts=facts,
        model_card_block=exports.model_card_block,
        status_class=CSS_CLASS,
        stars=lambda n: STARS[:n] + "☆" * (5 - n),
    )
    return env


def render(report: Report) -> str:
    """The report as one HTML document."""
    return environment().get_template("report.html.j2").render(report=report)


def write(report: Report, path: Path) -> str:
    """Render ``report`` to ``path`` atomically; the line to show for it."""
    atomic_write_text(path, render(report))
    return f"HTML report: {path}"


def render_fleet(fleet: Fleet) -> str:
    """The nightly report of a fleet as one HTML document."""
    return environment().get_template("nightly.html.j2").render(fleet=fleet)


def write_fleet(fleet: Fleet, path: Path) -> None:
    """Render the nightly report to ``path`` atomically."""
    atomic_write_text(path, render_fleet(fleet))
