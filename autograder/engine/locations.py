"""Places in a student's code, named as the student sees them.

A notebook is graded as the module formed by its code cells
(:mod:`autograder.ipynb`), a file the student never sees. Every text the grader
shows that names that module's file and a line (a worker's traceback frames, a
syntax error found when compiling it, where a forbidden call ran) is rewritten
here to the code cell and the line in it::

    File "assignment.py", line 60, in f   ->  code cell 3, line 5, in f
    assignment.py, line 42, in f          ->  code cell 3, line 5, in f
    Your file has a syntax error at line 12, ...   ->  Your notebook has a syntax error at code cell 3, line 5...

A ``.py`` submission has no line map: its texts are left exactly as they are.
engine/plugin.py applies :func:`for_student` where a test's feedback and a
submission's messages are finalised, and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# At most 9 digits: a line number in a student's printed text may be absurdly long.
_LINE = r"line (\d{1,9})(?!\d)"
_SYNTAX = re.compile(r"^Your file has a syntax error at " + _LINE + r"(?:, column \d{1,9})?",
                     re.MULTILINE)


def for_student(text: str, filename: str, line_map: Sequence[tuple[int, int]]) -> str:
    """``text`` with every place in the module ``filename`` (a notebook's,
    described by ``line_map``: module line i + 1 -> (code cell, line)) named by
    its code cell and line. Unchanged without a line map (a ``.py`` file)."""
    if not line_map or not text:
        return text

    def place(number: str) -> str | None:
        line = int(number)
        if 1 <= line <= len(line_map):
            cell, cell_line = line_map[line - 1]
            return f"code cell {cell}, line {cell_line}"
        return None

    def in_module(match: re.Match) -> str:
        return place(match.group(1)) or match.group(0)

    def syntax(match: re.Match) -> str:
        where = place(match.group(1))
        return f"Your notebook has a syntax error at {where}" if where else match.group(0)

    name = re.escape(filename)
    # A traceback frame ('File "m.py", line 3') or a place ('m.py, line 3').
    text = re.sub(rf'(?:File "{name}"|(?<![\w.\-/\\]){name}), {_LINE}', in_module, text)
    text = _SYNTAX.sub(syntax, text)
    # A forbidden call placed by how it was called rather than by a line.
    return re.sub(rf'(?<![\w.\-/\\]){name}, called as', "your notebook, called as", text)
