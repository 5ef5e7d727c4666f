"""Figures for feedback.html and summary.html, embedded as base64 PNG so a
report opens from disk with no network. matplotlib is imported only when a
report has something to draw."""

from __future__ import annotations

import base64
import io


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def evidence(evidence: dict) -> str | None:
    """Expected vs your values: three heatmaps for a matrix (attention weights),
    two curves for a vector (e.g. gradient norms over time)."""
    import numpy as np

    expected = np.array(evidence["expected"], dtype=float)
    actual = np.array(evidence["actual"], dtype=float)
    if expected.shape != actual.shape or expected.size == 0:
        return None
    plt = _pyplot()
    if expected.ndim == 2:
        figure, axes = plt.subplots(1, 3, figsize=(10, 3.2))
        finite = np.concatenate([expected[np.isfinite(expected)], actual[np.isfinite(actual)]])
        low, high = (finite.min(), finite.max()) if finite.size else (0, 1)
        for ax, data, title in ((axes[0], expected, "expected"), (axes[1], actual, "yours"),
                                (axes[2], np.abs(actual - expected), "|difference|")):
            image = ax.imshow(data, cmap="viridis" if title != "|difference|" else "magma",
                              vmin=None if title == "|difference|" else low,
                              vmax=None if title == "|difference|" else high)
            ax.set_title(title)
            ax.set_xlabel("key / column")
            figure.colorbar(image, ax=ax, fraction=0.046)
        axes[0].set_ylabel("query / row")
        figure.tight_layout()
    elif expected.ndim == 1:
        figure, ax = plt.subplots(figsize=(6, 3))
        ax.plot(expected, "o-", label="expected")
        ax.plot(actual, "x--", label="yours")
        if (expected > 0).all() and expected.max() / max(expected.min(), 1e-300) > 100:
            ax.set_yscale("log")
        ax.set_xlabel("index (time step)")
        ax.legend()
    else:
        return None
    figure.suptitle(evidence.get("what", ""))
    return _png(figure)


def score_histogram(scores: list[float], max_score: float) -> str:
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(6, 3))
    ax.hist(scores, bins=min(20, max(5, len(scores))), range=(0, max_score or 1),
            color="#3b7dd8", edgecolor="white")
    ax.set_xlabel("score")
    ax.set_ylabel("submissions")
    return _png(figure)
