"""``autograder check``: a student runs the public tests on their own file.

The same engine as ``grade`` (sandboxed worker, same messages), public tests
only, printed to the terminal. On a laptop without root the sandbox has fewer
layers, so a local result is advisory: the official grade comes from the
course's grader.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from . import assignment as assignments
from . import exit_codes
from . import submission as submissions
from .engine.plugin import run_pytest
from .engine.scoring import SubmissionResult
from .sandbox.zygote import shared_launcher


def check(assignment_id: str, path: str | None, console: Console, verbose: bool = False,
          launcher=None) -> int:
    """``launcher``: one the caller started early (see ``cli._check``), else one
    is started (and stopped) here."""
    # Public tests only: a handful of workers, no huge pages.
    launcher = launcher or shared_launcher(many_workers=False)
    assignment = assignments.load(assignment_id)
    target = Path(path) if path else Path.cwd() / assignment.module
    sub = submissions.load(target, assignment.module)
    results: list[SubmissionResult] = []
    plugin = run_pytest(assignment, [sub], launcher, results.append, include_hidden=False)
    if plugin.errors or not results:
        for error in plugin.errors:
            print(f"autograder check: grader error: {error}", file=sys.stderr)
        return exit_codes.CHECK_COULD_NOT_RUN
    result = results[0]
    show(result, assignment, console)
    if verbose:
        console.print("Sandbox layers active: " + (", ".join(result.sandbox_layers) or
                                                   "none (no student code ran)"))
    return exit_codes.OK if all(t.passed for t in result.tests) else exit_codes.FAILED


def show(result: SubmissionResult, assignment, console: Console) -> None:
    console.print(f"[bold]{assignment.title}[/] — public tests on {result.submission}")
    for message in result.messages:
        console.print(Panel(Text(message), title="your file", border_style="red"))
    for test in result.tests:
        mark = "[green]PASS[/]" if test.passed else "[red]FAIL[/]"
        console.print(f"{mark} {test.name}  ({test.score:g}/{test.max_score:g})")
        if test.passed:
            continue
        if test.feedback and test.feedback.strip() in (m.strip() for m in result.messages):
            # A file that cannot be read or imported fails every test alike:
            # its message is shown once, above.
            console.print("     not run: your file could not be used (see above)")
        else:  # Text, not markup: feedback contains [indices]
            console.print(Panel(Text(test.feedback or "failed"), border_style="red"))
    passed = sum(t.passed for t in result.tests)
    console.print(f"\n{passed} of {len(result.tests)} public tests passed. Hidden tests decide "
                  "the grade: they check many more cases.")
