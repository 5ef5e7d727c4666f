"""The pytest plugin that turns an assignment's tests into scores.

One pytest session grades a whole batch: every test that uses the ``student``
fixture is parametrised over the submissions, so tests are collected once and
the reference's memoised answers are shared. Items are ordered submission by
submission; when the last test of a submission finishes, its result is handed
to ``on_result`` (to be written to disk at once, which is what makes a batch
resumable).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings

from ..assignment import Assignment
from ..sandbox.session import ImportFailed, StudentCodeError
from ..submission import Submission
from ..testing.compare import GradingFailure
from . import forbidden
from .scoring import SubmissionResult, TestOutcome
from .student import Student, SubmissionState

OUTPUT_SHOWN = 2000  # characters of a test's student output shown in its feedback


def hypothesis_profile(max_examples: int) -> str:
    """Deterministic, bounded hypothesis settings: the same submission always
    meets the same inputs, and shrinking (which would multiply the calls into a
    wrong submission) is off: the first failing case is reported with its seed."""
    name = f"autograder-{max_examples}"
    settings.register_profile(
        name, max_examples=max_examples, derandomize=True, database=None, deadline=None,
        phases=[Phase.explicit, Phase.generate], print_blob=False, verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck))
    return name


def check_syntax(sub: Submission, filename: str) -> ImportFailed | None:
    if sub.source is None:
        return ImportFailed(f"Your submission could not be read: {sub.problem}.", kind="unreadable")
    try:
        compile(sub.source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        text = (exc.text or "").rstrip()
        return ImportFailed(f"Your file has a syntax error at {where}: {exc.msg}"
                            + (f"\n    {text}" if text else ""), kind="syntax")
    except ValueError as exc:  # e.g. null bytes
        return ImportFailed(f"Your file cannot be compiled: {exc}", kind="syntax")
    return None


class GradingPlugin:
    def __init__(self, assignment: Assignment, submissions: list[Submission], launcher,
                 on_result: Callable[[SubmissionResult], None] = lambda r: None):
        self.assignment, self.launcher, self.on_result = assignment, launcher, on_result
        self.order = {s.id: i for i, s in enumerate(submissions)}
        self.states = {}
        self.results = {}
        for sub in submissions:
            state = SubmissionState(sub)
            state.import_error = check_syntax(sub, assignment.module)
            if sub.source is not None and state.import_error is None:
                state.static_forbidden = forbidden.scan(sub.source, assignment.forbidden)
            self.states[sub.id] = state
            self.results[sub.id] = SubmissionResult(sub.id, assignment.id, digest=sub.digest)
        self.pending: dict[str, int] = {}
        self.item_owner: dict[str, str] = {}  # nodeid -> submission id
        self.cases: dict[tuple[str, str], int] = {}  # a parametrised test shares its points
        self.started: dict[str, float] = {}
        self.errors: list[str] = []
        self._reference = None

    # -- configuration and collection ----------------------------------
    def pytest_configure(self, config):
        settings.load_profile(hypothesis_profile(self.assignment.max_examples))

    def pytest_generate_tests(self, metafunc):
        if "submission" in metafunc.fixturenames:
            ids = list(self.order)
            metafunc.parametrize("submission", ids, ids=ids)

    def pytest_collection_modifyitems(self, session, config, items):
        for item in items:
            if not hasattr(item, "callspec") or "submission" not in item.callspec.params:
                self.errors.append(f"{item.nodeid} does not use the student fixture")
                continue
            self.points_key(item)  # fails loudly if the test has no points
        items.sort(key=lambda item: self.order.get(self._sid(item), -1))
        for item in items:
            sid = self._sid(item)
            self.pending[sid] = self.pending.get(sid, 0) + 1
            self.item_owner[item.nodeid] = sid
            # Hypothesis formats every failing example with item.repr_failure; pytest's
            # version parses source for each traceback entry (seconds per failure).
            item.repr_failure = lambda excinfo, style=None: _failure_text(excinfo.value)
            share = (sid, self.points_key(item))
            self.cases[share] = self.cases.get(share, 0) + 1

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append(f"could not collect {report.nodeid}: {report.longreprtext}")

    def points_key(self, item) -> str:
        tests_dir = self.assignment.folder / "tests"
        relative = Path(item.path).resolve().relative_to(tests_dir.resolve()).as_posix()
        key = f"{relative}::{item.originalname}"
        self.assignment.points_for(key)
        return key

    @staticmethod
    def _sid(item) -> str:
        return item.callspec.params.get("submission") if hasattr(item, "callspec") else ""

    # -- fixtures ------------------------------------------------------
    @pytest.fixture
    def student(self, submission):
        view = Student(self.assignment, self.states[submission], self.launcher)
        yield view
        view.close()

    @pytest.fixture(scope="session")
    def reference(self):
        """The reference solution, imported in the grader (trusted code only)."""
        if self._reference is None:
            path = self.assignment.reference
            spec = importlib.util.spec_from_file_location(
                f"_autograder_reference_{self.assignment.module_name}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._reference = module
        return self._reference

    # -- outcomes ------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item, call):
        """Our own report, with the feedback as its text. pytest's default report
        formats full tracebacks with source, which costs seconds per failure on
        hypothesis tests; the student never sees it anyway."""
        if call.excinfo is None:
            outcome, longrepr = "passed", None
        elif call.excinfo.errisinstance(pytest.skip.Exception):
            outcome, longrepr = "skipped", (str(item.path), 0, str(call.excinfo.value))
        else:
            outcome, longrepr = "failed", _failure_text(call.excinfo.value)
        report = pytest.TestReport(item.nodeid, item.location, keywords={}, outcome=outcome,
                                   longrepr=longrepr, when=call.when, duration=call.duration,
                                   start=call.start, stop=call.stop)
        sid = self._sid(item)
        if sid in self.results:
            self.started.setdefault(sid, time.monotonic())
            if call.when == "call" or (call.when == "setup" and report.failed):
                self._record(item, report, call)
        return report

    def _record(self, item, report, call) -> None:
        sid = self._sid(item)
        key = self.points_key(item)
        visibility = key.split("/", 1)[0]
        view: Student | None = item.funcargs.get("student")
        feedback = _failure_text(call.excinfo.value) if report.failed and call.excinfo else ""
        passed = not report.failed
        banned = self._forbidden_used(sid, view)
        if banned:
            passed = False
            feedback = (f"This test used {', '.join(sorted(banned))}, which this assignment "
                        "does not allow: implement it yourself (see the handout)."
                        + (f"\n\n{feedback}" if feedback else ""))
        if view is not None and view.output and not passed:
            printed = "".join(view.output)
            if len(printed) > OUTPUT_SHOWN:
                printed = printed[:OUTPUT_SHOWN] + "\n[... more output not shown]"
            feedback += f"\n\nYour code printed:\n{printed}"
        doc = (item.function.__doc__ or "").strip()
        self.results[sid].tests.append(TestOutcome(
            key=key, name=item.name.split("[")[0] + _case_label(item), visibility=visibility,
            max_score=self.assignment.points_for(key) / self.cases[(sid, key)], passed=passed,
            feedback=feedback.strip(), description=" ".join(doc.split())))

    def _forbidden_used(self, sid: str, view: Student | None) -> set[str]:
        if view is None:
            return set()
        static = self.states[sid].static_forbidden
        used = set(view.forbidden) | static.get(forbidden.MODULE_LEVEL, set())
        for name in view.called:
            used |= static.get(name, set())
        return used

    def pytest_runtest_logfinish(self, nodeid, location):
        sid = self.item_owner.get(nodeid)
        if sid is None:
            return
        self.pending[sid] -= 1
        if self.pending[sid] == 0:
            self._finish(sid)

    def _finish(self, sid: str) -> None:
        result, state = self.results[sid], self.states[sid]
        result.execution_time = round(time.monotonic() - self.started.get(sid, time.monotonic()), 3)
        result.sandbox_layers = state.layers
        if state.import_error is not None:
            result.messages.append(str(state.import_error))
        result.tests.sort(key=lambda t: (t.visibility != "public", t.key))
        self.on_result(result)

    def pytest_sessionfinish(self, session, exitstatus):
        for sid, left in self.pending.items():
            if left:  # interrupted: nothing is reported for a half-graded submission
                self.errors.append(f"{sid}: grading stopped with {left} tests left")


def _case_label(item) -> str:
    """The parameters of a parametrised test other than the submission, e.g. "[6-4]"."""
    params = [str(v) for k, v in item.callspec.params.items() if k != "submission"]
    return f"[{'-'.join(params)}]" if params else ""


def _failure_text(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup):  # hypothesis found several distinct failures
        exc = exc.exceptions[0]
    if isinstance(exc, (GradingFailure, StudentCodeError)):
        return str(exc)
    if isinstance(exc, AssertionError):
        return str(exc) or "A check of this test failed."
    return (f"Your result could not be checked: the grader met {type(exc).__name__}: "
            f"{str(exc)[:500]} while inspecting it (is it the right type and shape?).")


def _forget_test_modules(folder: Path) -> None:
    folder = str(folder.resolve())
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(folder) or name.startswith(("tests.public", "tests.hidden")):
            del sys.modules[name]


def run_pytest(assignment: Assignment, submissions: list[Submission], launcher,
               on_result: Callable[[SubmissionResult], None], include_hidden: bool = True,
               quiet: bool = True) -> GradingPlugin:
    """Grade ``submissions`` with one in-process pytest session."""
    plugin = GradingPlugin(assignment, submissions, launcher, on_result)
    folders = [assignment.public_tests] + ([assignment.hidden_tests] if include_hidden else [])
    args = [str(f) for f in folders if f.is_dir()] + [
        "-c", str(Path(__file__).with_name("pytest.ini")), "--rootdir", str(assignment.folder),
        "-p", "no:cacheprovider", "--import-mode=importlib", "-p", "no:randomly",
        # Its end-of-session gc.collect() passes over torch's heap cost ~2 s a batch.
        "-p", "no:unraisableexception",
    ]
    # Feedback is the plugin's job; pytest's own terminal report is for debugging.
    args += ["-p", "no:terminal"] if quiet else ["-v", "--no-header"]
    _forget_test_modules(assignment.folder)
    try:
        code = pytest.main(args, plugins=[plugin])
    finally:
        # Another assignment (or another copy of this one) may be graded next in
        # this process; its test modules have the same names (test_public, ...).
        _forget_test_modules(assignment.folder)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        plugin.errors.append(f"pytest stopped with exit code {int(code)}")
    return plugin
