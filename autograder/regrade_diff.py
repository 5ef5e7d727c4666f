"""``autograder diff OLD_DIR NEW_DIR``: what a regrade changed, before publishing it.

Compares two ``grade`` output folders of the same assignment (read by
``report/reader.py``) submission by submission and test by test:

- per submission whose score or test outcomes changed: old and new score, the
  change, and why: tests it now passes, tests it now fails, tests it passes in
  both runs whose points changed (sorted by the size of the change, largest
  first);
- per test: "test_x: 14 students now pass, 2 now fail", and a change of its
  points;
- submissions graded in only one of the runs.

A test is identified by its key (``hidden/test_file.py::test_name``, unique
within an assignment); a test missing from a run counts as not passed there.
``--out FILE.csv`` writes the per-submission changes:
``submission,old_score,new_score,change,now_pass,now_fail,points_changed,note``
(test names separated by ``;``, text cells neutralised against formula
injection).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field

from .engine.scoring import SubmissionResult, TestOutcome
from .report.gradebook import neutralise
from .report.reader import printable, read

CSV_HEADER = ("submission", "old_score", "new_score", "change", "now_pass", "now_fail",
              "points_changed", "note")


@dataclass
class StudentChange:
    submission: str
    old_score: float | None  # None: not in the old run
    new_score: float | None  # None: not in the new run
    now_pass: list[str] = field(default_factory=list)   # test names
    now_fail: list[str] = field(default_factory=list)
    points_changed: list[str] = field(default_factory=list)  # passed in both, other points

    @property
    def change(self) -> float:
        return round((self.new_score or 0.0) - (self.old_score or 0.0), 4)

    @property
    def note(self) -> str:
        if self.old_score is None:
            return "only in the new run"
        if self.new_score is None:
            return "only in the old run"
        return ""


@dataclass
class TestChange:
    name: str
    now_pass: int = 0
    now_fail: int = 0
    old_points: float | None = None  # None: not in the old run
    new_points: float | None = None  # None: not in the new run
    repointed: int = 0  # students who pass it in both runs, for other points

    def summary(self) -> str:
        parts = []
        if self.now_pass or self.now_fail:
            parts.append(f"{self.now_pass} {'student' if self.now_pass == 1 else 'students'} "
                         f"now pass, {self.now_fail} now fail")
        if self.old_points is None:
            parts.append(f"new test worth {self.new_points:g} points")
        elif self.new_points is None:
            parts.append(f"removed (was worth {self.old_points:g} points)")
        elif self.old_points != self.new_points:
            who = "student who passes" if self.repointed == 1 else "students who pass"
            parts.append(f"worth {self.old_points:g} -> {self.new_points:g} points "
                         f"({self.repointed} {who} it in both runs)")
        return f"{self.name}: " + "; ".join(parts)


@dataclass
class Diff:
    students: list[StudentChange] = field(default_factory=list)  # largest change first
    tests: list[TestChange] = field(default_factory=list)
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)


def _tests(result: SubmissionResult | None) -> dict[str, TestOutcome]:
    return {} if result is None else {t.key or t.name: t for t in result.tests}


def compare(old: dict[str, SubmissionResult], new: dict[str, SubmissionResult]) -> Diff:
    diff = Diff()
    names: dict[str, str] = {}
    old_points: dict[str, float] = {}
    new_points: dict[str, float] = {}
    for results, points in ((old, old_points), (new, new_points)):
        for result in results.values():
            for key, test in _tests(result).items():
                names.setdefault(key, test.name)
                points[key] = max(points.get(key, 0.0), test.max_score)
    now_pass, now_fail, repointed = Counter(), Counter(), Counter()
    for sid in sorted(set(old) | set(new)):
        before, after = old.get(sid), new.get(sid)
        change = StudentChange(sid, None if before is None else before.score,
                               None if after is None else after.score)
        tests_before, tests_after = _tests(before), _tests(after)
        if before is not None and after is not None:
            for key in sorted(set(tests_before) | set(tests_after)):
                was, now = tests_before.get(key), tests_after.get(key)
                passed_before = was is not None and was.passed
                passed_now = now is not None and now.passed
                if passed_now and not passed_before:
                    change.now_pass.append(names[key])
                    now_pass[key] += 1
                elif passed_before and not passed_now:
                    change.now_fail.append(names[key])
                    now_fail[key] += 1
                elif passed_now and was.max_score != now.max_score:
                    change.points_changed.append(
                        f"{names[key]} ({was.max_score:g} -> {now.max_score:g})")
                    repointed[key] += 1
        if (change.change or change.now_pass or change.now_fail or change.points_changed
                or change.note):
            diff.students.append(change)
        else:
            diff.unchanged += 1
    diff.students.sort(key=lambda c: (-abs(c.change), c.submission))
    for key in sorted(set(old_points) | set(new_points), key=lambda k: names[k]):
        test = TestChange(names[key], now_pass[key], now_fail[key], old_points.get(key),
                          new_points.get(key), repointed[key])
        if (test.now_pass or test.now_fail or test.old_points != test.new_points):
            diff.tests.append(test)
    return diff


def diff_folders(old_dir, new_dir) -> Diff:
    """Raises ``ValueError`` (``report.reader.NotAGradeFolder``) for a folder
    that is not a ``grade`` output."""
    old, new = read(old_dir), read(new_dir)
    result = compare(old.results, new.results)
    result.problems = [*old.problems, *new.problems]
    assignments = {r.assignment for r in [*old.results.values(), *new.results.values()]
                   if r.assignment}
    if len(assignments) > 1:
        result.problems.append("the two runs grade different assignments: "
                               + ", ".join(sorted(assignments)))
    return result


def render_text(diff: Diff) -> str:
    """The changes as a person reads them (``diff.problems`` are not included)."""
    lines = []
    if diff.students:
        lines.append(f"{len(diff.students)} submission(s) changed, largest change first "
                     f"({diff.unchanged} unchanged):")
        for change in diff.students:
            old = "-" if change.old_score is None else f"{change.old_score:g}"
            new = "-" if change.new_score is None else f"{change.new_score:g}"
            why = [f"now passes {', '.join(change.now_pass)}" if change.now_pass else "",
                   f"now fails {', '.join(change.now_fail)}" if change.now_fail else "",
                   f"points of {', '.join(change.points_changed)}"
                   if change.points_changed else "", change.note]
            lines.append(f"  {printable(change.submission)}: {old} -> {new} "
                         f"({change.change:+g})" + "".join(f"; {w}" for w in why if w))
    else:
        lines.append(f"No score or test outcome changed ({diff.unchanged} submissions).")
    if diff.tests:
        lines.append("Per test:")
        lines.extend(f"  {printable(test.summary(), 400)}" for test in diff.tests)
    return "\n".join(lines) + "\n"


def render_csv(diff: Diff) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for change in diff.students:
        writer.writerow([neutralise(change.submission),
                         "" if change.old_score is None else f"{change.old_score:g}",
                         "" if change.new_score is None else f"{change.new_score:g}",
                         f"{change.change:g}",
                         neutralise(";".join(change.now_pass)),
                         neutralise(";".join(change.now_fail)),
                         neutralise(";".join(change.points_changed)),
                         neutralise(change.note)])
    return out.getvalue()
