"""Release zips: reproducible, leak-free, and working where they are used."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from autograder import assignment as assignments
from autograder.release import kits
from autograder.submission import notebook_to_module
from autograder.templates import solution_lines
from conftest import ROOT

IDS = assignments.available()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    for assignment_id in IDS:
        kits.write(assignments.load(assignment_id), out, otter=True)
    return out


def test_builds_are_byte_identical(release, tmp_path):
    for assignment_id in IDS:
        kits.write(assignments.load(assignment_id), tmp_path, otter=True)
        for name in ("student.zip", "gradescope.zip", "otter.zip"):
            assert (release / assignment_id / name).read_bytes() == \
                (tmp_path / assignment_id / name).read_bytes(), f"{assignment_id}/{name}"


def test_cli_builds_all(tmp_path):
    done = subprocess.run([sys.executable, "-m", "autograder", "build", "--all", "--out",
                           str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert sorted(p.parent.name for p in tmp_path.glob("*/gradescope.zip")) == IDS


@pytest.mark.parametrize("zip_name", ["student.zip", "otter.zip"])
@pytest.mark.parametrize("assignment_id", IDS)
def test_student_zip_leaks_nothing(release, assignment_id, zip_name):
    """No line of the reference's solution regions (beyond what the template
    itself shows, e.g. a docstring stating the formula), no hidden test file, no
    name of a hidden-only test, no absolute path. The vendored framework is
    scanned for hidden test files only: its oracles share generic lines of code."""
    a = assignments.load(assignment_id)
    template = a.template.read_text()
    secret = [line for line in solution_lines(a.reference.read_text())
              if len(line) > 20 and line not in template]
    hidden_files = [p.read_text() for p in a.hidden_tests.glob("*.py")]
    public_names = {name.split("::")[1] for name in a.points if name.startswith("public/")}
    hidden_names = {name.split("::")[1] for name in a.points
                    if name.startswith("hidden/")} - public_names
    with zipfile.ZipFile(release / assignment_id / zip_name) as archive:
        for info in archive.infolist():
            assert not info.filename.startswith("/") and "hidden" not in info.filename
            text = archive.read(info).decode("utf-8", "replace")
            assert not any(hidden in text for hidden in hidden_files), info.filename
            if info.filename.split("/")[1] == "autograder":
                continue
            for line in secret:
                assert line not in text, f"{info.filename} contains solution line {line!r}"
            for name in hidden_names:
                assert name not in text, f"{info.filename} names hidden test {name}"


@pytest.mark.parametrize("assignment_id", IDS)
def test_student_notebook_holds_every_stub_and_the_handout(release, assignment_id):
    a = assignments.load(assignment_id)
    with zipfile.ZipFile(release / assignment_id / "student.zip") as archive:
        text = archive.read(f"{assignment_id}/{a.module_name}.ipynb").decode()
    notebook = json.loads(text)
    markdown = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    assert a.handout.read_text().splitlines()[0] in markdown
    module = notebook_to_module(text)
    for name in a.api:
        assert f"def {name}(" in module or f"class {name}(" in module


def test_student_kit_checks_locally(release, tmp_path):
    """Unzipped, the kit runs `python -m autograder check` with its vendored package."""
    with zipfile.ZipFile(release / "multihead_attention" / "student.zip") as archive:
        archive.extractall(tmp_path)
    kit = tmp_path / "multihead_attention"
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_COURSE"}
    command = [sys.executable, "-m", "autograder", "check", "multihead_attention"]
    template = subprocess.run(command, cwd=kit, capture_output=True, text=True, env=env)
    assert template.returncode == 1 and "0 of 4 public tests passed" in template.stdout
    (kit / "multihead_attention.py").write_text((ROOT / "reference/multihead_attention.py").read_text())
    solved = subprocess.run(command, cwd=kit, capture_output=True, text=True, env=env)
    assert solved.returncode == 0 and "4 of 4 public tests passed" in solved.stdout


def run_gradescope(release, tmp_path, submission_name, source):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / submission_name).write_text(source)
    with zipfile.ZipFile(release / "multihead_attention" / "gradescope.zip") as archive:
        assert {"setup.sh", "run_autograder"} <= set(archive.namelist())
        archive.extractall(root / "source")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    env.pop("AUTOGRADER_COURSE", None)
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((root / "results" / "results.json").read_text())


def test_gradescope_run_on_correct_submission(release, tmp_path):
    results = run_gradescope(release, tmp_path, "multihead_attention.py",
                             (ROOT / "reference/multihead_attention.py").read_text())
    assert results["score"] == results["max_score"] == 100


def test_gradescope_run_on_wrong_submission_that_tries_to_write_results(release, tmp_path):
    """Uploaded under another name; it tries to write results.json from student code."""
    wrong = (ROOT / "examples/submissions/multihead_attention/no_sqrt_scaling.py").read_text()
    forged = wrong.replace(
        "def causal_mask(q_len, k_len=None):",
        "def causal_mask(q_len, k_len=None):\n"
        f"    open({str(tmp_path / 'autograder' / 'results' / 'results.json')!r}, 'w')"
        ".write('{\"score\": 100}')")
    results = run_gradescope(release, tmp_path, "attention.py", forged)
    assert 0 < results["score"] < 100 and results["max_score"] == 100
    assert any("PermissionError" in t["output"] for t in results["tests"])
