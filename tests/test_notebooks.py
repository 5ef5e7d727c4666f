"""Notebooks are read as Jupyter reads them (autograder/ipynb.py) and every
place shown to the student names a code cell and a line in it
(autograder/engine/locations.py), never the module file they never see.

Most cases read a notebook directly (milliseconds); one module-scoped batch
grades the notebook cases together, because a batch costs seconds."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from autograder import ipynb
from autograder.engine.locations import for_student
from autograder.submission import SubmissionProblem, load, notebook_to_module

from conftest import ROOT, failed, grade_batch

MODULE = "multihead_attention.py"
REFERENCE = (ROOT / "reference" / MODULE).read_text()


def code(source: str) -> dict:
    return {"cell_type": "code", "source": source, "metadata": {}, "outputs": [],
            "execution_count": None}


def markdown(source: str) -> dict:
    return {"cell_type": "markdown", "source": source, "metadata": {}}


def notebook(*cells) -> str:
    return json.dumps({"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def run(module: str) -> dict:
    namespace: dict = {}
    exec(compile(module, MODULE, "exec"), namespace)
    return namespace


def where(converted: ipynb.NotebookModule, text: str) -> tuple[int, int]:
    """(code cell, line) of the module line holding ``text``."""
    lines = converted.source.splitlines()
    return converted.line_map[next(i for i, line in enumerate(lines) if text in line)]


def between(start: str, end: str | None = None) -> str:
    """The reference's text from the line starting with ``start`` to the one
    starting with ``end`` (excluded), or to its end."""
    lines = REFERENCE.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next((i for i, line in enumerate(lines) if end and line.startswith(end)), len(lines))
    return "".join(lines[first:last]).rstrip() + "\n"


# -- reading cells as IPython does ----------------------------------------------

def test_ipython_syntax_in_scratch_cells_parses():
    converted = ipynb.convert(notebook(
        code("import torch\n\ndef f(x):\n    return x + 1\n"),
        code("f?"), code("f??"), code("!pip list"), code("pkgs = !pip freeze"),
        code("%matplotlib inline\nx = %time f(1)\nimport json"),
        code("%%time\nimport math\ndef g(x):\n    return f(x) * 2\n%time g(2)\n"),
        code("  %%capture captured\n  %%time\n  def h():\n      return 3\n"),
        code("%%prun -q\nLIMIT = 7\n"),
        code("%%time?"),
        code(">>> def prompt():\n...     return 5\n"),
    ))
    assert converted.notes == () and converted.skipped == ()
    namespace = run(converted.source)
    assert namespace["g"](1) == 4 and namespace["h"]() == 3 and namespace["LIMIT"] == 7
    assert namespace["prompt"]() == 5 and "json" in namespace and "math" in namespace
    # Scratch statements are dropped, IPython's calls included.
    assert "pinfo" not in converted.source and "getoutput" not in converted.source
    assert "pkgs" not in namespace and "x" not in namespace


def test_cell_magics_are_kept_or_dropped_as_jupyter_runs_them():
    body = "def {0}():\n    return 1\n"
    kept = {"time": "", "capture": " out", "prun": " -q", "debug": ""}
    silent = {"timeit": " -n1", "bash": "", "sh": "", "script": " python", "python3": "",
              "writefile": " x.py", "html": "", "javascript": "", "latex": "", "markdown": "",
              "svg": "", "!": ""}
    cells = [code(f"%%{name}{args}\n" + body.format(f"in_{i}"))
             for i, (name, args) in enumerate({**kept, **silent}.items())]
    cells.append(code("%%cython\n" + body.format("compiled")))
    converted = ipynb.convert(notebook(*cells))
    namespace = run(converted.source)
    assert {f"in_{i}" for i in range(len(kept))} <= set(namespace)
    assert not any(f"in_{i}" in namespace for i in range(len(kept), len(cells)))
    # Only the magic the grader does not know is worth a note.
    [note] = converted.notes
    assert f"code cell {len(cells)} starts with %%cython" in note and "skipped" in note
    with pytest.raises(SubmissionProblem, match="cython"):
        notebook_to_module(notebook(*cells))


def test_code_cells_are_numbered_as_the_student_sees_them():
    converted = ipynb.convert(notebook(
        markdown("# Title"), code("import torch"), markdown("text"), {"cell_type": "raw"},
        code("\n\n%matplotlib inline\n\ndef f(x):\n    y = x + 1\n    return y\n"),
        markdown("more"), code("%%time\n\n@staticmethod\ndef g():\n    return 2\n"),
    ))
    assert where(converted, "def f") == (2, 5)
    assert where(converted, "return y") == (2, 7)
    assert where(converted, "@staticmethod") == (3, 3) and where(converted, "return 2") == (3, 5)
    assert "# code cell 2" in converted.source and "# code cell 3" in converted.source
    assert len(converted.line_map) == len(converted.source.splitlines())


def test_a_cell_that_cannot_be_parsed_is_skipped_with_a_note():
    cells = [code("def first():\n    return 1\n"),
             markdown("## broken below"),
             code("import math\n\ndef broken(x:\n    return x\n"),
             code("def third():\n    return first() + 2\n"),
             code("def inner():\n    nonlocal missing\n")]
    converted = ipynb.convert(notebook(*cells))
    assert converted.skipped == (2, 4)
    syntax, compiler = converted.notes
    assert "code cell 2 has a syntax error at line 3: " in syntax
    assert "it was skipped, so what it defines is missing" in syntax
    assert "def broken(x:" in syntax
    assert "code cell 4 has a syntax error at line 2: no binding for nonlocal" in compiler
    namespace = run(converted.source)
    assert namespace["third"]() == 3 and "broken" not in namespace and "math" not in namespace
    # load(): graded with the note; notebook_to_module (course notebooks): strict.
    with pytest.raises(SubmissionProblem, match="code cell 2 has a syntax error"):
        notebook_to_module(notebook(*cells))


def test_skipped_cells_are_noted_once_each_up_to_a_limit():
    converted = ipynb.convert(notebook(*[code("def (") for _ in range(25)]))
    assert len(converted.skipped) == 25
    assert len(converted.notes) == ipynb.MAX_NOTES + 1
    assert "15 more code cells were skipped" in converted.notes[-1]


def test_without_ipython_magic_lines_are_dropped(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython.core.inputtransformer2", None)  # ImportError
    converted = ipynb.convert(notebook(
        code("import torch\n%matplotlib inline\n!pip list\npkgs = !pip freeze\ntorch?\n"
             "def f(x):\n    return x + 1\n"),
        code("%%time\ndef g():\n    return 2\n"),
        code("%%bash\necho hi\n"),
    ))
    assert converted.notes == ()
    namespace = run(converted.source)
    assert namespace["f"](1) == 2 and namespace["g"]() == 2
    assert where(converted, "def f") == (1, 6)


def test_definitions_keep_decorators_and_future_imports_go_first():
    converted = ipynb.convert(notebook(
        code("import functools\n"),
        code("x = 1\nfrom __future__ import annotations\n\n@functools.lru_cache(None)\n"
             "def cached(n) -> Undefined:\n    return n * 2\n"),
    ))
    assert converted.source.startswith("from __future__ import annotations")
    namespace = run(converted.source)
    assert namespace["cached"](3) == 6 and namespace["cached"].cache_info().hits == 0


def test_ipython_syntax_inside_a_function_does_nothing():
    converted = ipynb.convert(notebook(code(
        "def f(x):\n    %time y = x\n    files = !ls\n    return x + 1\n")))
    assert run(converted.source)["f"](1) == 2


def test_hostile_ipython_syntax_stays_fast():
    """IPython re-tokenises a cell for each piece of its syntax: quadratic. The
    grader bounds what it lets IPython tokenise per notebook."""
    cells = [code("!ls\n" * 300 + "def f(x):\n    return x\n" * 2000),
             code("%time x = 1\n" * 3000 + "def g():\n    return 1\n")]
    cells += [code("x?") for _ in range(3000)]
    started = time.monotonic()
    converted = ipynb.convert(notebook(*cells))
    assert time.monotonic() - started < 30
    assert {"f", "g"} <= set(run(converted.source))


def test_load_carries_the_line_map_and_notes(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(notebook(code("def f(:\n"), code("def g():\n    return 1\n")))
    sub = load(path, MODULE)
    assert sub.source and len(sub.line_map) == len(sub.source.splitlines())
    assert sub.notes and "code cell 1 has a syntax error at line 1" in sub.notes[0]
    (tmp_path / "plain.py").write_text("def g():\n    return 1\n")
    plain = load(tmp_path / "plain.py", MODULE)
    assert plain.line_map == () and plain.notes == ()


# -- places named for the student --------------------------------------------------

def test_places_in_the_module_are_rewritten_to_cells():
    line_map = [(1, 1), (1, 2), (3, 4), (3, 5)]
    trace = ('While calling f, your code raised ValueError: no\n'
             '  File "multihead_attention.py", line 4, in f\n    raise ValueError("no")\n')
    assert for_student(trace, MODULE, line_map) == (
        'While calling f, your code raised ValueError: no\n'
        '  code cell 3, line 5, in f\n    raise ValueError("no")\n')
    used = ("This test used sdpa (multihead_attention.py, line 3, in f; "
            "multihead_attention.py, line 1, at module level; multihead_attention.py, "
            "called as F.sdpa)")
    assert for_student(used, MODULE, line_map) == (
        "This test used sdpa (code cell 3, line 4, in f; code cell 1, line 1, at module "
        "level; your notebook, called as F.sdpa)")
    syntax = "Your file has a syntax error at line 2, column 7: invalid syntax\n    def f(:"
    assert for_student(syntax, MODULE, line_map) == (
        "Your notebook has a syntax error at code cell 1, line 2: invalid syntax\n    def f(:")
    # Other files, lines outside the module and absurd numbers stay as they are.
    other = ('File "other_multihead_attention.py", line 2\nmultihead_attention.py, line 9\n'
             "multihead_attention.py, line " + "9" * 5000)
    assert for_student(other, MODULE, line_map) == other


def test_a_py_file_is_left_unchanged():
    text = 'File "multihead_attention.py", line 4, in f\nYour file has a syntax error at line 2'
    assert for_student(text, MODULE, ()) == text


# -- one batch ----------------------------------------------------------------------

def scratch_notebook() -> str:
    """The reference in several code cells, with markdown between them and the
    scratch cells students leave in: all of it works in Jupyter."""
    split_heads = between("def split_heads", "def merge_heads").replace(
        "reshape(B, L, n_heads, E // n_heads)", "reshape(B, L, n_heads, per_head(E, n_heads))")
    return notebook(
        markdown("# Multi-head attention\nMy solution."),
        code(between('"""Assignment 3', "def causal_mask")),
        code("%matplotlib inline"),
        markdown("## The mask"),
        code(between("def causal_mask", "def scaled_dot_product_attention")),
        code("causal_mask?"),
        code("!pip list"),
        code("pkgs = !pip freeze\nprint(len(pkgs))"),
        markdown("## Attention"),
        code(between("def scaled_dot_product_attention", "def split_heads")),
        code("%%time\ndef per_head(E, n_heads):\n    return E // n_heads\n\nprint(per_head(8, 2))\n"),
        code(split_heads),
        code("import matplotlib.pyplot as plt; plt.plot([1, 2]); plt.show()"),
        code("for x in range(3)\n    print(x)\n"),  # a syntax error; defines nothing needed
        code(between("def merge_heads", "class MultiHeadAttention")),
        markdown("## The module"),
        code(between("class MultiHeadAttention", "def attention_cost")),
        code(between("def attention_cost")),
        code("layer = MultiHeadAttention(8, 2)\nlayer(torch.randn(1, 3, 8))[0].shape"),
    )


def raising_notebook() -> str:
    """causal_mask in code cell 3 raises at its line 3 (markdown cells between)."""
    return notebook(
        markdown("# Attention"),
        code(between('"""Assignment 3', "def causal_mask")),
        markdown("The mask:"),
        code("!nvidia-smi"),
        markdown("More text"),
        code('def causal_mask(q_len, k_len=None):\n    """Not yet."""\n'
             '    raise ValueError("not done yet")\n'),
        code(between("def scaled_dot_product_attention", "def attention_cost")
             .replace("causal = causal_mask(L, S)",
                      "causal = torch.ones(L, S, dtype=torch.bool).tril()")),
    )


def broken_merge_heads_notebook() -> str:
    """The cell defining merge_heads has a syntax error: only merge_heads is missing."""
    merge = between("def merge_heads", "class MultiHeadAttention").replace(
        "    B, h, L, d = x.shape\n", "    B, h, L, d = = x.shape\n")
    return notebook(
        code(between('"""Assignment 3', "def merge_heads")),
        markdown("## Merging heads"),
        code(merge),
        code(between("class MultiHeadAttention")),
    )


def forbidden_notebook() -> str:
    """scaled_dot_product_attention (code cell 2) calls torch's own: where it
    did is named by the cell and line."""
    sdpa = between("def scaled_dot_product_attention", "def split_heads").replace(
        "    return weights @ v, weights\n",
        "    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)\n"
        "    return out, weights\n")
    return notebook(
        code(between('"""Assignment 3', "def scaled_dot_product_attention")),
        markdown("## Attention"),
        code(sdpa),
        code(between("def split_heads")),
    )


NEEDS_MERGE_HEADS = {
    "test_split_then_merge_is_identity", "test_merge_heads_inverts_split",
    "test_mha_self_attention_matches_torch", "test_mha_cross_attention_matches_torch",
    "test_mha_separate_value", "test_mha_masks_match_torch",
    "test_mha_fully_masked_keys_give_zeros", "test_mha_causal_matches_torch",
    "test_mha_gradients_match_torch", "test_mha_permutation_equivariant",
    "test_mha_is_vectorised", "test_attention_cost_matches_flop_counter",
}


@pytest.fixture(scope="module")
def notebook_batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebooks")
    subs = tmp / "subs"
    subs.mkdir()
    for name, text in (("scratch", scratch_notebook()), ("raises", raising_notebook()),
                       ("broken_merge", broken_merge_heads_notebook()),
                       ("forbidden", forbidden_notebook())):
        (subs / f"{name}.ipynb").write_text(text)
    outcome, results = grade_batch(tmp, sorted(subs.iterdir()))
    assert not outcome.errors
    return results


def texts(result) -> str:
    return "\n".join([*result.messages, *(t.feedback for t in result.tests)])


def test_a_notebook_with_scratch_cells_scores_full_marks(notebook_batch):
    result = notebook_batch["scratch"]
    assert result.score == 100, failed(result)
    [note] = result.messages
    assert "code cell 11 has a syntax error at line 1" in note and "skipped" in note


def test_an_error_names_the_code_cell_and_line(notebook_batch):
    result = notebook_batch["raises"]
    assert "test_causal_mask_3x3" in failed(result)
    feedback = next(t.feedback for t in result.tests if t.name == "test_causal_mask_3x3")
    assert "ValueError: not done yet" in feedback
    assert "code cell 3, line 3, in causal_mask" in feedback
    assert "test_sdpa_matches_torch_without_mask" not in failed(result)


def test_a_syntax_error_costs_only_what_the_cell_defines(notebook_batch):
    result = notebook_batch["broken_merge"]
    [note] = result.messages
    assert "code cell 2 has a syntax error at line 4" in note
    assert "what it defines is missing" in note
    lost = failed(result)
    assert "test_merge_heads_inverts_split" in lost and lost <= NEEDS_MERGE_HEADS
    assert {"test_causal_mask_3x3", "test_sdpa_matches_torch", "test_split_heads_layout",
            "test_attention_cost_grows_quadratically"}.isdisjoint(lost)
    assert 0 < result.score < 100


def test_a_forbidden_call_is_placed_in_its_cell(notebook_batch):
    result = notebook_batch["forbidden"]
    assert "test_sdpa_matches_torch_without_mask" in failed(result)
    feedback = next(t.feedback for t in result.tests
                    if t.name == "test_sdpa_matches_torch_without_mask")
    assert re.search(r"code cell 2, line \d+, in scaled_dot_product_attention", feedback), \
        feedback


def test_no_text_names_the_module_file(notebook_batch):
    for sid, result in notebook_batch.items():
        assert MODULE not in texts(result), sid
        assert not re.search(r'File "[^"]*", line', texts(result)), sid
