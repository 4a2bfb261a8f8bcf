"""Small static SVG charts for the HTML report: a line chart of several series with an optional shaded drawdown
panel, a bar chart of signed values, a price line with entry ▲ and exit ▼ markers, and a timeline of categorical
states. Pure python/numpy; never imports dagster.

Every chart has a fixed ``viewBox`` (it renders the same offline, in any browser), a ``<title>`` and an
``aria-label``, axis labels and tick labels; no script, no external reference. Geometry is explicit so tests can
check it: the plot area of a chart ``width`` × ``height`` is x ∈ [:data:`LEFT`, width − :data:`RIGHT`] and y ∈
[:data:`TOP`, height − :data:`BOTTOM`]; a value v maps linearly from its domain to that range (y grows downwards, so
the domain's top is the area's top). Coordinates are written with 2 decimals. Times are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
import pandas as pd

LEFT, RIGHT, TOP, BOTTOM = 80.0, 20.0, 36.0, 48.0
WIDTH = 960.0
DD_GAP, DD_HEIGHT = 12.0, 130.0  # the drawdown panel under a line chart
CHAR_W = 7.5  # the width of a character of the 11 px labels, for legend spacing
MAX_BAR = 120.0  # the widest bar (a chart of one or two bars stays readable)
TILT_ROOM = 30.0
MAX_POINTS = 1500  # a series longer than this keeps each bucket's min and max (its shape, not every point)
PALETTE = ("#1f5fa8", "#d9822b", "#2e8540", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d")
POS, NEG, DD_FILL = "#2e8540", "#c0392b", "#c0392b"
GRID, AXIS, INK = "#e3e6ea", "#8a939c", "#222"
TIME_STEPS_S = (60, 300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 1209600, 2592000)


@dataclass(frozen=True)
class Scale:
    """Linear map of the domain [d0, d1] onto the range [r0, r1] (a one-point domain maps to the middle)."""

    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, v: Any) -> Any:
        v = np.asarray(v, dtype="float64")
        if self.d1 == self.d0:
            return np.full_like(v, (self.r0 + self.r1) / 2.0) if v.ndim else (self.r0 + self.r1) / 2.0
        out = self.r0 + (v - self.d0) * (self.r1 - self.r0) / (self.d1 - self.d0)
        return out if out.ndim else float(out)


@dataclass(frozen=True)
class Series:
    """One line: ``x`` (UTC times or numbers) and ``y`` (NaN breaks the line), a name for the legend."""

    name: str
    x: Any
    y: Any
    color: str | None = None


def as_numbers(x: Any) -> np.ndarray:
    """Times as seconds since the epoch (UTC; NaT → NaN), anything else as float64."""
    values = pd.Series(list(x) if not isinstance(x, (pd.Series, pd.Index, np.ndarray)) else x)
    if len(values) and (pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.iloc[0], pd.Timestamp)):
        t = pd.to_datetime(values, utc=True)
        return ((t - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_numpy(dtype="float64")
    return values.to_numpy(dtype="float64")


def f2(v: float) -> str:
    return f"{v:.2f}"


def nice_step(span: float, n: int) -> float:
    """A 1, 2 or 5 × 10^k step that cuts ``span`` into at most about ``n`` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round values (multiples of :func:`nice_step`) inside [lo, hi]."""
    step = nice_step(hi - lo, n)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + k * step, 12) for k in range(int((hi - first) / step + 1e-9) + 1)]


def time_ticks(lo: float, hi: float, n: int = 6) -> tuple[list[float], str]:
    """UTC-aligned tick times (epoch seconds) in [lo, hi] and their strftime format."""
    step = next((s for s in TIME_STEPS_S if (hi - lo) / s <= n), TIME_STEPS_S[-1])
    first = math.ceil(lo / step) * step
    ticks = [float(first + k * step) for k in range(max(int(math.floor((hi - first) / step + 1e-9)) + 1, 0))]
    return ticks, "%Y-%m-%d" if step >= 86400 else "%m-%d %H:%M"


def padded(lo: float, hi: float, pad: float = 0.05) -> tuple[float, float]:
    """[lo, hi] widened by ``pad`` of its span on both sides (a single value by 1 % of itself, or ±1)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi == lo:
        d = abs(lo) * 0.01 or 1.0
        return lo - d, hi + d
    d = (hi - lo) * pad
    return lo - d, hi + d


def plain_number(v: float) -> str:
    """A tick label: thousands separators, as many decimals as the value needs (up to 6)."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.6f}".rstrip("0").rstrip(".")


def thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``max_points`` points: each of max_points / 2 equal buckets keeps its min and max (in time
    order), so peaks and troughs survive."""
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = np.array_split(np.arange(n), max(max_points // 2, 1))
    keep = []
    for b in buckets:
        vals = y[b]
        if np.all(np.isnan(vals)):
            keep.append(b[0])
            continue
        keep.extend(sorted({b[int(np.nanargmin(vals))], b[int(np.nanargmax(vals))]}))
    idx = np.asarray(keep)
    return x[idx], y[idx]


def path_d(xs: np.ndarray, ys: np.ndarray) -> str:
    """``M x y L x y …``; a NaN y ends a segment and the next value starts a new one (``M``)."""
    parts, pen = [], False
    for x, y in zip(xs, ys):
        if not (math.isfinite(x) and math.isfinite(y)):
            pen = False
            continue
        parts.append(f"{'L' if pen else 'M'}{f2(x)} {f2(y)}")
        pen = True
    return " ".join(parts)


def open_svg(title: str, width: float, height: float, chart_id: str) -> list[str]:
    t = escape(title)
    return [f'<svg class="chart" id="{escape(chart_id)}" role="img" aria-label="{t}" viewBox="0 0 {f2(width)} '
            f'{f2(height)}" width="{f2(width)}" height="{f2(height)}" font-family="sans-serif">',
            f"<title>{t}</title>",
            f'<text x="{f2(LEFT)}" y="20" font-size="14" font-weight="bold" fill="{INK}">{t}</text>']


def y_axis(scale: Scale, ticks: Sequence[float], x0: float, x1: float, fmt: Callable[[float], str],
           label: str, y_mid: float) -> list[str]:
    out = []
    for v in ticks:
        y = scale(v)
        out.append(f'<line class="grid" x1="{f2(x0)}" y1="{f2(y)}" x2="{f2(x1)}" y2="{f2(y)}" stroke="{GRID}"/>')
        out.append(f'<text class="tick" x="{f2(x0 - 6)}" y="{f2(y + 4)}" font-size="11" text-anchor="end" '
                   f'fill="{INK}">{escape(fmt(v))}</text>')
    out.append(f'<text class="axis-label y" x="14" y="{f2(y_mid)}" font-size="12" text-anchor="middle" fill="{INK}" '
               f'transform="rotate(-90 14 {f2(y_mid)})">{escape(label)}</text>')
    return out


def x_time_axis(scale: Scale, lo: float, hi: float, y: float, label: str | None, label_y: float) -> list[str]:
    ticks, fmt = time_ticks(lo, hi)
    out = [f'<line class="axis" x1="{f2(scale.r0)}" y1="{f2(y)}" x2="{f2(scale.r1)}" y2="{f2(y)}" stroke="{AXIS}"/>']
    for t in ticks:
        x = scale(t)
        out.append(f'<line x1="{f2(x)}" y1="{f2(y)}" x2="{f2(x)}" y2="{f2(y + 4)}" stroke="{AXIS}"/>')
        text = pd.Timestamp(t, unit="s", tz="UTC").strftime(fmt)
        anchor = "end" if x > scale.r1 - 40 else "middle"  # a label at the right edge stays inside the chart
        out.append(f'<text class="tick" x="{f2(x)}" y="{f2(y + 16)}" font-size="11" text-anchor="{anchor}" '
                   f'fill="{INK}">{text}</text>')
    if label:
        out.append(f'<text class="axis-label x" x="{f2((scale.r0 + scale.r1) / 2)}" y="{f2(label_y)}" '
                   f'font-size="12" text-anchor="middle" fill="{INK}">{escape(label)}</text>')
    return out


def legend_width(items: Sequence[tuple[str, str, str]]) -> float:
    return sum(30 + CHAR_W * len(name) for name, _, _ in items)


def legend(items: Sequence[tuple[str, str, str]], x: float, y: float, right: bool = False) -> list[str]:
    """Legend items (name, colour, shape: ``line`` / ``square`` / ``up`` / ``down``) in a row from ``x`` (or ending
    at ``x`` when ``right``)."""
    out, cx = [], x - legend_width(items) if right else x
    for name, color, shape in items:
        if shape == "line":
            mark = (f'<line x1="{f2(cx)}" y1="{f2(y - 4)}" x2="{f2(cx + 16)}" y2="{f2(y - 4)}" stroke="{color}" '
                    f'stroke-width="2.5"/>')
        elif shape in ("up", "down"):
            mark = f'<polygon points="{triangle(cx + 8, y - 9 if shape == "up" else y + 1, shape == "up", 5)}" ' \
                   f'fill="{color}"/>'
        else:
            mark = f'<rect x="{f2(cx)}" y="{f2(y - 9)}" width="10" height="10" fill="{color}"/>'
        out.append(f'<g class="legend-item">{mark}<text x="{f2(cx + 20)}" y="{f2(y)}" font-size="11" '
                   f'fill="{INK}">{escape(name)}</text></g>')
        cx += 30 + CHAR_W * len(name)
    return out


def x_domain_of(xs: Sequence[np.ndarray]) -> tuple[float, float]:
    vals = [v for x in xs if len(x) and not np.all(np.isnan(x)) for v in (np.nanmin(x), np.nanmax(x))]
    return (min(vals), max(vals)) if vals else (0.0, 1.0)


def y_domain_of(ys: Sequence[np.ndarray]) -> tuple[float, float]:
    vals = [v for y in ys if len(y) and not np.all(np.isnan(y)) for v in (np.nanmin(y), np.nanmax(y))]
    return padded(min(vals), max(vals)) if vals else (0.0, 1.0)


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str, chart_id: str = "line",
               width: float = WIDTH, height: float = 320.0, x_domain: tuple[float, float] | None = None,
               y_domain: tuple[float, float] | None = None, drawdown: Series | None = None,
               y_format: Callable[[float], str] = plain_number, max_points: int = MAX_POINTS,
               extra: Callable[[Scale, Scale], list[str]] | None = None,
               legend_extra: Sequence[tuple[str, str, str]] = ()) -> str:
    """Lines of several series over time on one y axis; with ``drawdown`` (fractions ≤ 0 over time) a shaded panel
    of :data:`DD_HEIGHT` under the chart, domain [min(drawdown), 0] (a flat drawdown: [−0.01, 0]). Each line is a
    ``<path class="series" data-series=name>``; the drawdown a ``<path class="drawdown">`` closed on the zero line.
    ``extra(x_scale, y_scale)`` adds marks on the plot (the price chart's markers), ``legend_extra`` their legend
    items."""
    xs = [thin(as_numbers(s.x), np.asarray(s.y, dtype="float64"), max_points) for s in series]
    dd = thin(as_numbers(drawdown.x), np.asarray(drawdown.y, dtype="float64"), max_points) if drawdown else None
    xd = x_domain or x_domain_of([x for x, _ in xs] + ([dd[0]] if dd else []))
    yd = y_domain or y_domain_of([y for _, y in xs])
    bottom = height - BOTTOM
    total = height + (DD_HEIGHT if dd else 0.0)
    sx, sy = Scale(xd[0], xd[1], LEFT, width - RIGHT), Scale(yd[0], yd[1], bottom, TOP)
    out = open_svg(title, width, total, chart_id)
    out += y_axis(sy, nice_ticks(*yd), LEFT, width - RIGHT, y_format, y_label, (TOP + bottom) / 2)
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    for s, (x, y), color in zip(series, xs, colors):
        out.append(f'<path class="series" data-series="{escape(s.name)}" d="{path_d(sx(x), sy(y))}" fill="none" '
                   f'stroke="{color}" stroke-width="1.8" stroke-linejoin="round"/>')
    if extra is not None:
        out += extra(sx, sy)
    if dd is None:
        out += x_time_axis(sx, xd[0], xd[1], bottom, x_label, height - 8)
    else:
        out += x_time_axis(sx, xd[0], xd[1], bottom, None, 0)
        out += drawdown_panel(dd[0], dd[1], sx, height, width)
        out += [f'<text class="axis-label x" x="{f2((LEFT + width - RIGHT) / 2)}" y="{f2(total - 8)}" font-size="12" '
                f'text-anchor="middle" fill="{INK}">{escape(x_label)}</text>']
    out += legend([(s.name, c, "line") for s, c in zip(series, colors)] + list(legend_extra), width - RIGHT, 20,
                  right=True)
    out.append("</svg>")
    return "\n".join(out)


def drawdown_scale(dd: np.ndarray, height: float) -> Scale:
    """The drawdown panel's y scale: [min(dd), 0] onto [height + DD_HEIGHT − BOTTOM, height + DD_GAP]."""
    lo = float(np.nanmin(dd)) if len(dd) and not np.all(np.isnan(dd)) else 0.0
    return Scale(lo if lo < 0 else -0.01, 0.0, height + DD_HEIGHT - BOTTOM, height + DD_GAP)


def drawdown_panel(x: np.ndarray, dd: np.ndarray, sx: Scale, height: float, width: float) -> list[str]:
    sy = drawdown_scale(dd, height)
    ok = np.isfinite(dd)
    px, py = sx(x[ok]), sy(dd[ok])
    d = ""
    if len(px):
        zero = sy(0.0)
        d = (f"M{f2(px[0])} {f2(zero)} " + " ".join(f"L{f2(a)} {f2(b)}" for a, b in zip(px, py))
             + f" L{f2(px[-1])} {f2(zero)} Z")
    bottom = height + DD_HEIGHT - BOTTOM
    out = y_axis(sy, nice_ticks(sy.d0, 0.0, 3), LEFT, width - RIGHT, lambda v: f"{v * 100:.1f} %", "drawdown",
                 (height + DD_GAP + bottom) / 2)
    out.append(f'<path class="drawdown" d="{d}" fill="{DD_FILL}" fill-opacity="0.35" stroke="{DD_FILL}" '
               f'stroke-width="1"/>')
    out += x_time_axis(sx, sx.d0, sx.d1, bottom, None, 0)
    return out


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str, x_label: str, y_label: str,
              chart_id: str = "bars", width: float = WIDTH, height: float = 300.0,
              y_domain: tuple[float, float] | None = None, value_format: Callable[[float], str] = plain_number,
              y_format: Callable[[float], str] = plain_number) -> str:
    """One bar per label from the zero line: up (``bar pos``) for a positive value, down (``bar neg``) for a
    negative one. n bars share the plot width in equal bands; a bar is 60 % of its band (at most :data:`MAX_BAR`),
    centred; with more than 5 bars the labels are tilted and the plot ends :data:`TILT_ROOM` higher. Domain default:
    [min(0, values), max(0, values)] widened by 10 % of its span on the sides away from zero."""
    v = np.asarray(values, dtype="float64")
    if y_domain is None:
        lo, hi = (min(0.0, float(np.nanmin(v))), max(0.0, float(np.nanmax(v)))) if len(v) else (0.0, 1.0)
        span = (hi - lo) or 1.0
        y_domain = (lo - 0.1 * span if lo < 0 else lo, hi + 0.1 * span if hi > 0 or lo == 0 else hi)
    rotate = len(v) > 5
    bottom = height - BOTTOM - (TILT_ROOM if rotate else 0.0)
    sy = Scale(y_domain[0], y_domain[1], bottom, TOP)
    out = open_svg(title, width, height, chart_id)
    out += y_axis(sy, nice_ticks(*y_domain), LEFT, width - RIGHT, y_format, y_label, (TOP + bottom) / 2)
    band = (width - RIGHT - LEFT) / max(len(v), 1)
    bar_w = min(0.6 * band, MAX_BAR)
    zero = sy(0.0)
    for i, (label, value) in enumerate(zip(labels, v)):
        x = LEFT + (i + 0.5) * band - bar_w / 2
        y = sy(value)
        top, h = (y, zero - y) if value >= 0 else (zero, y - zero)
        cls, color = ("pos", POS) if value >= 0 else ("neg", NEG)
        out.append(f'<rect class="bar {cls}" data-label="{escape(label)}" x="{f2(x)}" y="{f2(top)}" '
                   f'width="{f2(bar_w)}" height="{f2(h)}" fill="{color}"><title>{escape(label)}: '
                   f'{escape(value_format(value))}</title></rect>')
        ty = top - 4 if value >= 0 else top + h + 13
        out.append(f'<text class="value" x="{f2(x + bar_w / 2)}" y="{f2(ty)}" font-size="11" text-anchor="middle" '
                   f'fill="{INK}">{escape(value_format(value))}</text>')
        cx = x + bar_w / 2
        tilt = f' transform="rotate(-25 {f2(cx)} {f2(bottom + 16)})"' if rotate else ""
        out.append(f'<text class="tick" x="{f2(cx)}" y="{f2(bottom + 16)}" font-size="11" '
                   f'text-anchor="{"end" if rotate else "middle"}" fill="{INK}"{tilt}>{escape(label)}</text>')
    out.append(f'<line class="zero" x1="{f2(LEFT)}" y1="{f2(zero)}" x2="{f2(width - RIGHT)}" y2="{f2(zero)}" '
               f'stroke="{AXIS}"/>')
    out.append(f'<text class="axis-label x" x="{f2((LEFT + width - RIGHT) / 2)}" y="{f2(height - 4)}" '
               f'font-size="12" text-anchor="middle" fill="{INK}">{escape(x_label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def triangle(x: float, y: float, up: bool, size: float = 6.0) -> str:
    """The three corners of a marker whose tip is at (x, y): ▲ (tip up, body below) for an entry, ▼ (tip down,
    body above) for an exit; base 2 × ``size`` wide, ``size`` × 1.6 tall."""
    h = size * 1.6
    base = y + h if up else y - h
    return f"{f2(x)},{f2(y)} {f2(x - size)},{f2(base)} {f2(x + size)},{f2(base)}"


def price_chart(x: Any, price: Any, *, entries: tuple[Any, Any] = ((), ()), exits: tuple[Any, Any] = ((), ()),
                title: str, x_label: str, y_label: str, chart_id: str = "price", width: float = WIDTH,
                height: float = 340.0, y_format: Callable[[float], str] = plain_number,
                x_domain: tuple[float, float] | None = None, y_domain: tuple[float, float] | None = None) -> str:
    """A price line with entries (``marker entry``, ▲, tip at the fill) and exits (``marker exit``, ▼) at their
    time and fill price; the y domain covers the prices and the fills."""
    ex, ey = as_numbers(list(entries[0])), np.asarray(list(entries[1]), dtype="float64")
    xx, xy = as_numbers(list(exits[0])), np.asarray(list(exits[1]), dtype="float64")
    px = as_numbers(x)
    yd = y_domain or y_domain_of([np.asarray(price, dtype="float64"), ey, xy])
    xd = x_domain or x_domain_of([px, ex, xx])

    def markers(sx: Scale, sy: Scale) -> list[str]:
        out = []
        for cls, mx, my, up, color in (("entry", ex, ey, True, POS), ("exit", xx, xy, False, NEG)):
            for a, b in zip(mx, my):
                out.append(f'<polygon class="marker {cls}" points="{triangle(sx(a), sy(b), up)}" fill="{color}" '
                           f'stroke="#fff" stroke-width="0.8"/>')
        return out

    chart = line_chart([Series("close", px, price, PALETTE[0])], title=title, x_label=x_label, y_label=y_label,
                       chart_id=chart_id, width=width, height=height, x_domain=xd, y_domain=yd, y_format=y_format,
                       extra=markers, legend_extra=(("entry", POS, "up"), ("exit", NEG, "down")))
    return chart


def timeline_chart(times: Any, rows: Sequence[tuple[str, Sequence[str]]], end: Any, *, title: str, x_label: str,
                   colors: Mapping[str, str], chart_id: str = "timeline", width: float = WIDTH,
                   row_height: float = 26.0, x_domain: tuple[float, float] | None = None) -> str:
    """One band per row of categorical states over time: state i holds from ``times[i]`` to the next time (the last
    until ``end``); each run of equal states is one ``<rect class="band" data-row data-state>`` coloured by
    ``colors`` (grey for a state without a colour). Rows are stacked from the top, ``row_height`` each."""
    t = as_numbers(times)
    stop = float(as_numbers([end])[0]) if len(t) else 1.0
    xd = x_domain or ((float(t[0]), stop) if len(t) else (0.0, 1.0))
    label_w = 130.0
    sx = Scale(xd[0], xd[1], LEFT + label_w - 60, width - RIGHT)
    height = TOP + row_height * len(rows) + BOTTOM + 22
    out = open_svg(title, width, height, chart_id)
    seen: dict[str, str] = {}
    for r, (name, states) in enumerate(rows):
        y = TOP + r * row_height
        out.append(f'<text class="row-label" x="{f2(sx.r0 - 8)}" y="{f2(y + row_height / 2 + 4)}" font-size="11" '
                   f'text-anchor="end" fill="{INK}">{escape(name)}</text>')
        for a, b, s in runs_of(t, list(states), stop):
            color = colors.get(s, "#bdc3c7")
            seen.setdefault(s, color)
            span = (f"{pd.Timestamp(a, unit='s', tz='UTC'):%Y-%m-%d %H:%M} – "
                    f"{pd.Timestamp(b, unit='s', tz='UTC'):%Y-%m-%d %H:%M} UTC")
            out.append(f'<rect class="band" data-row="{escape(name)}" data-state="{escape(s)}" x="{f2(sx(a))}" '
                       f'y="{f2(y + 3)}" width="{f2(sx(b) - sx(a))}" height="{f2(row_height - 6)}" fill="{color}">'
                       f'<title>{escape(name)}: {escape(s)}, {span}</title></rect>')
    axis_y = TOP + row_height * len(rows)
    out += x_time_axis(sx, xd[0], xd[1], axis_y, x_label, height - 26)
    out += legend([(k, c, "square") for k, c in seen.items()], LEFT, height - 6)
    out.append("</svg>")
    return "\n".join(out)


def runs_of(times: np.ndarray, states: list[str], end: float) -> list[tuple[float, float, str]]:
    """Consecutive equal states as (start, end, state) (the last run ends at ``end``)."""
    runs: list[tuple[float, float, str]] = []
    for t, s in zip(times, states):
        if runs and runs[-1][2] == s:
            continue
        if runs:
            runs[-1] = (runs[-1][0], float(t), runs[-1][2])
        runs.append((float(t), end, s))
    return runs
