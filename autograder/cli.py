"""The ``autograder`` command: one sub-command per verb, each in its own module.

Conventions (cli.md, README "Exit codes"): results (tables, a student's
feedback) go to stdout; every other message goes to stderr. A usage error is one
line on stderr, ``autograder VERB: error: ...``, and exit 2, found before any
grading starts: nothing a command line can get wrong (a missing path, a bad
``--jobs``, an unusable ``--out``) costs a batch or becomes a silent zero.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from rich.console import Console
from rich.table import Table


from . import exit_codes
from .exit_codes import FAILED as EXIT_FAILED, GRADER_FAULT as EXIT_GRADER_FAULT
from .exit_codes import OK as EXIT_OK, RULE_FAILED as EXIT_RULE_FAILED, USAGE as EXIT_USAGE
from .exit_codes import UNREADABLE as EXIT_UNREADABLE


def run() -> None:
    """The console script and ``python -m autograder``: :func:`main`, then leave
    without the interpreter's teardown. Finalising a process that imported torch
    takes 1-2 s here (a garbage collection over torch's heap, library
    finalizers), as long as a student's whole check; by now every report is
    written and closed, and the workers are gone. Ctrl-C is one line and exit
    130, as for any command; the sandbox dies with this process."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("\nautograder: interrupted", file=sys.stderr)
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


class Usage(Exception):
    """A usage error: its text is the one line printed on stderr (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other usage error."""

    def error(self, message: str):  # never returns
        raise Usage(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("autograder")
    except Exception:  # not installed (a vendored copy in student.zip)
        return "unknown"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


_FORMAT = argparse.RawDescriptionHelpFormatter


def _parser() -> _Parser:
    parser = _Parser(
        prog="autograder", formatter_class=_FORMAT,
        description=textwrap.fill("Autograder for the chapter 'From RNNs to attention': "
                                  "students run the public tests with 'check'; instructors "
                                  "and CI grade with 'grade'.", 79),
        epilog="examples:\n"
               "  autograder list\n"
               "  autograder check hw3\n"
               "  autograder grade hw3 subs/* --out grades --jobs 2\n\n"
               "'autograder COMMAND --help' describes each command. Exit codes: README, "
               "\"Exit codes\".")
    parser.add_argument("--version", action="version", version=f"autograder {_version()}",
                        help="print the package version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str, examples: list[str]) -> _Parser:
        return sub.add_parser(name, help=summary, description=textwrap.fill(description, 79),
                              formatter_class=_FORMAT,
                              epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))

    p = command("list", "the assignments with title, points and module file",
                "List the assignments of the course kit.",
                ["autograder list", "autograder list --ids   # one id per line, for scripts"])
    p.add_argument("--ids", action="store_true", help="only the ids, one per line (for scripts)")

    p = command("check", "run the public tests on your file",
                "Run an assignment's public tests on your file, in the sandbox, and print "
                "what to fix. Exit 0 when every public test passed, 1 when one failed, 2 "
                "for a usage error.",
                ["autograder check hw3",
                 "autograder check hw3 path/to/my_attention.py --verbose"])
    p.add_argument("assignment", metavar="ASSIGNMENT",
                   help="the assignment id (see 'autograder list')")
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="your file: a .py, a notebook .ipynb, a .zip or a folder "
                        "(default: ./ASSIGNMENT.py)")
    p.add_argument("--verbose", action="store_true", help="say which sandbox layers are active")

    p = command("grade", "grade submissions with public and hidden tests",
                "Grade each SUBMISSION into OUT/<id>/ (results.json, feedback.md, "
                "feedback.html) and write OUT/grades.csv and OUT/summary.html. A submission "
                "that cannot be read scores 0 with the reason and never stops the batch. "
                "Exit 0 when every submission was graded, whatever the scores; 1 grader "
                "fault; 2 usage error (before any grading); 3 --fail-on; 4 --strict.",
                ["autograder grade hw3 subs/* --out grades --jobs 2",
                 "autograder grade hw3 subs/* --out grades --resume --strict",
                 "autograder grade hw3 repo --out out --junit out/junit.xml "
                 "--fail-on public"])
    p.add_argument("assignment", metavar="ASSIGNMENT",
                   help="the assignment id (see 'autograder list')")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="a folder holding ASSIGNMENT's module file (a student's repository), "
                        "a .py file, a .zip of either or a notebook; its id is the folder or "
                        "file name. For a folder of submissions, pass its contents: subs/*")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="the folder the reports are written to (created if needed)")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="grader processes working in parallel (default: 1)")
    p.add_argument("--resume", action="store_true",
                   help="keep finished results of unchanged submissions")
    p.add_argument("--strict", action="store_true",
                   help="exit 4 when a submission could not be read (it still gets "
                        "results.json with score 0 and the reason)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no report paths on stderr (for wrappers that "
                        "move the reports elsewhere)")
    p.add_argument("--verbose", action="store_true", help="say which sandbox layers are active")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML of the tests")
    p.add_argument("--public-only", action="store_true",
                   help="run the public tests only (e.g. where hidden tests are not available)")
    p.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="local (default): processes on this machine; dask: send chunks of "
                        "submissions to a dask.distributed cluster (needs --scheduler)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --executor dask: the scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--fail-on", choices=["never", "public", "any"], default="never",
                   help="exit 3 after grading when a public test (or any test) failed; "
                        "default never: scores are not errors")

    p = command("build", "write the release zips (student.zip, gradescope.zip)",
                "Write OUT/ASSIGNMENT/student.zip and gradescope.zip (and otter.zip with "
                "--format otter). Two builds from the same commit are byte-identical.",
                ["autograder build --all --out release",
                 "autograder build hw3 --out release --format otter"])
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT",
                   help="the assignments to build (or --all)")
    p.add_argument("--all", action="store_true", help="every assignment")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="the folder the zips are written to")
    p.add_argument("--format", choices=["zips", "otter"], default="zips",
                   help="otter: also write otter.zip, an otter-grader package of the "
                        "notebook and the public tests")

    p = command("validate", "prove that an assignment's tests are sound",
                "Grade the reference (full marks), the untouched template (0), and every "
                "cataloged mistake (loses points, with its hint). Exit 1 when one is not so.",
                ["autograder validate --all", "autograder validate hw3 --jobs 2"])
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT",
                   help="the assignments to validate (or --all)")
    p.add_argument("--all", action="store_true", help="every assignment")
    p.add_argument("--jobs", type=_positive_int, default=2, metavar="N",
                   help="grader processes working in parallel (default: 2)")

    p = command("new", "scaffold a new assignment that validate accepts",
                "Create assignments/ID/, reference/ID.py and a template; the result passes "
                "'autograder validate ID'.",
                ["autograder new positional_encoding --title 'Positional encodings'"])
    p.add_argument("id", metavar="ID",
                   help="the assignment id: lower-case letters, digits, underscores")
    p.add_argument("--title", help="its title (default: from the id)")

    p = command("templates", "regenerate student_templates/ from reference/",
                "Write student_templates/ID.py from reference/ID.py (solution regions "
                "become NotImplementedError). With --check, only report drift (exit 1).",
                ["autograder templates", "autograder templates --check"])
    p.add_argument("--check", action="store_true", help="only report templates that drifted")

    p = command("similarity", "pairs of submissions that share code (copies)",
                "Compare every pair of submissions and write OUT/similarity.csv (a,b,score; "
                "score in [0, 1], highest first) and OUT/similarity.html (ranked pairs, the "
                "top ones side by side with the shared code highlighted). Comments, "
                "docstrings, layout, identifier names and the order of functions are "
                "ignored, and so is the template's code. A submission that cannot be read "
                "is skipped with a note.",
                ["autograder similarity hw3 submissions/* --out similarity"])
    p.add_argument("assignment", metavar="ASSIGNMENT",
                   help="the assignment id (see 'autograder list')")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="as for 'grade': a folder, a .py, a .zip or a notebook")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="the folder similarity.csv and similarity.html are written to")

    p = command("export", "an LMS gradebook import file from a grade output folder",
                "Write the scores of a 'grade' output folder as Canvas's gradebook import "
                "CSV (--format canvas) or a plain CSV (--format csv). The roster maps "
                "submission ids to students: columns submission_id (required), "
                "student_name, canvas_id, sis_user_id, sis_login_id, section. Roster "
                "students without a submission and submissions without a roster entry are "
                "listed on stderr; the file is still written.",
                ["autograder export --results grades --format canvas --roster roster.csv "
                 "--out canvas.csv --canvas-assignment-id 123456",
                 "autograder export --results grades --format csv --roster roster.csv "
                 "--out gradebook.csv"])
    p.add_argument("--results", required=True, type=Path, metavar="DIR",
                   help="the --out folder of 'autograder grade'")
    p.add_argument("--format", required=True, choices=["canvas", "csv"],
                   help="canvas: Canvas's gradebook import CSV; csv: a plain table")
    p.add_argument("--roster", type=Path, metavar="CSV",
                   help="submission ids to students (without it, for Canvas, the submission "
                        "id is written as the SIS Login ID)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="the file to write")
    p.add_argument("--assignment-name", metavar="NAME",
                   help="the Canvas assignment column's name (default: the assignment's title)")
    p.add_argument("--canvas-assignment-id", metavar="ID",
                   help="fill this existing Canvas assignment (the number in its URL); "
                        "without it Canvas creates a new assignment")

    p = command("diff", "what changed between two grading runs",
                "Compare two 'grade' output folders of the same assignment (e.g. before and "
                "after fixing a test): per submission, the score change (largest first) "
                "and the tests it now passes or fails or whose points changed; per test, "
                "how many students now pass or fail it.",
                ["autograder diff grades-before-fix grades --out regrade.csv"])
    p.add_argument("old", metavar="OLD_DIR", type=Path, help="the earlier run's --out folder")
    p.add_argument("new", metavar="NEW_DIR", type=Path, help="the later run's --out folder")
    p.add_argument("--out", type=Path, metavar="FILE.csv",
                   help="also write the per-submission changes as CSV")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    console = Console(highlight=False)
    from .assignment import AssignmentError
    from .sandbox.launcher import SandboxFault
    try:
        args = parser.parse_args(argv)
        return _COMMANDS[args.command](args, console)
    except Usage as exc:
        return _fail(str(exc))
    except SandboxFault as exc:  # e.g. no worker for --jobs N could be started
        _say(f"autograder {_verb(argv)}: grader error: {exc}")
        return EXIT_GRADER_FAULT
    except AssignmentError as exc:
        return _fail(f"autograder {_verb(argv)}: error: {exc}")


def _verb(argv) -> str:
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    return words[0] if words else ""


def _fail(line: str) -> int:
    """A usage error: one line on stderr (never wrapped), exit 2."""
    print(" ".join(line.split()), file=sys.stderr, flush=True)
    return EXIT_USAGE


def _say(text: str) -> None:
    """A message that is not a result: stderr, unwrapped (a log greps one line)."""
    print(text, file=sys.stderr, flush=True)


def _known_assignment(verb: str, assignment_id: str) -> None:
    """Before the sandbox starts: only the names of the assignment folders."""
    from . import assignment as assignments
    known = assignments.available()
    if assignment_id not in known:
        raise Usage(f"autograder {verb}: error: unknown assignment {assignment_id!r} "
                    f"(known: {', '.join(known) or 'none'})")


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
    return EXIT_OK


def _check(args, console: Console) -> int:
    _known_assignment("check", args.assignment)
    if args.path is not None and not os.path.lexists(args.path):
        raise Usage(f"autograder check: error: {args.path} does not exist")
    # The sandbox first: its zygote warms up (~1 s) while the grading engine
    # (pytest, hypothesis) is imported, instead of after, so a student waits less.
    from .sandbox.zygote import shared_launcher
    with shared_launcher(many_workers=False) as launcher:
        if args.path is None:
            from . import assignment as assignments
            module = assignments.load(args.assignment).module
            if not os.path.lexists(module):
                raise Usage(f"autograder check: error: there is no {module} in "
                            f"{os.getcwd()}: name your file, e.g. 'autograder check "
                            f"{args.assignment} path/to/{module}'")
        from .check import check
        return check(args.assignment, args.path, console, verbose=args.verbose,
                     launcher=launcher)


# -- grade -----------------------------------------------------------------

def _grade_arguments(args) -> None:
    """What can be checked before the sandbox starts (nothing is read but names)."""
    _known_assignment("grade", args.assignment)
    if args.executor == "dask" and not args.scheduler:
        raise Usage("autograder grade: error: --executor dask needs --scheduler ADDRESS "
                    "(e.g. tcp://HOST:8786)")
    if args.scheduler and args.executor != "dask":
        raise Usage("autograder grade: error: --scheduler only applies with --executor dask")
    missing = [p for p in args.submissions if not _exists(p)]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3
                                          else "")
        noun = "submission" if len(missing) == 1 else f"{len(missing)} submissions"
        pattern = any(c in p for p in missing for c in "*?[")
        raise Usage(f"autograder grade: error: {noun} not found: {shown}"
                    + (" (a pattern that matched no file?)" if pattern else ""))
    if len(args.submissions) == 1 and _empty_folder(args.submissions[0]):
        # In a batch an empty folder is that student's empty submission (unreadable,
        # score 0, the reason); alone, there is nothing to grade.
        raise Usage(f"autograder grade: error: {args.submissions[0]} is an empty folder: "
                    "nothing to grade")
    if os.path.lexists(args.out) and not os.path.isdir(args.out):
        raise Usage(f"autograder grade: error: --out {args.out} is a file, not a folder")
    if args.junit is not None and os.path.isdir(args.junit):
        raise Usage(f"autograder grade: error: --junit {args.junit} is a folder, not a file")


def _empty_folder(path: str) -> bool:
    """A folder with nothing in it but hidden entries (.git, .DS_Store)."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    try:
        return not [n for n in os.listdir(path) if not n.startswith(".")]
    except OSError:
        return False


def _exists(path: str) -> bool:
    try:
        return os.path.lexists(path)
    except (ValueError, OSError):
        return False


def _grade_contents(args, module: str) -> None:
    """A folder that holds submissions instead of being one (``subs`` for
    ``subs/*``), recognised by names only (no file is read): one with no module
    file of its own and two or more sub-folders that have one. It is refused in a
    batch too: which of them would be graded? (One nested folder is a student's
    layout: graded as unreadable, with the reason.)"""
    notebook = Path(module).stem + ".ipynb"
    for path in args.submissions:
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            names = sorted(os.listdir(path))
        except OSError:
            continue  # the reader says why it cannot be read
        if module in names or notebook in names:
            continue
        inner = [n for n in names if not n.startswith(".")
                 and _holds(os.path.join(path, n), module, notebook)]
        if len(inner) >= 2:
            glob = os.path.join(path, "*")
            raise Usage(f"autograder grade: error: {path} is a folder of {len(inner)} "
                        f"submissions ({', '.join(inner[:3])}{', ...' if len(inner) > 3 else ''}"
                        f"), not one: it has no {module} of its own. To grade each of them, "
                        f"pass them all: autograder grade {args.assignment} {glob} --out "
                        f"{args.out}")


def _holds(folder: str, module: str, notebook: str) -> bool:
    if os.path.islink(folder) or not os.path.isdir(folder):
        return False
    return any(os.path.lexists(os.path.join(folder, name)) for name in (module, notebook))


def _create_outputs(args) -> list[Path]:
    """``--out`` (and ``--junit``'s folder) exist and are writable, or a usage
    error; the folders it created, for :func:`_remove_created` should a later
    check fail (a refused command leaves nothing behind)."""
    wanted = [("--out", args.out, args.out)]
    if args.junit is not None:
        wanted.append(("--junit", args.junit, args.junit.parent))
    created: list[Path] = []
    try:
        for option, given, folder in wanted:
            missing = [f for f in [Path(folder), *Path(folder).parents] if not f.exists()]
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise Usage(f"autograder grade: error: {option} {given} cannot be created: "
                            f"{exc.strerror or type(exc).__name__}") from None
            created += missing
            if not os.access(folder, os.W_OK | os.X_OK):
                raise Usage(f"autograder grade: error: {option} {given} is not writable")
    except Usage:
        _remove_created(created)
        raise
    return created


def _remove_created(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            pass


def _grade(args, console: Console) -> int:
    _grade_arguments(args)
    created = _create_outputs(args)
    launcher = None
    try:
        if args.executor == "local":  # as in _check: warm up while importing, before any secret
            from .sandbox.zygote import shared_launcher
            launcher = shared_launcher()
        from . import assignment as assignments
        try:
            _grade_contents(args, assignments.load(args.assignment).module)
        except (Usage, assignments.AssignmentError):
            _remove_created(created)
            raise
        from .grade import UsageError, grade
        from .report.progress import batch_progress
        executor = None
        if args.executor == "dask":
            from .executors.dask import DaskExecutor
            executor = DaskExecutor(args.scheduler)
        try:
            with batch_progress(len(args.submissions), f"grading {args.assignment}",
                                enabled=not args.quiet) as advance:
                outcome = grade(args.assignment, args.submissions, args.out, jobs=args.jobs,
                                resume=args.resume, include_hidden=not args.public_only,
                                progress=advance, executor=executor, launcher=launcher,
                                junit=args.junit)
        except UsageError as exc:
            raise Usage(f"autograder grade: error: {exc}") from None
    finally:
        if launcher is not None:
            launcher.close()
    _print_batch(outcome.results, args.assignment, console)
    if args.verbose and outcome.results:
        layers = next((r.sandbox_layers for r in outcome.results if r.sandbox_layers), [])
        _say("Sandbox layers active: " + (", ".join(layers) or "none"))
    if outcome.reused:
        _say(f"{outcome.reused} unchanged submission(s) kept from the previous run.")
    if not args.quiet:
        for line in _report_paths(args, outcome.results):
            _say(line)
    for error in outcome.errors:
        _say(f"grader error: {error}")
    if outcome.errors:
        return EXIT_GRADER_FAULT
    unreadable = [r.submission for r in outcome.results if _unreadable(r)]
    if unreadable and args.strict:
        _say(f"--strict: {len(unreadable)} submission(s) could not be read: "
             f"{', '.join(sorted(unreadable))}")
        return EXIT_UNREADABLE
    return EXIT_RULE_FAILED if _rule_failed(outcome.results, args.fail_on) else EXIT_OK


def _report_paths(args, results) -> list[str]:
    """Where the reports are, as written: only files that exist, by absolute path.
    (A wrapper that moves or deletes --out afterwards passes --quiet and says
    where its copies are: ci/grade.sh, the Gradescope kit.)"""
    out = args.out.resolve()
    lines = []
    feedback = [out / r.submission / "feedback.html" for r in results]
    feedback = [p for p in feedback if p.is_file()]
    if len(feedback) == 1:
        lines.append(f"Report: {feedback[0]}")
    elif feedback:
        lines.append(f"Reports: {out}/<submission>/feedback.html ({len(feedback)} submissions)")
    for name, what in (("summary.html", "Class summary"), ("grades.csv", "Gradebook")):
        if (out / name).is_file():
            lines.append(f"{what}: {out / name}")
    if args.junit is not None and args.junit.is_file():
        lines.append(f"JUnit XML: {args.junit.resolve()}")
    return lines


def _unreadable(result) -> bool:
    from .engine.scoring import UNREADABLE
    return getattr(result, "status", "") == UNREADABLE


def _reason(result) -> str:
    """Why a submission could not be read, as its results say."""
    prefix = "Your submission could not be read:"
    for message in result.messages:
        if message.startswith(prefix):
            return message[len(prefix):].strip()
    return result.messages[0] if result.messages else "(no reason recorded)"


def _print_batch(results, assignment_id: str, console: Console) -> None:
    """Per submission, then the batch: count, mean, median, the tests failed most
    often and the submissions whose code ran longest; submissions that could not
    be read in a block of their own."""
    import statistics
    from collections import Counter

    from .report.feedback_html import display_names, points

    graded = sorted((r for r in results if not _unreadable(r)), key=lambda r: r.submission)
    unreadable = sorted((r for r in results if _unreadable(r)), key=lambda r: r.submission)
    names = display_names([t for r in results for t in r.tests])
    if graded:
        table = Table("submission", "score", "failed tests", title=assignment_id)
        for r in graded:
            failed = [names[t.id] for t in r.tests if not t.passed]
            table.add_row(r.submission, f"{points(r.score)} / {points(r.max_score)}",
                          ", ".join(failed[:4]) + (f" (+{len(failed) - 4})" if len(failed) > 4
                                                   else ""))
        console.print(table)
    if unreadable:
        table = Table("submission", "reason", title=f"could not be read ({len(unreadable)}): "
                      "score 0, the reason is in their results.json", title_justify="left")
        for r in unreadable:
            table.add_row(r.submission, _reason(r))
        console.print(table)
    if len(results) < 2:
        return
    scores = [r.score for r in results]
    failures = Counter(t.id for r in graded for t in r.tests if not t.passed)
    slowest = sorted(graded, key=lambda r: -r.execution_time)[:3]
    console.print(f"{len(results)} submissions: mean {statistics.fmean(scores):.1f}, median "
                  f"{points(statistics.median(scores))}"
                  + (f" ({len(unreadable)} could not be read)" if unreadable else ""))
    if failures:
        console.print("Failed most often: " + ", ".join(f"{names[uid]} ({count})" for uid, count
                                                         in failures.most_common(5)))
    if slowest:
        console.print("Longest in student code: " + ", ".join(
            f"{r.submission} ({r.execution_time:.1f} s)" for r in slowest))


def _rule_failed(results, rule: str) -> bool:
    if rule == "never":
        return False
    return any(not t.passed and (rule == "any" or t.visibility == "public")
               for r in results for t in r.tests)


# -- the instructor's other verbs -------------------------------------------------

def _chosen(args) -> list[str]:
    """The assignments a command names, or all with --all; none is a usage error."""
    from . import assignment as assignments
    ids = assignments.available() if args.all else args.assignments
    if not ids:
        raise Usage(f"autograder {args.command}: error: name assignments or use --all")
    return ids


def _build(args, console: Console) -> int:
    from . import assignment as assignments
    from .release import kits
    ids = _chosen(args)
    for assignment_id in ids:
        for path in kits.write(assignments.load(assignment_id), args.out,
                               otter=args.format == "otter"):
            console.print(f"wrote {path}")
    return EXIT_OK


def _validate(args, console: Console) -> int:
    from .validate import validate
    ids = _chosen(args)
    failures = 0
    for assignment_id in ids:
        problems = validate(assignment_id, jobs=args.jobs)
        if problems:
            failures += 1
            console.print(f"[red]{assignment_id}: {len(problems)} problem(s)[/]")
            for problem in problems:
                console.print(f"  - {problem}", markup=False)
        else:
            console.print(f"[green]{assignment_id}: sound[/] (reference full marks, template 0, trivial baselines 0, "
                          "every cataloged mistake loses points with its hint)")
    return EXIT_FAILED if failures else EXIT_OK


def _templates(args, console: Console) -> int:
    from .templates import write_all
    changed = write_all(check=args.check)
    for path in changed:
        console.print(f"{'drifted' if args.check else 'wrote'}: {path}")
    if not changed:
        console.print("All templates match their references.")
    return exit_codes.FAILED if (args.check and changed) else EXIT_OK


def _new(args, console: Console) -> int:
    from .scaffold import create
    for path in create(args.id, args.title):
        console.print(f"wrote {path}")
    console.print(f"Next: edit reference/{args.id}.py, then `autograder templates` and "
                  f"`autograder validate {args.id}` (docs/authoring.md).")
    return EXIT_OK


# -- after grading: similarity, export, diff (issue 17) ---------------------------

def _writable_folder(verb: str, folder: Path) -> None:
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise Usage(f"autograder {verb}: error: --out {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Usage(f"autograder {verb}: error: cannot create --out {folder} "
                    f"({exc.strerror})") from None


def _similarity(args, console: Console) -> int:
    _known_assignment("similarity", args.assignment)
    missing = [p for p in args.submissions if not _exists(p)]
    if missing:
        raise Usage(f"autograder similarity: error: submission not found: "
                    f"{', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
    _writable_folder("similarity", args.out)
    from .report.reader import printable
    from .similarity import compare
    outcome = compare(args.assignment, args.submissions, args.out)
    for sid, why in outcome.skipped:
        _say(f"not compared: {printable(sid)}: {printable(why)}")
    print(f"{outcome.compared} submissions compared; {len(outcome.pairs)} pairs share code "
          "outside the template" + ("; the most similar:" if outcome.pairs else "."))
    for a, b, score in outcome.pairs[:10]:
        print(f"  {score:.3f}  {printable(a)}  {printable(b)}")
    _say(f"Reports: {(args.out / 'similarity.csv').resolve()} and "
         f"{(args.out / 'similarity.html').resolve()}")
    return EXIT_OK


def _export(args, console: Console) -> int:
    from .export import ExportError, export
    try:
        outcome = export(args.results, args.format, args.out, roster=args.roster,
                         assignment_name=args.assignment_name,
                         canvas_assignment_id=args.canvas_assignment_id)
    except ExportError as exc:
        raise Usage(f"autograder export: error: {exc}") from None
    except OSError as exc:
        raise Usage(f"autograder export: error: cannot write --out {args.out} "
                    f"({exc.strerror or exc})") from None
    _say(f"wrote {args.out} ({outcome.rows} students)")
    return EXIT_OK


def _diff(args, console: Console) -> int:
    from .report.files import write_atomic
    from .report.reader import printable
    from .regrade_diff import diff_folders, render_csv, render_text
    for name, folder in (("OLD_DIR", args.old), ("NEW_DIR", args.new)):
        if not os.path.isdir(folder):
            raise Usage(f"autograder diff: error: {name} {folder} is not a folder")
    if args.out is not None and os.path.isdir(args.out):
        raise Usage(f"autograder diff: error: --out {args.out} is a folder; give a file name")
    try:
        diff = diff_folders(args.old, args.new)
    except ValueError as exc:
        raise Usage(f"autograder diff: error: {exc}") from None
    for problem in diff.problems:
        _say(f"autograder diff: warning: {printable(problem, 400)}")
    sys.stdout.write(render_text(diff))
    if args.out is not None:
        try:
            write_atomic(args.out, render_csv(diff))
        except OSError as exc:
            raise Usage(f"autograder diff: error: cannot write --out {args.out} "
                        f"({exc.strerror or exc})") from None
        _say(f"wrote {args.out}")
    return EXIT_OK


_COMMANDS = {"new": _new, "list": _list, "check": _check, "grade": _grade, "build": _build,
             "validate": _validate, "templates": _templates, "similarity": _similarity,
             "export": _export, "diff": _diff}
