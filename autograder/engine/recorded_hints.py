"""Misconception hints in a student kit, where there is no reference to patch.

In the course, a submission that fails a test is compared with every cataloged
mistake run through the same test (see :mod:`.mistakes` and the plugin). A
student kit ships neither the reference nor the patches, so the kit builder
records, for each public test, the failure (its comparable text) of each
cataloged mistake that fails it, with the mistake's hint, in
``tests/public/mistakes.json``: hint texts and failure texts only. Checking
locally, a public test that fails exactly as a recorded mistake did gets the
same "Likely mistake: ..." as in the grader.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ..assignment import Assignment
from .mistakes import Mistake

MISTAKES = "mistakes.json"  # beside the public tests, in a student kit
FORMAT = 1


def record(assignment: Assignment) -> str:
    """The kit's ``mistakes.json``: the public tests run (in this process) on a
    submission that fails every one of them, which makes the grading plugin run
    every cataloged mistake through each test, as it does when grading."""
    from ..submission import Submission
    from . import mistakes, plugin
    from .inprocess import InProcessLauncher

    catalog = mistakes.load(assignment)
    folder = str(assignment.folder)
    for key in [k for k in plugin._VARIANT_FAILURES if k[0] == folder]:
        del plugin._VARIANT_FAILURES[key]  # computed afresh, on the files as they are now
    failures: dict[str, dict[str, str]] = {}
    if catalog:
        # No function at all: every test fails at its first call into the submission.
        nothing = Submission("kit-builder", assignment.template, "")
        done = plugin.run_pytest(assignment, [nothing], InProcessLauncher({}), lambda r: None,
                                 include_hidden=False)
        if done.errors:
            raise RuntimeError(f"{assignment.id}: recording the mistakes' failures of the "
                               "public tests failed: " + "; ".join(done.errors))
        failures = {nodeid: dict(sorted(found.items()))
                    for (where, nodeid), found in plugin._VARIANT_FAILURES.items()
                    if where == folder and found}
    data = {"format": FORMAT,
            "mistakes": [{"id": m.id, "hint": m.hint} for m in catalog],
            "failures": dict(sorted(failures.items()))}
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: int) -> tuple[list[Mistake], dict[str, dict[str, str]]]:
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        return [], {}
    return ([Mistake(id=m["id"], hint=m["hint"], patches=()) for m in data["mistakes"]],
            data["failures"])


def _recorded(assignment: Assignment):
    """The kit's recorded hints; nothing where the reference is there (the course
    runs the mistakes themselves)."""
    path = assignment.public_tests / MISTAKES
    if assignment.reference.is_file() or not path.is_file():
        return [], {}
    return _load(str(path), path.stat().st_mtime_ns)


def mistakes(assignment: Assignment) -> list[Mistake]:
    """The cataloged mistakes (id and hint) of a student kit."""
    return _recorded(assignment)[0]


def failures(assignment: Assignment, item) -> dict[str, str]:
    """For the test ``item`` (a pytest item), mistake id -> its failure, as
    ``plugin._comparable`` gives it."""
    return _recorded(assignment)[1].get(item.nodeid, {})
