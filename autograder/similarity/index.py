"""Scoring every pair of a batch through an inverted index of fingerprints.

1,000 submissions make 499,500 pairs. Instead of intersecting each pair's
fingerprint sets, each fingerprint lists the submissions that have it, and only
submissions on a common list are ever counted together: the cost grows with the
number of (fingerprint, submission, submission) triples, not with the number of
pairs, and pairs that share nothing are never looked at.

A pair's score is the mean of the two containments: the share of A's
fingerprints that B also has, and the share of B's that A has. 1 for identical
code (after normalisation), 0 for code that shares no run of ``K + W - 1``
normalised tokens outside the template.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Every pair that shares a fingerprint, best first (score descending, then
    indices ascending): ``a[i] < b[i]`` are indices into the documents given to
    :func:`score_pairs`, ``shared[i]`` their common fingerprints."""
    a: np.ndarray
    b: np.ndarray
    shared: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


def score_pairs(documents) -> Scores:
    """Score every pair of ``documents`` (collections of fingerprints) that
    shares at least one fingerprint."""
    n = len(documents)
    postings: dict[int, list[int]] = {}
    for position, prints in enumerate(documents):
        for value in prints:
            postings.setdefault(value, []).append(position)
    shared = np.zeros((n, n), dtype=np.int32)
    for docs in postings.values():
        if len(docs) > 1:
            ids = np.asarray(docs)
            shared[ids[:, None], ids[None, :]] += 1  # each id once per list: no lost updates
    sizes = np.array([max(len(d), 1) for d in documents], dtype=np.float64)
    a, b = np.nonzero(np.triu(shared, k=1))
    counts = shared[a, b]
    scores = np.minimum(1.0, (counts / sizes[a] + counts / sizes[b]) / 2)
    order = np.lexsort((b, a, -scores))
    return Scores(a[order], b[order], counts[order], scores[order])
