"""``autograder export``: a ``grade`` output folder as an LMS gradebook import file.

``--format canvas`` writes the CSV that Canvas's gradebook import takes
(Grades > Import). Layout followed: Canvas Instructor Guide, "How do I import
grades in the Gradebook?",
https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807
(as summarised, with the column letters, by
https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades):
the layout of Canvas's own gradebook export,

    Student,ID,SIS User ID,SIS Login ID,Section,Multi-head attention (123456)
        Points Possible,,,,,100
    "Doe, Jane",4242,S001,jdoe,Section 1,87.5

- the five student columns come first, in this order; Canvas finds the student
  by ``ID`` (the Canvas user id), ``SIS User ID`` or ``SIS Login ID``, so a
  roster needs at least one of them (with none, the submission id is written
  as the SIS Login ID);
- the assignment column is named ``Name (ID)`` to fill an existing Canvas
  assignment (its id is in the assignment's URL: ``--canvas-assignment-id``),
  or a new name, which makes Canvas create that assignment;
- the ``Points Possible`` row (second row, first column, as Canvas's export
  writes it) gives a new assignment its points; Canvas ignores it for an
  existing one;
- a blank score leaves the gradebook cell as it is: roster students without a
  submission get a blank, never an invented 0.

``--format csv`` writes a plain table for any other LMS or spreadsheet:
``student_name,canvas_id,sis_user_id,sis_login_id,section,submission,score,max_score,status``
(status: graded, unreadable, or missing for a roster student without a
submission; submissions without a roster entry are rows with blank student
columns).

The roster (``--roster``, a CSV with a header row, UTF-8, column names in any
case and order) maps submissions to students:

    submission_id,student_name,canvas_id,sis_user_id,sis_login_id,section

``submission_id`` (required) is the id ``grade`` gave the submission (its
folder under ``--results``); the others are optional and copied as they are.
Roster students without a submission and submissions without a roster entry
are listed on stderr; the file is still written. Every text cell is
neutralised against spreadsheet formula injection (``report/gradebook.py``).
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .report.files import write_atomic
from .report.gradebook import neutralise
from .report.reader import printable, read

ROSTER_COLUMNS = ("submission_id", "student_name", "canvas_id", "sis_user_id", "sis_login_id",
                  "section")
CANVAS_HEADER = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS_POSSIBLE = "    Points Possible"  # as Canvas's own export writes it
CSV_HEADER = ("student_name", "canvas_id", "sis_user_id", "sis_login_id", "section",
              "submission", "score", "max_score", "status")
FORMATS = ("canvas", "csv")
MAX_ROSTER_BYTES = 32 * 1024 * 1024


class ExportError(ValueError):
    """A usage error: the message is one line for stderr."""


@dataclass
class ExportOutcome:
    rows: int = 0
    missing: list[dict] = field(default_factory=list)  # roster students without a submission
    unknown: list[str] = field(default_factory=list)   # submissions without a roster entry
    problems: list[str] = field(default_factory=list)  # results that could not be read


def read_roster(path) -> list[dict]:
    """The roster's rows as dicts keyed by :data:`ROSTER_COLUMNS` (missing ones "")."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_ROSTER_BYTES:
            raise ExportError(f"the roster {path} is larger than 32 MB")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError) as exc:
        raise ExportError(f"cannot read the roster {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    reader = csv.reader(io.StringIO(text))
    header = [name.strip().lower() for name in next(reader, [])]
    if "submission_id" not in header:
        raise ExportError(f"the roster {path} has no submission_id column (columns: "
                          f"{', '.join(ROSTER_COLUMNS)})")
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        row = dict(zip(header, (cell.strip() for cell in cells)))
        rows.append({column: row.get(column, "") for column in ROSTER_COLUMNS})
    return rows


def export(results_dir, fmt: str, out, roster=None, assignment_name: str | None = None,
           canvas_assignment_id: str | None = None, err: TextIO | None = None) -> ExportOutcome:
    """Write the gradebook file ``out``; lists what did not match on ``err``."""
    err = err if err is not None else sys.stderr
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name")
    if fmt != "canvas" and canvas_assignment_id:
        raise ExportError("--canvas-assignment-id only applies to --format canvas")
    if canvas_assignment_id and not str(canvas_assignment_id).isdigit():
        raise ExportError(f"--canvas-assignment-id must be the number in the Canvas "
                          f"assignment's URL, not {canvas_assignment_id!r}")
    try:
        run = read(results_dir)
    except ValueError as exc:
        raise ExportError(f"--results {exc}") from None
    students = read_roster(roster) if roster is not None else None
    outcome = ExportOutcome(problems=list(run.problems))
    results = run.results

    if students is None:
        # No roster: every submission is a student of its own; for Canvas its id
        # is the SIS Login ID, in a plain CSV the student columns stay blank.
        canvas = fmt == "canvas"
        students = [{"submission_id": sid, "student_name": sid if canvas else "",
                     "canvas_id": "", "sis_user_id": "", "sis_login_id": sid if canvas else "",
                     "section": ""} for sid in sorted(results)]
        if canvas:
            print("export: no --roster; submission ids are written as Canvas SIS Login IDs",
                  file=err)
    seen: set[str] = set()
    unique = []
    for student in students:
        if student["submission_id"] in seen:
            print(f"export: the roster lists submission {printable(student['submission_id'])} "
                  "more than once; its first row is used", file=err)
            continue
        seen.add(student["submission_id"])
        unique.append(student)
    students = unique
    outcome.missing = [s for s in students if s["submission_id"] not in results]
    outcome.unknown = sorted(sid for sid in results if sid not in seen)

    max_score = max((r.max_score for r in results.values()), default=0.0)
    if fmt == "canvas":
        name = assignment_name or _title(results.values()) or "Autograder"
        column = f"{name} ({canvas_assignment_id})" if canvas_assignment_id else name
        text, outcome.rows = _canvas(students, results, column, max_score)
    else:
        text, outcome.rows = _plain(students, results, outcome.unknown)
    write_atomic(out, text)

    for problem in outcome.problems:
        print(f"export: {printable(problem, 400)}", file=err)
    if outcome.missing:
        print(f"export: {len(outcome.missing)} roster student(s) without a submission "
              f"({'left blank' if fmt == 'canvas' else 'status missing'}):", file=err)
        for student in outcome.missing:
            who = student["student_name"] or student["sis_login_id"] or student["sis_user_id"]
            print(f"  {printable(student['submission_id'])}"
                  + (f" ({printable(who)})" if who else ""), file=err)
    if outcome.unknown:
        print(f"export: {len(outcome.unknown)} submission(s) without a roster entry"
              + (" (not in the Canvas file)" if fmt == "canvas" else "") + ":", file=err)
        for sid in outcome.unknown:
            print(f"  {printable(sid)}", file=err)
    return outcome


def _title(results) -> str:
    """The assignment's title, from the results' assignment id."""
    from . import assignment as assignments
    ids = {r.assignment for r in results if r.assignment}
    if len(ids) != 1:
        return ""
    (assignment_id,) = ids
    try:
        return assignments.load(assignment_id).title
    except Exception:  # an assignment of another course checkout: its id will do
        return assignment_id


def _number(value: float) -> str:
    return f"{round(value, 4):g}"


def _canvas(students, results, column: str, max_score: float) -> tuple[str, int]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CANVAS_HEADER, neutralise(column)])
    writer.writerow([POINTS_POSSIBLE, "", "", "", "", _number(max_score)])
    rows = 0
    for student in students:
        result = results.get(student["submission_id"])
        writer.writerow([neutralise(student[key]) for key in
                         ("student_name", "canvas_id", "sis_user_id", "sis_login_id", "section")]
                        + ["" if result is None else _number(result.score)])
        rows += 1
    return out.getvalue(), rows


def _plain(students, results, unknown) -> tuple[str, int]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    rows = 0
    for student in [*students, *({"submission_id": sid} for sid in unknown)]:
        sid = student["submission_id"]
        result = results.get(sid)
        writer.writerow([neutralise(student.get(key, "")) for key in CSV_HEADER[:5]]
                        + [neutralise(sid),
                           "" if result is None else _number(result.score),
                           "" if result is None else _number(result.max_score),
                           "missing" if result is None else neutralise(result.status)])
        rows += 1
    return out.getvalue(), rows
