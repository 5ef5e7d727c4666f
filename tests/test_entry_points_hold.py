"""The protections hold wherever student code is graded: `autograder check`,
Gradescope's `run_autograder` and `ci/grade.sh`. Two attacks each: a
submission that is a symlink to the course's reference (which scored 100/100
through all three before), and one that reads the reference (and a hidden
test) from disk and returns its answers."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from autograder import assignment as assignments
from autograder.release import kits
from conftest import ROOT

REFERENCE = ROOT / "reference" / "multihead_attention.py"
HIDDEN = ROOT / "assignments" / "multihead_attention" / "tests" / "hidden" / "test_mha.py"
TEMPLATE = (ROOT / "student_templates" / "multihead_attention.py").read_text()
# Reads the reference and a hidden test from every place the course may be;
# executes the reference for its answers; prints the hidden test.
READER = TEMPLATE + f'''

def _steal():
    import os
    found = {{}}
    for root in ({str(ROOT)!r}, os.environ.get("AUTOGRADER_COURSE", ""), "/autograder/source/course",
                 os.getcwd(), os.path.join(os.getcwd(), ".course")):
        for rel in ("reference/multihead_attention.py",
                    "assignments/multihead_attention/tests/hidden/test_mha.py"):
            try:
                with open(os.path.join(root, rel)) as handle:
                    found[rel] = handle.read()
            except Exception:
                pass
    if "assignments/multihead_attention/tests/hidden/test_mha.py" in found:
        print(found["assignments/multihead_attention/tests/hidden/test_mha.py"][:3000])
    namespace = {{}}
    exec(found["reference/multihead_attention.py"], namespace)
    return namespace


def causal_mask(q_len, k_len=None):
    return _steal()["causal_mask"](q_len, k_len)


def scaled_dot_product_attention(*args, **kwargs):
    return _steal()["scaled_dot_product_attention"](*args, **kwargs)


def split_heads(*args, **kwargs):
    return _steal()["split_heads"](*args, **kwargs)


def merge_heads(*args, **kwargs):
    return _steal()["merge_heads"](*args, **kwargs)
'''
HIDDEN_MARK = "def test_mha_gradients_match_torch"  # a line of the hidden test


def _environment(**extra):
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_COURSE"}
    env.update(COLUMNS="1000", **extra)
    return env


def test_check_refuses_a_symlink_and_the_reader_earns_nothing(tmp_path):
    link = tmp_path / "multihead_attention.py"
    link.symlink_to(REFERENCE)
    done = subprocess.run([sys.executable, "-m", "autograder", "check", "multihead_attention",
                           str(link)], capture_output=True, text=True, env=_environment())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "symbolic link" in done.stdout + done.stderr
    assert "0 of 4 public tests passed" in done.stdout

    reader = tmp_path / "reader" / "multihead_attention.py"
    reader.parent.mkdir()
    reader.write_text(READER)
    done = subprocess.run([sys.executable, "-m", "autograder", "check", "multihead_attention",
                           str(reader)], capture_output=True, text=True, env=_environment())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PASS" not in done.stdout
    assert HIDDEN_MARK not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def gradescope_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    kits.write(assignments.load("multihead_attention"), out)
    return out / "multihead_attention" / "gradescope.zip"


@pytest.mark.parametrize("attack", ["symlink", "reader"])
def test_gradescope_run_autograder_holds(gradescope_zip, tmp_path, attack):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(gradescope_zip) as archive:
        archive.extractall(root / "source")
    course_reference = root / "source" / "course" / "reference" / "multihead_attention.py"
    assert course_reference.is_file()
    target = root / "submission" / "multihead_attention.py"
    if attack == "symlink":  # to the kit's own reference, next to the submission
        target.symlink_to(course_reference)
    else:
        target.write_text(READER)
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], capture_output=True,
                          text=True, timeout=900,
                          env=_environment(AUTOGRADER_ROOT=str(root),
                                           AUTOGRADER_PYTHON=sys.executable))
    assert done.returncode == 0, done.stderr
    text = (root / "results" / "results.json").read_text()
    results = json.loads(text)
    assert results["score"] == 0, [t["name"] for t in results["tests"] if t["status"] == "passed"]
    assert HIDDEN_MARK not in text
    if attack == "symlink":
        assert "symbolic link" in text


@pytest.mark.parametrize("attack", ["symlink", "reader"])
def test_ci_grade_sh_holds(tmp_path, attack):
    """As in the GitHub workflow: the course is checked out next to the student's
    repository, so a committed link to ../.course/reference/... is one line."""
    workspace = tmp_path / "workspace"
    repo = workspace / "submission"
    repo.mkdir(parents=True)
    (workspace / ".course").symlink_to(ROOT)
    if attack == "symlink":
        (repo / "multihead_attention.py").symlink_to("../.course/reference/multihead_attention.py")
    else:
        (repo / "multihead_attention.py").write_text(READER)
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "ci" / "grade.sh"), str(repo), str(out)],
                          cwd=workspace, capture_output=True, text=True, timeout=900,
                          env=_environment(AUTOGRADER_COURSE=str(workspace / ".course"),
                                           AUTOGRADER_ASSIGNMENT="multihead_attention"))
    assert done.returncode == 0, done.stdout + done.stderr
    text = (out / "results.json").read_text()
    assert json.loads(text)["score"] == 0
    assert HIDDEN_MARK not in text + (out / "feedback.md").read_text()
    if attack == "symlink":
        assert "symbolic link" in text
