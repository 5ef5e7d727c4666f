"""The command line as a new user meets it: every mistake on the command line is
one line on stderr and exit 2 before any grading starts; a file that cannot be
read is that student's score 0, listed apart, and never stops the batch; no
traceback ever reaches the user.

Each case runs ``python -m autograder`` in a subprocess, as a user would. Only
one test grades (a reference copy with three unreadable submissions); the
others fail before the sandbox starts or read nothing."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

MHA = "multihead_attention"
KNOWN = "attention_scoring, multihead_attention, recurrent_cells"


def autograder(*args, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_COURSE"}
    env["CI"] = "true"  # no progress bar
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=lambda: os.umask(0o022))


@pytest.fixture
def here(tmp_path) -> Path:
    """A folder with a file, a folder of two submissions and an empty folder."""
    (tmp_path / "notes.txt").write_text("not a folder")
    for student in ("alice", "bob"):
        (tmp_path / "subs" / student).mkdir(parents=True)
        (tmp_path / "subs" / student / f"{MHA}.py").write_text("x = 1\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "one.py").write_text("x = 1\n")
    return tmp_path


def one_usage_line(done: subprocess.CompletedProcess) -> str:
    """The contract of a usage error: exit 2, one line on stderr, nothing on stdout."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == "", done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


USAGE_ERRORS = [
    pytest.param(["grade", MHA, "missing.py", "--out", "o"],
                 "autograder grade: error: submission not found: missing.py", id="missing-path"),
    pytest.param(["grade", MHA, "one.py", "gone1.py", "gone2.py", "--out", "o"],
                 "autograder grade: error: 2 submissions not found: gone1.py, gone2.py",
                 id="missing-paths"),
    pytest.param(["grade", MHA, "subs/*.zip", "--out", "o"],
                 "autograder grade: error: submission not found: subs/*.zip (a pattern that "
                 "matched no file?)", id="unmatched-pattern"),
    pytest.param(["grade", MHA, "one.py", "--out", "o", "--jobs", "0"],
                 "autograder grade: error: argument --jobs: must be 1 or more, not 0 "
                 "(see 'autograder grade --help')", id="jobs-0"),
    pytest.param(["grade", MHA, "one.py", "--out", "o", "--jobs", "-3"],
                 "autograder grade: error: argument --jobs: must be 1 or more, not -3 "
                 "(see 'autograder grade --help')", id="jobs-negative"),
    pytest.param(["grade", MHA, "one.py", "--out", "o", "--jobs", "two"],
                 "autograder grade: error: argument --jobs: must be a whole number, not 'two' "
                 "(see 'autograder grade --help')", id="jobs-word"),
    pytest.param(["grade", MHA, "one.py", "--out", "notes.txt"],
                 "autograder grade: error: --out notes.txt is a file, not a folder",
                 id="out-is-a-file"),
    pytest.param(["grade", MHA, "one.py", "--out", "o", "--junit", "subs"],
                 "autograder grade: error: --junit subs is a folder, not a file",
                 id="junit-is-a-folder"),
    pytest.param(["grade", MHA, "one.py", "--out", "o", "--executor", "dask"],
                 "autograder grade: error: --executor dask needs --scheduler ADDRESS "
                 "(e.g. tcp://HOST:8786)", id="dask-without-scheduler"),
    pytest.param(["grade", MHA, "one.py", "--out", "o", "--scheduler", "tcp://127.0.0.1:8786"],
                 "autograder grade: error: --scheduler only applies with --executor dask",
                 id="scheduler-without-dask"),
    pytest.param(["grade", "attention", "one.py", "--out", "o"],
                 f"autograder grade: error: unknown assignment 'attention' (known: {KNOWN})",
                 id="unknown-assignment"),
    pytest.param(["grade", MHA, "one.py"],
                 "autograder grade: error: the following arguments are required: --out "
                 "(see 'autograder grade --help')", id="no-out"),
    pytest.param(["grade", MHA, "one.py", "--out", "o", "--fail-on", "sometimes"],
                 "autograder grade: error: argument --fail-on: invalid choice: 'sometimes' "
                 "(choose from ...", id="bad-choice"),  # argparse quotes them or not
    pytest.param(["check", MHA, "missing.py"],
                 "autograder check: error: missing.py does not exist", id="check-missing"),
    pytest.param(["check", "attention"],
                 f"autograder check: error: unknown assignment 'attention' (known: {KNOWN})",
                 id="check-unknown-assignment"),
    pytest.param(["build", "--out", "release"],
                 "autograder build: error: name assignments or use --all",
                 id="build-nothing"),
    pytest.param(["frobnicate"], "autograder: error: argument COMMAND: invalid choice: "
                 "'frobnicate' (choose from ...", id="unknown-command"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS)
def test_usage_error_is_one_line_on_stderr_and_exit_2(here, args, message):
    done = autograder(*args, cwd=here, timeout=120)
    line = one_usage_line(done)
    if message.endswith("..."):
        assert line.startswith(message[:-3]) and line.endswith("--help')"), line
    else:
        assert line == message
    assert not (here / "o").exists(), "nothing is written for a usage error"


def test_out_that_cannot_be_created(here):
    blocker = here / "notes.txt" / "deeper"  # a folder cannot be made inside a file
    done = autograder("grade", MHA, "one.py", "--out", blocker, cwd=here, timeout=120)
    assert one_usage_line(done) == (f"autograder grade: error: --out {blocker} cannot be "
                                    "created: Not a directory")
    if Path("/proc").is_dir():
        done = autograder("grade", MHA, "one.py", "--out", "/proc/nope", cwd=here, timeout=120)
        assert one_usage_line(done).startswith("autograder grade: error: --out /proc/nope "
                                               "cannot be created: ")


def test_a_folder_of_submissions_is_refused_with_a_suggestion(here):
    """``subs`` instead of ``subs/*``: refused (it would grade as one student with 0
    points), naming what it holds and the command that grades each of them."""
    done = autograder("grade", MHA, "subs", "--out", "grades", cwd=here)
    assert one_usage_line(done) == (
        f"autograder grade: error: subs is a folder of 2 submissions (alice, bob), not one: "
        f"it has no {MHA}.py of its own. To grade each of them, pass them all: "
        f"autograder grade {MHA} subs/* --out grades")
    assert not (here / "grades").exists()


def test_an_empty_folder_alone_is_refused(here):
    done = autograder("grade", MHA, "empty", "--out", "o", cwd=here)
    assert one_usage_line(done) == "autograder grade: error: empty is an empty folder: " \
                                   "nothing to grade"


def test_check_without_a_file_here(here):
    done = autograder("check", MHA, cwd=here / "empty")
    assert one_usage_line(done) == (
        f"autograder check: error: there is no {MHA}.py in {here / 'empty'}: name your file, "
        f"e.g. 'autograder check {MHA} path/to/{MHA}.py'")


def test_version(here):
    from importlib.metadata import version
    done = autograder("--version", cwd=here, timeout=60)
    assert done.returncode == 0 and done.stdout == f"autograder {version('autograder')}\n"


def test_help_describes_every_command_and_option_with_examples():
    from autograder.cli import _parser

    parser = _parser()
    assert parser.description and "examples:" in parser.epilog
    commands = next(a for a in parser._actions if a.dest == "command")
    assert set(commands.choices) >= {"list", "check", "grade", "build", "validate", "new",
                                     "templates"}
    for name, sub in commands.choices.items():
        assert sub.description, name
        assert sub.epilog.startswith("examples:\n  autograder " + name), name
        for action in sub._actions:
            assert action.help, f"autograder {name}: {action.dest} has no description"
    grade_help = commands.choices["grade"].format_help()
    for word in ("--out DIR", "--jobs N", "--strict", "SUBMISSION", "subs/*"):
        assert word in grade_help


def test_a_batch_with_unreadable_files_completes(tmp_path):
    """A reference copy, a .zip that is not a zip, a notebook whose cells are not
    a list and an empty student folder, in one batch: the batch completes, each
    unreadable one gets results.json with score 0 and the reason, a row with
    status ``unreadable`` and a line in the "could not be read" block; --strict
    exits 4. Reports are readable by the course's web server (0644)."""
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "reference" / f"{MHA}.py", subs / "ref.py")
    (subs / "not_a_zip.zip").write_bytes(b"this is not a zip file")
    (subs / "cells_not_a_list.ipynb").write_text(json.dumps({"cells": 5, "nbformat": 4}))
    (subs / "empty_student").mkdir()
    out = tmp_path / "grades"
    paths = sorted(str(p.relative_to(tmp_path)) for p in subs.iterdir())
    done = autograder("grade", MHA, *paths, "--out", "grades", "--strict", cwd=tmp_path)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == 4, (done.stdout, done.stderr)
    unreadable = {"not_a_zip", "cells_not_a_list", "empty_student"}

    # The final table: the graded one, then the block of those not read.
    graded_part, _, block = done.stdout.partition("could not be read (3)")
    assert "ref" in graded_part and "100 / 100" in graded_part
    assert not any(sid in graded_part for sid in unreadable)
    for sid in unreadable:
        results = json.loads((out / sid / "results.json").read_text())
        assert results["score"] == 0
        reason = results["output"].removeprefix("Your submission could not be read: ")
        assert reason != results["output"]
        assert sid in block and reason.split()[0] in block
    rows = {row["submission"]: row for row in csv.DictReader((out / "grades.csv").open())}
    assert {sid: row["status"] for sid, row in rows.items()} == \
        {"ref": "graded", **{sid: "unreadable" for sid in unreadable}}
    assert rows["ref"]["score"] == "100"

    # Messages on stderr, each report path as written; the table alone on stdout.
    assert done.stderr.splitlines() == [
        f"Reports: {out}/<submission>/feedback.html (4 submissions)",
        f"Class summary: {out / 'summary.html'}",
        f"Gradebook: {out / 'grades.csv'}",
        "--strict: 3 submission(s) could not be read: cells_not_a_list, empty_student, "
        "not_a_zip"]
    assert "Reports" not in done.stdout

    for path in [out / "grades.csv", out / "summary.html", *out.glob("*/*.*")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path

    # Without --strict the same batch exits 0 (resumed: nothing is graded again).
    again = autograder("grade", MHA, *paths, "--out", "grades", "--resume", "--quiet",
                       cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr == "4 unchanged submission(s) kept from the previous run.\n"
    assert "could not be read (3)" in again.stdout


def test_report_files_follow_the_umask(tmp_path):
    from autograder.report.files import write_atomic

    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "out" / "a.txt", "x", root=tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "a.txt").stat().st_mode) == 0o640
    write_atomic(tmp_path / "out" / "b.txt", "x", root=tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out" / "b.txt").stat().st_mode) == 0o666 & ~old
