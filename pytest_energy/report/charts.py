"""Inline SVG charts for the HTML report, each answering one question: energy per 1,000 inferences by
task (log axis), energy against quality within one task with its Pareto front, a pruning sweep's energy
and quality against sparsity, a served generation case's energy per output token against concurrency,
the fine-tune arms' bars, a power timeline, and trend lines with their step
changes. No script, no external resource: every chart is markup in the page, and every piece of
test-supplied text in it is escaped.

Every text goes through a :class:`_Canvas`, which draws it only inside the chart and clear of the texts
drawn before it (a label tries its candidate spots in turn; a tick label that has none is left out), so
no label is clipped or overlaps another. Points are numbered, their names in the key table under the
chart; a name cut to fit keeps the whole in its tooltip.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Sequence

from markupsafe import Markup, escape

from ..core.units import fmt
from .model import QualityChart, ServedSweep, SparsitySweep, TaskEnergyChart
from .styles import css_class
from .trends import Trend, TrendPoint

#: A trend draws a dot per run up to this many runs.
MAX_DOTS = 120
#: The charts' font size in px (``svg.chart`` in templates/_style.css.j2); a text is taken to be
#: 0.6 x this wide per character, the width a label's box is placed with.
FONT = 11
Box = tuple[float, float, float, float]  # x0, y0, x1, y1
#: An axis title runs along a chart's edge, its baseline this far in: tick labels keep out of that strip.
TITLE_EDGE = 16
TITLE_AT = 12


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
    """Maps data values to pixels, linear or log10 (chosen where values span over 50x; a log axis spans
    a decade at least, so it has ticks to read)."""

    def __init__(self, values: list[float], start: float, end: float, log: bool | None = None,
                 whole: bool = False) -> None:
        low, high = min(values), max(values)
        self.whole = whole
        self.log = log if log is not None else (low > 0 and high / low > 50)
        if self.log:
            low, high = math.log10(low), math.log10(high)
            middle = (low + high) / 2
            low, high = min(low, middle - 0.5), max(high, middle + 0.5)
        pad = (high - low) * 0.06 or abs(high) * 0.1 or 1.0
        self.low, self.high, self.start, self.end = low - pad, high + pad, start, end

    def __call__(self, value: float) -> float:
        value = math.log10(value) if self.log else value
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:  # decades, and 2 and 5 times them where the axis spans under three decades
            steps = (1,) if self.high - self.low >= 3 else (1, 2, 5)
            return [m * 10.0 ** e for e in range(math.floor(self.low), math.ceil(self.high) + 1) for m in steps
                    if self.low <= math.log10(m * 10.0 ** e) <= self.high]
        return _ticks(self.low, self.high, whole=self.whole)


def _fit(text: str, space: float) -> tuple[str, bool]:
    """``text`` cut (with "…") to fit ``space`` px at :data:`FONT`, and whether it was cut."""
    chars = max(1, int(space / (0.6 * FONT)))
    return (text, False) if len(text) <= chars else (text[:chars - 1] + "…", True)


class _Canvas:
    """A chart's markup and the boxes its texts take. A text is drawn only where its box lies inside the
    chart and clear of every text before it; a label also keeps off the chart's marks where it can."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = []
        self.texts: list[Box] = []
        self.marks: list[Box] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def mark(self, x: float, y: float, radius: float) -> None:
        """A point's marker, which labels keep off where they can."""
        self.marks.append((x - radius, y - radius, x + radius, y + radius))

    def _free(self, box: Box, marks: bool, within: Box | None = None) -> bool:
        x0, y0, x1, y1 = box
        w0, v0, w1, v1 = within or (0, 0, self.width, self.height)
        if x0 < max(0, w0) or y0 < max(0, v0) or x1 > min(self.width, w1) or y1 > min(self.height, v1):
            return False
        return not any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1
                       for b in self.texts + (self.marks if marks else []))

    def text(self, spots: Sequence[tuple[float, float, str]], text: str, css: str = "tick", full: str = "",
             avoid_marks: bool = False, within: Box | None = None) -> bool:
        """Draw ``text`` at the first of ``spots`` (x, baseline y, text-anchor) where it fits (inside
        ``within`` too, where given); ``full``, the uncut text, becomes its tooltip. False where no spot
        fits (the text is left out)."""
        width = 0.6 * FONT * len(text)
        for marks in (True, False) if avoid_marks else (False,):
            for x, y, anchor in spots:
                x0 = x - width * {"start": 0.0, "middle": 0.5, "end": 1.0}[anchor]
                box = (x0 - 1, y - 0.8 * FONT, x0 + width + 1, y + 0.25 * FONT)
                if self._free(box, marks, within):
                    self.texts.append(box)
                    tip = f"<title>{escape(full)}</title>" if full and full != text else ""
                    self.add(f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
                             f'{escape(text)}{tip}</text>')
                    return True
        return False

    def vertical(self, x: float, middle: float, text: str, space: float, down: bool = False) -> None:
        """An axis title turned a quarter (up the left edge, or down the right where ``down``), cut to
        ``space`` px."""
        shown, cut = _fit(text, space)
        length = 0.6 * FONT * len(shown)
        across = (x - 0.25 * FONT, x + 0.8 * FONT) if down else (x - 0.8 * FONT, x + 0.25 * FONT)
        self.texts.append((across[0], middle - length / 2, across[1], middle + length / 2))
        tip = f"<title>{escape(text)}</title>" if cut else ""
        self.add(f'<text class="axis" transform="translate({x:.0f} {middle:.0f}) rotate({90 if down else -90})" '
                 f'text-anchor="middle">{escape(shown)}{tip}</text>')

    def label(self, x: float, y: float, radius: float, text: str, within: Box | None = None) -> bool:
        """A point's label beside it (inside ``within``, its plot or band, where given): right, left,
        above, below, then the corners, then further out."""
        spots = []
        for gap in (radius + 2, radius + 9, radius + 18):
            spots += [(x + gap, y + 4, "start"), (x - gap, y + 4, "end"), (x, y - gap, "middle"),
                      (x, y + gap + 8, "middle"), (x + gap, y - gap, "start"), (x - gap, y - gap, "end"),
                      (x + gap, y + gap + 8, "start"), (x - gap, y + gap + 8, "end")]
        return self.text(spots, text, "label", avoid_marks=True, within=within)

    def svg(self, label: str) -> Markup:
        return Markup(
            f'<svg class="chart" viewBox="0 0 {self.width} {self.height}" width="{self.width}" '
            f'height="{self.height}" role="img" aria-label="{escape(label)}">' + "".join(self.parts) + "</svg>")


def _tick_texts(ticks: list[float]) -> list[tuple[float, str]]:
    """Each tick with its label: three significant digits, more where ticks close together would
    otherwise read alike (1.002 and 1.004 both "1")."""
    digits = next((d for d in range(3, 9) if len({fmt(t, d) for t in ticks}) == len(ticks)), 9)
    return [(t, fmt(t, digits)) for t in ticks]


def _left(y: _Axis, least: int = 76) -> int:
    """The plot's left edge: room for the y axis' widest tick label beside the axis title."""
    widest = max((len(text) for _, text in _tick_texts(y.ticks())), default=0)
    return max(least, math.ceil(TITLE_EDGE + 8 + 0.6 * FONT * widest))


def _x_ticks(canvas: _Canvas, x: _Axis, left: float, top: float, right: float, bottom: float) -> None:
    """The vertical grid lines and the value labels under them (a label with no room is left out)."""
    for value, text in _tick_texts(x.ticks()):
        px = x(value)
        if left <= px <= right:
            canvas.add(f'<line class="grid" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}"/>')
            canvas.text([(px, bottom + 14, "middle"), (px, bottom + 14, "end"), (px, bottom + 14, "start")], text)


def _y_ticks(canvas: _Canvas, y: _Axis, left: float, top: float, right: float, bottom: float,
             grid: bool = True) -> None:
    """The horizontal grid lines and the value labels of a y axis, left of ``left`` (or right of
    ``right`` where ``grid`` is off: a second axis), clear of the axis title along the chart's edge."""
    room = (TITLE_EDGE, 0, canvas.width, canvas.height) if grid else (0, 0, canvas.width - TITLE_EDGE, canvas.height)
    for tick, text in _tick_texts(y.ticks()):
        py = y(tick)
        if top <= py <= bottom:
            if grid:
                canvas.add(f'<line class="grid" x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}"/>')
            canvas.text([(left - 4, py + 4, "end")] if grid else [(right + 4, py + 4, "start")], text, within=room)


def _axes(canvas: _Canvas, x: _Axis, y: _Axis, left: float, top: float, right: float, bottom: float, x_label: str,
          y_label: str) -> None:
    canvas.add(f'<rect class="plot" x="{left}" y="{top}" width="{right - left}" height="{bottom - top}"/>')
    _x_ticks(canvas, x, left, top, right, bottom)
    _y_ticks(canvas, y, left, top, right, bottom)
    canvas.text([((left + right) / 2, bottom + 30, "middle")], _fit(x_label, right - left)[0], "axis", x_label)
    canvas.vertical(TITLE_AT, (top + bottom) / 2, y_label, bottom - top)


def _front_line(canvas: _Canvas, points: list[tuple[float, float]]) -> None:
    if len(points) > 1:
        canvas.add(f'<polyline class="front" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}"/>')


def _marker(x: float, y: float, radius: float, css: str, general_purpose: bool, tip: str) -> str:
    """A point: a circle, or a diamond for a general-purpose model's record."""
    if general_purpose:
        r = radius + 1.5
        return f'<path class="{css} general" d="M{x:.1f} {y - r:.1f}l{r} {r}l{-r} {r}l{-r} {-r}z">{tip}</path>'
    return f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}">{tip}</circle>'


def _lanes(xs: list[float], spacing: float) -> list[int]:
    """A lane for each of ``xs`` (ascending): the first whose last point lies ``spacing`` px or more to
    the left, so points of one lane and their labels beside them never meet."""
    ends: list[float] = []
    lanes = []
    for px in xs:
        lane = next((i for i, end in enumerate(ends) if px - end >= spacing), len(ends))
        ends[lane:lane + 1] = [px]
        lanes.append(lane)
    return lanes


def task_energy_chart(chart: TaskEnergyChart) -> Markup:
    """Gross Wh per 1,000 inferences (log x axis), one band per task, a point per record: a circle for a
    task-specific model, a diamond for a general-purpose one; each numbered as in the key table. Points
    too close for their numbers take lanes of their own within their task's band."""
    width, left, right, top, lane_height = 600, 190, 584, 10, 16
    x = _Axis([p.wh_per_1000 for p in chart.points], left, right, log=True)
    bands = []  # (task, its points with their x and lane, lanes, band top)
    y = top
    for task in chart.tasks:
        points = [p for p in chart.points if p.task == task]  # cheapest first
        xs = [x(p.wh_per_1000) for p in points]
        lanes = _lanes(xs, 32)
        bands.append((task, list(zip(points, xs, lanes)), max(lanes) + 1, y))
        y += max(30, lane_height * (max(lanes) + 1) + 10)
    bottom = y
    canvas = _Canvas(width, bottom + 40)
    canvas.add(f'<rect class="plot" x="{left}" y="{top}" width="{right - left}" height="{bottom - top}"/>')
    _x_ticks(canvas, x, left, top, right, bottom)
    canvas.text([((left + right) / 2, bottom + 30, "middle")], "gross Wh per 1,000 inferences (log scale)", "axis")
    for index, (task, points, lanes, band_top) in enumerate(bands):
        band_bottom = bands[index + 1][3] if index + 1 < len(bands) else bottom
        if index:
            canvas.add(f'<line class="grid" x1="{left}" y1="{band_top}" x2="{right}" y2="{band_top}"/>')
        middle = (band_top + band_bottom) / 2
        canvas.text([(left - 6, middle + 4, "end")], _fit(task, left - 12)[0], "axis", task)
        first = middle - lane_height * (lanes - 1) / 2
        placed = [(px, first + lane_height * lane, point) for point, px, lane in points]
        for px, py, _ in placed:
            canvas.mark(px, py, 5)
        for px, py, point in placed:
            kind = "general-purpose" if point.general_purpose else "task-specific"
            tip = (f"<title>{f'{point.key}. ' if point.key else ''}{escape(point.name)} ({escape(point.model)}), "
                   f"{kind}: {fmt(point.wh_per_1000)} Wh per 1,000</title>")
            marker = _marker(px, py, 4.5, f"dot {css_class(point.status)}", point.general_purpose, tip)
            canvas.add(f'<a href="#r{point.row}">{marker}</a>')
            if point.key:
                canvas.label(px, py, 6, str(point.key), within=(left, band_top, right, band_bottom))
    return canvas.svg("energy per 1,000 inferences by task, log scale")


def quality_scatter(chart: QualityChart) -> Markup:
    """Energy per unit (x) against one quality metric (y) within one task; the Pareto front joined by a
    dashed line; each point numbered as in the key table."""
    width, height, top, right, bottom = 600, 320, 14, 584, 276
    canvas = _Canvas(width, height)
    points = chart.points
    y = _Axis([p.quality for p in points], bottom, top, log=False)
    left = _left(y)
    x = _Axis([p.energy for p in points], left, right)
    _axes(canvas, x, y, left, top, right, bottom,
          f"net J per {chart.unit}" + (" (log scale)" if x.log else ""), chart.metric)
    _front_line(canvas, [(x(p.energy), y(p.quality)) for p in chart.front])
    for point in points:
        canvas.mark(x(point.energy), y(point.quality), 5)
    for point in points:
        px, py = x(point.energy), y(point.quality)
        css = "dot " + css_class(point.status) + (" on-front" if point.on_front else "")
        tip = (f'<title>{f"{point.key}. " if point.key else ""}{escape(point.name)}: {fmt(point.energy)} J, '
               f'{escape(chart.metric)} {fmt(point.quality)}{" (Pareto front)" if point.on_front else ""}'
               f'{" (general-purpose)" if point.general_purpose else ""}</title>')
        marker = _marker(px, py, 5 if point.on_front else 4, css, point.general_purpose, tip)
        canvas.add(f'<a href="#r{point.row}">{marker}</a>')
        if point.key:
            canvas.label(px, py, 5, str(point.key), within=(left, top, right, bottom))
    task = f" ({chart.task})" if chart.task else ""
    return canvas.svg(f"energy against {chart.metric}{task}, Pareto front marked")


def sparsity_chart(sweep: SparsitySweep) -> Markup:
    """Energy (left axis, blue) and quality (right axis, amber) of a pruning sweep against weight sparsity:
    where the zeros save no work the energy line stays flat, and the quality line shows where it breaks."""
    width, height, top, right, bottom = 640, 300, 14, 572, 256
    canvas = _Canvas(width, height)
    levels = sweep.levels
    y = _Axis([0.0, *(level.energy for level in levels)], bottom, top, log=False)
    left = _left(y)
    x = _Axis([level.sparsity for level in levels], left, right, log=False)
    _axes(canvas, x, y, left, top, right, bottom, "weight sparsity (%)", f"net J per {sweep.unit}")
    path = " ".join(f"{x(level.sparsity):.1f},{y(level.energy):.1f}" for level in levels)
    canvas.add(f'<polyline class="trend" points="{path}"/>')
    for level in levels:
        canvas.add(f'<a href="#r{level.row}"><circle class="dot small" cx="{x(level.sparsity):.1f}" '
                   f'cy="{y(level.energy):.1f}" r="3"><title>{escape(level.name)}: {fmt(level.energy)} J</title>'
                   f'</circle></a>')
    known = [(level, level.quality) for level in levels if level.quality is not None]
    if known:
        q_axis = _Axis([0.0, 1.0, *(quality for _, quality in known)], bottom, top, log=False)
        _y_ticks(canvas, q_axis, left, top, right, bottom, grid=False)
        canvas.vertical(width - TITLE_AT, (top + bottom) / 2, sweep.metric, bottom - top, down=True)
        path = " ".join(f"{x(level.sparsity):.1f},{q_axis(quality):.1f}" for level, quality in known)
        canvas.add(f'<polyline class="quality" points="{path}"/>')
        for level, quality in known:
            canvas.add(f'<circle class="dot small quality" cx="{x(level.sparsity):.1f}" cy="{q_axis(quality):.1f}" '
                       f'r="3"><title>{fmt(level.sparsity, 3)} % sparse: {escape(sweep.metric)} {fmt(quality)}'
                       f'</title></circle>')
    return canvas.svg(f"energy and quality of {sweep.name} against sparsity")


def served_chart(sweep: ServedSweep) -> Markup:
    """Gross J per output token against concurrency: the steady state (blue line, the figure a level is
    judged by) and the whole run, ramp and drain included (amber dots), from zero."""
    width, height, top, right, bottom = 420, 220, 14, 404, 176
    canvas = _Canvas(width, height)
    levels = sweep.levels
    y = _Axis([0.0, *(level.steady for level in levels), *(level.whole_run for level in levels
                                                           if level.whole_run is not None)], bottom, top, log=False)
    left = _left(y)
    x = _Axis([float(level.concurrency) for level in levels], left, right, whole=True)
    _axes(canvas, x, y, left, top, right, bottom, "concurrent requests" + (" (log scale)" if x.log else ""),
          "gross J per output token")
    path = " ".join(f"{x(level.concurrency):.1f},{y(level.steady):.1f}" for level in levels)
    canvas.add(f'<polyline class="trend" points="{path}"/>')
    for level in levels:
        px = x(level.concurrency)
        if level.whole_run is not None:
            canvas.add(f'<circle class="dot small quality" cx="{px:.1f}" cy="{y(level.whole_run):.1f}" r="3"><title>'
                       f'concurrency {level.concurrency}, whole run: {fmt(level.whole_run)} J per output token'
                       f'</title></circle>')
        canvas.add(f'<a href="#r{level.row}"><circle class="dot small" cx="{px:.1f}" cy="{y(level.steady):.1f}" '
                   f'r="3"><title>{escape(level.name)}, steady state: {fmt(level.steady)} J per output token'
                   f'</title></circle></a>')
    return canvas.svg(f"energy per output token of {sweep.name} against concurrency")


def arm_bars(title: str, bars: Sequence[tuple[int, str, float | None]], unit: str = "") -> Markup:
    """One figure of the fine-tune arms as horizontal bars from zero: ``bars`` are (key, name, value),
    an arm without the figure left blank; each bar numbered as the arms' table, its value at its end."""
    width, left, top, band = 290, 30, 22, 20
    values = [v for _, _, v in bars if v is not None and math.isfinite(v)]
    texts = {key: f"{fmt(v)}{f' {unit}' if unit else ''}" if v is not None else "n/a" for key, _, v in bars}
    right = width - 8 - 0.6 * FONT * max(len(t) for t in texts.values()) - 6
    canvas = _Canvas(width, top + band * len(bars) + 6)
    shown, _ = _fit(title, width - 8)
    canvas.text([(4, 14, "start")], shown, "axis", title)
    scale = (right - left) / max([*values, 0.0]) if values and max(values) > 0 else 0.0
    for index, (key, name, value) in enumerate(bars):
        middle = top + band * index + band / 2
        canvas.text([(left - 6, middle + 4, "end")], str(key), "tick", name)
        length = max(0.0, value * scale) if value is not None and math.isfinite(value) else 0.0
        if length:
            canvas.add(f'<rect class="bar" x="{left}" y="{middle - 6:.1f}" width="{length:.1f}" height="12" '
                       f'fill="#1565c0"><title>{key}. {escape(name)}: {escape(texts[key])}</title></rect>')
        canvas.text([(left + length + 4, middle + 4, "start")], texts[key], "tick")
    return canvas.svg(f"{title} per fine-tune arm")


def power_timeline(samples: list[tuple[float, float]], idle_watts: float | None = None) -> Markup:
    """Sampled power (W) over the measured time (s), with the device's idle power as a dashed line."""
    width, height, top, right, bottom = 640, 200, 10, 620, 160
    canvas = _Canvas(width, height)
    watts = [w for _, w in samples] + ([idle_watts] if idle_watts else [])
    y = _Axis([0.0, *watts], bottom, top, log=False)
    left = _left(y)
    x = _Axis([t for t, _ in samples], left, right, log=False)
    _axes(canvas, x, y, left, top, right, bottom, "seconds", "watts")
    if idle_watts:
        canvas.add(f'<line class="idle" x1="{left}" y1="{y(idle_watts):.1f}" x2="{right}" '
                   f'y2="{y(idle_watts):.1f}"><title>idle {fmt(idle_watts)} W</title></line>')
    path = " ".join(f"{x(t):.1f},{y(w):.1f}" for t, w in samples)
    canvas.add(f'<polyline class="power" points="{path}"/>')
    return canvas.svg("power timeline")


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
    width, height, top, right, bottom = 400, 168, 10, 384, 110
    canvas = _Canvas(width, height)
    values = [p.joules for p in trend.points]
    at = _times(trend.points)
    y = _Axis(values, bottom, top, log=False)
    left = _left(y)
    x = _Axis(at, left, right, log=False)
    canvas.add(f'<rect class="plot" x="{left}" y="{top}" width="{right - left}" height="{bottom - top}"/>')
    _y_ticks(canvas, y, left, top, right, bottom)
    for px, date, commit in _time_ticks(trend.points, at):
        spots = [(x(px), bottom + 14, anchor) for anchor in ("middle", "end", "start")]
        if canvas.text(spots, date) and commit:  # the commit under its date, where the date has room
            canvas.text([(x(px), bottom + 26, anchor) for anchor in ("middle", "end", "start")], commit)
        canvas.add(f'<line class="grid" x1="{x(px):.1f}" y1="{top}" x2="{x(px):.1f}" y2="{bottom}"/>')
    canvas.vertical(TITLE_AT, (top + bottom) / 2, "J / iteration", bottom - top)
    path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(at, values))
    canvas.add(f'<polyline class="trend" points="{path}"/>')
    # Dots (with their tooltips) for a readable number of runs; a long series is its line alone.
    for t, point in zip(at, trend.points) if len(at) <= MAX_DOTS else ():
        css = css_class(point.status)
        where = ", ".join(part for part in (point.commit[:12], point.runner) if part)
        canvas.add(f'<circle class="dot small {css}" cx="{x(t):.1f}" cy="{y(point.joules):.1f}" r="2.5">'
                   f'<title>{escape(point.started)}{escape(f" ({where})" if where else "")}: {fmt(point.joules)} J '
                   f'({escape(point.status or "-")})</title></circle>')
    for step in trend.steps:
        px = (x(at[step.index - 1]) + x(at[step.index])) / 2  # between the last run before and the first after
        canvas.add(f'<line class="step" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}">'
                   f'<title>step {escape(step.text)}: {fmt(step.before)} J to {fmt(step.after)} J</title></line>')
    return canvas.svg(f"trend of {trend.name}")
