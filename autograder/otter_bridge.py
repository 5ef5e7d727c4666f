"""What otter's generated test files call: one public test of an assignment, run
on the functions of a notebook (otter passes the notebook's global environment).

This is the student's local, advisory check inside Jupyter: it runs in the
notebook's own process (see :mod:`autograder.engine.inprocess`). Grades never
come from here; they come from ``autograder grade`` or the Gradescope zip,
which run student code in the sandbox.
"""

from __future__ import annotations

import importlib.util

from . import assignment as assignments
from .engine.inprocess import InProcessLauncher
from .engine.student import Student, SubmissionState
from .submission import Submission


def run_public_test(assignment_id: str, test_key: str, env: dict) -> None:
    """Raise the test's failure (its feedback is the message) or return quietly."""
    a = assignments.load(assignment_id)
    file_name, test_name = test_key.split("::")
    spec = importlib.util.spec_from_file_location(f"_otter_public_{assignment_id}",
                                                  a.public_tests / file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = SubmissionState(Submission("notebook", a.public_tests, ""))
    getattr(module, test_name)(student=Student(a, state, InProcessLauncher(env)))
