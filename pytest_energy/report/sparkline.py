"""A trend line small enough for a table row: a test's last runs as one inline SVG line, no axes.

The nightly report draws one per test in its full table; the full trend charts (axes, dates, commits)
are :func:`pytest_energy.report.charts.trend_line`. No script and no external resource; the only text
in it, the tooltip, is escaped.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from ..core.units import fmt
from ..stats.changepoint import STEP_MIN_CHANGE
from .styles import css_class
from .trends import Trend

#: Runs a sparkline shows: the newest ones of the trend.
SPARKLINE_RUNS = 30
WIDTH, HEIGHT, PAD = 120, 22, 2.5


def sparkline(trend: Trend, runs: int = SPARKLINE_RUNS) -> Markup:
    """The newest ``runs`` points of ``trend`` as a line scaled to their own range (the min and max are in
    the tooltip), the newest point a dot coloured by its verdict, each change point among them a red tick
    before its first run; "" where the trend has no point. The height spans at least twice
    STEP_MIN_CHANGE of the points' middle, so noise smaller than a change point draws a nearly flat line,
    not the zigzag of a volatile test."""
    shown = trend.points[-runs:]
    if not shown:
        return Markup("")
    first = len(trend.points) - len(shown)
    values = [p.joules for p in shown]
    low, high = min(values), max(values)
    middle = (low + high) / 2
    span = max(high - low, 2 * STEP_MIN_CHANGE * abs(middle)) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(shown) - 1, 1)
    xs = [PAD + i * step for i in range(len(shown))]
    ys = [HEIGHT / 2 - (v - middle) / span * (HEIGHT - 2 * PAD) for v in values]
    parts = [f'<polyline class="trend" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))}"/>']
    for change in trend.steps:
        if change.index > first:  # drawn between the last run before it and the first after, as the big chart does
            at = (xs[change.index - first - 1] + xs[change.index - first]) / 2
            parts.append(f'<line class="step" x1="{at:.1f}" y1="0" x2="{at:.1f}" y2="{HEIGHT}"/>')
    parts.append(f'<circle class="dot {css_class(shown[-1].status)}" cx="{xs[-1]:.1f}" cy="{ys[-1]:.1f}" r="2.5"/>')
    label = (f"last {len(shown)} run{'s' if len(shown) != 1 else ''}: {fmt(low)} to {fmt(high)} J/iteration, "
             f"latest {fmt(values[-1])} J")
    return Markup(f'<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
                  f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(parts)}</svg>')
