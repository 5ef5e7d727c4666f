"""Student templates, generated from the reference solutions.

Everything between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` in
``reference/<id>.py`` becomes a ``raise NotImplementedError`` that points to the
handout; everything else (signatures, docstrings, imports) is copied, so the
reference is the one source of truth. ``autograder templates`` rewrites every
template; ``autograder templates --check`` (and the test suite) fail when a
template has drifted from its reference.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import assignment as assignments

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
_DEF = re.compile(r"^\s*(?:async\s+)?(def|class)\s+(\w+)")


class MarkerError(Exception):
    pass


def render(reference: str, section: str = "") -> str:
    """The template for a reference module's text."""
    out: list[str] = []
    inside = False
    enclosing: list[tuple[int, str]] = []  # (indent, name) of the defs around the current line
    where = f"the handout (README.md), section {section}" if section else "the handout (README.md)"
    for number, line in enumerate(reference.splitlines(), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise MarkerError(f"line {number}: {BEGIN} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            name = ".".join(n for _, n in enclosing) or "this part"
            out.append(f'{indent}raise NotImplementedError("{name}: see {where}")')
            continue
        if stripped == END:
            if not inside:
                raise MarkerError(f"line {number}: {END} without {BEGIN}")
            inside = False
            continue
        if inside:
            continue
        match = _DEF.match(line)
        if match:
            indent = len(line) - len(line.lstrip())
            enclosing = [(i, n) for i, n in enclosing if i < indent] + [(indent, match.group(2))]
        out.append(line)
    if inside:
        raise MarkerError(f"{BEGIN} is never closed")
    header = ("# Generated from the reference solution by `autograder templates`.\n"
              "# Fill in every function that raises NotImplementedError.\n")
    return header + "\n".join(out) + "\n"


def solution_lines(reference: str) -> list[str]:
    """The non-blank lines inside solution regions (what must never leak)."""
    lines, inside = [], False
    for line in reference.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def expected_templates(root: Path | None = None) -> dict[Path, str]:
    result = {}
    for assignment_id in assignments.available(root):
        a = assignments.load(assignment_id, root)
        result[a.template] = render(a.reference.read_text(), a.section)
    return result


def write_all(root: Path | None = None, check: bool = False) -> list[Path]:
    """Regenerate every template; with ``check``, only list those that differ."""
    changed = []
    for path, text in expected_templates(root).items():
        if not path.is_file() or path.read_text() != text:
            changed.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return changed
