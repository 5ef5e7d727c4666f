"""Fresh Python interpreters for the sandbox, holding nothing of the grader.

The zygote (and, where there is no zygote, each worker) is a new interpreter,
not a fork of the grader. A fork would copy the grader's whole memory, and
some of it is secret: the grader's environment (a CI token, a cloud
credential) stays readable in a process's stack even after ``os.environ`` is
emptied, and whatever the grader had read before the fork (the reference,
expected answers, another submission) stays on its heap. A new interpreter
starts from the executable with only the variables below and only the
descriptors it is handed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .isolation import KEPT_ENVIRONMENT

# What a sandbox interpreter gets of the grader's environment: locale, time
# zone, search paths, and the sandbox's own two switches (named: another
# AUTOGRADER_ variable could hold anything). Windows needs SYSTEMROOT for
# sockets and random numbers. Whatever is kept is readable by student code
# (a process's starting environment stays in its memory).
# A worker keeps less of it still (isolation.KEPT_ENVIRONMENT, a subset).
KEPT = KEPT_ENVIRONMENT + ("LD_LIBRARY_PATH", "TEMP", "TMP", "TMPDIR",
                           "AUTOGRADER_DISABLE_LAYERS", "AUTOGRADER_WORKER_UID_BASE")

# The package's own folder's parent: the interpreter imports this very copy of
# ``autograder`` (installed, editable, or a checkout on PYTHONPATH).
_HOME = str(Path(__file__).resolve().parents[2])


def environment() -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if k in KEPT or k.startswith("LC_")}
    # One string hash for every worker of every run: code that iterates over a
    # set of names prints and computes the same each time it is graded.
    kept["PYTHONHASHSEED"] = "0"
    return kept


def command(entry: str, *args: str) -> list[str]:
    """Run ``entry`` (``"module:function"``, called with ``args``) in an
    interpreter without user site-packages (``-s``) and without the current
    folder on ``sys.path`` (``-P``: it may be a course folder); with
    :func:`environment`, no PYTHON* variable but the hash seed reaches it."""
    module, function = entry.split(":")
    # The grader's own search path, so that the interpreter imports what the
    # grader imports (torch from a user install, PYTHONPATH, a virtualenv),
    # but never the current folder: it may be a course folder. The package's
    # folder is on it only while ``autograder`` is imported (its submodules are
    # found through the package from then on): a checkout's root also holds
    # the course.
    here = os.path.realpath(os.getcwd())
    path = [p for p in sys.path if p and os.path.realpath(p) != here]
    boot = (f"import sys\n"
            f"sys.path[:] = {path!r}\n"
            f"home = {_HOME!r}\n"
            f"added = home not in sys.path\n"
            f"if added:\n    sys.path.insert(0, home)\n"
            f"import autograder\n"
            f"if added:\n    sys.path.remove(home)\n"
            f"import {module} as m\n"
            f"m.{function}(sys.argv[1:])\n")
    return [sys.executable, "-s", "-P", "-c", boot, *args]
