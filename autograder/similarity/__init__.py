"""``autograder similarity``: which submissions of a batch share code.

Each submission is read like ``grade`` reads it (``autograder/submission.py``:
folder, ``.py``, ``.zip`` or notebook, never raising for hostile content; one
that cannot be read is skipped with a note), fingerprinted with the
template's code excluded (``fingerprints.py``), and every pair that shares
fingerprints is scored through an inverted index (``index.py``). Writes
``OUT/similarity.csv`` (``a,b,score``, best first) and ``OUT/similarity.html``
(ranked pairs, side-by-side views with the shared code highlighted;
``report.py``).

Why this and not a library: copydetect (MIT, a MOSS-style winnowing tool on
Pygments tokens) was measured against this on the planted-copies test of
``tests/test_course_tools.py``; the numbers are in ``benchmarks/README.md``,
"Similarity".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import assignment as assignments
from .. import submission as submissions
from ..report.files import write_atomic
from . import fingerprints, index, report


@dataclass
class SimilarityOutcome:
    pairs: list[tuple[str, str, float]] = field(default_factory=list)  # best first
    skipped: list[tuple[str, str]] = field(default_factory=list)       # (id, why)
    compared: int = 0


def compare(assignment_id: str, paths, out: Path, shown: int = report.SHOWN_PAIRS,
            root: Path | None = None) -> SimilarityOutcome:
    """Compare the submissions at ``paths`` pairwise; write the CSV and HTML
    reports into ``out``."""
    assignment = assignments.load(assignment_id, root)
    subs = submissions.load_batch([str(p) for p in paths], assignment.module)
    try:
        template = assignment.template.read_text(encoding="utf-8")
    except OSError:
        template = ""
    excluded = fingerprints.all_kgrams(template)

    outcome = SimilarityOutcome()
    readable = []
    for sub in subs:
        if sub.source is None:
            outcome.skipped.append((sub.id, sub.problem or "it could not be read"))
        else:
            readable.append(sub)
    by_digest: dict[str, fingerprints.Fingerprints] = {}  # identical files: once
    prints = [by_digest.get(sub.digest) or by_digest.setdefault(
        sub.digest, fingerprints.fingerprint(sub.source, excluded)) for sub in readable]
    outcome.compared = len(readable)
    scores = index.score_pairs([p.spans for p in prints])
    ids = [sub.id for sub in readable]
    outcome.pairs = [(ids[a], ids[b], score) for a, b, score in
                     zip(scores.a.tolist(), scores.b.tolist(), scores.score.tolist())]

    views = []
    for a, b, score in zip(scores.a[:shown].tolist(), scores.b[:shown].tolist(),
                           scores.score[:shown].tolist()):
        left, right = prints[a].spans, prints[b].spans
        common = left.keys() & right.keys()
        views.append({
            "a": ids[a], "b": ids[b], "score": score,
            "left": report.segments(readable[a].source, [s for h in common for s in left[h]]),
            "right": report.segments(readable[b].source, [s for h in common for s in right[h]]),
        })
    out = Path(out)
    write_atomic(out / "similarity.csv", report.render_csv(outcome.pairs), root=out)
    write_atomic(out / "similarity.html",
                 report.render_html(assignment.title, len(readable), outcome.pairs, views,
                                    outcome.skipped), root=out)
    return outcome
