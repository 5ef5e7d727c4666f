"""``autograder new ID``: a new assignment that ``validate`` accepts as it is.

It writes a small but complete assignment to start from (docs/authoring.md
walks through it): a numerically stable softmax with a temperature. Every part
of the framework is there once: the reference with solution markers, its
generated template, ``assignment.yaml`` (points, limits, forbidden calls), a
handout, the assignment's own cases and oracle (``grading/``), a public test,
hidden property tests, and a mistake catalog whose entries ``validate`` proves.
Replace the function, keep the shape.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from . import templates
from .assignment import AssignmentError, course_root

_ID = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

REFERENCE = '''"""Assignment {id}: {title}.

Implement ``softmax`` over the last axis with a temperature. Read README.md
(the handout) first.

Rules: use plain tensor operations; torch.softmax and its aliases are not
allowed.
"""

import torch


def softmax(x, temperature=1.0):
    """exp(x / T) normalised over the last axis, for any shape and float dtype.

    Numerically stable: subtract the row maximum first, so large inputs give
    no inf or NaN. Returns a new tensor of x's shape and dtype; x is not
    modified.
    """
    # BEGIN SOLUTION
    z = x / temperature
    z = z - z.amax(dim=-1, keepdim=True)
    e = z.exp()
    return e / e.sum(dim=-1, keepdim=True)
    # END SOLUTION
'''

CONFIG = '''# The one place for this assignment's points, limits and rules.
id: {id}
title: {title}
section: "1"
module: {id}.py

# The names students implement.
api:
  functions: [softmax]
  classes: []

limits:
  call_seconds: 10         # wall clock of one call into student code
  import_seconds: 10       # wall clock of importing the submission
  submission_seconds: 60   # all calls of one submission together
  memory_mb: 1024          # address space on top of the worker's own
  cpu_seconds: 30          # CPU time of one worker (one test)

hypothesis:
  max_examples: 8          # per property test; grading is derandomised

# validate requires at least this many cataloged mistakes (10 for a course's
# real assignments; a new one starts with two).
validate:
  min_mistakes: 2

forbidden:
  - name: torch.softmax
    paths: [torch.softmax, torch.nn.functional.softmax, torch.Tensor.softmax]

# Points per test function ("file::test"); public + hidden = 10.
points:
  public:
    test_public.py::test_softmax_of_two_scores: 2
  hidden:
    test_softmax.py::test_softmax_matches_torch: 4
    test_softmax.py::test_softmax_is_stable_for_large_inputs: 2
    test_softmax.py::test_softmax_is_pure: 2
'''

HANDOUT = '''# {title}

Implement `softmax(x, temperature=1.0)` in `{id}.py`:
`softmax(x)[..., j] = exp(x[..., j] / T) / sum_k exp(x[..., k] / T)`.

- Any shape; the softmax runs over the last axis. float32 and float64.
- Subtract the row maximum before `exp`: mathematically the same, but large
  inputs no longer overflow to `inf`.
- Do not modify `x`; `torch.softmax` is not allowed.

Check your work with `autograder check {id}`.
'''

MISTAKES = '''# Known mistakes: patches of reference/{id}.py and the hint each earns when a
# submission fails a test exactly as the patched reference does.
- id: no_max_subtraction
  hint: >
    exp overflows: for large inputs exp(x) is inf and inf/inf is NaN. Subtract the
    row maximum before exp; the result is mathematically unchanged.
  patch:
    - old: "z = z - z.amax(dim=-1, keepdim=True)"
      new: "z = z"
- id: temperature_multiplied
  hint: >
    The temperature divides the scores (x / T): a high temperature flattens the
    distribution, a low one sharpens it. You multiplied.
  patch:
    - old: "z = x / temperature"
      new: "z = x * temperature"
'''

GRADING_INIT = '''"""What {id}'s tests import besides the framework: its case type and
strategy (cases.py) and its oracle (oracles.py). Importable as ``grading``
while this assignment is graded; never in a student kit."""
'''

CASES = '''"""The inputs of {id}'s tests: a shape, a dtype, a temperature and a seed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from autograder.testing import memoize
from autograder.testing.strategies import (describe_dtype, describe_shape, float_dtypes,
                                           generator, random_tensor, seeds)


@dataclass(frozen=True)
class SoftmaxCase:
    shape: tuple[int, ...]
    temperature: float
    dtype: torch.dtype
    seed: int

    @memoize
    def x(self, scale: float = 1.0) -> torch.Tensor:
        return random_tensor(self.shape, self.dtype, generator(self.seed), scale)

    def describe(self) -> str:
        return (f"x {{describe_shape(self.shape)}}, temperature {{self.temperature:g}}, "
                f"{{describe_dtype(self.dtype)}}, seed {{self.seed}}")


@st.composite
def softmax_cases(draw, max_dims: int = 3):
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=max_dims)))
    temperature = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return SoftmaxCase(shape, temperature, draw(float_dtypes()), draw(seeds()))
'''

ORACLES = '''"""PyTorch's own softmax as the oracle. Graders only: never in a student kit."""

from __future__ import annotations

import torch

from autograder.testing import memoize


@memoize
def softmax(x, temperature=1.0):
    return torch.softmax(x / temperature, dim=-1)
'''

PUBLIC_TEST = '''"""Public tests: run them with `autograder check {id}`. The hidden tests
that decide your grade check many more shapes, dtypes and temperatures."""

import torch

from autograder.testing import assert_close


def test_softmax_of_two_scores(student):
    """softmax([[0, log 3]]) is [[1/4, 3/4]]: weights proportional to exp(score)."""
    x = torch.tensor([[0.0, 1.0986122886681098]])
    assert_close(student.softmax(x), torch.tensor([[0.25, 0.75]]), what="softmax([[0, log 3]])")
'''

HIDDEN_TEST = '''import torch
from hypothesis import given

from autograder.testing import assert_close
from grading.cases import softmax_cases
from grading.oracles import softmax


@given(case=softmax_cases())
def test_softmax_matches_torch(student, case):
    """softmax equals torch.softmax(x / T) for any shape, dtype and temperature."""
    x = case.x()
    assert_close(student.softmax(x, temperature=case.temperature),
                 softmax(x, case.temperature), what="softmax", case=case)


@given(case=softmax_cases())
def test_softmax_is_stable_for_large_inputs(student, case):
    """Inputs of size ~1000 give finite weights equal to torch's (subtract the max)."""
    x = case.x(scale=1000.0)
    assert_close(student.softmax(x, temperature=case.temperature),
                 softmax(x, case.temperature), what="softmax of large inputs", case=case)


@given(case=softmax_cases())
def test_softmax_is_pure(student, case):
    """softmax does not modify its input, and its values are right."""
    x = case.x()
    assert_close(student.softmax.pure(x, temperature=case.temperature),
                 softmax(x, case.temperature), what="softmax", case=case)
'''


def files(assignment_id: str, title: str) -> dict[str, str]:
    """Relative path -> text of every file of a new assignment."""
    fill = {"id": assignment_id, "title": title}
    reference = REFERENCE.format(**fill)
    folder = f"assignments/{assignment_id}"
    return {
        f"reference/{assignment_id}.py": reference,
        f"student_templates/{assignment_id}.py": templates.render(reference, "1"),
        f"{folder}/assignment.yaml": CONFIG.format(**fill),
        f"{folder}/README.md": HANDOUT.format(**fill),
        f"{folder}/mistakes.yaml": MISTAKES.format(**fill),
        f"{folder}/grading/__init__.py": GRADING_INIT.format(**fill),
        f"{folder}/grading/cases.py": CASES.format(**fill),
        f"{folder}/grading/oracles.py": ORACLES,
        f"{folder}/tests/public/test_public.py": PUBLIC_TEST.format(**fill),
        f"{folder}/tests/hidden/test_softmax.py": HIDDEN_TEST,
    }


def create(assignment_id: str, title: str | None = None, root: Path | None = None) -> list[Path]:
    """Write a new assignment under ``root`` (the course); refuses to overwrite."""
    if not _ID.match(assignment_id) or keyword.iskeyword(assignment_id):
        raise AssignmentError(f"{assignment_id!r} is not a valid assignment id: use lower-case "
                              "letters, digits and underscores, starting with a letter")
    root = Path(root or course_root())
    title = title or assignment_id.replace("_", " ").capitalize()
    planned = {root / relative: text for relative, text in files(assignment_id, title).items()}
    existing = [p for p in planned if p.exists()]
    if (root / "assignments" / assignment_id).exists() or existing:
        raise AssignmentError(f"assignment {assignment_id!r} already exists in {root}")
    for path, text in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(planned)
