"""Finding a submission's source code, in every form ``cli.md`` allows.

A SUBMISSION is a directory holding ``<module>.py`` (a student's repository,
Gradescope's ``/autograder/submission``), a single ``.py`` file, a ``.zip`` of
either, or a Jupyter notebook whose code cells form the module (read as Jupyter
reads them, see :mod:`autograder.ipynb`). Only the source text is read here, in
the grader, and never executed: the text is handed to a sandboxed worker.

Everything a student submits is hostile input (sandbox-notes.md, "Paths are
attacker-controlled"): a file may be a symbolic link to the reference solution,
a classmate's file or ``/proc/self/mem``; a FIFO that blocks whoever opens it; a
zip with links, ``..`` paths, encryption, corruption or a bomb; a notebook
nested 100 000 levels deep; a name like ``..`` or ``grades.csv``. So:

- nothing is opened through a symbolic link: each name is opened relative to an
  open directory (``dir_fd``) with ``O_NOFOLLOW``, and what was opened is
  checked with ``fstat`` to be the entry that was looked at, so there is no
  window between a check and its use;
- only regular files are read, and only up to a size budget known before reading;
- zips are read in memory with bounded reads; nothing is extracted to disk;
- whatever goes wrong makes *that* submission unreadable, with a reason the
  student can act on; :func:`load` never raises for hostile content;
- ids become safe folder names under ``--out`` (:func:`assign_ids`), and the
  student is told when theirs was changed.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import os
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import ipynb

MAX_SOURCE_BYTES = 2 * 1024 * 1024        # the module's text, whatever form it came in
MAX_NOTEBOOK_BYTES = 16 * 1024 * 1024     # a notebook: outputs and images included
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024      # a .zip file as submitted
MAX_ARCHIVE_ENTRIES = 10_000
MAX_ARCHIVE_UNCOMPRESSED = 256 * 1024 * 1024  # sum of a zip's declared entry sizes
MAX_FOLDER_ENTRIES = 10_000               # names looked at in a submitted folder
MAX_ID_BYTES = 150                        # a folder name under --out (NAME_MAX is 255 bytes)

# Files ``grade`` (and the commands that read its output) keep at the top of
# --out: a submission with one of these ids would overwrite them, or be
# overwritten. Compared case-insensitively (macOS and Windows file systems).
REPORT_NAMES = frozenset({
    "grades.csv", "summary.html", "junit.xml", "similarity.csv", "similarity.html",
    "results.json", "grading.json", "feedback.md", "feedback.html",
})

SOURCE_SUFFIXES = (".py", ".ipynb", ".zip")


@dataclass(frozen=True)
class Submission:
    id: str
    path: Path
    source: str | None         # None when it could not be read
    problem: str | None = None  # why it could not be read, for the student
    notes: tuple[str, ...] = ()  # what the grader changed (its id, notebook cells skipped)
    # From a notebook: line_map[i] is (code cell, line in that cell) of the
    # module's line i + 1, for feedback (engine/locations.py); () for a .py file.
    line_map: tuple[tuple[int, int], ...] = ()

    @property
    def digest(self) -> str:
        return hashlib.sha256((self.source or self.problem or "").encode()).hexdigest()


class SubmissionProblem(Exception):
    pass


def submission_id(path: Path) -> str:
    """The directory name, or the file name without its extension (cli.md); not
    yet safe as a folder name: see :func:`assign_ids`."""
    name = os.path.basename(os.path.abspath(path))
    try:
        # lstat: a symbolic link to a directory is not a directory of the submission.
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
    except (OSError, ValueError):
        is_dir = False
    return name if is_dir else Path(name).stem if name else name


def load(path: str | Path, module: str) -> Submission:
    """Read the submission at ``path`` for an assignment whose module file is
    ``module``. Never raises for anything the submission contains: a submission
    that cannot be read comes back with ``source=None`` and the reason."""
    try:
        path = Path(path)
        sid = submission_id(path)
    except Exception:  # e.g. a NUL byte in the name
        path, sid = Path(str(path).replace("\0", "_")), str(path)
    try:
        source, line_map, notes = _read(path, module), (), ()
        if isinstance(source, ipynb.NotebookModule):
            source, line_map, notes = source.source, source.line_map, source.notes
        try:
            size = len(source.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates, e.g. "\ud800" in notebook JSON
            raise SubmissionProblem(f"{module} contains text that is not valid Unicode") from None
        if size > MAX_SOURCE_BYTES:
            raise SubmissionProblem(f"{module} is larger than {_size(MAX_SOURCE_BYTES)}")
    except SubmissionProblem as exc:
        return Submission(sid, path, None, str(exc))
    except RecursionError:
        return Submission(sid, path, None, "it is nested too deeply to be read")
    except MemoryError:
        return Submission(sid, path, None, "it is too large to be read")
    except Exception as exc:  # whatever else: this submission's problem, never the batch's
        return Submission(sid, path, None,
                          f"it could not be read ({type(exc).__name__}: {_shown(str(exc))})")
    return Submission(sid, path, source, notes=notes, line_map=line_map)


def load_batch(paths, module: str, reserved=REPORT_NAMES) -> list[Submission]:
    """Every submission of a ``grade`` batch, read, with unique safe ids."""
    return assign_ids([load(p, module) for p in paths], reserved)


# -- ids ------------------------------------------------------------------

def assign_ids(subs: list[Submission], reserved=REPORT_NAMES) -> list[Submission]:
    """``subs`` with ids that are safe folder names under --out, unique, and not
    the name of a report file; a changed id is explained in the submission's
    ``notes`` (they reach the student's results). Deterministic: the same paths in
    the same order get the same ids, so ``--resume`` finds its records again.

    A name is changed when it could escape --out or hide (``..``, ``.x``,
    ``a/b``, control characters), would overwrite a report (``grades.csv``) or is
    already taken in this batch (the second ``alice`` becomes ``alice-2``)."""
    cleaned = [_clean_id(sub.id) for sub in subs]
    taken = {_key(name) for name in reserved}
    # Names kept as they are: the first submission with each clean name. Names
    # given with a suffix must avoid all of them, even those that come later.
    owner: dict[str, int] = {}
    for index, (name, _) in enumerate(cleaned):
        if _key(name) not in taken:
            owner.setdefault(_key(name), index)
    used = set(owner) | taken
    result = []
    for index, (sub, (name, why)) in enumerate(zip(subs, cleaned)):
        notes = list(sub.notes)
        if owner.get(_key(name)) != index:
            number = 2
            while _key(f"{name}-{number}") in used:
                number += 1
            new = f"{name}-{number}"
            used.add(_key(new))
            if _key(name) in taken:
                why = why or (f"the name {name!r} is used by the grader for its own "
                              "report files")
            else:
                why = why or f"another submission in this batch is also named {name!r}"
            name = new
        if why:
            notes.append(f"Your submission is filed as {name!r}: {why}.")
        result.append(dataclasses.replace(sub, id=name, notes=tuple(notes)))
    return result


def _clean_id(raw: str) -> tuple[str, str]:
    """A name that is one plain path component, and why ``raw`` was changed
    ("" when it was not)."""
    name = "".join("_" if c in "/\\" or _unprintable(c) else c for c in raw)
    why = ""
    if name != raw:
        why = f"its name {raw!r} contains characters that cannot be used in a folder name"
    if name.strip() != name and not why:
        why = f"its name {raw!r} has spaces around it"
    name = name.strip()
    if name.startswith(".") and not why:  # ".", "..": out itself or its parent; ".x": hidden
        why = f"its name {raw!r} starts with a dot"
    name = name.lstrip(".").strip()
    if len(name.encode("utf-8")) > MAX_ID_BYTES:
        while len(name.encode("utf-8")) > MAX_ID_BYTES:
            name = name[:-1]
        why = why or f"its name {raw!r} is too long"
    if not name:
        name = "submission"
        why = why or "it has no name"
    return name, why


def _key(name: str) -> str:
    """Names that one file system may treat as the same folder compare equal."""
    return unicodedata.normalize("NFC", name).casefold()


def _unprintable(c: str) -> bool:
    # Control, format (bidi overrides), surrogate, private-use and unassigned
    # characters, and line/paragraph separators: none belongs in a name a
    # person reads in a report or a terminal.
    return unicodedata.category(c)[0] == "C" or c in "\u2028\u2029"


def _shown(text: str, limit: int = 200) -> str:
    """Untrusted text (a file name, an exception) safe to show in a message:
    unprintable characters escaped, at most ``limit`` characters of it."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 0x100 and _unprintable(c)
                   else f"\\u{ord(c):04x}" if _unprintable(c) else c for c in text)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit} bytes"


# -- opening files without following links --------------------------------

# Where the platform has them (Linux, macOS), every name is opened relative to
# an open directory and never through a link; elsewhere (Windows, where the
# student's local `check` may run) a path-based fallback checks with lstat.
_AT = (hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
       and os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_COMMON = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
# O_NONBLOCK: should a FIFO replace the file between lstat and open, opening it
# returns at once instead of blocking the grader (and fstat then refuses it).
_FILE_FLAGS = _COMMON | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_DIR_FLAGS = _COMMON | _NOFOLLOW | getattr(os, "O_DIRECTORY", 0)


class _Folder:
    """An open directory: names in it are looked at and opened relative to it."""

    def __init__(self, fd: int | None, path: str):
        self.fd, self.path = fd, path  # fd None: the path-based fallback

    @classmethod
    def trusted(cls, path: str) -> "_Folder":
        """The folder a submission sits in: named by the instructor, so links
        on the way to it (macOS's /tmp) are followed."""
        if not _AT:
            if not os.path.isdir(path):
                raise FileNotFoundError(path)
            return cls(None, path)
        return cls(os.open(path, _COMMON | os.O_DIRECTORY), path)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def lstat(self, name: str) -> os.stat_result:
        if self.fd is not None:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        return os.lstat(os.path.join(self.path, name))

    def names(self) -> list[tuple[str, bool]]:
        """(name, is a regular file) of at most MAX_FOLDER_ENTRIES entries; a
        link is never a regular file here."""
        found = []
        with os.scandir(self.fd if self.fd is not None else self.path) as entries:
            for entry in entries:
                if len(found) >= MAX_FOLDER_ENTRIES:
                    break
                try:
                    regular = entry.is_file(follow_symlinks=False)
                except OSError:
                    regular = False
                found.append((entry.name, regular))
        return found

    def open(self, name: str, shown: str) -> tuple[int | None, os.stat_result]:
        """Open the entry ``name`` (a directory or a regular file), never through
        a link; returns the descriptor and its fstat."""
        try:
            seen = self.lstat(name)
        except FileNotFoundError:
            raise SubmissionProblem(f"{shown} does not exist") from None
        if stat.S_ISLNK(seen.st_mode):
            raise SubmissionProblem(f"{shown} is a symbolic link; submit the file itself")
        if stat.S_ISDIR(seen.st_mode):
            if self.fd is None:  # fallback: a directory is used by its path
                return None, seen
            flags = _DIR_FLAGS
        elif stat.S_ISREG(seen.st_mode):
            flags = _FILE_FLAGS
        else:  # FIFO, device, socket: never opened (a FIFO blocks its reader)
            raise SubmissionProblem(f"{shown} is not a regular file")
        try:
            if self.fd is not None:
                fd = os.open(name, flags, dir_fd=self.fd)
            else:
                fd = os.open(os.path.join(self.path, name), flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):  # it became a link meanwhile
                raise SubmissionProblem(f"{shown} is a symbolic link; submit the file itself") \
                    from None
            raise SubmissionProblem(f"{shown} could not be opened ({exc.strerror})") from None
        try:
            opened = os.fstat(fd)
            # The same inode as the one looked at: nothing was swapped in between.
            if ((opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino)
                    or stat.S_IFMT(opened.st_mode) != stat.S_IFMT(seen.st_mode)):
                raise SubmissionProblem(f"{shown} changed while it was being read")
            self._check_inside(fd, name, shown)
        except BaseException:
            os.close(fd)
            raise
        return fd, opened

    def _check_inside(self, fd: int, name: str, shown: str) -> None:
        """Where the kernel says the descriptor points (Linux: /proc/self/fd)
        must be this folder's entry ``name``: defence in depth behind O_NOFOLLOW."""
        if self.fd is None:
            return
        here, there = _fd_path(self.fd), _fd_path(fd)
        if here is None or there is None:
            return  # no /proc (macOS): O_NOFOLLOW and the inode check stand alone
        if there != os.path.join(here, name):
            raise SubmissionProblem(f"{shown} is not inside the submission")


def _fd_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _read_fd(fd: int, st: os.stat_result, limit: int, shown: str) -> bytes:
    """At most ``limit`` bytes of a regular file, the size checked before reading
    and the read bounded (a file may grow, or report size 0 like /proc files)."""
    if not stat.S_ISREG(st.st_mode):
        raise SubmissionProblem(f"{shown} is not a regular file")
    if st.st_size > limit:
        raise SubmissionProblem(f"{shown} is larger than {_size(limit)}")
    chunks, total = [], 0
    while True:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise SubmissionProblem(f"{shown} is larger than {_size(limit)}")
    return b"".join(chunks)


# -- reading each form ------------------------------------------------------

def _read(path: Path, module: str) -> str | ipynb.NotebookModule:
    absolute = os.path.abspath(path)  # "." and "x/" have a name; links are not resolved
    parent, name = os.path.split(absolute)
    if not name:
        raise SubmissionProblem(f"{_shown(str(path))} is not a submission")
    try:
        folder = _Folder.trusted(parent)
    except (FileNotFoundError, NotADirectoryError):
        raise SubmissionProblem(f"{_shown(str(path))} does not exist") from None
    with folder:
        try:
            folder.lstat(name)
        except FileNotFoundError:
            raise SubmissionProblem(f"{_shown(str(path))} does not exist") from None
        return _read_entry(folder, name, module, _shown(name), folder_allowed=True)


def _read_entry(folder: _Folder, name: str, module: str, shown: str,
                folder_allowed: bool = False) -> str | ipynb.NotebookModule:
    fd, st = folder.open(name, shown)
    if stat.S_ISDIR(st.st_mode) and not folder_allowed:
        # Only the submission itself may be a folder: a folder named
        # assignment.py is not followed (nor, nested, 10 000 deep).
        if fd is not None:
            os.close(fd)
        raise SubmissionProblem(f"{shown} is a folder, not a file")
    if stat.S_ISDIR(st.st_mode):
        with _Folder(fd, os.path.join(folder.path, name)) as inner:
            return _read_folder(inner, module)
    try:
        suffix = os.path.splitext(name)[1].lower()
        if suffix == ".zip":
            return _from_zip(_read_fd(fd, st, MAX_ARCHIVE_BYTES, shown), module)
        if suffix == ".ipynb":
            return _notebook(_decode(_read_fd(fd, st, MAX_NOTEBOOK_BYTES, shown), shown))
        return _decode(_read_fd(fd, st, MAX_SOURCE_BYTES, shown), shown)
    finally:
        os.close(fd)


def _read_folder(folder: _Folder, module: str) -> str | ipynb.NotebookModule:
    for candidate in (module, Path(module).stem + ".ipynb"):
        try:
            folder.lstat(candidate)
        except FileNotFoundError:
            continue
        # There, whatever it is: a link or a FIFO under this name is refused
        # with its reason rather than skipped in favour of another file.
        return _read_entry(folder, candidate, module, candidate)
    # A Gradescope upload under another name: take it when it is the only one.
    # Links and anything not a regular file are ignored.
    entries = folder.names()
    sources = [name for name, regular in entries
               if regular and os.path.splitext(name)[1].lower() in SOURCE_SUFFIXES]
    if len(sources) == 1:
        return _read_entry(folder, sources[0], module, _shown(sources[0]))
    found = sorted(_shown(name) for name, _ in entries)[:10]
    raise SubmissionProblem(f"no {module} in the submitted folder (it holds: "
                            f"{', '.join(found) or 'nothing'})")


def _decode(data: bytes, shown: str = "the file") -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SubmissionProblem(f"{shown} is not UTF-8 text") from None


_DRIVE = re.compile(r"^[A-Za-z]:")


def _from_zip(data: bytes, module: str) -> str | ipynb.NotebookModule:
    """The module (or notebook) inside a zip, read in memory. Entries that could
    do harm if someone extracted the archive (links, absolute or ``..`` paths)
    make the whole zip unreadable, as do encryption and declared sizes over the
    budget: the student re-zips plainly."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception:  # BadZipFile, and struct/Unicode/Value errors of odd headers
        raise SubmissionProblem("the .zip file is damaged or not a zip") from None
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise SubmissionProblem(f"the zip holds more than {MAX_ARCHIVE_ENTRIES} files")
    declared = 0
    for info in infos:
        shown = _shown(info.filename)
        parts = info.filename.replace("\\", "/").split("/")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise SubmissionProblem(f"{shown} in the zip is a symbolic link; zip the files "
                                    "themselves")
        if info.filename.startswith(("/", "\\")) or _DRIVE.match(info.filename):
            raise SubmissionProblem(f"{shown} in the zip has an absolute path")
        if ".." in parts:
            raise SubmissionProblem(f"{shown} in the zip has a '..' in its path")
        if info.flag_bits & 0x1:
            raise SubmissionProblem(f"{shown} in the zip is encrypted; zip it without a password")
        declared += info.file_size
    if declared > MAX_ARCHIVE_UNCOMPRESSED:
        raise SubmissionProblem(f"the zip's files add up to more than "
                                f"{_size(MAX_ARCHIVE_UNCOMPRESSED)} uncompressed")
    files = [info for info in infos
             if not info.is_dir() and not info.filename.startswith("__MACOSX/")]
    notebook = Path(module).stem + ".ipynb"
    for wanted, limit in ((module, MAX_SOURCE_BYTES), (notebook, MAX_NOTEBOOK_BYTES)):
        matches = sorted((i for i in files if i.filename.rsplit("/", 1)[-1] == wanted),
                         key=lambda i: (i.filename.count("/"), i.filename))
        if not matches:
            continue
        info = matches[0]
        shown = _shown(info.filename)
        if info.file_size > limit:
            raise SubmissionProblem(f"{shown} in the zip is larger than {_size(limit)}")
        try:
            # A bounded read: a header that lies about the size cannot make the
            # grader inflate more than ``limit`` bytes (zipfile stops at the
            # declared size and the CRC check then fails).
            with archive.open(info) as member:
                raw = member.read(limit + 1)
        except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError, NotImplementedError...
            raise SubmissionProblem(f"{shown} in the zip is damaged ({type(exc).__name__}: "
                                    f"{_shown(str(exc), 100)})") from None
        if len(raw) > limit:
            raise SubmissionProblem(f"{shown} in the zip is larger than {_size(limit)}")
        text = _decode(raw, shown)
        return _notebook(text) if wanted == notebook else text
    raise SubmissionProblem(f"no {module} inside the zip")


def _notebook(text: str) -> ipynb.NotebookModule:
    """A notebook's code cells as a module (see :mod:`autograder.ipynb`): cells
    that cannot be parsed are skipped and noted, never the notebook's problem."""
    try:
        return ipynb.convert(text)
    except ipynb.NotebookProblem as exc:
        raise SubmissionProblem(str(exc)) from None


def notebook_to_module(text: str) -> str:
    """The module formed by a notebook's code cells: its imports (each allowed to
    fail), functions and classes, and assignments of plain constants (``EPS = 1e-9``).
    Strict, for notebooks the course ships (kits, templates): raises
    :class:`SubmissionProblem` for anything that is not a notebook and for a
    notebook with a cell the grader had to leave out (a syntax error, a cell
    magic it does not run). Submissions are read leniently by :func:`load`."""
    converted = _notebook(text)
    if converted.notes:
        raise SubmissionProblem(converted.notes[0])
    return converted.source


def imported_packages(subs) -> set[str]:
    """The top-level packages the readable submissions import (``matplotlib``
    for ``import matplotlib.pyplot as plt``): the grader asks its sandbox to
    preload the demo libraries among them (sandbox/zygote.py, DEMO_MODULES)."""
    import ast
    found: set[str] = set()
    for sub in subs:
        if sub.source is None:
            continue
        try:
            tree = ast.parse(sub.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found
