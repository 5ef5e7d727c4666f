"""Every report file of a batch is written here, and only here.

Per submission: ``OUT/<id>/results.json`` (Gradescope's format),
``feedback.md``, ``feedback.html`` and ``grading.json`` (the full record, for
``--resume``); per batch: ``grades.csv``, ``summary.html`` and, if asked, JUnit
XML. Every path is checked to stay inside ``--out`` (``report/files.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..engine import mistakes
from ..engine.scoring import SubmissionResult
from . import feedback_html, feedback_md, gradebook, junit, results_json, summary_html
from .files import child, write_atomic

RECORD = "grading.json"  # the full internal record of a graded submission (for --resume)


def write_submission(out: Path, assignment, result: SubmissionResult) -> None:
    folder = child(out, result.submission)
    write_atomic(folder / "results.json", results_json.render(result), root=out)
    write_atomic(folder / "feedback.md", feedback_md.render(result, assignment.title), root=out)
    write_atomic(folder / "feedback.html", feedback_html.render(result, assignment.title,
                                                     getattr(assignment, "plot_axes", None)),
                 root=out)
    # Written last: its presence means the submission is completely graded.
    write_atomic(folder / RECORD, json.dumps(result.to_dict(), indent=1), root=out)


def read_record(out: Path, sid: str) -> SubmissionResult | None:
    try:
        return SubmissionResult.from_dict(json.loads((out / sid / RECORD).read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_batch(out: Path, assignment, results: list[SubmissionResult],
                junit_path: Path | None = None) -> None:
    """The class-level files, once every submission's result exists."""
    write_atomic(out / "grades.csv", gradebook.render(results), root=out)
    if results:
        hints = {m.id: m.hint for m in mistakes.load(assignment)}
        write_atomic(out / "summary.html", summary_html.render(results, assignment.title, hints),
                     root=out)
    if junit_path is not None:  # where the CI wants it, which may be outside --out
        write_atomic(junit_path, junit.render(results, assignment.id))
