"""Where a batch is graded: this machine (``local.py``: this process or
``--jobs N`` forked grader processes) or a Dask cluster (``dask.py``).

An executor is any object with ``grade(assignment, submissions, on_result,
include_hidden) -> list[str]``: it grades every submission, hands each
finished :class:`~autograder.engine.scoring.SubmissionResult` to
``on_result`` (which writes its reports) and returns the grader errors.
"""

from __future__ import annotations

from typing import Callable, Protocol


class Executor(Protocol):
    def grade(self, assignment, subs: list, on_result: Callable, include_hidden: bool) -> list[str]:
        ...
