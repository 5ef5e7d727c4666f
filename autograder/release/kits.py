"""What goes into each release zip (cli.md, "Release zips").

student.zip: the handout, the template as .py and as a notebook, the public
tests, and a vendored copy of this (pure-Python) package, so ``python -m
autograder check`` runs from the unzipped folder after ``pip install -r
requirements.txt``. Never the reference, hidden tests or their points.

gradescope.zip: ``setup.sh`` and ``run_autograder`` at the root, as Gradescope
expects, and the full course kit for one assignment under ``course/``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..assignment import PACKAGE_ROOT, Assignment
from . import archive, notebook

# The versions the test suite runs with; Gradescope installs exactly these.
PINNED = [
    "torch==2.13.0", "numpy==2.4.6", "pytest==9.0.3", "hypothesis==6.155.2", "PyYAML==6.0.3",
    "rich==15.0.0", "Jinja2==3.1.6", "pyseccomp==0.1.2; sys_platform == 'linux'",
]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def vendored_package(prefix: str) -> dict[str, bytes]:
    return archive.tree(PACKAGE_ROOT, f"{prefix}/autograder")


def public_config(assignment: Assignment) -> str:
    """assignment.yaml without the hidden tests' names and points."""
    data = yaml.safe_load((assignment.folder / "assignment.yaml").read_text())
    data["points"] = {"public": data["points"]["public"]}
    header = "# Student copy: the hidden tests and their points are not included.\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def requirements() -> str:
    return "\n".join(PINNED) + "\n"


def student_files(assignment: Assignment) -> dict[str, bytes | str]:
    a, root = assignment, assignment.id
    handout = a.handout.read_text()
    template = a.template.read_text()
    files: dict[str, bytes | str] = {
        f"{root}/README.md": handout,
        f"{root}/{a.module}": template,
        f"{root}/{a.module_name}.ipynb": notebook.build(a.id, handout, template),
        f"{root}/requirements.txt": requirements(),
        f"{root}/CHECK.md": _check_instructions(a),
        f"{root}/assignments/{a.id}/assignment.yaml": public_config(a),
    }
    files.update(archive.tree(a.public_tests, f"{root}/assignments/{a.id}/tests/public"))
    files.update(vendored_package(root))
    return files


def _check_instructions(a: Assignment) -> str:
    return f"""# Checking your work

From this folder (Python 3.10 or newer):

    pip install torch==2.13.0 --index-url {TORCH_CPU_INDEX}
    pip install -r requirements.txt
    python -m autograder check {a.id}                 # checks ./{a.module}
    python -m autograder check {a.id} {a.module_name}.ipynb

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
/opt/autograder-venv/bin/pip install torch==2.13.0 --index-url {index}
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


def gradescope_files(assignment: Assignment) -> dict[str, bytes | str]:
    a = assignment
    files: dict[str, bytes | str] = {
        "setup.sh": SETUP_SH.format(index=TORCH_CPU_INDEX),
        "run_autograder": RUN_AUTOGRADER.format(assignment=a.id),
        "requirements.txt": requirements(),
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
