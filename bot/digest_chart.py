"""The daily digest's chart, drawn with Pillow: bars of open and closed cases per day, and the on-time rate line.

What callers may rely on: `render_chart` returns the PNG bytes with the numbers it drew and where
(`ChartData`). The image holds only numbers and dates (Pillow's default font has no CJK glyphs); the
caption (bot/renderers/staff_digest.py) names the colours.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from models.events.staff import DigestSeries

CHART_SIZE = (1000, 560)
# Colours the caption names (tests sample the image for them).
OPEN_COLOUR = (76, 120, 168)  # blue
CLOSED_COLOUR = (84, 162, 75)  # green
RATE_COLOUR = (245, 133, 24)  # orange


@dataclass(frozen=True)
class ChartData:
    """What the chart shows, with where it drew it (pixel boxes in the PNG)."""

    days: tuple[date, ...]
    labels: tuple[str, ...]  # the date under each day's bars ("" where skipped for room)
    open: tuple[int, ...]
    closed: tuple[int, ...]
    on_time_pct: tuple[float | None, ...]
    y_max: int
    y_ticks: tuple[int, ...]
    size: tuple[int, int]
    open_bars: tuple[tuple[int, int, int, int], ...]  # (left, top, right, bottom)
    closed_bars: tuple[tuple[int, int, int, int], ...]
    rate_points: tuple[tuple[int, int] | None, ...]


@dataclass(frozen=True)
class Chart:
    png: bytes
    data: ChartData


def nice_axis(top: int, max_ticks: int = 6) -> tuple[int, int]:
    """(axis maximum, tick step) with steps of 1, 2 or 5 × 10ⁿ covering `top` in at most `max_ticks` steps."""
    if top <= 0:
        return 5, 1
    magnitude = 1
    while True:
        for unit in (1, 2, 5):
            step = unit * magnitude
            if math.ceil(top / step) <= max_ticks:
                return math.ceil(top / step) * step, step
        magnitude *= 10


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def render_chart(series: DigestSeries, size: tuple[int, int] = CHART_SIZE) -> Chart:
    """Draw open vs closed bars per day and the on-time rate line; the PNG and the data behind it."""
    width, height = size
    left, right, top, bottom = 72, width - 72, 64, height - 56
    plot_w, plot_h = right - left, bottom - top
    points = series.points
    n = max(1, len(points))
    y_max, step = nice_axis(max([p.open_at_end for p in points] + [p.closed for p in points] + [0]))
    ticks = tuple(range(0, y_max + 1, step))
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    small, normal, title = _font(12), _font(14), _font(18)
    grey, text, axis = (225, 225, 225), (40, 40, 40), (120, 120, 120)

    def y_of(value: float) -> int:
        return round(bottom - value / y_max * plot_h)

    for tick in ticks:  # left axis: counts, with a light grid line
        y = y_of(tick)
        draw.line((left, y, right, y), fill=grey, width=1)
        draw.text((left - 8, y), str(tick), font=normal, fill=text, anchor="rm")
    for pct in (0, 25, 50, 75, 100):  # right axis: on-time rate
        y = round(bottom - pct / 100 * plot_h)
        draw.line((right, y, right + 5, y), fill=RATE_COLOUR, width=2)
        draw.text((right + 9, y), f"{pct}%", font=normal, fill=RATE_COLOUR, anchor="lm")
    draw.line((left, top, left, bottom), fill=axis, width=1)
    draw.line((right, top, right, bottom), fill=RATE_COLOUR, width=1)
    draw.line((left, bottom, right, bottom), fill=axis, width=1)
    if points:
        heading = f"{points[0].day.isoformat()}  -  {points[-1].day.isoformat()}"
        draw.text((left, 24), heading, font=title, fill=text, anchor="lm")

    slot = plot_w / n
    bar_w = max(2, int(slot * 0.34))
    label_w = draw.textlength("00-00", font=normal) + 8
    label_every = max(1, math.ceil(label_w / slot))
    open_bars, closed_bars, rate_points, labels = [], [], [], []
    values: list[tuple[float, int, str]] = []  # numbers above the bars, drawn last so the line never hides them
    for i, p in enumerate(points):
        centre = left + slot * (i + 0.5)
        boxes = []
        for value, colour, x0 in ((p.open_at_end, OPEN_COLOUR, round(centre - bar_w - 1)),
                                  (p.closed, CLOSED_COLOUR, round(centre + 1))):
            box = (x0, y_of(value), x0 + bar_w, bottom)
            if value:
                draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
            if slot >= 36:  # room for the numbers above the bars
                values.append(((box[0] + box[2]) / 2, box[1] - 3, str(value)))
            boxes.append(box)
        open_bars.append(boxes[0])
        closed_bars.append(boxes[1])
        last = len(points) - 1
        shown = (last - i) % label_every == 0  # always label today
        label = p.day.strftime("%m-%d") if shown else ""
        if label:
            draw.text((centre, bottom + 8), label, font=normal, fill=text, anchor="mt")
        labels.append(label)
        rate = p.on_time_rate
        rate_points.append(None if rate is None else (round(centre), round(bottom - rate * plot_h)))
    for a, b in zip(rate_points, rate_points[1:]):  # the line breaks over days with no closure
        if a is not None and b is not None:
            draw.line((a, b), fill=RATE_COLOUR, width=3)
    radius = max(3, min(5, round(slot / 6)))
    for point in rate_points:
        if point is not None:
            x, y = point
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=RATE_COLOUR, outline=(255, 255, 255),
                         width=1 if radius < 5 else 2)
    for x, y, value in values:
        draw.text((x, y), value, font=small, fill=text, anchor="md", stroke_width=2, stroke_fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    data = ChartData(
        days=tuple(p.day for p in points), labels=tuple(labels), open=tuple(p.open_at_end for p in points),
        closed=tuple(p.closed for p in points),
        on_time_pct=tuple(None if p.on_time_rate is None else round(p.on_time_rate * 100, 1) for p in points),
        y_max=y_max, y_ticks=ticks, size=size, open_bars=tuple(open_bars), closed_bars=tuple(closed_bars),
        rate_points=tuple(rate_points))
    return Chart(out.getvalue(), data)


@lru_cache(maxsize=16)
def chart_png(series: DigestSeries) -> bytes:
    """The chart's PNG; supervisors of one area share one drawing per run."""
    return render_chart(series).png
