"""Atomic writes: a killed grader never leaves a half-written result file.

And nothing is written outside the output folder: file names under it come
from submission ids, which come from students (sandbox-notes.md, "Paths are
attacker-controlled"). Ids are made safe where they are assigned
(``submission.assign_ids``); ``root`` here is the last line of defence."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutsideRoot(ValueError):
    """A write would land outside the folder it must stay in."""


def is_inside(path, root) -> bool:
    """Whether ``path``, links resolved, is ``root`` or below it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    try:
        return os.path.commonpath([real_root, real]) == real_root
    except ValueError:  # different drives (Windows)
        return False


def child(root, name: str) -> Path:
    """``root / name`` for a ``name`` that must be one plain component inside
    ``root`` (a submission's folder under --out); raises :class:`OutsideRoot`."""
    if (not name or name in (".", "..") or any(c in name for c in "/\\\0")
            or not is_inside(Path(root) / name, root)
            or os.path.realpath(Path(root) / name) == os.path.realpath(root)):
        raise OutsideRoot(f"refusing to write to {name!r}: it is not a folder inside {root}")
    return Path(root) / name


def _check(path: Path, root) -> None:
    if path.name in ("", ".", "..") or not is_inside(path.parent, root):
        raise OutsideRoot(f"refusing to write {path}: it is not inside {root}")


def write_atomic(path: Path, text: str, root=None) -> None:
    """Write ``text`` to ``path`` atomically; with ``root``, refuse (OutsideRoot)
    a path whose parent, links resolved, is not inside ``root``."""
    path = Path(path)
    if root is not None:
        _check(path, root)  # before mkdir: no folder is created outside root either
    path.parent.mkdir(parents=True, exist_ok=True)
    if root is not None:
        _check(path, root)  # again: the folders now exist, links among them resolved
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; a report is for a course web server or a
        # TA's account too: 0644, or what the umask allows (as open() would).
        if hasattr(os, "fchmod"):  # not on Windows, where there are no such bits
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # rename replaces a link at ``path`` itself; it never writes through it.
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it
    (``/proc/self/status``); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
