"""The framework is generic: a toy assignment that lives under tests/ is graded
end to end from its own folder, and `autograder new` scaffolds one that
`validate` accepts. No line of autograder/ names any assignment."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

TOY_COURSE = ROOT / "tests" / "toy_course"
TOY = "toy_softmax"


@pytest.fixture(scope="module")
def toy_batch(tmp_path_factory, monkeypatch_module):
    from autograder.engine import mistakes
    from autograder import assignment as assignments
    from autograder.grade import grade

    monkeypatch_module.setenv("AUTOGRADER_COURSE", str(TOY_COURSE))
    tmp = tmp_path_factory.mktemp("toy")
    subs = tmp / "subs"
    subs.mkdir()
    reference = (TOY_COURSE / "reference" / f"{TOY}.py").read_text()
    (subs / "reference.py").write_text(reference)
    (subs / "template.py").write_text((TOY_COURSE / "student_templates" / f"{TOY}.py").read_text())
    catalog = {m.id: m for m in mistakes.load(assignments.load(TOY))}
    (subs / "mistake.py").write_text(catalog["temperature_multiplied"].source(reference))
    outcome = grade(TOY, sorted(str(p) for p in subs.iterdir()), tmp / "out")
    return outcome, {r.submission: r for r in outcome.results}, catalog


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_toy_reference_full_template_zero(toy_batch):
    outcome, results, _ = toy_batch
    assert not outcome.errors
    assert results["reference"].score == results["reference"].max_score == 10
    assert results["template"].score == 0


def test_toy_mistake_gets_its_hint(toy_batch):
    _, results, catalog = toy_batch
    result = results["mistake"]
    assert 0 < result.score < result.max_score
    failed = [t for t in result.tests if not t.passed]
    assert any("temperature_multiplied" in t.mistakes for t in failed)
    hint = catalog["temperature_multiplied"].hint
    assert any(t.feedback.startswith(f"Likely mistake: {hint}") for t in failed)


def test_new_then_validate_on_a_fresh_course(tmp_path):
    env = {"AUTOGRADER_COURSE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    import os
    env = dict(os.environ, **env)
    made = subprocess.run([sys.executable, "-m", "autograder", "new", "first_steps"],
                          env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr + made.stdout
    assert (tmp_path / "assignments" / "first_steps" / "assignment.yaml").is_file()
    again = subprocess.run([sys.executable, "-m", "autograder", "new", "first_steps"],
                           env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stdout + again.stderr
    checked = subprocess.run([sys.executable, "-m", "autograder", "validate", "first_steps"],
                             env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "sound" in checked.stdout


@pytest.mark.parametrize("bad", ["Bad-Id", "1abc", "class", "../x", ""])
def test_new_refuses_bad_ids(tmp_path, bad):
    from autograder.assignment import AssignmentError
    from autograder.scaffold import create
    with pytest.raises(AssignmentError):
        create(bad, root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_engine_names_no_assignment():
    """Each assignment owns its knowledge: the engine never names one."""
    ids = [p.name for p in (ROOT / "assignments").iterdir() if p.is_dir()] + [TOY]
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, ids)) + r")\b")
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in sorted((ROOT / "autograder").rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert not offenders, "\n".join(offenders)
