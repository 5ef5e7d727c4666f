"""The ``autograder`` command: one sub-command per verb, each in its own module."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table


# Exit codes of every command (README, "Exit codes"); CI scripts rely on them.
EXIT_OK = 0            # done (grade: every submission graded, whatever the scores)
EXIT_FAILED = 1        # check: a public test failed; grade: a grader fault
EXIT_GRADER_FAULT = 1
EXIT_USAGE = 2         # bad arguments, unknown assignment, unreadable configuration
EXIT_RULE_FAILED = 3   # grade --fail-on: graded, and the chosen rule says the job fails


def run() -> None:
    """The console script and ``python -m autograder``: :func:`main`, then leave
    without the interpreter's teardown. Finalising a process that imported torch
    takes 1-2 s here (a garbage collection over torch's heap, library
    finalizers), as long as a student's whole check; by now every report is
    written and closed, and the workers are gone."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autograder", description=
                                     "Autograder for the chapter 'From RNNs to attention'.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="the assignments with title, points and module file")
    p.add_argument("--ids", action="store_true", help="only the ids, one per line (for scripts)")

    p = sub.add_parser("check", help="run the public tests on your file")
    p.add_argument("assignment")
    p.add_argument("path", nargs="?", help="default: ./ASSIGNMENT.py")
    p.add_argument("--verbose", action="store_true", help="say which sandbox layers are active")

    p = sub.add_parser("grade", help="grade submissions with public and hidden tests")
    p.add_argument("assignment")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--resume", action="store_true",
                   help="keep finished results of unchanged submissions")
    p.add_argument("--verbose", action="store_true", help="say which sandbox layers are active")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML of the tests")
    p.add_argument("--public-only", action="store_true",
                   help="run the public tests only (e.g. where hidden tests are not available)")
    p.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="dask: send chunks of submissions to a dask.distributed cluster")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --executor dask: the scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--fail-on", choices=["never", "public", "any"], default="never",
                   help="exit 3 after grading when a public test (or any test) failed; "
                        "default never: scores are not errors")

    p = sub.add_parser("build", help="write the release zips (student.zip, gradescope.zip)")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    p.add_argument("--all", action="store_true", help="every assignment")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--format", choices=["zips", "otter"], default="zips",
                   help="otter: also write otter.zip, an otter-grader package of the "
                        "notebook and the public tests")

    p = sub.add_parser("validate", help="prove that an assignment's tests are sound")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    p.add_argument("--all", action="store_true", help="every assignment")
    p.add_argument("--jobs", type=int, default=2)

    p = sub.add_parser("templates", help="regenerate student_templates/ from reference/")
    p.add_argument("--check", action="store_true", help="only report templates that drifted")

    args = parser.parse_args(argv)
    console = Console(highlight=False)
    from .assignment import AssignmentError
    try:
        return _COMMANDS[args.command](args, console)
    except AssignmentError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE


def _list(args, console: Console) -> int:
    from . import assignment as assignments
    if args.ids:
        print("\n".join(assignments.available()))
        return EXIT_OK
    table = Table("id", "title", "points", "module")
    for assignment_id in assignments.available():
        a = assignments.load(assignment_id)
        table.add_row(a.id, f"{a.title} (section {a.section})", f"{a.max_score:g}", a.module)
    console.print(table)
    return 0


def _check(args, console: Console) -> int:
    # The sandbox first: its zygote warms up (~1 s) while the grading engine
    # (pytest, hypothesis) is imported, instead of after, so a student waits less.
    from .sandbox.zygote import shared_launcher
    with shared_launcher(many_workers=False) as launcher:
        from .check import check
        return check(args.assignment, args.path, console, verbose=args.verbose,
                     launcher=launcher)


def _grade(args, console: Console) -> int:
    launcher = None
    if args.executor == "local":  # as in _check: warm up while importing, before any secret
        from .sandbox.zygote import shared_launcher
        launcher = shared_launcher()
    from .grade import UsageError, grade
    from .report.progress import batch_progress
    executor = None
    if args.executor == "dask":
        from .executors.dask import DaskExecutor
        executor = DaskExecutor(args.scheduler)
    try:
        with batch_progress(len(args.submissions), f"grading {args.assignment}") as advance:
            outcome = grade(args.assignment, args.submissions, args.out, jobs=args.jobs,
                            resume=args.resume, include_hidden=not args.public_only,
                            progress=advance, executor=executor, launcher=launcher)
    except UsageError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    finally:
        if launcher is not None:
            launcher.close()
    _print_batch(outcome.results, args.assignment, console)
    if args.verbose and outcome.results:
        layers = next((r.sandbox_layers for r in outcome.results if r.sandbox_layers), [])
        console.print("Sandbox layers active: " + (", ".join(layers) or "none"))
    if outcome.reused:
        console.print(f"{outcome.reused} unchanged submission(s) kept from the previous run.")
    console.print(f"Reports: {args.out.resolve()}/<submission>/feedback.html; class summary: "
                  f"{(args.out / 'summary.html').resolve()}; gradebook: "
                  f"{(args.out / 'grades.csv').resolve()}")
    if args.junit:
        from .report import junit
        from .report.files import write_atomic
        write_atomic(args.junit, junit.render(outcome.results, args.assignment))
    for error in outcome.errors:
        console.print(f"[red]grader error:[/] {error}")
    if outcome.errors:
        return EXIT_GRADER_FAULT
    return EXIT_RULE_FAILED if _rule_failed(outcome.results, args.fail_on) else EXIT_OK


def _print_batch(results, assignment_id: str, console: Console) -> None:
    """Per submission, then the batch: count, mean, median, the tests failed most
    often and the submissions whose code ran longest."""
    import statistics
    from collections import Counter

    table = Table("submission", "score", "failed tests", title=assignment_id)
    for r in sorted(results, key=lambda r: r.submission):
        failed = [t.name for t in r.tests if not t.passed]
        table.add_row(r.submission, f"{r.score:g} / {r.max_score:g}",
                      ", ".join(failed[:4]) + (f" (+{len(failed) - 4})" if len(failed) > 4 else ""))
    console.print(table)
    if len(results) < 2:
        return
    scores = [r.score for r in results]
    failures = Counter(t.name for r in results for t in r.tests if not t.passed)
    slowest = sorted(results, key=lambda r: -r.execution_time)[:3]
    console.print(f"{len(results)} submissions: mean {statistics.fmean(scores):.1f}, median "
                  f"{statistics.median(scores):g}")
    if failures:
        console.print("Failed most often: " + ", ".join(f"{name} ({count})" for name, count
                                                         in failures.most_common(5)))
    console.print("Longest in student code: " + ", ".join(
        f"{r.submission} ({r.execution_time:.1f} s)" for r in slowest))


def _rule_failed(results, rule: str) -> bool:
    if rule == "never":
        return False
    return any(not t.passed and (rule == "any" or t.visibility == "public")
               for r in results for t in r.tests)


def _chosen(args, console: Console) -> list[str]:
    """The assignments a command names, or all with --all; none is a usage error."""
    from . import assignment as assignments
    ids = assignments.available() if args.all else args.assignments
    if not ids:
        console.print("[red]error:[/] name assignments or use --all")
    return ids


def _build(args, console: Console) -> int:
    from . import assignment as assignments
    from .release import kits
    ids = _chosen(args, console)
    if not ids:
        return EXIT_USAGE
    for assignment_id in ids:
        for path in kits.write(assignments.load(assignment_id), args.out,
                               otter=args.format == "otter"):
            console.print(f"wrote {path}")
    return EXIT_OK


def _validate(args, console: Console) -> int:
    from .validate import validate
    ids = _chosen(args, console)
    if not ids:
        return EXIT_USAGE
    failures = 0
    for assignment_id in ids:
        problems = validate(assignment_id, jobs=args.jobs)
        if problems:
            failures += 1
            console.print(f"[red]{assignment_id}: {len(problems)} problem(s)[/]")
            for problem in problems:
                console.print(f"  - {problem}", markup=False)
        else:
            console.print(f"[green]{assignment_id}: sound[/] (reference full marks, template 0, "
                          "every cataloged mistake loses points with its hint)")
    return EXIT_FAILED if failures else EXIT_OK


def _templates(args, console: Console) -> int:
    from .templates import write_all
    changed = write_all(check=args.check)
    for path in changed:
        console.print(f"{'drifted' if args.check else 'wrote'}: {path}")
    if not changed:
        console.print("All templates match their references.")
    return 1 if (args.check and changed) else 0


_COMMANDS = {"list": _list, "check": _check, "grade": _grade, "build": _build,
             "validate": _validate, "templates": _templates}
