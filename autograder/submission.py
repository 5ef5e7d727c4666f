"""Finding a submission's source code, in every form ``cli.md`` allows.

A SUBMISSION is a directory holding ``<module>.py`` (a student's repository,
Gradescope's ``/autograder/submission``), a single ``.py`` file, a ``.zip`` of
either, or a Jupyter notebook whose code cells form the module. Only the source
text is read here, in the grader, and never executed: the text is handed to a
sandboxed worker.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_SOURCE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Submission:
    id: str
    path: Path
    source: str | None         # None when it could not be read
    problem: str | None = None  # why it could not be read, for the student

    @property
    def digest(self) -> str:
        return hashlib.sha256((self.source or self.problem or "").encode()).hexdigest()


def submission_id(path: Path) -> str:
    path = Path(path)
    return path.name if path.is_dir() else path.stem


def load(path: str | Path, module: str) -> Submission:
    """Read the submission at ``path`` for an assignment whose module file is ``module``."""
    path = Path(path)
    sid = submission_id(path)
    try:
        source = _read(path, module)
    except SubmissionProblem as exc:
        return Submission(sid, path, None, str(exc))
    if len(source.encode()) > MAX_SOURCE_BYTES:
        return Submission(sid, path, None, f"{module} is larger than {MAX_SOURCE_BYTES} bytes")
    return Submission(sid, path, source)


class SubmissionProblem(Exception):
    pass


def _read(path: Path, module: str) -> str:
    if path.is_dir():
        for candidate in (path / module, path / (Path(module).stem + ".ipynb")):
            if candidate.is_file():
                return _read(candidate, module)
        # A Gradescope upload under another name: take it when it is the only one.
        sources = [p for p in path.iterdir() if p.is_file() and p.suffix in (".py", ".ipynb", ".zip")]
        if len(sources) == 1:
            return _read(sources[0], module)
        found = sorted(p.name for p in path.iterdir())[:10]
        raise SubmissionProblem(f"no {module} in the submitted folder (it holds: "
                                f"{', '.join(found) or 'nothing'})")
    if not path.is_file():
        raise SubmissionProblem(f"{path} does not exist")
    data = path.read_bytes()
    if path.suffix == ".zip":
        return _from_zip(data, module)
    if path.suffix == ".ipynb":
        return notebook_to_module(_decode(data))
    return _decode(data)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SubmissionProblem("the file is not UTF-8 text") from None


def _from_zip(data: bytes, module: str) -> str:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise SubmissionProblem("the .zip file is damaged or not a zip") from None
    names = [n for n in archive.namelist() if not n.startswith("__MACOSX/")]
    notebook = Path(module).stem + ".ipynb"
    for wanted in (module, notebook):
        matches = sorted((n for n in names if Path(n).name == wanted), key=lambda n: n.count("/"))
        if matches:
            info = archive.getinfo(matches[0])
            if info.file_size > MAX_SOURCE_BYTES:
                raise SubmissionProblem(f"{wanted} in the zip is too large")
            text = _decode(archive.read(info))
            return notebook_to_module(text) if wanted == notebook else text
    raise SubmissionProblem(f"no {module} inside the zip")


# Top-level statements kept from a notebook: definitions and imports. Demo cells
# (plots, prints, experiments, training loops) are dropped, so a notebook that
# works for the student in Jupyter never fails to import here because of them.
_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def notebook_to_module(text: str) -> str:
    """The module formed by a notebook's code cells: its imports (each allowed to
    fail), functions and classes, and assignments of plain constants (``EPS = 1e-9``)."""
    try:
        cells = json.loads(text)["cells"]
    except (ValueError, KeyError, TypeError):
        raise SubmissionProblem("the notebook is not valid .ipynb JSON") from None
    kept = []
    for number, cell in enumerate(cells, 1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        # IPython magics and shell escapes are not Python.
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        source = "\n".join(lines)
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise SubmissionProblem(f"code cell {number} of the notebook has a syntax error: "
                                    f"{exc.msg} (line {exc.lineno})") from None
        for node in tree.body:
            segment = ast.get_source_segment(source, node)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                # Demo libraries (matplotlib, tqdm, ...) may be missing in the grader:
                # only code that really uses them should fail.
                segment = f"try:\n    {segment}\nexcept ImportError:\n    pass"
            if isinstance(node, _KEPT) or _is_constant_assignment(node):
                kept.append(f"# notebook cell {number}\n{segment}")
    return "\n\n".join(kept) + "\n"


def _is_constant_assignment(node: ast.stmt) -> bool:
    return (isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
            and all(isinstance(n, (ast.Constant, ast.UnaryOp, ast.Tuple, ast.operator,
                                   ast.unaryop, ast.Load))
                    for n in ast.walk(node.value)))
