"""Tests that expect student code to raise: by the exception's type, never its text.

``"raised ValueError" in str(exc)`` is also true when the module's import
raised ValueError, and a timeout's or crash's message can say anything. Here
only the call itself counts: the worker reports the exception's class and its
bases (``StudentCodeError.exc_mro``), so a class of the student's deriving from
ValueError passes and one merely named ValueError does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..sandbox.session import StudentCodeError
from .compare import fail


def qualified(cls: type) -> str:
    """``ValueError`` -> ``"builtins.ValueError"``, as the worker reports classes."""
    return f"{cls.__module__}.{cls.__qualname__}"


def raised(exc: BaseException, expected: type[BaseException]) -> bool:
    """Whether ``exc`` says that a call into student code raised ``expected``
    (or a subclass of it): not an import failure, a timeout or a crash."""
    if not isinstance(exc, StudentCodeError) or exc.phase != "call":
        return False
    if exc.exc_type is not None:  # a worker's report
        return qualified(expected) in exc.exc_mro
    # Trusted code run in this process (engine/inprocess.py: the reference, the
    # cataloged mistakes) reports no class names; the exception itself is the
    # error's context there. A worker's errors of kind "error" never have one.
    return exc.kind == "error" and isinstance(exc.__context__, expected)


def expect_raises(expected: type[BaseException], call: Callable, *args: Any,
                  what: str = "", because: str = "", **kwargs: Any) -> StudentCodeError:
    """Call ``call(*args, **kwargs)`` (a ``student.`` function, class or method)
    and fail the test unless that call raised ``expected`` or a subclass of it.
    ``what`` names the call in the feedback; ``because`` says why it must raise.
    Returns the error, for tests that also check its message."""
    label = what or f"{getattr(call, '_label', None) or getattr(call, '_name', 'the call')}(...)"
    name = expected.__name__
    why = f" ({because})" if because else ""
    try:
        call(*args, **kwargs)
    except StudentCodeError as exc:
        if raised(exc, expected):
            return exc
        if exc.phase == "import":
            fail(f"{label} should raise {name}{why}, but your module could not be imported, "
                 f"so it was never called:\n{exc}")
        other = exc.exc_type or (type(exc.__context__).__name__
                                 if exc.kind == "error" and exc.__context__ is not None else None)
        if other is None:  # a timeout, a crash, a result that could not be sent
            fail(f"{label} should raise {name}{why}, but it did not: {exc}")
        if other == name and exc.exc_mro:  # a class of its own that is only named so
            other = f"{exc.exc_mro[0]}, which does not derive from Python's {name}"
        fail(f"{label} should raise {name}{why}, but it raised {other}:\n{exc}")
    fail(f"{label} returned a result; it should raise {name}{why}.")
