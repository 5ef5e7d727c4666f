"""CI templates are code: parse them, then run their steps on a real submission
in a temporary repository with the environment GitHub or GitLab would set."""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from conftest import ROOT

GITHUB = ROOT / "ci" / "github" / "autograde.yml"
GITLAB = ROOT / "ci" / "gitlab" / "autograde.gitlab-ci.yml"
CORRECT = ROOT / "reference" / "multihead_attention.py"
WRONG = ROOT / "examples" / "submissions" / "multihead_attention" / "no_sqrt_scaling.py"


def workflow():
    data = yaml.safe_load(GITHUB.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def step(name):
    return next(s for s in workflow()["jobs"]["grade"]["steps"] if s.get("name") == name)


def test_github_workflow_structure():
    data = workflow()
    assert "push" in data["on"]
    steps = data["jobs"]["grade"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert "actions/checkout@v4" in uses and "actions/setup-python@v5" in uses
    assert not any("classroom" in u for u in uses), "no dependency on Classroom's actions"
    course = step("Check out the course kit (hidden tests)")
    assert course["with"]["token"] == "${{ secrets.COURSE_TOKEN }}"
    assert step("Set up Python")["with"]["cache"] == "pip"
    assert "torch==2.13.0" in step("Install the autograder (pinned, CPU torch)")["run"]
    upload = step("Upload the report")
    assert upload["if"] == "always()"
    for name in ("results.json", "feedback.html"):
        assert f"autograder-out/{name}" in upload["with"]["path"]
    assert data["env"]["AUTOGRADER_FAIL_ON"] in ("never", "public", "any")


def test_gitlab_template_structure():
    job = yaml.safe_load(GITLAB.read_text())["autograde"]
    assert job["artifacts"]["reports"]["junit"] == "autograder-out/junit.xml"
    assert job["artifacts"]["when"] == "always"
    assert "grade.sh" in job["script"][-1]


def run_github_grade_step(tmp_path, submission, fail_on):
    """The workflow's Grade step, as GitHub would run it after the checkouts."""
    workspace = tmp_path / "workspace"
    repo = workspace / "submission"
    repo.mkdir(parents=True)
    shutil.copy(submission, repo / "multihead_attention.py")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (workspace / ".course").symlink_to(ROOT)  # what the course checkout step leaves
    summary = tmp_path / "summary.md"
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(workspace),
               GITHUB_STEP_SUMMARY=str(summary), AUTOGRADER_FAIL_ON=fail_on,
               AUTOGRADER_COURSE=str(workspace / ".course"))
    done = subprocess.run(["bash", "-c", step("Grade")["run"]], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=600)
    return done, summary, workspace / "autograder-out"


def test_github_grade_step_on_a_correct_submission(tmp_path):
    done, summary, out = run_github_grade_step(tmp_path, CORRECT, "public")
    assert done.returncode == 0, done.stderr
    assert "::notice title=Autograder::Points 100/100" in done.stdout
    assert "Score: 100 / 100" in summary.read_text()
    for path in step("Upload the report")["with"]["path"].split():
        assert (out.parent / path).is_file(), path


@pytest.mark.parametrize("fail_on, code", [("never", 0), ("public", 3)])
def test_github_grade_step_on_a_wrong_submission(tmp_path, fail_on, code):
    done, summary, out = run_github_grade_step(tmp_path, WRONG, fail_on)
    assert done.returncode == code, done.stderr
    assert "::notice title=Autograder::Points " in done.stdout
    assert "Points 100/100" not in done.stdout
    assert "sqrt(d_k)" in summary.read_text()


def test_grade_sh_and_junit_xml(tmp_path):
    repo = tmp_path / "student-repo"
    repo.mkdir()
    shutil.copy(WRONG, repo / "multihead_attention.py")
    env = dict(os.environ)
    env.pop("GITHUB_ACTIONS", None)
    env.pop("GITHUB_STEP_SUMMARY", None)
    done = subprocess.run(["bash", str(ROOT / "ci" / "grade.sh"), str(repo), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Points " in done.stdout and "::notice" not in done.stdout
    tree = ET.parse(tmp_path / "out" / "junit.xml")
    suites = tree.getroot()
    assert suites.tag == "testsuites"
    (suite,) = suites.findall("testsuite")
    cases = suite.findall("testcase")
    failures = [c for c in cases if c.find("failure") is not None]
    assert int(suite.get("tests")) == len(cases) > 20
    assert int(suite.get("failures")) == len(failures) > 0
    assert all(c.get("name") and c.get("classname").startswith("student-repo.") for c in cases)
    assert any("sqrt(d_k)" in (c.find("failure").text or "") for c in failures)


def test_grade_sh_usage_errors(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "ci" / "grade.sh"), str(tmp_path), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no assignment file" in done.stderr


def test_gitlab_script_runs_on_a_student_repository(tmp_path):
    """The job's script line as GitLab runs it, after its before_script."""
    job = yaml.safe_load(GITLAB.read_text())["autograde"]
    project = tmp_path / "student-project"
    project.mkdir()
    shutil.copy(WRONG, project / "multihead_attention.py")
    (project / ".course").symlink_to(ROOT)  # what before_script's clone leaves
    env = dict(os.environ, CI_PROJECT_DIR=str(project),
               AUTOGRADER_FAIL_ON=job["variables"]["AUTOGRADER_FAIL_ON"])
    env.pop("GITHUB_ACTIONS", None)
    done = subprocess.run(["bash", "-c", job["script"][-1]], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Points 40/100" in done.stdout
    report = project / job["artifacts"]["reports"]["junit"]
    assert ET.parse(report).getroot().tag == "testsuites"
    for path in job["artifacts"]["paths"]:
        assert (project / path).is_file(), path
