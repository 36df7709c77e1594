"""Server-rendered SVG charts (no script, no inline style: they pass the page's strict CSP).

Every function returns markup for an ``<svg>`` element sized by its viewBox; colours come
from CSS classes in ``static/ui.css``. Labels are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

W, H = 640, 220
PAD_L, PAD_R, PAD_T, PAD_B = 52, 16, 12, 36


def _n(v: float) -> str:
    return f"{v:.1f}"


def _axis_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _frame(inner: str, title: str, w: int = W, h: int = H) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{inner}</svg>'
    )


def histogram(values: Sequence[float], *, bins: int = 30, unit: str = "ms", title: str) -> str:
    """A histogram of ``values`` with the x axis in ``unit``."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    top = max(counts)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    bw = pw / bins
    parts = []
    for i, c in enumerate(counts):
        if not c:
            continue
        bh = ph * c / top
        x0, x1 = lo + i * width, lo + (i + 1) * width
        parts.append(
            f'<rect class="bar" x="{_n(PAD_L + i * bw + 0.5)}" y="{_n(PAD_T + ph - bh)}" '
            f'width="{_n(max(bw - 1, 0.5))}" height="{_n(bh)}"><title>'
            f"{x0:.1f}-{x1:.1f} {escape(unit)}: {c} quer{'y' if c == 1 else 'ies'}</title></rect>"
        )
    parts.append(_axes(lo, hi, 0, top, unit, "queries"))
    return _frame("".join(parts), title)


def _axes(x0: float, x1: float, y0: float, y1: float, xl: str, yl: str, xticks: bool = True) -> str:
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    out = [
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T + ph}" x2="{PAD_L + pw}" y2="{PAD_T + ph}"/>',
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + ph}"/>',
    ]
    for i in range(5):
        f = i / 4
        x = PAD_L + pw * f
        y = PAD_T + ph * (1 - f)
        if xticks:
            out.append(
                f'<text class="tick" x="{_n(x)}" y="{PAD_T + ph + 14}" text-anchor="middle">'
                f"{_axis_label(x0 + (x1 - x0) * f)}</text>"
            )
        out.append(
            f'<text class="tick" x="{PAD_L - 6}" y="{_n(y + 4)}" text-anchor="end">'
            f"{_axis_label(y0 + (y1 - y0) * f)}</text>"
        )
        if i:
            out.append(
                f'<line class="grid" x1="{PAD_L}" y1="{_n(y)}" x2="{PAD_L + pw}" y2="{_n(y)}"/>'
            )
    out.append(
        f'<text class="label" x="{PAD_L + pw / 2}" y="{H - 4}" text-anchor="middle">'
        f"{escape(xl)}</text>"
    )
    out.append(
        f'<text class="label" x="12" y="{PAD_T + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {PAD_T + ph / 2})">{escape(yl)}</text>'
    )
    return "".join(out)


def scatter(
    points: Sequence[tuple[str, float, float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    href: str | None = None,
) -> str:
    """Per-query ``(id, base, head)`` points on a square plot with the y = x diagonal; points
    above it improved (class ``up``), below regressed (``down``). ``href`` is a format string
    with ``{id}`` linking each point to its query."""
    if not points:
        return ""
    vals = [v for _, a, b in points for v in (a, b)]
    lo, hi = min(0.0, min(vals)), max(1.0, max(vals))
    size = 320
    pad = 44
    p = size - 2 * pad

    def sx(v: float) -> float:
        return pad + p * (v - lo) / (hi - lo)

    def sy(v: float) -> float:
        return pad + p * (1 - (v - lo) / (hi - lo)) - 20

    out = [
        f'<line class="diag" x1="{_n(sx(lo))}" y1="{_n(sy(lo))}" x2="{_n(sx(hi))}" y2="{_n(sy(hi))}"/>',
        f'<line class="axis" x1="{pad}" y1="{_n(sy(lo))}" x2="{pad + p}" y2="{_n(sy(lo))}"/>',
        f'<line class="axis" x1="{pad}" y1="{_n(sy(hi))}" x2="{pad}" y2="{_n(sy(lo))}"/>',
    ]
    for f in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * f
        out.append(
            f'<text class="tick" x="{_n(sx(v))}" y="{_n(sy(lo) + 14)}" text-anchor="middle">'
            f"{_axis_label(v)}</text>"
        )
        out.append(
            f'<text class="tick" x="{pad - 6}" y="{_n(sy(v) + 4)}" text-anchor="end">'
            f"{_axis_label(v)}</text>"
        )
    # Identical (base, head) pairs are drawn once, with their count; with many queries,
    # pairs are binned to a 0.01 grid so the chart stays a few hundred circles.
    digits = 4 if len(points) <= 2000 else 2
    seen: dict[tuple[float, float], list[str]] = {}
    for qid, a, b in points:
        seen.setdefault((round(a, digits), round(b, digits)), []).append(qid)
    for (a, b), ids in seen.items():
        cls = "up" if b > a + 1e-12 else "down" if b < a - 1e-12 else "same"
        r = min(3 + len(ids) ** 0.5, 9)
        tip = f"{', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}: base {a:.4f}, head {b:.4f}"
        if len(ids) > 1:
            tip = f"{len(ids)} queries - " + tip
        dot = (
            f'<circle class="pt {cls}" cx="{_n(sx(a))}" cy="{_n(sy(b))}" r="{r:.1f}">'
            f"<title>{escape(tip)}</title></circle>"
        )
        if href and len(ids) == 1:
            dot = f'<a href="{escape(href.format(id=ids[0]))}">{dot}</a>'
        out.append(dot)
    out.append(
        f'<text class="label" x="{pad + p / 2}" y="{size - 6}" text-anchor="middle">'
        f"{escape(xlabel)}</text>"
    )
    out.append(
        f'<text class="label" x="12" y="{pad + p / 2 - 20}" text-anchor="middle" '
        f'transform="rotate(-90 12 {pad + p / 2 - 20})">{escape(ylabel)}</text>'
    )
    return _frame("".join(out), title, size, size)


def line(
    points: Sequence[tuple[str, float, str]],
    *,
    ylabel: str,
    title: str,
    href: str | None = None,
) -> str:
    """A series ``(label, value, css class)`` in order, evenly spaced; ``href`` formats
    ``{id}`` with each point's label."""
    if not points:
        return ""
    vals = [v for _, v, _ in points]
    lo, hi = min(vals), max(vals)
    span = hi - lo or max(abs(hi) * 0.1, 0.01)
    lo, hi = lo - span * 0.1, hi + span * 0.1
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    n = len(points)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = PAD_L + (pw * (i / (n - 1)) if n > 1 else pw / 2)
        return x, PAD_T + ph * (1 - (v - lo) / (hi - lo))

    coords = [xy(i, v) for i, (_, v, _) in enumerate(points)]
    out = [_axes(0, 0, lo, hi, "runs, oldest first", ylabel, xticks=False)]
    out.append(
        '<polyline class="series" points="'
        + " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
        + '"/>'
    )
    for (label, v, cls), (x, y) in zip(points, coords):
        dot = (
            f'<circle class="pt {escape(cls)}" cx="{_n(x)}" cy="{_n(y)}" r="4">'
            f"<title>{escape(label)}: {v:.4f}</title></circle>"
        )
        if href:
            dot = f'<a href="{escape(href.format(id=label))}">{dot}</a>'
        out.append(dot)
    return _frame("".join(out), title)
