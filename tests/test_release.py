"""Release zips: reproducible, leak-free, and working where they are used."""

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
import yaml

from autograder import assignment as assignments
from autograder.release import kits
from autograder.submission import notebook_to_module
from autograder.templates import solution_lines
from conftest import ROOT

IDS = assignments.available()
# No course from the environment; wide lines, so rich never wraps a hint.
CLEAN_ENV = dict({k: v for k, v in os.environ.items() if k != "AUTOGRADER_COURSE"},
                 COLUMNS="1000")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    for assignment_id in IDS:
        kits.write(assignments.load(assignment_id), out, otter=True)
    return out


def unzip(release, assignment_id, into, name="student.zip"):
    with zipfile.ZipFile(release / assignment_id / name) as archive:
        archive.extractall(into)
    return into / assignment_id


def run_together(commands: dict, **options) -> dict:
    """name -> finished process, for commands that run at the same time."""
    started = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, **options)
               for name, command in commands.items()}
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=600)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


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


# -- nothing of the solution in what students get ----------------------------
def _import_and_docstring_lines(source: str) -> set[int]:
    """Line numbers of import statements (a parenthesised one spans lines) and
    of docstrings and other bare strings."""
    return {n for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str))
            for n in range(node.lineno, node.end_lineno + 1)}


def _meaningful(line: str, templates: str) -> bool:
    """Worth checking: not blank, not a comment, not short, not something the
    templates show anyway (a signature, a docstring stating a formula)."""
    return len(line) >= 20 and not line.startswith("#") and line not in templates


# Lines that compute nothing: a header of a def, class, with or exception
# block (it names things), or a piece of a message (text shown as feedback).
_NOT_CODE = re.compile(r"^((async def|def|class|with|except|else|try|finally)\b.*:"
                       r"|[rRbBfF]{0,2}[\"'])")


def _code_lines(path, templates: str, shipped: set[str]) -> set[str]:
    """The lines of a secret file that would give something away: not its
    imports, docstrings, decorators, block headers or message texts, nor lines
    of files shipped on purpose (``shipped``)."""
    source = path.read_text()
    skipped = _import_and_docstring_lines(source)
    lines = set()
    for number, raw in enumerate(source.splitlines(), 1):
        line = raw.strip()
        if number in skipped or line.startswith("@") or _NOT_CODE.match(line) \
                or line in shipped:
            continue
        if _meaningful(line, templates):
            lines.add(line)
    return lines


@pytest.fixture(scope="module")
def secrets():
    """line -> where it comes from: every line of every reference's solution
    regions, hidden test, ``grading/`` module (oracles, cases) and mistake
    patch, of every assignment."""
    loaded = [assignments.load(i) for i in IDS]
    templates = "\n".join(a.template.read_text() for a in loaded)
    # Shipped on purpose: the public tests (a check line they share with a hidden
    # test gives nothing away) and the framework's own generic code, which a
    # grading helper may repeat (the reference's lines are checked in it too).
    shipped = {line.strip() for text in
               [a.public_tests.joinpath(f).read_text() for a in loaded
                for f in os.listdir(a.public_tests) if f.endswith(".py")] +
               [p.read_text() for p in (ROOT / "autograder").rglob("*.py")]
               for line in text.splitlines()}
    found = {}
    for a in loaded:
        for line in solution_lines(a.reference.read_text()):
            if _meaningful(line, templates) and not line.startswith(("import ", "from ")):
                found.setdefault(line, f"reference/{a.module} (solution)")
        for path in sorted(a.hidden_tests.glob("*.py")):
            for line in _code_lines(path, templates, shipped):
                found.setdefault(line, str(path.relative_to(ROOT)))
        for path in sorted((a.folder / "grading").glob("*.py")):
            for line in _code_lines(path, templates, shipped):
                found.setdefault(line, str(path.relative_to(ROOT)))
        for mistake in yaml.safe_load((a.folder / "mistakes.yaml").read_text()):
            for patch in mistake["patch"]:
                for line in patch["new"].splitlines():
                    if _meaningful(line.strip(), templates):
                        found.setdefault(line.strip(), f"mistake {mistake['id']} of {a.id}")
    assert len(found) > 500  # the rule above leaves the code itself
    return found


@pytest.mark.parametrize("zip_name", ["student.zip", "otter.zip"])
@pytest.mark.parametrize("assignment_id", IDS)
def test_student_zip_leaks_nothing(release, secrets, assignment_id, zip_name):
    """No line of any reference's solution regions (beyond what the templates
    show), of any hidden test, of any assignment's ``grading/`` package (oracles
    and cases) or of any mistake patch, in any file of the kit, vendored
    framework included; no file of ``grading/`` or of the hidden tests, no name
    of a hidden-only test, no absolute path."""
    a = assignments.load(assignment_id)
    public_names = {name.split("::")[1] for name in a.points if name.startswith("public/")}
    hidden_names = {name.split("::")[1] for name in a.points
                    if name.startswith("hidden/")} - public_names
    with zipfile.ZipFile(release / assignment_id / zip_name) as archive:
        for info in archive.infolist():
            name = info.filename
            assert not name.startswith("/") and "hidden" not in name, name
            assert "/grading/" not in name and "mistakes.yaml" not in name, name
            assert not name.split("/")[1] == "reference", name
            text = archive.read(info).decode("utf-8", "replace")
            lines = {line.strip() for line in text.splitlines()}
            leaked = sorted(f"{line!r} ({where})" for line, where in secrets.items()
                            if line in lines)
            assert not leaked, f"{name} contains: " + "; ".join(leaked[:5])
            if name.split("/")[1] == "autograder":
                continue
            for hidden in hidden_names:
                assert hidden not in text, f"{name} names hidden test {hidden}"


def test_the_public_tests_import_no_grading_code():
    """In a kit the public tests use the framework and recorded values only."""
    for assignment_id in IDS:
        for path in assignments.load(assignment_id).public_tests.glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [node.module] if isinstance(node, ast.ImportFrom) else \
                        [alias.name for alias in node.names]
                    assert all(n.split(".")[0] in ("torch", "math", "autograder")
                               for n in names), f"{path}: imports {names}"


# -- what the kit says and installs --------------------------------------------
@pytest.mark.parametrize("assignment_id", IDS)
def test_every_instruction_says_the_same(release, assignment_id):
    """The handout, the template, CHECK.md, requirements.txt, the notebook and
    pyproject.toml agree: CPU torch from PyTorch's index, `pip install .`,
    `autograder check ID`."""
    a = assignments.load(assignment_id)
    commands = kits.setup_commands(a)
    assert commands[0] == "pip install torch==2.13.0 --index-url " \
                          "https://download.pytorch.org/whl/cpu"
    with zipfile.ZipFile(release / assignment_id / "student.zip") as archive:
        text = {name.split("/", 1)[1]: archive.read(name).decode()
                for name in archive.namelist() if not name.endswith(".bin")}
    notebook = json.loads(text[f"{a.module_name}.ipynb"])
    cells = ["".join(c["source"]) for c in notebook["cells"]]
    for where in ("README.md", a.module, "CHECK.md", "requirements.txt"):
        for command in commands:
            assert command in text[where], f"{where} does not say {command!r}"
    for command in commands:
        assert command in "\n".join(cells), f"the notebook does not say {command!r}"
    assert commands[0] in text["pyproject.toml"]
    assert text[a.module] == a.template.read_text()
    # A check cell after every function to implement, as in otter-assign notebooks.
    checks = [i for i, c in enumerate(cells)
              if c.endswith(f"!autograder check {a.id} {a.module_name}.ipynb")]
    assert len(checks) == len(a.api)
    assert all(notebook["cells"][i - 1]["cell_type"] == "code" for i in checks)


def _third_party_imports() -> set[str]:
    """Top-level modules the package needs, beside the standard library: not
    those imported inside ``try: ... except ImportError`` (or Exception), which
    it does without."""
    found, optional = set(), set()
    for path in (ROOT / "autograder").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                    h.type is None or getattr(h.type, "id", "") in
                    ("ImportError", "ModuleNotFoundError", "Exception") for h in node.handlers):
                optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"autograder", "grading"}


def _requirement_names(lines) -> set[str]:
    return {re.split(r"[=<>;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
            for line in lines if line.strip() and not line.startswith(("#", "-"))}


def test_pins_are_declared_once_and_cover_every_import(release):
    """pyproject.toml holds the pins; the Gradescope requirements, the student
    kit's requirements.txt and its pyproject.toml are exactly them, and every
    third-party module the package imports comes from one of them (or from an
    extra, for the optional executors and otter)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"]
    assert all("==" in pin for pin in pins)
    assert set(project["optional-dependencies"]) >= {"otter", "dask"}
    with zipfile.ZipFile(release / "multihead_attention" / "gradescope.zip") as archive:
        gradescope = archive.read("requirements.txt").decode().splitlines()
    with zipfile.ZipFile(release / "multihead_attention" / "student.zip") as archive:
        student = archive.read("multihead_attention/requirements.txt").decode().splitlines()
        kit = tomllib.loads(archive.read("multihead_attention/pyproject.toml").decode())
    assert [line for line in gradescope if not line.startswith("#")] == pins
    assert [line for line in student if not line.startswith(("#", "--"))] == pins
    assert f"--extra-index-url {kits.TORCH_CPU_INDEX}" in student
    assert kit["project"]["dependencies"] == pins
    assert kit["project"]["scripts"]["autograder"] == "autograder.release.kit_cli:run"
    distributions = importlib.metadata.packages_distributions()
    names = _requirement_names(pins + [pin for extra in project["optional-dependencies"].values()
                                       for pin in extra])
    for module in sorted(_third_party_imports()):
        provided = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        assert provided & names, f"autograder imports {module}, which no pin provides"


# -- the kits at work ----------------------------------------------------------
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
    kit = unzip(release, "multihead_attention", tmp_path)
    (kit / "solved").mkdir()
    shutil.copy(ROOT / "reference/multihead_attention.py", kit / "solved")
    command = [sys.executable, "-m", "autograder", "check", "multihead_attention"]
    done = run_together({"template": command,
                         "solved": command + ["solved/multihead_attention.py"]},
                        cwd=kit, env=CLEAN_ENV)
    template, solved = done["template"], done["solved"]
    assert template.returncode == 1 and "0 of 4 public tests passed" in template.stdout
    assert solved.returncode == 0 and "4 of 4 public tests passed" in solved.stdout


def _graders_public_feedback(assignment_id: str, path) -> dict[str, str]:
    """test name -> the feedback the course's grader gives ``path`` on the public
    tests (in this process: the example is trusted code; in-process failures
    read exactly as a worker's)."""
    import importlib.util

    from autograder import submission
    from autograder.engine.inprocess import InProcessLauncher
    from autograder.engine.plugin import run_pytest

    a = assignments.load(assignment_id)
    spec = importlib.util.spec_from_file_location(f"_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = []
    run_pytest(a, [submission.load(path, a.module)], InProcessLauncher(module), results.append,
               include_hidden=False)
    return {t.name: t.feedback for t in results[0].tests}


# An example submission of each assignment whose public-test failure the catalog explains.
HINTED = {"recurrent_cells": "lstm_gates_ifog", "attention_scoring": "mask_by_zeroing_scores",
          "multihead_attention": "no_sqrt_scaling"}


@pytest.mark.parametrize("assignment_id", IDS)
def test_student_kit_gives_the_graders_hints(release, tmp_path, assignment_id):
    """A cataloged mistake gets, from the kit alone, the hint the grader gives
    for the same public test (recorded at build time: no reference, no patch)."""
    example = ROOT / "examples/submissions" / assignment_id / f"{HINTED[assignment_id]}.py"
    hints = {line for feedback in _graders_public_feedback(assignment_id, example).values()
             for line in feedback.splitlines() if line.startswith("Likely mistake: ")}
    assert hints, f"the grader gives {example.name} no hint on a public test"
    kit = unzip(release, assignment_id, tmp_path)
    shutil.copy(example, kit / f"{assignment_id}.py")
    done = subprocess.run([sys.executable, "-m", "autograder", "check", assignment_id],
                          cwd=kit, capture_output=True, text=True, env=CLEAN_ENV)
    assert done.returncode == 1, done.stdout + done.stderr
    for hint in hints:
        assert hint in done.stdout, done.stdout


def run_gradescope(release, tmp_path, submission_name, source, python=sys.executable):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / submission_name).write_text(source)
    with zipfile.ZipFile(release / "multihead_attention" / "gradescope.zip") as archive:
        assert {"setup.sh", "run_autograder"} <= set(archive.namelist())
        archive.extractall(root / "source")
    env = dict(CLEAN_ENV, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=str(python))
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
    # Refused: the worker may not write there, or (with a private /tmp of its
    # own) does not even see the folder.
    assert any("PermissionError" in t["output"] or "FileNotFoundError" in t["output"]
               for t in results["tests"])


# -- in fresh virtual environments, as Gradescope and students install them ----
def _pip(python, *args, cwd=None):
    # --no-compile: no .pyc for torch's thousands of files (minutes, on 2 cores)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=900, env=CLEAN_ENV)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def fresh_venv(release, tmp_path_factory):
    """A virtual environment without this machine's packages, holding only
    torch (2.13.0, from the local wheel cache: the CPU build, as setup.sh and
    CHECK.md install it) and the Gradescope kit's requirements.txt."""
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(folder / "env")], check=True)
    python = folder / "env" / "bin" / "python"
    _pip(python, "torch==2.13.0")
    with zipfile.ZipFile(release / "multihead_attention" / "gradescope.zip") as archive:
        (folder / "requirements.txt").write_bytes(archive.read("requirements.txt"))
    _pip(python, "-r", str(folder / "requirements.txt"))
    return python


@pytest.mark.venv
def test_gradescope_kit_grades_in_a_venv_from_its_requirements(release, tmp_path, fresh_venv):
    """Everything the course kit imports is in its requirements.txt: grading a
    wrong submission renders feedback.html (matplotlib plots) and the score."""
    wrong = (ROOT / "examples/submissions/multihead_attention/no_sqrt_scaling.py").read_text()
    results = run_gradescope(release, tmp_path, "multihead_attention.py", wrong,
                             python=fresh_venv)
    assert results["max_score"] == 100 and 0 < results["score"] < 100, results.get("output")


@pytest.mark.venv
def test_student_kit_follows_check_md_in_a_venv(release, tmp_path, fresh_venv):
    """CHECK.md, literally: `pip install .` in the unzipped kit (torch is
    there), then `autograder check ID` from that folder: the template fails with
    NotImplementedError, the reference passes, a cataloged mistake gets its hint."""
    kit = unzip(release, "multihead_attention", tmp_path)
    commands = kits.setup_commands(assignments.load("multihead_attention"))
    assert commands[1] in (kit / "CHECK.md").read_text()
    _pip(fresh_venv, ".", cwd=kit)
    shutil.rmtree(kit / "autograder")  # what runs is the installed package
    for name, source in (("solved", "reference/multihead_attention.py"),
                         ("wrong", "examples/submissions/multihead_attention/no_sqrt_scaling.py")):
        (kit / name).mkdir()
        shutil.copy(ROOT / source, kit / name / "multihead_attention.py")
    check = [str(fresh_venv.parent / "autograder"), "check", "multihead_attention"]
    done = run_together({"template": check, "solved": check + ["solved/multihead_attention.py"],
                         "wrong": check + ["wrong/multihead_attention.py"]},
                        cwd=kit, env=CLEAN_ENV)
    template, solved, wrong = done["template"], done["solved"], done["wrong"]
    assert template.returncode == 1, template.stdout + template.stderr
    assert "0 of 4 public tests passed" in template.stdout
    assert template.stdout.count("NotImplementedError") >= 4, template.stdout
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert "4 of 4 public tests passed" in solved.stdout
    assert wrong.returncode == 1
    assert "Likely mistake: Your attention matches the version without the 1/sqrt(d_k) " \
        "scaling." in wrong.stdout, wrong.stdout
