"""Figures for feedback.html and summary.html, embedded so a report opens from
disk with no network. Heatmaps are coloured with matplotlib's colormaps and
written with ``imsave`` (no figure, a few ms each: a batch writes hundreds);
curves are inline SVG."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

CELL = 14  # pixels per matrix entry
GAP = 10


def _colour(data: np.ndarray, cmap: str, low: float, high: float, cell: int) -> np.ndarray:
    from matplotlib import colormaps

    scaled = (data - low) / (high - low) if high > low else np.zeros_like(data)
    rgba = colormaps[cmap](np.clip(np.nan_to_num(scaled, nan=0.0), 0, 1))
    rgba[np.isnan(data)] = (1.0, 0.0, 0.0, 1.0)  # NaN in red
    return np.kron(rgba, np.ones((cell, cell, 1)))


def heatmaps(expected: np.ndarray, actual: np.ndarray) -> str:
    """expected | yours | |difference| as one PNG (data URI)."""
    from matplotlib.image import imsave

    finite = np.concatenate([expected[np.isfinite(expected)], actual[np.isfinite(actual)]])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    difference = np.abs(actual - expected)
    cell = max(CELL, 160 // max(expected.shape))  # small matrices are drawn larger
    panels = [_colour(expected, "viridis", low, high, cell),
              _colour(actual, "viridis", low, high, cell),
              _colour(difference, "magma", 0.0, float(np.nanmax(difference)) if
                      np.isfinite(difference).any() else 1.0, cell)]
    gap = np.ones((panels[0].shape[0], GAP, 4))
    image = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    buffer = io.BytesIO()
    imsave(buffer, image, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def curves(expected: np.ndarray, actual: np.ndarray, width: int = 480, height: int = 160) -> str:
    """Expected (blue) and yours (orange) as an inline SVG; log scale when the
    values span orders of magnitude (vanishing or exploding gradients)."""
    values = np.concatenate([expected, actual])
    values = values[np.isfinite(values)]
    log = values.size and (values > 0).all() and values.max() / values.min() > 100
    def y(v):
        v = np.log10(v) if log else v
        lo, hi = (np.log10(values.min()), np.log10(values.max())) if log else \
            (values.min(), values.max())
        return height - 10 - (v - lo) / ((hi - lo) or 1) * (height - 20)
    def line(data, colour):
        n = max(len(data) - 1, 1)
        points = " ".join(f"{10 + i * (width - 20) / n:.1f},{y(v):.1f}"
                          for i, v in enumerate(data) if np.isfinite(v))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
    scale = "log scale" if log else "linear scale"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img"><title>{html.escape(scale)}</title>'
            f'<rect width="100%" height="100%" fill="#fafafa"/>{line(expected, "#1f77b4")}'
            f'{line(actual, "#ff7f0e")}</svg>')


def evidence(evidence: dict) -> dict | None:
    """{"kind": "image"|"svg", "data": ..., "what": ...} or None."""
    expected = np.array(evidence["expected"], dtype=float)
    actual = np.array(evidence["actual"], dtype=float)
    if expected.shape != actual.shape or expected.size == 0:
        return None
    if expected.ndim == 2:
        return {"kind": "image", "data": heatmaps(expected, actual), "what": evidence["what"]}
    if expected.ndim == 1:
        return {"kind": "svg", "data": curves(expected, actual), "what": evidence["what"]}
    return None


def score_histogram(scores: list[float], max_score: float) -> str:
    """Score distribution as inline SVG bars (10 bins)."""
    bins = np.histogram(scores, bins=10, range=(0, max_score or 1))[0]
    top = max(int(bins.max()), 1)
    bars = "".join(
        f'<rect x="{10 + i * 46}" y="{150 - 130 * c / top:.1f}" width="40" '
        f'height="{130 * c / top:.1f}" fill="#3b7dd8"><title>{c}</title></rect>'
        f'<text x="{30 + i * 46}" y="168" font-size="10" text-anchor="middle">'
        f'{i * (max_score or 1) / 10:g}</text>'
        for i, c in enumerate(bins))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="480" height="175" role="img">'
            f'{bars}</svg>')
