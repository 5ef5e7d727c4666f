"""What goes into each release zip (cli.md, "Release zips").

student.zip: the handout, the template as .py and as a notebook, the public
tests with the values their oracles returned on the reference (recorded as
data: ``expected.bin``, see :mod:`autograder.testing.recorded`) and the hints
of the cataloged mistakes that fail them (``mistakes.json``, see
:mod:`autograder.engine.recorded_hints`), and a vendored copy of this
(pure-Python, assignment-agnostic) package with a ``pyproject.toml``, so that
``pip install .`` in the unzipped folder puts ``autograder`` on PATH and
``autograder check`` runs there. Never the reference, oracle code, hidden
tests, their points, or a patch of the reference.

gradescope.zip: ``setup.sh`` and ``run_autograder`` at the root, as Gradescope
expects, and the full course kit for one assignment under ``course/``.

The pinned versions are read from the one place they are declared: the
``[project]`` table of the repository's ``pyproject.toml``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import tomllib
from pathlib import Path

import yaml

from ..assignment import PACKAGE_ROOT, Assignment, AssignmentError
from . import archive, notebook

PYPROJECT = PACKAGE_ROOT.parent / "pyproject.toml"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@functools.lru_cache(maxsize=1)
def _pyproject() -> dict:
    try:
        return tomllib.loads(PYPROJECT.read_text())
    except FileNotFoundError:
        raise AssignmentError(f"{PYPROJECT} is missing: the pinned versions are read from "
                              "it; build the release from a checkout of the course "
                              "repository") from None


def pins(extras: tuple[str, ...] = ()) -> list[str]:
    """The pinned requirements (pyproject.toml's dependencies), with ``extras``."""
    project = _pyproject()["project"]
    return list(project["dependencies"]) + [
        pin for extra in extras for pin in project["optional-dependencies"][extra]]


def torch_pin() -> str:
    (pin,) = [p for p in pins() if p.startswith("torch==")]
    return pin


def setup_commands(a: Assignment) -> list[str]:
    """What every instruction of the student kit says, in this order."""
    return [f"pip install {torch_pin()} --index-url {TORCH_CPU_INDEX}", "pip install .",
            f"autograder check {a.id}"]


def vendored_package(prefix: str) -> dict[str, bytes]:
    return archive.tree(PACKAGE_ROOT, f"{prefix}/autograder")


# What ``autograder check`` reads of assignment.yaml; the rest (``validate:``,
# which names hidden tests, and whatever instructors add) stays in the course.
STUDENT_CONFIG = ("id", "title", "section", "module", "api", "limits", "hypothesis",
                  "forbidden", "points")


def public_config(assignment: Assignment) -> str:
    """assignment.yaml without the hidden tests' names and points."""
    data = yaml.safe_load((assignment.folder / "assignment.yaml").read_text())
    data = {key: value for key, value in data.items() if key in STUDENT_CONFIG}
    data["points"] = {"public": data["points"]["public"]}
    header = "# Student copy: the hidden tests and their points are not included.\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def requirements(extras: tuple[str, ...] = (), cpu_index: bool = True,
                 header: str = "") -> str:
    """The pins as a requirements file. With ``cpu_index``, PyTorch's CPU index
    is consulted too, so ``pip install -r`` takes the CPU build of torch
    (2.13.0+cpu sorts above PyPI's CUDA 2.13.0), not several GB of CUDA."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    if cpu_index:
        lines.append(f"--extra-index-url {TORCH_CPU_INDEX}")
    return "\n".join(lines + pins(extras)) + "\n"


# -- what the public tests need in a kit: values and hints recorded on the course
_RECORDINGS: dict[str, dict[str, bytes | str]] = {}


def _inputs_digest(a: Assignment) -> str:
    h = hashlib.sha256()
    for name, data in sorted({**archive.tree(a.folder, "assignment"),
                              **vendored_package("package"),
                              "reference": a.reference.read_bytes(),
                              "template": a.template.read_bytes()}.items()):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def recordings(a: Assignment) -> dict[str, bytes | str]:
    """``expected.bin`` and ``mistakes.json``: the public tests run in this
    process on the reference (every oracle call they make recorded), then on a
    submission that fails them all, which runs every cataloged mistake through
    them. Computed once per process for the same course files."""
    from .. import submission
    from ..engine import recorded_hints
    from ..engine.inprocess import InProcessLauncher
    from ..engine.plugin import run_pytest
    from ..testing import recorded

    key = _inputs_digest(a)
    if key in _RECORDINGS:
        return _RECORDINGS[key]
    spec = importlib.util.spec_from_file_location(f"_kit_reference_{a.module_name}", a.reference)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    results = []
    with recorded.recording() as values:
        done = run_pytest(a, [submission.load(a.reference, a.module)],
                          InProcessLauncher(reference), results.append, include_hidden=False)
        failed = [t.name for r in results for t in r.tests if not t.passed]
        if done.errors or not results or failed:
            raise AssignmentError(f"{a.id}: the reference must pass every public test to "
                                  f"record their expected values (failed: {failed}; "
                                  f"errors: {done.errors})")
        hints = recorded_hints.record(a)
    _RECORDINGS[key] = {recorded.EXPECTED: values.encode(), recorded_hints.MISTAKES: hints}
    return _RECORDINGS[key]


def public_tests(a: Assignment, prefix: str) -> dict[str, bytes | str]:
    """The public tests with what they need in a kit without the course."""
    files: dict[str, bytes | str] = archive.tree(a.public_tests, prefix)
    files.update({f"{prefix}/{name}": data for name, data in recordings(a).items()})
    return files


def kit_pyproject() -> str:
    """``pip install .`` in the unzipped kit: this package, the pinned
    dependencies and the ``autograder`` command (that finds the course in the
    folder it runs in: see kit_cli.py)."""
    data = _pyproject()
    project, setuptools = data["project"], data["tool"]["setuptools"]
    dependencies = "".join(f"    {json.dumps(p)},\n" for p in project["dependencies"])
    package_data = ", ".join(json.dumps(p) for p in setuptools["package-data"]["autograder"])
    return f"""# `pip install .` in this folder installs the `autograder` command that checks
# your work (CHECK.md). Install PyTorch's CPU build first:
#   pip install {torch_pin()} --index-url {TORCH_CPU_INDEX}
[build-system]
requires = {json.dumps(data["build-system"]["requires"])}
build-backend = {json.dumps(data["build-system"]["build-backend"])}

[project]
name = {json.dumps(project["name"])}
version = {json.dumps(project["version"])}
description = {json.dumps(project["description"])}
requires-python = {json.dumps(project["requires-python"])}
dependencies = [
{dependencies}]

[project.scripts]
autograder = "autograder.release.kit_cli:run"

[tool.setuptools.packages.find]
include = ["autograder*"]

[tool.setuptools.package-data]
autograder = [{package_data}]
"""


def student_files(assignment: Assignment) -> dict[str, bytes | str]:
    a, root = assignment, assignment.id
    handout = a.handout.read_text()
    template = a.template.read_text()
    files: dict[str, bytes | str] = {
        f"{root}/README.md": handout,
        f"{root}/{a.module}": template,
        f"{root}/{a.module_name}.ipynb": notebook.build(
            a.id, handout, template, setup=setup_commands(a)[:2]),
        f"{root}/requirements.txt": requirements(header=_requirements_header(a)),
        f"{root}/pyproject.toml": kit_pyproject(),
        f"{root}/CHECK.md": _check_instructions(a),
        f"{root}/assignments/{a.id}/assignment.yaml": public_config(a),
    }
    files.update(public_tests(a, f"{root}/assignments/{a.id}/tests/public"))
    files.update(vendored_package(root))
    return files


def _requirements_header(a: Assignment) -> str:
    torch, install, check = setup_commands(a)
    return f"""The packages that `pip install .` installs, at the versions the grader uses.
Set up from this folder (CHECK.md), PyTorch's CPU build first:
  {torch}
  {install}
then check your work with
  {check}
"""


def _check_instructions(a: Assignment) -> str:
    torch, install, check = setup_commands(a)
    python = _pyproject()["project"]["requires-python"].lstrip(">=")
    notebook_check = f"{check} {a.module_name}.ipynb"
    width = len(notebook_check) + 2
    return f"""# Checking your work

Set up once, from this folder, with Python {python} or newer (a virtual
environment keeps these versions apart from your other projects:
`python -m venv .venv`, then activate it):

    {torch}
    {install}

The first line installs PyTorch's CPU build, which is all the checks need (on
Linux, plain `pip install torch` would download several GB of CUDA libraries).
The second installs the `autograder` command with the packages in
requirements.txt, at the versions the grader uses.

Then, from this folder:

    {check.ljust(width)}# checks ./{a.module}
    {notebook_check.ljust(width)}# checks the notebook (save it first)

The public tests are a sample; the hidden tests that decide your grade check many
more shapes, dtypes and properties. On a laptop the sandbox has fewer layers than
on the course's grader, so a local result is advisory.
"""


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once to build the autograder image (Ubuntu 22.04).
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends software-properties-common libseccomp2
add-apt-repository -y ppa:deadsnakes/ppa
apt-get update
apt-get install -y --no-install-recommends python3.11 python3.11-venv
python3.11 -m venv /opt/autograder-venv
/opt/autograder-venv/bin/pip install --upgrade pip
/opt/autograder-venv/bin/pip install {torch} --index-url {index}
/opt/autograder-venv/bin/pip install -r /autograder/source/requirements.txt
# Student code runs as unprivileged users of its own: it must be able to read
# (never write) the interpreter and its packages, and nothing of the course.
chmod -R a+rX,go-w /opt/autograder-venv
chmod -R o= /autograder/source
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope's entry point: grade /autograder/submission (a .py, a notebook, or
# the unpacked zip) and write /autograder/results/results.json. Student code runs
# in sandboxed workers (README, "Security") that see neither the course nor the
# results folder; as a second layer, both are closed to other users, as
# Gradescope's own guidance says (chmod o=).
set -uo pipefail
root=${{AUTOGRADER_ROOT:-/autograder}}
python=${{AUTOGRADER_PYTHON:-/opt/autograder-venv/bin/python}}
export AUTOGRADER_COURSE="$root/source/course"
work=$(mktemp -d)
mkdir -p "$root/results"
chmod -R o= "$root/source" "$root/results"
cd "$root/source/course"
"$python" -m autograder grade {assignment} "$root/submission" --out "$work/out"
if [ -f "$work/out/submission/results.json" ]; then
  cp "$work/out/submission/results.json" "$root/results/results.json"
else
  cat > "$root/results/results.json" <<'JSON'
{{"score": 0, "output": "The autograder could not grade this submission (a grader fault, not yours): please contact the course staff.", "tests": []}}
JSON
fi
rm -rf "$work"
"""


GRADESCOPE_HEADER = """What setup.sh installs after PyTorch's CPU build: the versions the
autograder's test suite runs with."""


def gradescope_files(assignment: Assignment) -> dict[str, bytes | str]:
    a = assignment
    files: dict[str, bytes | str] = {
        "setup.sh": SETUP_SH.format(torch=torch_pin(), index=TORCH_CPU_INDEX),
        "run_autograder": RUN_AUTOGRADER.format(assignment=a.id),
        # Everything the course kit imports (matplotlib: feedback.html's plots);
        # setup.sh has installed the CPU torch first, from PyTorch's index.
        "requirements.txt": requirements(cpu_index=False, header=GRADESCOPE_HEADER),
        f"course/reference/{a.module}": a.reference.read_bytes(),
    }
    files.update(archive.tree(a.folder, f"course/assignments/{a.id}"))
    files.update(vendored_package("course"))
    return files


def write(assignment: Assignment, out: Path, otter: bool = False) -> list[Path]:
    """The release zips; with ``otter``, also ``otter.zip`` (see :mod:`.otter`)."""
    folder = out / assignment.id
    student, gradescope = folder / "student.zip", folder / "gradescope.zip"
    archive.write_zip(student, student_files(assignment))
    archive.write_zip(gradescope, gradescope_files(assignment),
                      executable={"setup.sh", "run_autograder"})
    written = [student, gradescope]
    if otter:
        from .otter import otter_files
        written.append(folder / "otter.zip")
        archive.write_zip(written[-1], otter_files(assignment))
    return written
