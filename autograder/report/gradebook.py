"""``grades.csv``: one row per submission, first columns
submission,score,max_score,status, then one column per test (cli.md)."""

from __future__ import annotations

import csv
import io

from ..engine.scoring import SubmissionResult

# Spreadsheet formula injection (OWASP "CSV Injection"): a cell starting with one
# of these is run as a formula by Excel, LibreOffice and Google Sheets. Student
# ids come from file names (`=HYPERLINK(...)`.py), so every text cell is
# neutralised; numbers are written by us and never start with one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text, never as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def render(results: list[SubmissionResult]) -> str:
    keys: list[str] = []
    for result in results:
        for test in result.tests:
            if test.id not in keys:  # unique across public and hidden (cli.md)
                keys.append(test.id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", "score", "max_score", "status", *map(neutralise, keys)])
    for result in sorted(results, key=lambda r: r.submission):
        scores = {t.id: f"{round(t.score, 2):g}" for t in result.tests}
        writer.writerow([neutralise(result.submission), f"{result.score:g}",
                         f"{result.max_score:g}", neutralise(result.status),
                         *(scores.get(k, "") for k in keys)])
    return out.getvalue()
