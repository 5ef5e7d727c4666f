"""``autograder grade``: grade a batch of submissions into a folder of reports.

The order of start-up matters. Workers that run student code are forked from a
zygote, and the zygote is forked from this process *before* it loads anything
secret (the reference, hidden tests, expected values): a child can read its
parent's memory. With ``--jobs N`` the batch is split between N grader
processes, each with its own zygote.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import assignment as assignments
from . import submission as submissions
from .engine.plugin import run_pytest
from .engine.scoring import SubmissionResult
from .engine import mistakes
from .report import feedback_html, feedback_md, gradebook, results_json, summary_html
from .report.files import write_atomic
from .sandbox.zygote import start_launcher

RECORD = "grading.json"  # the full internal record of a graded submission (for --resume)
# Submissions per pytest session: hypothesis and collection are paid once per
# chunk; results are written when a chunk ends, so an interrupted batch loses
# at most one chunk's work.
CHUNK = 8


class UsageError(Exception):
    pass


@dataclass
class BatchOutcome:
    results: list[SubmissionResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reused: int = 0


def write_submission(out: Path, assignment: assignments.Assignment, result: SubmissionResult) -> None:
    folder = out / result.submission
    write_atomic(folder / "results.json", results_json.render(result))
    write_atomic(folder / "feedback.md", feedback_md.render(result, assignment.title))
    write_atomic(folder / "feedback.html", feedback_html.render(result, assignment.title))
    # Written last: its presence means the submission is completely graded.
    write_atomic(folder / RECORD, json.dumps(result.to_dict(), indent=1))


def read_record(out: Path, sid: str) -> SubmissionResult | None:
    try:
        return SubmissionResult.from_dict(json.loads((out / sid / RECORD).read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def grade(assignment_id: str, paths: list[str], out: Path, jobs: int = 1, resume: bool = False,
          include_hidden: bool = True) -> BatchOutcome:
    assignment = assignments.load(assignment_id)
    subs = [submissions.load(p, assignment.module) for p in paths]
    seen: dict[str, Path] = {}
    for sub in subs:
        if sub.id in seen:
            raise UsageError(f"two submissions have the id {sub.id!r}: {seen[sub.id]} and {sub.path}")
        seen[sub.id] = sub.path
    outcome = BatchOutcome()
    todo = []
    for sub in subs:
        old = read_record(out, sub.id) if resume else None
        if old is not None and old.digest == sub.digest and old.assignment == assignment.id:
            outcome.reused += 1
        else:
            todo.append(sub)

    def on_result(result: SubmissionResult) -> None:
        write_submission(out, assignment, result)

    jobs = max(1, min(jobs, len(todo)))
    if todo:
        if jobs == 1:
            outcome.errors += _grade_share(assignment, todo, on_result, include_hidden, threads=None)
        else:
            outcome.errors += _grade_parallel(assignment, todo, on_result, include_hidden, jobs)
    for sub in subs:
        record = read_record(out, sub.id)
        if record is None:
            outcome.errors.append(f"{sub.id}: no result was written")
        else:
            outcome.results.append(record)
    write_atomic(out / "grades.csv", gradebook.render(outcome.results))
    if outcome.results:
        hints = {m.id: m.hint for m in mistakes.load(assignment)}
        write_atomic(out / "summary.html", summary_html.render(outcome.results, assignment.title,
                                                               hints))
    return outcome


def _grade_share(assignment, subs, on_result, include_hidden, threads) -> list[str]:
    launcher = start_launcher()  # before run_pytest loads the reference and hidden tests
    try:
        if threads:
            import torch
            torch.set_num_threads(threads)
        errors = []
        for start in range(0, len(subs), CHUNK):
            plugin = run_pytest(assignment, subs[start:start + CHUNK], launcher, on_result,
                                include_hidden)
            errors += plugin.errors
        return errors
    finally:
        launcher.close()


def _grade_parallel(assignment, subs, on_result, include_hidden, jobs) -> list[str]:
    """Fork ``jobs`` grader processes, each grading every jobs-th submission."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    children = {}
    for index in range(jobs):
        share = subs[index::jobs]
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 0
            try:
                errors = _grade_share(assignment, share, on_result, include_hidden, threads)
                os.write(write_end, json.dumps(errors).encode())
            except BaseException as exc:  # reported by the parent, never lost
                os.write(write_end, json.dumps([f"grader process failed: {exc!r}"]).encode())
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        os.close(write_end)
        children[pid] = read_end
    errors = []
    for pid, read_end in children.items():
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        try:
            errors += json.loads(data or b"[]")
        except ValueError:
            errors.append("a grader process sent an unreadable report")
        if status != 0 and not data:
            errors.append(f"a grader process died (wait status {status})")
    return errors
