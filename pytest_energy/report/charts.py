"""Inline SVG charts for the HTML report: energy against quality with its Pareto front, energy and
quality against sparsity for a pruning sweep, a power timeline, and trend lines with their step changes. No script, no external resource: every chart is
markup in the page, and every piece of test-supplied text in it is escaped."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from ..core.facts import Pruned
from ..core.units import fmt
from .model import QualityChart
from .styles import css_class
from .trends import Trend, TrendPoint

#: A trend draws a dot per run up to this many runs.
MAX_DOTS = 120


def _ticks(low: float, high: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values covering [low, high] (whole numbers only where ``whole``)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1, round(step))
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


class _Axis:
    """Maps data values to pixels, linear or log10 (chosen where values span over 50x)."""

    def __init__(self, values: list[float], start: float, end: float, log: bool | None = None,
                 whole: bool = False) -> None:
        low, high = min(values), max(values)
        self.whole = whole
        self.log = log if log is not None else (low > 0 and high / low > 50)
        if self.log:
            low, high = math.log10(low), math.log10(high)
        pad = (high - low) * 0.06 or abs(high) * 0.1 or 1.0
        self.low, self.high, self.start, self.end = low - pad, high + pad, start, end

    def __call__(self, value: float) -> float:
        value = math.log10(value) if self.log else value
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0 ** e for e in range(math.ceil(self.low), math.floor(self.high) + 1)]
        return _ticks(self.low, self.high, whole=self.whole)


def _frame(width: int, height: int, label: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        + "".join(body) + "</svg>"
    )


def _y_grid(y: _Axis, left: int, top: int, right: int, bottom: int) -> list[str]:
    """The horizontal grid lines and their value labels of a chart's y axis."""
    parts = []
    for tick in y.ticks():
        py = y(tick)
        if top <= py <= bottom:
            parts.append(f'<line class="grid" x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}"/>'
                         f'<text class="tick" x="{left - 4}" y="{py + 4:.1f}" text-anchor="end">{fmt(tick, 3)}</text>')
    return parts


def _axes(x: _Axis, y: _Axis, left: int, top: int, right: int, bottom: int, x_label: str, y_label: str
          ) -> list[str]:
    parts = [f'<rect class="plot" x="{left}" y="{top}" width="{right - left}" height="{bottom - top}"/>']
    for tick in x.ticks():
        px = x(tick)
        if left <= px <= right:
            parts.append(f'<line class="grid" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}"/>'
                         f'<text class="tick" x="{px:.1f}" y="{bottom + 14}" text-anchor="middle">{fmt(tick, 3)}</text>')
    parts += _y_grid(y, left, top, right, bottom)
    parts.append(f'<text class="axis" x="{(left + right) / 2:.0f}" y="{bottom + 30}" text-anchor="middle">'
                 f'{escape(x_label)}</text>')
    parts.append(f'<text class="axis" transform="translate(12 {(top + bottom) / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    return parts


def quality_scatter(chart: QualityChart) -> Markup:
    """Energy per iteration (x) against one quality metric (y); the Pareto front joined by a line."""
    width, height, left, top, right, bottom = 640, 340, 76, 14, 624, 296
    points = chart.points
    x = _Axis([p.energy for p in points], left, right)
    y = _Axis([p.quality for p in points], bottom, top, log=False)
    parts = _axes(x, y, left, top, right, bottom,
                  f"net J per {chart.unit}" + (" (log scale)" if x.log else ""), chart.metric)
    front = sorted((p for p in points if p.on_front), key=lambda p: p.energy)
    if len(front) > 1:
        path = " ".join(f"{x(p.energy):.1f},{y(p.quality):.1f}" for p in front)
        parts.append(f'<polyline class="front" points="{path}"/>')
    for point in points:
        css = css_class(point.status) + (" on-front" if point.on_front else "")
        parts.append(
            f'<a href="#r{point.row}"><circle class="dot {css}" cx="{x(point.energy):.1f}" '
            f'cy="{y(point.quality):.1f}" r="{5 if point.on_front else 4}"><title>{escape(point.name)}: '
            f'{fmt(point.energy)} J, {escape(chart.metric)} {fmt(point.quality)}'
            f'{" (Pareto front)" if point.on_front else ""}</title></circle></a>'
        )
        if point.on_front:  # the few points worth naming on the page; every point has its tooltip
            short = point.name.rsplit("::", 1)[-1]
            short = short if len(short) <= 28 else short[:27] + "…"
            parts.append(f'<text class="label" x="{x(point.energy) + 7:.1f}" y="{y(point.quality) - 6:.1f}">'
                         f'{escape(short)}</text>')
    return _frame(width, height, f"energy against {chart.metric}, Pareto front marked", parts)


def power_timeline(samples: list[tuple[float, float]], idle_watts: float | None = None) -> Markup:
    """Sampled power (W) over the measured time (s), with the device's idle power as a dashed line."""
    width, height, left, top, right, bottom = 640, 200, 76, 10, 624, 160
    x = _Axis([t for t, _ in samples], left, right, log=False)
    watts = [w for _, w in samples] + ([idle_watts] if idle_watts else [])
    y = _Axis([0.0, *watts], bottom, top, log=False)
    parts = _axes(x, y, left, top, right, bottom, "seconds", "watts")
    if idle_watts:
        parts.append(f'<line class="idle" x1="{left}" y1="{y(idle_watts):.1f}" x2="{right}" '
                     f'y2="{y(idle_watts):.1f}"><title>idle {fmt(idle_watts)} W</title></line>')
    path = " ".join(f"{x(t):.1f},{y(w):.1f}" for t, w in samples)
    parts.append(f'<polyline class="power" points="{path}"/>')
    return _frame(width, height, "power timeline", parts)


def _times(points: list[TrendPoint]) -> list[float]:
    """Each point's run time in seconds, for a time axis; the run's position where a time is unreadable
    (an axis of times would then lie)."""
    try:
        return [datetime.fromisoformat(p.started.replace("Z", "+00:00")).timestamp() for p in points]
    except ValueError:
        return [float(i) for i in range(len(points))]


def _time_ticks(points: list[TrendPoint], at: list[float], count: int = 4) -> list[tuple[float, str, str]]:
    """Up to ``count`` points spread over the series, labelled by their date and commit."""
    chosen = sorted({round(k * (len(points) - 1) / max(count - 1, 1)) for k in range(count)})
    return [(at[i], points[i].started[:10], points[i].commit[:7]) for i in chosen]


def trend_line(trend: Trend) -> Markup:
    """Net joules per iteration over the runs' dates (oldest left), ticks naming date and commit; steps
    drawn as red markers between the last run before and the first after."""
    width, height, left, top, right, bottom = 400, 168, 76, 10, 384, 110
    values = [p.joules for p in trend.points]
    at = _times(trend.points)
    x = _Axis(at, left, right, log=False)
    y = _Axis(values, bottom, top, log=False)
    parts = [f'<rect class="plot" x="{left}" y="{top}" width="{right - left}" height="{bottom - top}"/>']
    parts += _y_grid(y, left, top, right, bottom)
    kept = -math.inf
    for px, date, commit in _time_ticks(trend.points, at):
        if x(px) - kept < 70:  # labels closer than their width would overlap: the earlier one stays
            continue
        kept = x(px)
        parts.append(f'<line class="grid" x1="{x(px):.1f}" y1="{top}" x2="{x(px):.1f}" y2="{bottom}"/>'
                     f'<text class="tick" x="{x(px):.1f}" y="{bottom + 14}" text-anchor="middle">{escape(date)}</text>'
                     + (f'<text class="tick" x="{x(px):.1f}" y="{bottom + 26}" text-anchor="middle">'
                        f'{escape(commit)}</text>' if commit else ""))
    parts.append(f'<text class="axis" transform="translate(12 {(top + bottom) / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">J / iteration</text>')
    path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(at, values))
    parts.append(f'<polyline class="trend" points="{path}"/>')
    # Dots (with their tooltips) for a readable number of runs; a long series is its line alone.
    for t, point in zip(at, trend.points) if len(at) <= MAX_DOTS else ():
        css = css_class(point.status)
        where = ", ".join(part for part in (point.commit[:12], point.runner) if part)
        parts.append(f'<circle class="dot small {css}" cx="{x(t):.1f}" cy="{y(point.joules):.1f}" r="2.5">'
                     f'<title>{escape(point.started)}{escape(f" ({where})" if where else "")}: {fmt(point.joules)} J '
                     f'({escape(point.status or "-")})</title></circle>')
    for step in trend.steps:
        px = (x(at[step.index - 1]) + x(at[step.index])) / 2  # between the last run before and the first after
        parts.append(f'<line class="step" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}">'
                     f'<title>step {escape(step.text)}: {fmt(step.before)} J to {fmt(step.after)} J</title></line>')
    return _frame(width, height, f"trend of {trend.name}", parts)


def sparsity_sweeps(rows: list[Any]) -> list[tuple[str, list[Any]]]:
    """The pruning sweeps among the report's rows: ``(sweep name, its magnitude levels by sparsity)``.

    A level is a case record pruned by global magnitude pruning (``case.pruned``; the 2:4 level is
    another kind of sparsity and is left off the line); a sweep needs two levels or more.
    """
    sweeps: dict[str, list[Any]] = {}
    for row in rows:
        if _pruned(row) is not None and _pruned(row).magnitude:
            sweeps.setdefault(row.record.name.split("[", 1)[0], []).append(row)
    return [(name, sorted(levels, key=lambda r: _pruned(r).weight_sparsity))
            for name, levels in sweeps.items() if len(levels) > 1]


def _pruned(row: Any) -> Pruned | None:
    return row.record.case.pruned if row.record.case is not None else None


def _first_quality(record: Any) -> tuple[str, float] | None:
    for metric, entry in record.quality.items():
        if isinstance(entry, dict) and isinstance(entry.get("value"), (int, float)):
            return metric, float(entry["value"])
    return None


def sparsity_chart(name: str, levels: list[Any]) -> Markup:
    """Energy (left axis, blue) and quality (right axis, amber) of a pruning sweep against weight sparsity:
    where the zeros save no work the energy line stays flat, and the quality line shows where it breaks."""
    width, height, left, top, right, bottom = 640, 300, 76, 14, 572, 256
    sparsity = [100 * _pruned(r).weight_sparsity for r in levels]
    energy = [r.record.per_iteration_net_joules for r in levels]
    scores = [_first_quality(r.record) for r in levels]
    x = _Axis(sparsity, left, right, log=False)
    y = _Axis([0.0, *energy], bottom, top, log=False)
    unit = levels[0].record.unit
    parts = _axes(x, y, left, top, right, bottom, "weight sparsity (%)", f"net J per {unit}")
    path = " ".join(f"{x(s):.1f},{y(e):.1f}" for s, e in zip(sparsity, energy))
    parts.append(f'<polyline class="trend" points="{path}"/>')
    for s, e, row in zip(sparsity, energy, levels):
        parts.append(f'<a href="#{row.anchor}"><circle class="dot small" cx="{x(s):.1f}" cy="{y(e):.1f}" r="3">'
                     f'<title>{escape(row.record.name)}: {fmt(e)} J</title></circle></a>')
    known = [(s, q) for s, q in zip(sparsity, scores) if q is not None]
    if known:
        metric = known[0][1][0]
        q_axis = _Axis([0.0, 1.0, *(q[1] for _, q in known)], bottom, top, log=False)
        for tick in q_axis.ticks():
            py = q_axis(tick)
            if top <= py <= bottom:
                parts.append(f'<text class="tick" x="{right + 4}" y="{py + 4:.1f}">{fmt(tick, 3)}</text>')
        parts.append(f'<text class="axis" transform="translate({width - 10} {(top + bottom) / 2:.0f}) rotate(90)" '
                     f'text-anchor="middle">{escape(metric)}</text>')
        path = " ".join(f"{x(s):.1f},{q_axis(q[1]):.1f}" for s, q in known)
        parts.append(f'<polyline class="quality" points="{path}"/>')
        for s, q in known:
            parts.append(f'<circle class="dot small quality" cx="{x(s):.1f}" cy="{q_axis(q[1]):.1f}" r="3">'
                         f'<title>{fmt(s, 3)} % sparse: {escape(q[0])} {fmt(q[1])}</title></circle>')
    return _frame(width, height, f"energy and quality of {name} against sparsity", parts)
