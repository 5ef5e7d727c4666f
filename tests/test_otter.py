"""otter-grader interop, with the real otter package: the exported public tests
run through `otter check` and `grader.check` on a correct and a wrong notebook."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from autograder import assignment as assignments
from autograder.release import kits
from conftest import ROOT

WRONG = ROOT / "examples/submissions/multihead_attention/no_sqrt_scaling.py"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("otter")
    kits.write(assignments.load("multihead_attention"), out, otter=True)
    with zipfile.ZipFile(out / "multihead_attention" / "otter.zip") as archive:
        names = archive.namelist()
        assert not any("hidden" in n for n in names)
        archive.extractall(out)
    return out / "multihead_attention-otter"


def notebook_with(package, source, name):
    """The exported notebook with a cell of ``source`` before the checks, and a
    broken demo cell at the end (it must not break checking)."""
    nb = json.loads((package / "multihead_attention.ipynb").read_text())
    cells = nb["cells"]
    first_check = next(i for i, c in enumerate(cells) if "grader.check" in "".join(c["source"]))
    code = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
    cells.insert(first_check, dict(code, id="solution", source=source))
    cells.append(dict(code, id="demo", source="import matplotlib.pyplot as plt\nplot_it()"))
    path = package / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def otter_check(package, notebook):
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_COURSE"}
    return subprocess.run([sys.executable, "-m", "otter", "check", notebook.name, "-t", "tests"],
                          cwd=package, capture_output=True, text=True, timeout=600, env=env)


def test_otter_check_passes_a_correct_notebook(package):
    done = otter_check(package, notebook_with(package, (ROOT / "reference/multihead_attention.py")
                                              .read_text(), "correct"))
    assert "All tests passed!" in done.stdout, done.stdout + done.stderr


def test_otter_check_shows_our_feedback_on_a_wrong_notebook(package):
    done = otter_check(package, notebook_with(package, WRONG.read_text(), "wrong"))
    assert "All tests passed!" not in done.stdout
    assert "test_sdpa_matches_torch" in done.stdout and "differs at index" in done.stdout
    assert "test_causal_mask_3x3 results: All test cases passed!" in done.stdout


def test_grader_check_in_a_kernel_like_namespace(package):
    """What a Jupyter cell `grader.check("...")` does, from a script."""
    script = f"""
import otter
namespace = {{}}
exec(compile(open({str(WRONG)!r}).read(), "cell", "exec"), namespace)
grader = otter.Notebook(tests_dir="tests")
good = grader.check("test_causal_mask_3x3", global_env=namespace)
bad = grader.check("test_sdpa_matches_torch", global_env=namespace)
print("GOOD", good.grade, "BAD", bad.grade)
"""
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_COURSE"}
    done = subprocess.run([sys.executable, "-c", script], cwd=package, capture_output=True,
                          text=True, timeout=300, env=env)
    assert "GOOD 1.0 BAD 0.0" in done.stdout, done.stdout + done.stderr
