"""Running one test body for many submissions, so hypothesis runs once per batch.

Grading is deterministic: every submission meets the same hypothesis examples.
Instead of running hypothesis's engine once per submission, the plugin replaces
the test's inner function (``test.hypothesis.inner_test``, hypothesis's
documented hook for wrappers) by :meth:`FanOut.wrap`: for each generated
example, the body runs once per submission that has not failed yet, each with
its own ``student`` (its own fresh worker for this test). A failure is recorded
for that submission and never reaches hypothesis, which therefore generates all
its examples exactly as it would for a single passing submission; each
submission's first failing example is the one it would have met alone, so its
score and message do not depend on the rest of the batch.

The examples hypothesis generated are recorded, and the next chunk of the batch
(or the cataloged mistakes) replays them without running hypothesis's engine
again: it would generate exactly the same ones, derandomised, at ~1 s a chunk.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from ..sandbox.launcher import SandboxFault
from .student import Student, SubmissionState


class ReplayExhausted(Exception):
    """A replayed example needs a draw that was never recorded: run hypothesis."""


class _SharedDraws:
    """``st.data()`` drawn inside a test body: the first submission draws, the
    others replay the same values in the same order, so all see one input.
    Without ``data`` (a replayed example) only the recorded values exist."""

    def __init__(self, data, values=None):
        self.data, self.values = data, list(values or ())

    def cursor(self) -> "_DrawCursor":
        return _DrawCursor(self)


class _DrawCursor:
    def __init__(self, shared: _SharedDraws):
        self.shared, self.position = shared, 0

    def draw(self, strategy, label: Any = None):
        if self.position == len(self.shared.values):
            if self.shared.data is None:
                raise ReplayExhausted(label)
            self.shared.values.append(self.shared.data.draw(strategy, label))
        value = self.shared.values[self.position]
        self.position += 1
        return value


class FanOut:
    """One test item, run for every submission of the batch."""

    def __init__(self, assignment, states: dict[str, SubmissionState], launcher):
        self.assignment, self.states, self.launcher = assignment, states, launcher
        self.views: dict[str, Student] = {}
        self.failures: dict[str, BaseException] = {}

    def wrap(self, body: Callable, record: list | None = None,
             fixtures: frozenset = frozenset()) -> Callable:
        """``body`` run for every submission; with ``record``, each example is
        appended to it as (args, generated kwargs, draws) for :meth:`replay`."""
        # wraps: hypothesis derives the derandomised seed from the test's source.
        @functools.wraps(body)
        def run_for_each_submission(*args, **kwargs):
            shared = {name: value if isinstance(value, _SharedDraws) else _SharedDraws(value)
                      for name, value in kwargs.items()
                      if isinstance(value, _SharedDraws) or type(value).__name__ == "DataObject"}
            if record is not None:
                record.append((args, {k: v for k, v in kwargs.items()
                                      if k not in shared and k not in fixtures},
                               {name: s.values for name, s in shared.items()}))
            for sid, state in self.states.items():
                if sid in self.failures:
                    continue  # its first failure is its feedback
                view = self.views.get(sid)
                if view is None:
                    view = self.views[sid] = Student(self.assignment, state,
                                                     state.launcher or self.launcher)
                call_kwargs = dict(kwargs, student=view)
                call_kwargs.update({name: s.cursor() for name, s in shared.items()})
                try:
                    body(*args, **call_kwargs)
                except Exception as exc:  # a wrong answer; KeyboardInterrupt stays the grader's
                    if isinstance(exc, (ReplayExhausted, SandboxFault)) \
                            or _is_hypothesis_control(exc):
                        raise  # the sandbox failing is the grader's fault, not this answer
                    self.failures[sid] = exc
        return run_for_each_submission

    def replay(self, body: Callable, examples: list, fixtures: dict) -> None:
        """Run recorded examples, as hypothesis ran them; raises ReplayExhausted
        if one needs a value it did not record (then run hypothesis instead)."""
        run = self.wrap(body)
        for args, generated, draws in examples:
            kwargs = dict(generated, **fixtures)
            kwargs.update({name: _SharedDraws(None, values) for name, values in draws.items()})
            try:
                run(*args, **kwargs)
            except Exception as exc:
                if not _is_hypothesis_control(exc):  # ReplayExhausted included
                    raise
                # assume(False): hypothesis discarded this example too

    def close(self) -> None:
        for view in self.views.values():
            view.close()


def _is_hypothesis_control(exc: Exception) -> bool:
    """assume(False) and friends steer hypothesis itself: they are not answers."""
    return type(exc).__module__.startswith("hypothesis") and \
        type(exc).__name__ in ("UnsatisfiedAssumption", "Frozen", "InvalidArgument")
