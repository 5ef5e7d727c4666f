"""``autograder validate``: prove an assignment's tests are sound.

Through the real grading engine (sandbox and all): the reference scores full
marks, the untouched template scores 0, the trivial baselines (zeros,
uniform, one-hot, random answers of the right shape, see baselines.py) score
0 apart from structural tests, every cataloged mistake loses points and
receives its own hint, and every function a public test uses is also checked
by the hidden tests.
"""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path

import yaml

from . import assignment as assignments
from . import baselines
from .engine import mistakes as catalog
from .grade import grade


def used_api(folder: Path) -> set[str]:
    """Names reached as ``student.<name>`` in the test files of ``folder``."""
    names = set()
    for path in folder.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "student":
                names.add(node.attr)
    return names


def _settings(a) -> dict:
    """``validate:`` of assignment.yaml: ``min_mistakes`` (default 10: a real
    assignment's catalog; ``autograder new`` starts with two) and
    ``structural`` (test keys a trivial baseline may pass, e.g. parameter names)."""
    config = yaml.safe_load((a.folder / "assignment.yaml").read_text()) or {}
    return config.get("validate") or {}


def validate(assignment_id: str, jobs: int = 2) -> list[str]:
    """The problems found; an empty list means the assignment is sound."""
    a = assignments.load(assignment_id)
    problems = []
    missing = used_api(a.public_tests) - used_api(a.hidden_tests)
    if missing:
        problems.append(f"public tests use {sorted(missing)}, which no hidden test checks")
    known = catalog.load(a)
    settings = _settings(a)
    minimum = int(settings.get("min_mistakes", 10))
    structural = set(settings.get("structural") or ())
    if len(known) < minimum:
        problems.append(f"the mistake catalog has {len(known)} entries (at least {minimum} "
                        "expected)")
    reference = a.reference.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        subs.mkdir()
        (subs / "reference.py").write_text(reference)
        (subs / "template.py").write_text(a.template.read_text())
        for mistake in known:
            (subs / f"mistake-{mistake.id}.py").write_text(mistake.source(reference))
        for kind in baselines.KINDS:
            (subs / f"baseline-{kind}.py").write_text(
                baselines.source(reference, kind, a.functions, a.classes))
        outcome = grade(a.id, sorted(str(p) for p in subs.iterdir()), Path(tmp) / "out",
                        jobs=jobs)
    problems += [f"grader error: {e}" for e in outcome.errors]
    results = {r.submission: r for r in outcome.results}
    ref, template = results.get("reference"), results.get("template")
    if ref is not None and ref.score != ref.max_score:
        failed = [t.name for t in ref.tests if not t.passed]
        problems.append(f"the reference scores {ref.score:g}/{ref.max_score:g} (fails {failed})")
    if template is not None and template.score != 0:
        passed = [t.name for t in template.tests if t.passed]
        problems.append(f"the untouched template scores {template.score:g} (passes {passed})")
    for kind in baselines.KINDS:
        result = results.get(f"baseline-{kind}")
        earned = sorted({t.key for t in result.tests if t.passed and t.key not in structural}) \
            if result is not None else []
        if earned:
            problems.append(f"the trivial baseline {kind!r} (answers of the right shape that "
                            f"compute nothing) earns points in {earned}")
    for mistake in known:
        result = results.get(f"mistake-{mistake.id}")
        if result is None:
            continue
        if result.score >= result.max_score:
            problems.append(f"mistake {mistake.id} loses no points")
        elif not any(mistake.id in t.mistakes for t in result.tests if not t.passed):
            problems.append(f"mistake {mistake.id} loses points but its hint never reaches "
                            "the feedback")
    return problems
