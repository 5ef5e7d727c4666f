"""``autograder grade``: grade a batch of submissions into a folder of reports.

The order of start-up matters. Workers that run student code are forked from a
zygote, and the zygote is forked from this process *before* it loads anything
secret (the reference, hidden tests, expected values): a child can read its
parent's memory. Where the batch is graded is an executor's business
(``executors/local.py``, ``executors/dask.py``); what is written, the report
writer's (``report/writer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import assignment as assignments
from . import submission as submissions
from .engine.scoring import SubmissionResult
from .executors.local import LocalExecutor
from .report import writer
from .report.writer import read_record
from .sandbox.zygote import shared_launcher

class UsageError(Exception):
    pass


@dataclass
class BatchOutcome:
    results: list[SubmissionResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reused: int = 0


def grade(assignment_id: str, paths: list[str], out: Path, jobs: int = 1, resume: bool = False,
          include_hidden: bool = True, progress: Callable[[str], None] = lambda sid: None,
          executor=None, launcher=None, junit: Path | None = None) -> BatchOutcome:
    """Grade ``paths`` into ``out``; ``progress(sid)`` is called as each one is
    done; ``executor`` (e.g. :class:`.executors.dask.DaskExecutor`) grades
    elsewhere instead of in local processes. ``launcher``: a sandbox the caller
    started early, used when grading in this process (the caller closes it)."""
    if executor is None and launcher is None:
        # First, so that its interpreter imports torch while this one loads the
        # batch. It is a fresh interpreter: nothing read here reaches a worker.
        # Kept for the next batch of this process (see shared_launcher).
        launcher = shared_launcher()
    assignment = assignments.load(assignment_id)
    # Read (never raising for hostile content) with unique ids that are safe folder
    # names under ``out``; a renamed submission is told so in its results.
    subs = submissions.load_batch(paths, assignment.module)
    outcome = BatchOutcome()
    _remove_stale_temporaries(out)
    todo = []
    for sub in subs:
        old = read_record(out, sub.id) if resume else None
        if old is not None and old.digest == sub.digest and old.assignment == assignment.id:
            outcome.reused += 1
        else:
            todo.append(sub)

    def on_result(result: SubmissionResult) -> None:
        writer.write_submission(out, assignment, result)
        if not isinstance(executor, LocalExecutor):  # it reports progress itself
            progress(result.submission)

    if todo:
        executor = executor or LocalExecutor(launcher, jobs, progress)
        outcome.errors += executor.grade(assignment, todo, on_result, include_hidden)
    missing = []
    for sub in subs:
        record = read_record(out, sub.id)
        if record is None:
            missing.append(sub.id)
        else:
            outcome.results.append(record)
    if missing:  # one line, however many: the cause is in the errors above
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more"
                                           if len(missing) > 10 else "")
        outcome.errors.append(f"no result was written for {len(missing)} of {len(subs)} "
                              f"submissions: {shown}")
    writer.write_batch(out, assignment, outcome.results, junit)
    return outcome


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files of a killed run (see report.files.write_atomic)."""
    if out.is_dir():
        for stale in out.glob("**/.*.tmp"):
            stale.unlink(missing_ok=True)
