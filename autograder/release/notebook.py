"""The student notebook: the handout as markdown, the template's stubs as code.

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


def build(assignment_id: str, handout: str, template: str) -> str:
    cells = [nbformat.v4.new_markdown_cell(text) for text in _handout_cells(handout)]
    cells.append(nbformat.v4.new_markdown_cell(
        "## Your implementation\n\nFill in every function that raises `NotImplementedError`. "
        "Only imports, functions, classes and constants are graded: cells that print, plot or "
        "experiment never break grading. Check your work locally with\n\n"
        f"    autograder check {assignment_id} {assignment_id}.ipynb"))
    cells += [nbformat.v4.new_code_cell(code) for code in _code_cells(template)]
    cells.append(nbformat.v4.new_markdown_cell("## Scratch space\n\nTry your functions here."))
    cells.append(nbformat.v4.new_code_cell(""))
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index:03d}"
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    return nbformat.writes(notebook) + "\n"
