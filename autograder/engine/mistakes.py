"""The known-mistake catalog of an assignment (``assignments/<id>/mistakes.yaml``).

Each mistake is a small patch of the reference (text replaced, applied to the
reference source) plus a hint in the chapter's words. When a submission fails a
test, the grader runs every cataloged variant through the same test, on the
same inputs, in its own (trusted) process: a variant that fails with exactly
the submission's failure, i.e. the same output on the same input, explains it,
and its hint goes first in the feedback. Hints guide; they never show code.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..assignment import Assignment, AssignmentError
from ..templates import BEGIN, END


@dataclass(frozen=True)
class Mistake:
    id: str
    hint: str
    patches: tuple[tuple[str, str], ...]

    def source(self, reference: str) -> str:
        """The reference with this mistake in it (solution markers removed)."""
        text = reference
        for old, new in self.patches:
            if text.count(old) != 1:
                raise AssignmentError(f"mistake {self.id}: the text to replace occurs "
                                      f"{text.count(old)} times in the reference: {old!r}")
            text = text.replace(old, new)
        return "\n".join(line for line in text.splitlines()
                         if line.strip() not in (BEGIN, END)) + "\n"

    def module(self, reference: str, module_name: str) -> types.ModuleType:
        module = types.ModuleType(f"_mistake_{module_name}_{self.id}")
        module.__file__ = f"<mistake {self.id}>"
        exec(compile(self.source(reference), module.__file__, "exec"), module.__dict__)
        return module


def catalog_path(assignment: Assignment) -> Path:
    return assignment.folder / "mistakes.yaml"


def load(assignment: Assignment) -> list[Mistake]:
    path = catalog_path(assignment)
    if not path.is_file():
        return []
    entries = yaml.safe_load(path.read_text()) or []
    try:
        return [Mistake(id=e["id"], hint=" ".join(e["hint"].split()),
                        patches=tuple((p["old"], p["new"]) for p in e["patch"]))
                for e in entries]
    except (KeyError, TypeError) as exc:
        raise AssignmentError(f"{path}: malformed entry ({exc})") from None
