"""``grades.csv``: one row per submission, first columns submission,score,max_score."""

from __future__ import annotations

import csv
import io

from ..engine.scoring import SubmissionResult


def render(results: list[SubmissionResult]) -> str:
    keys: list[str] = []
    for result in results:
        for test in result.tests:
            if test.name not in keys:
                keys.append(test.name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", "score", "max_score", *keys])
    for result in sorted(results, key=lambda r: r.submission):
        scores = {t.name: f"{t.score:g}" for t in result.tests}
        writer.writerow([result.submission, f"{result.score:g}", f"{result.max_score:g}",
                         *(scores.get(k, "") for k in keys)])
    return out.getvalue()
