"""Shared fixtures of the framework's own tests: small temporary courses and a
helper that grades a batch once and hands back every submission's result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions" / "multihead_attention"


def make_course(tmp: Path, **limits) -> Path:
    """A copy of the course with tighter limits, so tests of runaway submissions
    (loops, sleeps) stay fast. Tests, reference and points are unchanged."""
    course = tmp / "course"
    shutil.copytree(ROOT / "assignments", course / "assignments")
    shutil.copytree(ROOT / "reference", course / "reference")
    shutil.copytree(ROOT / "student_templates", course / "student_templates")
    config_path = course / "assignments" / "multihead_attention" / "assignment.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["limits"].update(limits)
    config_path.write_text(yaml.safe_dump(config))
    return course


def grade_batch(tmp: Path, paths, course: Path | None = None, jobs: int = 1,
                assignment: str = "multihead_attention"):
    """Grade ``paths`` in one batch; returns (outcome, {id: result})."""
    from autograder.grade import grade

    if course is not None:
        mp = pytest.MonkeyPatch()
        mp.setenv("AUTOGRADER_COURSE", str(course))
    try:
        outcome = grade(assignment, [str(p) for p in paths], tmp / "out", jobs=jobs)
    finally:
        if course is not None:
            mp.undo()
    return outcome, {r.submission: r for r in outcome.results}


@pytest.fixture(scope="session")
def example_batch(tmp_path_factory):
    """The reference, the untouched template and every bundled example, graded
    together (plus a syntax error, a missing function, a zip and a notebook)."""
    tmp = tmp_path_factory.mktemp("examples")
    subs = tmp / "subs"
    subs.mkdir()
    reference = (ROOT / "reference" / "multihead_attention.py").read_text()
    shutil.copy(ROOT / "reference" / "multihead_attention.py", subs / "reference.py")
    shutil.copy(ROOT / "student_templates" / "multihead_attention.py", subs / "template.py")
    # Forbidden call hidden from the static scan: the worker's tripwire sees it.
    (subs / "obfuscated_sdpa.py").write_text(reference.replace(
        "    return weights @ v, weights\n",
        "    fused = getattr(torch.nn.functional, 'scaled_dot_' + 'product_attention')\n"
        "    return fused(q, k, v, attn_mask=allowed), weights\n"))
    (subs / "syntax_error.py").write_text("def causal_mask(q_len, k_len=None)\n    return 1\n")
    (subs / "no_merge_heads.py").write_text(
        reference.replace("def merge_heads(x):", "def _merge_heads_renamed(x):")
        .replace("out_proj(merge_heads(out))", "out_proj(_merge_heads_renamed(out))"))
    import json
    import zipfile
    with zipfile.ZipFile(subs / "zipped.zip", "w") as archive:
        archive.writestr("student-repo/multihead_attention.py", reference)
    notebook = {"cells": [
        {"cell_type": "markdown", "source": "# My attention"},
        {"cell_type": "code", "source": reference},
        {"cell_type": "code", "source": "%matplotlib inline\nimport matplotlib\nplot_everything()\n"},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (subs / "notebook.ipynb").write_text(json.dumps(notebook))
    paths = sorted(subs.iterdir()) + sorted(EXAMPLES.iterdir())
    return grade_batch(tmp, paths)


def failed(result) -> set[str]:
    """Names (without parameters) of the tests a submission failed."""
    return {t.name.split("[")[0] for t in result.tests if not t.passed}


def failures(result) -> dict[str, str]:
    """{test key: the start of its feedback} of the tests a submission failed."""
    return {t.key: t.feedback[:400] for t in result.tests if not t.passed}


def patched(source: str, *pairs: tuple[str, str]) -> str:
    """``source`` with each ``old`` (found exactly once) replaced by ``new``."""
    for old, new in pairs:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


def with_definitions(source: str, new: str) -> str:
    """``source`` with the top-level functions and classes that ``new`` defines
    replaced by its definitions (and ``new``'s other top-level code added)."""
    import ast

    kinds = (ast.FunctionDef, ast.ClassDef)
    defined = {node.name for node in ast.parse(new).body if isinstance(node, kinds)}
    lines = source.splitlines()
    for node in sorted(ast.parse(source).body, key=lambda n: -n.lineno):
        if isinstance(node, kinds) and node.name in defined:
            del lines[node.lineno - 1:node.end_lineno]
    return "\n".join(lines) + "\n\n" + new


def grade_sources(tmp: Path, assignment: str, sources: dict[str, str], jobs: int = 2) -> dict:
    """Grade {submission id: source} in one batch without a grader error;
    returns {id: result}."""
    subs = tmp / "subs"
    subs.mkdir()
    for sid, source in sources.items():
        (subs / f"{sid}.py").write_text(source)
    outcome, results = grade_batch(tmp, sorted(subs.iterdir()), jobs=jobs,
                                   assignment=assignment)
    assert not outcome.errors, outcome.errors
    return results


def grade_examples(tmp_path_factory, assignment_id: str, jobs: int = 2) -> dict:
    """The reference, the untouched template and the bundled examples of an
    assignment, graded in one batch; {submission id: result}."""
    tmp = tmp_path_factory.mktemp(assignment_id)
    subs = tmp / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "reference" / f"{assignment_id}.py", subs / "reference.py")
    shutil.copy(ROOT / "student_templates" / f"{assignment_id}.py", subs / "template.py")
    examples = ROOT / "examples" / "submissions" / assignment_id
    outcome, results = grade_batch(tmp, sorted(subs.iterdir()) + sorted(examples.iterdir()),
                                   jobs=jobs, assignment=assignment_id)
    assert not outcome.errors
    return results


# The toy assignment's own tests run through the grader (tests/test_toy_assignment.py),
# never as this suite's tests.
collect_ignore = ["toy_course"]


def pytest_configure(config):
    """This process grades in-process batches, like `autograder grade` does: its
    sandbox (zygote) starts first, before any test module is imported and holds
    a reference's text (the attack tests search the workers' memory for it)."""
    from autograder.sandbox.zygote import shared_launcher
    shared_launcher()
