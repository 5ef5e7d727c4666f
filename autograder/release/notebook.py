"""The student notebook: the handout as markdown, the template's stubs as code.

With ``setup`` (the student kit), each cell that defines a function or class to
implement is followed by a check cell, as in otter-assign notebooks: it runs
``autograder check`` on the saved notebook, the same public tests and feedback
as from a terminal (a shell escape: grading drops it with the other non-code).

Cell ids are derived from their position, so the notebook is byte-identical
from build to build.
"""

from __future__ import annotations

import ast
import re

import nbformat


def _handout_cells(handout: str) -> list[str]:
    """The handout split at its second-level headings."""
    parts = re.split(r"(?m)^(?=## )", handout)
    return [p.strip() for p in parts if p.strip()]


def _code_cells(template: str) -> list[str]:
    """The template split into its header (docstring, imports) and one cell per
    top-level function or class (with its comments and decorators)."""
    lines = template.splitlines()
    tree = ast.parse(template)
    starts = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            while first > 0 and lines[first - 1].startswith("#"):
                first -= 1
            starts.append(first)
    bounds = [0] + starts + [len(lines)]
    cells = ["\n".join(lines[a:b]).strip() for a, b in zip(bounds, bounds[1:])]
    return [c for c in cells if c]


def _defines_api(code: str) -> bool:
    """Whether a cell defines a function or class the student implements."""
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
               and not node.name.startswith("_") for node in ast.parse(code).body)


def check_cell(assignment_id: str) -> str:
    return ("# Save the notebook first (Ctrl+S / Cmd+S): this checks the saved file.\n"
            f"!autograder check {assignment_id} {assignment_id}.ipynb")


def build(assignment_id: str, handout: str, template: str,
          setup: list[str] | None = None) -> str:
    """``setup``: the commands that install ``autograder`` (the student kit's
    CHECK.md); with them, check cells follow the functions to implement."""
    cells = [nbformat.v4.new_markdown_cell(text) for text in _handout_cells(handout)]
    check = f"    autograder check {assignment_id} {assignment_id}.ipynb"
    if setup:
        how = ("Check your work as you go: each function is followed by a cell that runs "
               "the public tests on this notebook (save it first: they read the saved "
               "file). They need the `autograder` command, installed once from this "
               "folder (see CHECK.md):\n\n" + "".join(f"    {c}\n" for c in setup) +
               f"\nFrom a terminal in this folder, the same check is\n\n{check}")
    else:
        how = f"Check your work locally with\n\n{check}"
    cells.append(nbformat.v4.new_markdown_cell(
        "## Your implementation\n\nFill in every function that raises `NotImplementedError`. "
        "Only imports, functions, classes and constants are graded: cells that print, plot or "
        "experiment never break grading. " + how))
    for code in _code_cells(template):
        cells.append(nbformat.v4.new_code_cell(code))
        if setup and _defines_api(code):
            cells.append(nbformat.v4.new_code_cell(check_cell(assignment_id)))
    cells.append(nbformat.v4.new_markdown_cell("## Scratch space\n\nTry your functions here."))
    cells.append(nbformat.v4.new_code_cell(""))
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index:03d}"
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    return nbformat.writes(notebook) + "\n"
