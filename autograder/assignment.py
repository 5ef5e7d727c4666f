"""An assignment as the grader sees it: ``assignments/<id>/assignment.yaml``.

The YAML file is the one place where points, limits and forbidden calls live.
This module loads and checks it, and knows where the assignment's tests, its
reference solution and its student template are on disk.
"""

from __future__ import annotations

import os
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
    name: str                          # what the student is told
    paths: tuple[str, ...]             # where the callable can be reached at run time
    within: tuple[str, ...] = ()       # only forbidden inside these student functions

    def as_rule(self) -> dict:
        return {"name": self.name, "paths": list(self.paths), "within": list(self.within)}


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
            forbidden=tuple(ForbiddenCall(name=f["name"], paths=tuple(f.get("paths", [f["name"]])),
                                          within=tuple(f.get("within", ())))
                            for f in data.get("forbidden", ())),
            max_examples=int(data.get("hypothesis", {}).get("max_examples", 10)),
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
