"""A notebook's code cells, read the way Jupyter runs them, as one module.

Each code cell is read as IPython reads it before running it
(``IPython.core.inputtransformer2``): ``%line`` magics, ``!shell`` lines,
``x = !cmd``, ``x = %magic``, ``obj?``/``obj??`` help and ``%%cell`` magics
become Python (``get_ipython().system(...)``...), so a scratch cell such as
``causal_mask?`` or ``pkgs = !pip freeze`` parses as it does in Jupyter. A
cell that is plain Python is used as it is (IPython leaves it unchanged).
IPython is imported only when a cell needs it; without IPython, lines that start
with ``%`` or ``!`` and ``obj?`` lines are dropped instead.

From the transformed cells the module keeps what the student's functions need
and nothing that runs a demo: imports (each allowed to fail: a demo library such
as matplotlib may be missing in the grader), functions, classes, and
assignments of plain constants (``EPS = 1e-9``); ``from __future__`` imports go
to the top. Everything else (plots, prints, ``get_ipython()`` calls, training
loops) is dropped, so a notebook that works in Jupyter never fails to import
here because of a demo.

Cells are numbered as the student sees them: "code cell 3" is the third *code*
cell (markdown cells do not count). A cell Python cannot parse (or whose kept
definitions Python cannot compile, as Jupyter could not run it) is skipped,
with a note for the student; the other cells are graded. The module carries a
line map (module line -> code cell, line in that cell) so that every place the
grader shows (tracebacks, syntax errors, forbidden calls) can name the cell and
line the student wrote (:mod:`autograder.engine.locations`).

Cell magics (``%%name`` on the first line of a cell), decided per magic by
where IPython runs the body:

- ``%%time``, ``%%capture``, ``%%prun``, ``%%debug`` run their body as Python in
  the notebook's namespace: its definitions exist afterwards, so the body is
  read like any cell (it may itself start with a cell magic).
- ``%%timeit`` runs its body inside a throwaway function (nothing it defines
  exists afterwards in Jupyter), ``%%python``/``%%python3``/``%%script`` in
  another process, ``%%writefile`` writes a file, and ``%%bash``, ``%%html``,
  ``%%javascript``, ``%%latex``, ``%%markdown``, ``%%svg``... are not Python:
  these cells define nothing in the notebook and are dropped.
- Any other cell magic (an extension's, e.g. ``%%cython``) is not run by the
  grader: the cell is dropped and the student is told.

Notebooks are hostile input like any submission: the transformer re-tokenises a
cell once per piece of IPython syntax it rewrites (quadratic in the worst case),
so the characters it may tokenise per notebook are bounded
(:data:`MAX_IPYTHON_CHARS`); past the budget, cells are read without IPython.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass, field

# Characters IPython's transformer may tokenise for one notebook (each rewrite
# re-tokenises the whole cell, at 100 000 to 250 000 characters a second); each
# pass counts at least MIN_PASS_CHARS, so many tiny cells are bounded too.
MAX_IPYTHON_CHARS = 400_000
MIN_PASS_CHARS = 1_000
TRANSFORM_PASSES = 500  # IPython's own TRANSFORM_LOOP_LIMIT
MAX_NOTES = 10          # notes about skipped cells; then one that counts the rest
LINE_SHOWN = 200        # characters of a student's line quoted in a note
MAX_NESTED_MAGICS = 8   # "%%capture" over "%%time" over ...: each level copies the cell

# Cell magics whose body IPython runs as Python in the notebook's namespace.
PYTHON_CELL_MAGICS = frozenset({"time", "capture", "prun", "debug"})
# Cell magics whose body never defines anything in the notebook's namespace.
OTHER_CELL_MAGICS = frozenset({
    "timeit",                                             # a throwaway function
    "python", "python2", "python3", "pypy", "script",     # another process
    "bash", "sh", "sx", "system", "perl", "ruby",         # not Python
    "html", "javascript", "js", "latex", "markdown", "svg",
    "writefile", "file",                                  # writes a file
})

# Top-level statements kept: definitions and imports (constant assignments too,
# see _is_constant_assignment).
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_KEPT = (ast.Import, ast.ImportFrom, *_DEFINITIONS)
# The line breaks Python's own tokenizer knows (str.splitlines knows more, e.g.
# form feeds, which Python reads as whitespace).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_INDENT = re.compile(r"[ \t]+")
_HELP_LINE = re.compile(r"\s*%{0,2}[\w.*\[\]-]*\?\??\s*")
_MAGIC_ASSIGN = re.compile(r"[\w.\[\], ]+=\s*[!%]")  # on a line without its indentation
_MAGIC_NAME = re.compile(r"[\w.-]{1,40}")
# A line that may hold a piece of IPython syntax (each costs the transformer a pass).
_MAYBE_IPYTHON = re.compile(r"\s*[%!?,;/]|.*\?\s*$|.*=\s*[!%]")


class NotebookProblem(Exception):
    """The text is not a notebook (its message is for the student)."""


@dataclass(frozen=True)
class NotebookModule:
    source: str
    # line_map[i]: (code cell, line in that cell) of the module's line i + 1
    line_map: tuple[tuple[int, int], ...]
    notes: tuple[str, ...] = ()    # for the student: cells skipped or not run
    skipped: tuple[int, ...] = ()  # code cells left out because Python cannot parse them


def convert(text: str) -> NotebookModule:
    """The module formed by a notebook's code cells (see the module's docstring).
    Raises :class:`NotebookProblem` for anything that is not a notebook; a cell
    that cannot be parsed is skipped and noted, never an error."""
    reader = _Reader()
    builder = _Builder()
    cells = _code_cells(text)
    with warnings.catch_warnings():  # SyntaxWarnings of student code are not the grader's
        warnings.simplefilter("ignore")
        for number, source in cells:
            cell = reader.read(number, source)
            if cell is not None:
                builder.add(cell)
    return NotebookModule(builder.source(), tuple(builder.line_map), tuple(reader.notes()),
                          tuple(reader.skipped))


def _code_cells(text: str):
    """(code cell number, source) of each code cell, numbered among code cells."""
    try:
        notebook = json.loads(text)
    except RecursionError:  # "[[[[..." : the C decoder recurses per level
        raise NotebookProblem("the notebook's JSON is nested too deeply") from None
    except ValueError:
        raise NotebookProblem("the notebook is not valid .ipynb JSON") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise NotebookProblem("the notebook is not valid .ipynb JSON (it has no list of cells)")
    sources, code = [], 0
    for index, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            raise NotebookProblem(f"cell {index} of the notebook is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        code += 1
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        elif not isinstance(source, str):
            raise NotebookProblem(f"the source of code cell {code} of the notebook is not text")
        sources.append((code, source))
    return sources


@dataclass
class _Cell:
    number: int
    tree: ast.Module
    lines: list[str]     # the cell as parsed (transformed), without line breaks
    numbers: list[int]   # the student's line number of each of them
    futures: list[ast.stmt] = field(init=False)  # its ``from __future__`` imports
    kept: list[ast.stmt] = field(init=False)     # the other statements the module keeps

    def __post_init__(self):
        self.futures, self.kept = _kept(self.tree)


class _Unparsable(Exception):
    def __init__(self, error: BaseException, line: int | None):
        super().__init__(str(error))
        self.error, self.line = error, line


class _Reader:
    """Reads cells one by one; holds IPython's transformer and its budget."""

    def __init__(self):
        self.budget = MAX_IPYTHON_CHARS
        self._manager = None  # False: IPython is not installed (or broken)
        self.skipped: list[int] = []
        self._notes: list[str] = []
        self._more = 0

    def notes(self) -> list[str]:
        if not self._more:
            return list(self._notes)
        return [*self._notes,
                f"In your notebook, {self._more} more code cells were skipped in the same way."]

    def _note(self, text: str) -> None:
        if len(self._notes) < MAX_NOTES:
            self._notes.append(text)
        else:
            self._more += 1

    def read(self, number: int, source: str) -> _Cell | None:
        original = _LINE_BREAK.split(source)
        try:
            cell = self._parse(number, original)
        except _Unparsable as exc:
            self.skipped.append(number)
            self._note(_skip_note(number, exc, original))
            return None
        if cell is None:
            return None
        try:
            _compile_kept(cell)
        except _Unparsable as exc:
            self.skipped.append(number)
            self._note(_skip_note(number, exc, original))
            return None
        return cell

    def _parse(self, number: int, lines: list[str]) -> _Cell | None:
        numbers = list(range(1, len(lines) + 1))
        try:  # plain Python: IPython would leave it as it is
            return _Cell(number, _parse(lines), lines, numbers)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
        lines, numbers, magic = _cell_magic(lines, numbers)
        if magic is not None:
            if magic not in OTHER_CELL_MAGICS and not magic.startswith("!"):
                shown = f"%%{magic}" if _MAGIC_NAME.fullmatch(magic) else "a cell magic"
                self._note(f"In your notebook, code cell {number} starts with {shown}, which "
                           "the grader does not run; it was skipped, so what it defines is "
                           "missing.")
            return None
        transformed = self._ipython(lines, numbers) or _without_special_lines(lines, numbers)
        lines, numbers = transformed
        try:
            return _Cell(number, _parse(lines), lines, numbers)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
            raise _Unparsable(exc, _student_line(numbers, line)) from None

    def _manager_or_none(self):
        if self._manager is None:
            try:
                from IPython.core.inputtransformer2 import TransformerManager
                self._manager = TransformerManager()
            except Exception:  # not installed (or broken): read without it
                self._manager = False
        return self._manager or None

    def _ipython(self, lines: list[str], numbers: list[int]):
        """The cell as IPython transforms it, with the student's line number of
        each line; None when IPython is missing, fails, or would take too long."""
        if not lines:
            return None
        # Each piece of IPython syntax costs a pass over the whole cell: a cell
        # that would use up the budget is read without IPython at once.
        passes = 1 + sum(1 for line in lines if _MAYBE_IPYTHON.match(line))
        if max(sum(map(len, lines)) + len(lines), MIN_PASS_CHARS) * passes > self.budget:
            return None
        manager = self._manager_or_none()
        if manager is None:
            return None
        work = [line + "\n" for line in lines]
        try:
            for cleanup in manager.cleanup_transforms:  # prompts, indentation
                new = cleanup(work)
                # Only leading blank lines are ever removed.
                numbers = numbers[len(work) - len(new):] if len(new) != len(work) else numbers
                work = new
            # IPython's transform_cell, one rewrite at a time, following lines.
            for _ in range(TRANSFORM_PASSES):
                cost = max(sum(map(len, work)), MIN_PASS_CHARS)
                if cost > self.budget:
                    self.budget = 0
                    return None
                self.budget -= cost
                changed, new = manager.do_one_token_transform(work)
                if not changed:
                    break
                numbers = _follow(work, new, numbers)
                work = new
            else:
                return None
        except Exception:  # IndentationError from tokenize, and whatever else
            return None
        if len(work) != len(numbers) or not all(
                line.endswith("\n") and not _LINE_BREAK.search(line, 0, len(line) - 1)
                for line in work):
            return None
        return [line[:-1] for line in work], numbers


def _parse(lines: list[str]) -> ast.Module:
    return ast.parse("\n".join(lines))


def _cell_magic(lines: list[str], numbers: list[int]):
    """IPython's clean-up (leading blank lines, leading indentation) and
    ``%%magic`` lines: (lines, numbers, None) for what is to be read as Python,
    or (.., .., name) for a cell magic whose body is not (or for cell magics
    nested more than MAX_NESTED_MAGICS deep, which no notebook needs)."""
    for _ in range(MAX_NESTED_MAGICS + 1):
        start = 0
        while start < len(lines) and not lines[start].strip():
            start += 1
        if start == len(lines):  # all blank: IPython keeps them (and runs nothing)
            return lines, numbers, None
        lines, numbers = lines[start:], numbers[start:]
        indent = _INDENT.match(lines[0])
        if indent:
            prefix = indent.group()
            lines = [line.removeprefix(prefix) for line in lines]
        first = lines[0]
        if not first.startswith("%%") or re.match(r"%%\w+\?", first):
            return lines, numbers, None  # "%%time?" is a help query, read as one
        magic = first[2:].rstrip().partition(" ")[0]
        if magic not in PYTHON_CELL_MAGICS:
            return lines, numbers, magic
        lines, numbers = lines[1:], numbers[1:]  # the body, read as a cell of its own
        if not lines:
            return lines, numbers, None
    return lines, numbers, magic


def _follow(old: list[str], new: list[str], numbers: list[int]) -> list[int]:
    """Line numbers for ``new``, which is ``old`` with one range of lines
    replaced (IPython replaces a piece of its syntax, continuation lines
    included, by one line): the replacement gets the range's first line."""
    limit = min(len(old), len(new))
    head = 0
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    first = numbers[min(head, len(numbers) - 1)] if numbers else 1
    return numbers[:head] + [first] * (len(new) - tail - head) + numbers[len(old) - tail:]


def _without_special_lines(lines: list[str], numbers: list[int]):
    """Without IPython: lines of its syntax (``%magic``, ``!shell``, ``x = !cmd``,
    ``obj?``) are emptied, so every other line keeps its number."""
    kept = ["" if line.lstrip().startswith(("%", "!")) or _HELP_LINE.fullmatch(line)
            or _MAGIC_ASSIGN.match(line.lstrip()) else line for line in lines]
    return kept, numbers


def _compile_kept(cell: _Cell) -> None:
    """What the module keeps of the cell must compile, as Jupyter compiles each
    statement before running it ("no binding for nonlocal", "'yield' outside
    function" are found by the compiler, not the parser)."""
    # Imports and constant assignments that parse also compile.
    checked = cell.futures + [node for node in cell.kept if isinstance(node, _DEFINITIONS)]
    if not checked:
        return
    try:
        compile(ast.Module(body=checked, type_ignores=[]), "<cell>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
        raise _Unparsable(exc, _student_line(cell.numbers, line)) from None


def _kept(tree: ast.Module) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """(``from __future__`` imports, the other statements kept) of a cell."""
    futures, kept = [], []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__" and not node.level:
            futures.append(node)
        elif isinstance(node, _KEPT) or _is_constant_assignment(node):
            kept.append(node)
    return futures, kept


def _student_line(numbers: list[int], line: int | None) -> int | None:
    if not line or not numbers:
        return None
    return numbers[min(max(line, 1), len(numbers)) - 1]


def _skip_note(number: int, exc: _Unparsable, original: list[str]) -> str:
    error = exc.error
    if isinstance(error, SyntaxError):
        where = f" at line {exc.line}" if exc.line else ""
        problem = f"has a syntax error{where}: {_printable(error.msg or 'invalid syntax')}"
    elif isinstance(error, UnicodeError):
        problem = "cannot be parsed (it contains text that is not valid Unicode)"
    elif isinstance(error, RecursionError):
        problem = "cannot be parsed (it is nested too deeply)"
    elif isinstance(error, MemoryError):
        problem = "cannot be parsed (it is too large)"
    else:
        problem = f"cannot be parsed ({_printable(str(error)) or type(error).__name__})"
    note = (f"In your notebook, code cell {number} {problem}; it was skipped, so what it "
            "defines is missing.")
    if exc.line and exc.line <= len(original) and original[exc.line - 1].strip():
        note += f"\n    {_printable(original[exc.line - 1].strip())}"
    return note


def _printable(text: str, limit: int = LINE_SHOWN) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text[:limit + 1])
    return text[:limit] + "..." if len(text) > limit else text


class _Builder:
    """The module's text, line by line, with the place of each line."""

    def __init__(self):
        self.futures: list[tuple[list[str], list[tuple[int, int]]]] = []
        self.lines: list[str] = []
        self.places: list[tuple[int, int]] = []

    def add(self, cell: _Cell) -> None:
        if not cell.futures and not cell.kept:
            return
        encoded = [line.encode("utf-8") for line in cell.lines]
        header = True
        for node in cell.futures:
            text, places = self._piece(cell, encoded, node)
            self.futures.append((text, places))
        for node in cell.kept:
            text, places = self._piece(cell, encoded, node)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                # Demo libraries (matplotlib, tqdm, ...) may be missing in the grader:
                # only code that really uses them should fail.
                text = ["try:", "    " + text[0], *text[1:], "except ImportError:", "    pass"]
                places = [places[0], *places, places[-1], places[-1]]
            if self.lines:  # a blank line between statements
                self.lines.append("")
                self.places.append(places[0])
            if header:
                self.lines.append(f"# code cell {cell.number}")
                self.places.append(places[0])
                header = False
            self.lines += text
            self.places += places

    @staticmethod
    def _piece(cell: _Cell, encoded: list[bytes], node: ast.stmt):
        """The node's source lines (decorators included) and their places."""
        first, column = node.lineno - 1, node.col_offset
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            first, column = min(d.lineno for d in decorators) - 1, 0
        text = _segment(encoded, first, column, node.end_lineno - 1,
                        node.end_col_offset).split("\n")
        places = [(cell.number, cell.numbers[min(i, len(cell.numbers) - 1)])
                  for i in range(first, first + len(text))]
        return text, places

    def _head(self) -> tuple[list[str], list[tuple[int, int]]]:
        """The module's first lines: ``from __future__`` imports, then the
        stand-in for ``get_ipython`` when a kept function uses IPython syntax."""
        lines = [line for text, _ in self.futures for line in text]
        places = [place for _, places in self.futures for place in places]
        user = next((i for i, line in enumerate(self.lines) if "get_ipython()" in line), None)
        if user is not None and not any(line.startswith("def get_ipython(")
                                        for line in self.lines):
            stub = _GET_IPYTHON.splitlines()
            lines += ([""] if lines else []) + stub
            places += [self.places[user]] * (len(stub) + (1 if len(places) else 0))
        if lines and self.lines:
            lines.append("")
            places.append(places[-1])
        return lines, places

    def source(self) -> str:
        return "\n".join(self._head()[0] + self.lines) + "\n"

    @property
    def line_map(self) -> list[tuple[int, int]]:
        return self._head()[1] + self.places


# IPython syntax inside a kept function (``%time x = f()``, ``files = !ls``)
# becomes get_ipython() calls; in Jupyter they run, in the grader they do nothing.
_GET_IPYTHON = '''\
# IPython syntax in a function (%magic, !command) does nothing when graded.
class _IPythonStandIn:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def get_ipython():
    return _IPythonStandIn()'''


def _segment(lines: list[bytes], first: int, column: int, last: int, end_column: int) -> str:
    """The source text from (first, column) to (last, end_column), as
    ``ast.get_source_segment`` gives it, in time linear in its length: in Python
    3.11 that function splits the whole source again, character by character,
    for every node, so one crafted cell (a 2 MB line, or thousands of
    statements) took minutes. ``lines`` are the cell's lines (it has no other
    line breaks), UTF-8 encoded, since ``col_offset`` counts bytes."""
    if first == last:
        return lines[first][column:end_column].decode("utf-8")
    parts = [lines[first][column:], *lines[first + 1:last], lines[last][:end_column]]
    return b"\n".join(parts).decode("utf-8")


def _is_constant_assignment(node: ast.stmt) -> bool:
    return (isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
            and all(isinstance(n, (ast.Constant, ast.UnaryOp, ast.Tuple, ast.operator,
                                   ast.unaryop, ast.Load))
                    for n in ast.walk(node.value)))
