"""Reading a ``grade`` output folder back (for ``export`` and ``diff``).

Which submissions belong to the run: the rows of ``DIR/grades.csv`` (written
once per batch), or, without it, every ``DIR/<id>/`` holding a result; a folder
left from an earlier batch with other submissions is not in grades.csv, so it
is not read. Each submission's result: ``DIR/<id>/grading.json`` (the full
record, ``report/writer.py``), else ``DIR/<id>/results.json`` (Gradescope's
format: test names, points and status), else its grades.csv row (scores only).
What could not be read is reported in ``problems``; nothing here raises for a
damaged file.
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.scoring import GRADED, SubmissionResult, TestOutcome
from .writer import RECORD, read_record

GRADES = "grades.csv"
MAX_JSON_BYTES = 16 * 1024 * 1024
_FIXED = ("submission", "score", "max_score", "status")


@dataclass
class Run:
    folder: Path
    results: dict[str, SubmissionResult] = field(default_factory=dict)  # by submission id
    problems: list[str] = field(default_factory=list)


class NotAGradeFolder(ValueError):
    """The folder does not exist or holds no result of ``grade``."""


def read(folder) -> Run:
    folder = Path(folder)
    if not folder.is_dir():
        raise NotAGradeFolder(f"{folder} is not a folder")
    run = Run(folder)
    rows = _grades_rows(folder / GRADES, run)
    if rows is None:  # no grades.csv: every sub-folder with a result
        ids = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)
                     and any((folder / entry.name / name).is_file()
                             for name in (RECORD, "results.json")))
        rows = {sid: None for sid in ids}
    for sid, row in rows.items():
        result = _read_one(folder, sid, row, run)
        if result is not None:
            run.results[result.submission] = result
    if not run.results and not run.problems:
        raise NotAGradeFolder(f"{folder} holds no grades.csv and no <submission>/{RECORD} "
                              "or results.json: is it the --out folder of `autograder grade`?")
    return run


def printable(text: str, limit: int = 200) -> str:
    """A submission id or roster cell (student-controlled text) safe to print on
    a terminal: control, format and bidi characters escaped, length bounded."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "C"
                   or c in "\u2028\u2029" else c for c in text)


def _grades_rows(path: Path, run: Run) -> dict[str, dict] | None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeError) as exc:
        run.problems.append(f"{path} could not be read ({exc})")
        return None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "submission" not in reader.fieldnames:
        run.problems.append(f"{path} has no 'submission' column")
        return None
    rows = {}
    for row in reader:
        sid = _folder_name(path.parent, row.get("submission") or "")
        if sid:
            rows[sid] = row
    return rows


def _folder_name(folder: Path, cell: str) -> str:
    """The submission id behind a grades.csv cell: ``'=x`` is how ``=x`` was
    neutralised against formula injection (``report/gradebook.py``)."""
    if cell.startswith("'") and len(cell) > 1 and not (folder / cell).is_dir():
        return cell[1:]
    return cell


def _read_one(folder: Path, sid: str, row: dict | None, run: Run) -> SubmissionResult | None:
    if sid in ("", ".", "..") or "/" in sid or "\\" in sid or "\0" in sid:
        run.problems.append(f"{sid!r} is not a submission id")
        return None
    record = folder / sid / RECORD
    if record.is_file():
        result = read_record(folder, sid)
        if result is not None:
            return result
        run.problems.append(f"{record} is damaged; trying results.json")
    gradescope = folder / sid / "results.json"
    if gradescope.is_file():
        result = _from_results_json(gradescope, sid, run)
        if result is not None:
            return result
    if row is not None:
        return _from_grades_row(sid, row, run)
    run.problems.append(f"no result for {sid} in {folder}")
    return None


def _from_results_json(path: Path, sid: str, run: Run) -> SubmissionResult | None:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError("too large")
        data = json.loads(path.read_text(encoding="utf-8"))
        tests = [TestOutcome(key=str(t["name"]), name=str(t["name"]),
                             visibility="hidden" if t.get("visibility") == "after_published"
                             else "public",
                             max_score=float(t.get("max_score", 0)),
                             passed=t.get("status") == "passed")
                 for t in data.get("tests", [])]
        return SubmissionResult(submission=sid, assignment="", tests=tests,
                                configured_max=float(data.get("max_score", 0) or 0))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        run.problems.append(f"{path} could not be read ({type(exc).__name__})")
        return None


def _from_grades_row(sid: str, row: dict, run: Run) -> SubmissionResult | None:
    """Scores only: each test column holds the points earned (all or nothing),
    so a test with points is passed; its maximum is not in grades.csv."""
    try:
        tests = []
        for name, cell in row.items():
            if name in _FIXED or name is None or cell in (None, ""):
                continue
            earned = float(cell)
            tests.append(TestOutcome(key=name, name=name, visibility="public",
                                     max_score=earned, passed=earned > 0))
        result = SubmissionResult(submission=sid, assignment="", tests=tests,
                                  configured_max=float(row.get("max_score") or 0),
                                  status=(row.get("status") or GRADED).lstrip("'"))
        score = float(row.get("score") or 0)
        if abs(result.score - score) > 1e-6:  # no per-test columns: keep the total
            result.tests = [TestOutcome(key="score", name="score", visibility="public",
                                        max_score=score, passed=score > 0)]
        return result
    except (ValueError, TypeError) as exc:
        run.problems.append(f"the grades.csv row of {sid} could not be read ({exc})")
        return None
