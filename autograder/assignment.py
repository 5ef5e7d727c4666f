"""An assignment as the grader sees it: ``assignments/<id>/assignment.yaml``.

The YAML file is the one place where points, limits and forbidden calls live.
This module loads and checks it, and knows where the assignment's tests, its
reference solution and its student template are on disk.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PACKAGE_ROOT = Path(__file__).resolve().parent


class AssignmentError(Exception):
    """An assignment's files are missing or inconsistent (an instructor's error)."""


def course_root() -> Path:
    """The folder holding ``assignments/``, ``reference/`` and ``student_templates/``:
    ``$AUTOGRADER_COURSE`` if set, else the repository this package lives in."""
    env = os.environ.get("AUTOGRADER_COURSE")
    return Path(env).resolve() if env else PACKAGE_ROOT.parent


@dataclass(frozen=True)
class Limits:
    call_seconds: float = 10.0        # wall clock for one call into student code
    import_seconds: float = 10.0      # wall clock for importing the submission
    submission_seconds: float = 180.0  # all of one submission's calls together
    memory_mb: int = 1024             # address space on top of the worker's own
    cpu_seconds: int = 60             # CPU of one worker (one test)


@dataclass(frozen=True)
class ForbiddenCall:
    """One rule of ``forbidden:``. The worker sees the *operation* run, whatever
    spelling reached it (see ``sandbox/tripwire.py``)."""
    name: str                          # what the student is told
    paths: tuple[str, ...]             # Python-level callables or classes (torch.nn.LSTMCell)
    within: tuple[str, ...] = ()       # only forbidden inside these student functions
    ops: tuple[str, ...] = ()          # operators: "aten::_softmax", "aten::softmax.int",
                                       # or "autograd::backward" (any backward pass)

    def as_rule(self) -> dict:
        """The rule as the worker's tripwire takes it, with its operators resolved
        here, once (``plan``), instead of in every worker."""
        return {"name": self.name, "paths": list(self.paths), "within": list(self.within),
                "ops": list(self.ops), "plan": _plan(self.ops)}


@functools.cache
def _plan(ops: tuple[str, ...]) -> dict:
    from .sandbox import tripwire  # imports torch: only where workers are started

    try:
        return tripwire.resolve(ops)
    except LookupError as exc:
        raise AssignmentError(f"forbidden: {exc} in this torch") from None


_OP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*::[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _forbidden_rule(entry: dict, path: Path) -> ForbiddenCall:
    def names(key: str) -> tuple[str, ...]:
        value = entry.get(key) or ()
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise AssignmentError(f"{path}: forbidden {entry['name']!r}: {key} must be a list "
                                  "of names")
        return tuple(value)

    ops = names("ops")
    for op in ops:
        if not _OP_NAME.match(op):
            raise AssignmentError(f"{path}: forbidden {entry['name']!r}: {op!r} is not an "
                                  "operator name such as aten::_softmax or aten::softmax.int")
    # A rule with neither paths nor ops watches the callable its name spells.
    paths = names("paths") if "paths" in entry or ops else (entry["name"],)
    return ForbiddenCall(name=entry["name"], paths=paths, within=names("within"), ops=ops)


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    section: str
    module: str
    functions: tuple[str, ...]
    classes: tuple[str, ...]
    limits: Limits
    forbidden: tuple[ForbiddenCall, ...]
    max_examples: int
    points: dict[str, float] = field(default_factory=dict)   # "public/test_x.py::test_y" -> points
    # Names of the axes of a compared quantity in feedback plots, where the
    # framework's defaults (query position, key position, ...) do not fit:
    # ``report: axes: {weights: [batch item, encoder position]}``.
    plot_axes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    root: Path = Path(".")

    @property
    def folder(self) -> Path:
        return self.root / "assignments" / self.id

    @property
    def public_tests(self) -> Path:
        return self.folder / "tests" / "public"

    @property
    def hidden_tests(self) -> Path:
        return self.folder / "tests" / "hidden"

    @property
    def handout(self) -> Path:
        return self.folder / "README.md"

    @property
    def reference(self) -> Path:
        return self.root / "reference" / self.module

    @property
    def template(self) -> Path:
        return self.root / "student_templates" / self.module

    @property
    def module_name(self) -> str:
        return self.module[:-3] if self.module.endswith(".py") else self.module

    @property
    def max_score(self) -> float:
        return float(sum(self.points.values()))

    def points_for(self, test_key: str) -> float:
        try:
            return self.points[test_key]
        except KeyError:
            raise AssignmentError(f"{self.id}: test {test_key} has no points in "
                                  "assignment.yaml") from None

    @property
    def api(self) -> tuple[str, ...]:
        return self.functions + self.classes


def load(assignment_id: str, root: Path | None = None) -> Assignment:
    root = root or course_root()
    path = root / "assignments" / assignment_id / "assignment.yaml"
    if not path.is_file():
        known = ", ".join(available(root)) or "none"
        raise AssignmentError(f"unknown assignment {assignment_id!r} (known: {known})")
    data = yaml.safe_load(path.read_text())
    try:
        points = {f"{visibility}/{test}": float(value)
                  for visibility in ("public", "hidden")
                  for test, value in (data["points"].get(visibility) or {}).items()}
        assignment = Assignment(
            id=data["id"], title=data["title"], section=str(data.get("section", "")),
            module=data["module"],
            functions=tuple(data["api"].get("functions", ())),
            classes=tuple(data["api"].get("classes", ())),
            limits=Limits(**data.get("limits", {})),
            forbidden=tuple(_forbidden_rule(f, path) for f in data.get("forbidden") or ()),
            max_examples=int(data.get("hypothesis", {}).get("max_examples", 10)),
            plot_axes={str(k): tuple(map(str, v)) for k, v in
                       ((data.get("report") or {}).get("axes") or {}).items()},
            points=points, root=root)
    except (KeyError, TypeError) as exc:
        raise AssignmentError(f"{path}: malformed ({exc})") from None
    if assignment.id != assignment_id:
        raise AssignmentError(f"{path}: id {assignment.id!r} does not match its folder")
    return assignment


def available(root: Path | None = None) -> list[str]:
    folder = (root or course_root()) / "assignments"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "assignment.yaml").is_file())
