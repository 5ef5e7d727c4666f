"""Figures for feedback.html and summary.html, embedded so a report opens from
disk with no network.

A heatmap figure is three panels, expected | yours | difference, each an
inline SVG holding the matrix as a small PNG (coloured with matplotlib's
colormaps and written with ``imsave``: no matplotlib figure, a few ms each, as
a batch writes hundreds) with its axis labels, ticks and colour bar drawn as
SVG text around it. Curves and the score histogram are inline SVG. Every
figure carries a text alternative (``role="img"``, ``aria-label`` and
``<title>``) that says what it shows and where the values differ most.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re

import numpy as np

CELL = 14  # pixels per matrix entry (small matrices are drawn larger)
FONT = 11

# What the axes of a compared tensor are, by the quantity's name in the test
# (``assert_close(..., what=...)``): names of the leading axes (the plotted
# matrix is the slice at an index of them, named from the first), of its rows
# and of its columns. A leading axis without a name is shown by its index.
# Evidence may name every axis itself (``evidence["axes"]``), or the name may
# carry a shape such as "weights (B, h, L, S)".
_VOCABULARY = [
    (r"^(weights|attn|attention|masked_softmax)\b", ["batch item", "head"],
     "query position", "key position"),
    (r"^causal_mask", [], "query position", "key position"),
    (r"^split_heads", ["batch item", "head"], "position", "feature"),
    (r"^(out|merge_heads|context|MultiHeadAttention)\b", ["batch item"], "position",
     "feature"),
    (r"^the gradient of (q|query)\b", ["batch item"], "query position", "feature"),
    (r"^the gradient of (k|key|v|value)\b", ["batch item"], "key position", "feature"),
]
_LETTERS = {"B": "batch item", "h": "head", "L": "query position", "S": "key position",
            "T": "time step", "E": "feature", "D": "feature"}
_HINT = r"\(([A-Za-z](?:\s*,\s*[A-Za-z])+)\)"


def _quantity(what: str) -> tuple[str, list[int], str]:
    """("weights (B, h, L, S)", [0, 1], "weights") from "weights (B, h, L, S) at [0, 1]"."""
    match = re.match(r"^(.*?)(?: at \[([-\d, ]*)\])?$", what.strip(), re.S)
    name = match.group(1) if match else what
    index = [int(i) for i in (match.group(2) or "").replace(" ", "").split(",") if i] \
        if match else []
    return name, index, re.sub(r"\s*" + _HINT + "$", "", name)


def axis_names(evidence: dict, rank: int, axes: dict | None = None) -> list[str | None]:
    """A name for each axis of the compared tensor (rank: its number of axes);
    None for a leading axis whose meaning is not known. ``axes``: the
    assignment's own names for a quantity (``report: axes:`` in
    assignment.yaml), e.g. {"weights": ["batch item", "encoder position"]}."""
    if isinstance(evidence.get("axes"), (list, tuple)) and len(evidence["axes"]) == rank:
        return [str(a) for a in evidence["axes"]]
    name, _, base = _quantity(str(evidence.get("what", "")))
    for quantity, names in (axes or {}).items():
        if re.match(rf"^{re.escape(quantity)}\b", base) and len(names) == rank:
            return [str(n) for n in names]
    hint = re.search(_HINT, name)
    if hint:
        letters = [x.strip() for x in hint.group(1).split(",")]
        if len(letters) == rank and all(x in _LETTERS for x in letters):
            return [_LETTERS[x] for x in letters]
    if rank == 1:
        return ["index"]
    for pattern, leading, rows, columns in _VOCABULARY:
        if re.match(pattern, base):
            named = leading[:rank - 2] + [None] * max(0, rank - 2 - len(leading))
            return named + [rows, columns]
    return [None] * (rank - 2) + ["row", "column"]


def _title(evidence: dict, names: list[str | None]) -> str:
    """The figure's title in words, e.g. "attention weights of head 0 for batch
    item 0: expected, yours, difference"."""
    _, index, base = _quantity(str(evidence.get("what", "")))
    quantity = "attention weights" if re.match(r"^(weights|attn|attention)\b", base) else base
    leading = names[:len(index)]
    if index and None in leading:
        quantity += f" at index {index}"
    elif index:
        parts = []
        for axis, i in reversed(list(zip(leading, index))):  # "of head 1 for batch item 0"
            first = "for" if " of " in quantity else "of"
            parts.append(f"{first if not parts else 'for'} {axis} {i}")
        quantity = " ".join([quantity, *parts])
    return quantity + ": expected, yours, difference"


# -- colours and pictures ------------------------------------------------

def _colour(data: np.ndarray, cmap: str, low: float, high: float, cell: int) -> np.ndarray:
    from matplotlib import colormaps

    scaled = (data - low) / (high - low) if high > low else np.zeros_like(data)
    rgba = colormaps[cmap](np.clip(np.nan_to_num(scaled, nan=0.0), 0, 1))
    rgba[np.isnan(data)] = (1.0, 0.0, 0.0, 1.0)  # NaN in red
    return np.kron(rgba, np.ones((cell, cell, 1)))


def _png(rgba: np.ndarray) -> str:
    from matplotlib.image import imsave

    buffer = io.BytesIO()
    imsave(buffer, rgba, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _number(value: float) -> str:
    return f"{value:.3g}"


def _ticks(n: int) -> range:
    return range(0, n, max(1, math.ceil(n / 8)))


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{FONT}" text-anchor="{anchor}"{extra}>'
            f'{html.escape(text)}</text>')


def _panel(data: np.ndarray, cmap: str, low: float, high: float, heading: str,
           rows: str, columns: str, alt: str) -> str:
    """One heatmap as an inline SVG: heading, ticks, axis labels and colour bar."""
    n, m = data.shape
    cell = max(CELL, 160 // max(n, m))
    width, height = m * cell, n * cell
    left, top, bottom, right = 48, 24, 40, 76
    total_w, total_h = left + width + right, top + height + bottom
    parts = [f'<svg class="panel" viewBox="0 0 {total_w} {total_h}" width="{total_w}" '
             f'height="{total_h}" role="img" aria-label="{html.escape(alt)}">'
             f'<title>{html.escape(alt)}</title>',
             _text(left + width / 2, 15, heading, extra=' font-weight="bold"'),
             f'<image x="{left}" y="{top}" width="{width}" height="{height}" '
             f'href="{_png(_colour(data, cmap, low, high, cell))}"/>',
             f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" '
             f'stroke="#555" stroke-width="0.5"/>']
    for j in _ticks(m):
        parts.append(_text(left + (j + 0.5) * cell, top + height + 13, str(j)))
    for i in _ticks(n):
        parts.append(_text(left - 4, top + (i + 0.5) * cell + 4, str(i), anchor="end"))
    parts.append(_text(left + width / 2, top + height + 32, columns))
    y_mid = top + height / 2
    parts.append(_text(13, y_mid, rows, extra=f' transform="rotate(-90 13 {y_mid:.1f})"'))
    # The colour bar: the colormap from high (top) to low (bottom), with its values.
    steps = np.linspace(high, low, 64)[:, None] if high > low else np.full((64, 1), low)
    bar = _colour(steps, cmap, low, high, 1)
    bar_x = left + width + 10
    parts.append(f'<image x="{bar_x}" y="{top}" width="12" height="{height}" '
                 f'preserveAspectRatio="none" href="{_png(bar)}"/>')
    for value, y in ((high, top + 4), ((low + high) / 2, y_mid + 4), (low, top + height)):
        parts.append(_text(bar_x + 16, y, _number(value), anchor="start"))
    parts.append("</svg>")
    return "".join(parts)


def _where(names: list[str], position) -> str:
    return ", ".join(f"{axis} {int(i)}" for axis, i in zip(names, position))


def heatmaps(expected: np.ndarray, actual: np.ndarray, title: str = "expected, yours, "
             "difference", rows: str = "row", columns: str = "column") -> dict:
    """expected | yours | difference, each an inline SVG with its colour bar;
    ``{"html", "alt"}``: the markup and the text alternative of the whole figure."""
    finite = np.concatenate([expected[np.isfinite(expected)], actual[np.isfinite(actual)]])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    difference = np.abs(actual - expected)
    top = float(np.nanmax(difference)) if np.isfinite(difference).any() else 1.0
    n, m = expected.shape
    shape = f"{n} {rows}s by {m} {columns}s" if not rows.startswith("axis") else f"{n} by {m}"
    names = [rows, columns]
    summary = []
    if np.isfinite(difference).any():
        at = np.unravel_index(np.nanargmax(np.where(np.isfinite(difference), difference,
                                                    -np.inf)), difference.shape)
        summary.append(f"the largest difference is {_number(difference[at])} at "
                       f"{_where(names, at)} (expected {_number(expected[at])}, yours "
                       f"{_number(actual[at])})")
    nan = np.argwhere(np.isnan(actual) & ~np.isnan(expected))
    if len(nan):
        summary.append(f"yours is NaN (red) at {len(nan)} entries, first at "
                       f"{_where(names, nan[0])}")
    differs = int(np.sum(~np.isclose(actual, expected, equal_nan=True)))
    summary.append(f"{differs} of {expected.size} entries differ")
    alt = f"{title}. Heatmaps of {shape}; " + "; ".join(summary) + "."
    panels = [
        _panel(expected, "viridis", low, high, "expected", rows, columns,
               f"expected values, {shape}, from {_number(low)} to {_number(high)}"),
        _panel(actual, "viridis", low, high, "yours", rows, columns,
               f"your values on the same colour scale, {shape}"),
        _panel(difference, "magma", 0.0, top, "difference |yours − expected|", rows, columns,
               f"absolute difference, from 0 to {_number(top)}"),
    ]
    return {"html": '<div class="panels">' + "".join(panels) + "</div>", "alt": alt}


def curves(expected: np.ndarray, actual: np.ndarray, title: str = "", xlabel: str = "index",
           width: int = 480, height: int = 190) -> dict:
    """Expected (blue) and yours (orange) as an inline SVG; log scale when the
    values span orders of magnitude (vanishing or exploding gradients)."""
    values = np.concatenate([expected, actual])
    values = values[np.isfinite(values)]
    if not values.size:
        values = np.array([0.0, 1.0])
    log = bool((values > 0).all() and values.max() / values.min() > 100)
    lo, hi = (np.log10(values.min()), np.log10(values.max())) if log else \
        (values.min(), values.max())
    left, right, top, bottom = 56, 12, 26, 38
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(v):
        v = np.log10(v) if log else v
        return top + plot_h - (v - lo) / ((hi - lo) or 1) * plot_h

    def line(data, colour, dash=""):
        n = max(len(data) - 1, 1)
        points = " ".join(f"{left + i * plot_w / n:.1f},{y(v):.1f}"
                          for i, v in enumerate(data) if np.isfinite(v) and (v > 0 or not log))
        return (f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} '
                f'points="{points}"/>')
    scale = "log scale" if log else "linear scale"
    difference = np.abs(actual - expected)
    summary = f"{len(expected)} values, {scale}"
    if np.isfinite(difference).any():
        at = int(np.nanargmax(np.where(np.isfinite(difference), difference, -np.inf)))
        summary += (f"; the largest difference is {_number(difference[at])} at {xlabel} {at} "
                    f"(expected {_number(expected[at])}, yours {_number(actual[at])})")
    alt = f"{title or 'expected and yours'}: expected (blue) and yours (orange) by {xlabel}; " \
          f"{summary}."
    low_label = 10 ** lo if log else lo
    high_label = 10 ** hi if log else hi
    parts = [f'<svg class="curve" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{html.escape(alt)}">'
             f'<title>{html.escape(alt)}</title>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
             f'stroke="#999" stroke-width="0.5"/>',
             line(expected, "#1f77b4"), line(actual, "#ff7f0e", ' stroke-dasharray="5 3"'),
             _text(left - 4, top + 4, _number(high_label), anchor="end"),
             _text(left - 4, top + plot_h, _number(low_label), anchor="end"),
             _text(left, top + plot_h + 13, "0", anchor="start"),
             _text(left + plot_w, top + plot_h + 13, str(len(expected) - 1), anchor="end"),
             _text(left + plot_w / 2, height - 6, xlabel),
             _text(12, top + plot_h / 2, f"value ({scale})",
                   extra=f' transform="rotate(-90 12 {top + plot_h / 2:.1f})"'),
             f'<line x1="{left}" y1="12" x2="{left + 18}" y2="12" stroke="#1f77b4" '
             f'stroke-width="2"/>', _text(left + 22, 16, "expected", anchor="start"),
             f'<line x1="{left + 90}" y1="12" x2="{left + 108}" y2="12" stroke="#ff7f0e" '
             f'stroke-width="2" stroke-dasharray="5 3"/>',
             _text(left + 112, 16, "yours", anchor="start"), "</svg>"]
    return {"html": "".join(parts), "alt": alt}


def evidence(evidence: dict, axes: dict | None = None) -> dict | None:
    """``{"kind": "heatmaps"|"curves", "html", "title", "alt"}`` or None."""
    try:
        expected = np.array(evidence["expected"], dtype=float)
        actual = np.array(evidence["actual"], dtype=float)
    except (KeyError, TypeError, ValueError):
        return None
    if expected.shape != actual.shape or expected.size == 0 or expected.ndim not in (1, 2):
        return None
    _, index, _ = _quantity(str(evidence.get("what", "")))
    names = axis_names(evidence, expected.ndim + len(index), axes)
    title = _title(evidence, names)
    if expected.ndim == 2:
        figure = heatmaps(expected, actual, title, rows=names[-2], columns=names[-1])
        return {"kind": "heatmaps", "title": title, **figure}
    figure = curves(expected, actual, title.replace(": expected, yours, difference", ""),
                    xlabel=names[-1])
    return {"kind": "curves", "title": title.replace(", difference", ""), **figure}


def score_histogram(scores: list[float], max_score: float, bins: int = 10) -> str:
    """The score distribution as an inline SVG bar chart, with its text alternative."""
    top_score = max_score or 1
    counts = np.histogram(scores, bins=bins, range=(0, top_score))[0]
    edges = [i * top_score / bins for i in range(bins + 1)]
    top = max(int(counts.max()), 1) if len(counts) else 1
    left, bottom, plot_h, bar_w, gap = 40, 40, 130, 40, 6
    width = left + bins * (bar_w + gap) + 10
    height = 20 + plot_h + bottom
    ranges = [f"{edges[i]:g}–{edges[i + 1]:g}" for i in range(bins)]
    alt = (f"Score distribution of {len(scores)} submissions (points out of {top_score:g}), "
           "submissions per score range: "
           + ", ".join(f"{r}: {int(c)}" for r, c in zip(ranges, counts)) + ".")
    parts = [f'<svg class="histogram" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{html.escape(alt)}">'
             f'<title>{html.escape(alt)}</title>']
    base = 20 + plot_h
    for i, c in enumerate(counts):
        h = plot_h * c / top
        x = left + i * (bar_w + gap)
        parts.append(f'<rect x="{x}" y="{base - h:.1f}" width="{bar_w}" height="{h:.1f}" '
                     f'fill="#3b7dd8"/>')
        if c:
            parts.append(_text(x + bar_w / 2, base - h - 3, str(int(c))))
        parts.append(_text(x + bar_w / 2, base + 13, f"{edges[i]:g}"))
    parts.append(f'<line x1="{left - 2}" y1="{base}" x2="{width - 8}" y2="{base}" '
                 'stroke="#555" stroke-width="0.5"/>')
    parts.append(_text(left + bins * (bar_w + gap) / 2, height - 6,
                       f"score (each bar: a range of {top_score / bins:g} points, from its "
                       "left value)"))
    parts.append(_text(12, 20 + plot_h / 2, "submissions",
                       extra=f' transform="rotate(-90 12 {20 + plot_h / 2:.1f})"'))
    parts.append("</svg>")
    return "".join(parts)
