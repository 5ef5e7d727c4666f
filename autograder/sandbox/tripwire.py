"""Run-time detection of forbidden library calls, installed in the worker.

The grader also scans the source statically (``engine/forbidden.py``); this
catches what a static scan cannot see, such as ``getattr(F, "scaled_" + "dot...")``.
Each forbidden callable is replaced by a wrapper that records its use when the
call comes from student code (optionally only from inside named student
functions) and then behaves exactly like the original, so the grader can say
which call cost the points instead of a confusing wrong answer.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Iterable

used: set[str] = set()


def _resolve(path: str):
    """``torch.nn.functional.softmax`` -> (module torch.nn.functional, "softmax")."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1]
    raise LookupError(path)


def _called_from(student_file: str, within: frozenset[str]) -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_filename == student_file and (not within or code.co_name in within):
            return True
        frame = frame.f_back
    return False


def install(rules: Iterable[dict], student_file: str) -> None:
    """``rules``: dicts with ``name`` (shown to the student), ``paths`` (every
    attribute path under which the callable is reachable) and ``within``."""
    for rule in rules:
        name, within = rule["name"], frozenset(rule.get("within") or ())
        for path in rule["paths"]:
            try:
                owner, attr = _resolve(path)
                original = getattr(owner, attr)
            except (LookupError, AttributeError):
                continue
            if isinstance(original, type):
                _wrap_class(original, name, within, student_file)
            else:
                setattr(owner, attr, _wrap_function(original, name, within, student_file))


def _wrap_function(original, name, within, student_file):
    @functools.wraps(original)
    def tripwire(*args, **kwargs):
        if _called_from(student_file, within):
            used.add(name)
        return original(*args, **kwargs)
    return tripwire


def _wrap_class(cls, name, within, student_file):
    original_init = cls.__init__

    @functools.wraps(original_init)
    def tripwire_init(self, *args, **kwargs):
        if _called_from(student_file, within):
            used.add(name)
        original_init(self, *args, **kwargs)

    cls.__init__ = tripwire_init


def take_used() -> list[str]:
    names = sorted(used)
    used.clear()
    return names
