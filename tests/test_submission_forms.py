"""Every submission form of cli.md is read, without executing anything."""

import json
import zipfile

from autograder.submission import load, notebook_to_module


def test_directory_file_zip_and_notebook(tmp_path):
    source = "def f():\n    return 1\n"
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "mod.py").write_text(source)
    (tmp_path / "single.py").write_text(source)
    with zipfile.ZipFile(tmp_path / "sub.zip", "w") as z:
        z.writestr("__MACOSX/mod.py", "junk")
        z.writestr("deep/mod.py", source)
    assert load(tmp_path / "repo", "mod.py").source == source
    assert load(tmp_path / "repo", "mod.py").id == "repo"
    assert load(tmp_path / "single.py", "mod.py").source == source
    assert load(tmp_path / "sub.zip", "mod.py").source == source


def test_problems_are_reported_not_raised(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no mod.py" in load(tmp_path / "empty", "mod.py").problem
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    assert "damaged" in load(tmp_path / "bad.zip", "mod.py").problem
    assert "does not exist" in load(tmp_path / "missing.py", "mod.py").problem


def test_notebook_keeps_definitions_and_drops_demo_cells():
    nb = {"cells": [
        {"cell_type": "code", "source": ["import torch\n", "EPS = 1e-9\n", "def f(x):\n", "    return x\n"]},
        {"cell_type": "code", "source": "%timeit f(1)\nprint(f(2))\nplt.plot([1])\nx = f(3)\n"},
        {"cell_type": "markdown", "source": "def not_code(): pass"},
    ]}
    module = notebook_to_module(json.dumps(nb))
    namespace = {}
    exec(module, namespace)
    assert namespace["f"](5) == 5 and namespace["EPS"] == 1e-9
    assert "print" not in module and "not_code" not in module
