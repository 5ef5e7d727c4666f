"""The pytest plugin that turns an assignment's tests into scores.

One pytest session grades a chunk of submissions: tests are collected once,
hypothesis generates each test's examples once (see :mod:`.fanout`), the
reference's memoised answers are shared, and every (test, submission) pair runs
in its own fresh worker. At the end of the session each submission's result is
handed to ``on_result``, which writes it to disk at once.
"""

from __future__ import annotations

import functools
import importlib.util
import marshal
import re
import sys
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings

from ..assignment import Assignment
from ..sandbox.launcher import SandboxFault
from ..sandbox.session import ImportFailed, StudentCodeError
from ..submission import Submission, imported_packages
from ..testing.compare import GradingFailure
from . import forbidden, locations, mistakes, recorded_hints
from .inprocess import InProcessLauncher
from .scoring import SubmissionResult, TestOutcome
from .fanout import FanOut, ReplayExhausted
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


def compile_submission(sub: Submission, filename: str) -> tuple[bytes | None, ImportFailed | None]:
    """The submission's code object, marshalled for its workers (compiling runs
    none of it), or why it cannot be compiled."""
    if sub.source is None:
        return None, ImportFailed(f"Your submission could not be read: {sub.problem}.",
                                  kind="unreadable")
    try:
        return marshal.dumps(compile(sub.source, filename, "exec", dont_inherit=True)), None
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        text = (exc.text or "").rstrip()
        return None, ImportFailed(f"Your file has a syntax error at {where}: {exc.msg}"
                                  + (f"\n    {text}" if text else ""), kind="syntax")
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return None, ImportFailed(f"Your file cannot be compiled: {exc}", kind="syntax")


class GradingPlugin:
    def __init__(self, assignment: Assignment, submissions: list[Submission], launcher,
                 on_result: Callable[[SubmissionResult], None] = lambda r: None,
                 visibilities: tuple[str, ...] = ("public", "hidden")):
        self.assignment, self.launcher, self.on_result = assignment, launcher, on_result
        self.visibilities = visibilities
        self.states: dict[str, SubmissionState] = {}
        self.results: dict[str, SubmissionResult] = {}
        for sub in submissions:
            state = SubmissionState(sub)
            state.code, state.import_error = compile_submission(sub, assignment.module)
            if sub.source is not None and state.import_error is None:
                state.static_forbidden = forbidden.scan(sub.source, assignment.forbidden)
            self.states[sub.id] = state
            self.results[sub.id] = SubmissionResult(sub.id, assignment.id, digest=sub.digest)
        self.cases: dict[str, int] = {}  # a parametrised test shares its points
        self.mistakes = mistakes.load(assignment)
        self.errors: list[str] = []
        self._reference = None

    # -- configuration and collection ----------------------------------
    def pytest_configure(self, config):
        settings.load_profile(hypothesis_profile(self.assignment.max_examples))

    def pytest_collection_modifyitems(self, session, config, items):
        for item in items:
            if "student" not in getattr(item, "fixturenames", ()):
                self.errors.append(f"{item.nodeid} does not use the student fixture")
                continue
            key = self.points_key(item)  # fails loudly if the test has no points
            self.cases[key] = self.cases.get(key, 0) + 1
            # Hypothesis formats failing examples with item.repr_failure; pytest's
            # version parses source for each traceback entry (seconds per failure).
            item.repr_failure = lambda excinfo, style=None: _failure_text(excinfo.value)

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append(f"could not collect {report.nodeid}: {report.longreprtext}")

    def points_key(self, item) -> str:
        tests_dir = self.assignment.folder / "tests"
        relative = Path(item.path).resolve().relative_to(tests_dir.resolve()).as_posix()
        key = f"{relative}::{item.originalname}"
        self.assignment.points_for(key)
        return key

    # -- fixtures ------------------------------------------------------
    @pytest.fixture
    def student(self):
        """A slot: the fan-out fills it with each submission in turn."""
        return _StudentSlot()

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

    @functools.cached_property
    def variants(self) -> dict[str, SubmissionState]:
        """The cataloged mistakes as in-process submissions (trusted code), built
        only when a submission first fails a test."""
        if not self.mistakes:
            return {}
        reference = self.assignment.reference.read_text()
        states = {}
        for mistake in self.mistakes:
            module = mistake.module(reference, self.assignment.module_name)
            state = SubmissionState(Submission(MISTAKE + mistake.id, self.assignment.reference, ""))
            state.launcher = InProcessLauncher(module)
            states[MISTAKE + mistake.id] = state
        return states

    # -- running a test for every submission ---------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        fan = self._run(pyfuncitem, self.states)
        # Only when a submission failed: run the cataloged mistakes through the same
        # test. Derandomised hypothesis gives them the same examples, and their
        # outcome never changes, so it is computed once per test and process.
        cache_key = (str(self.assignment.folder), pyfuncitem.nodeid)
        if fan.failures and self.mistakes and cache_key not in _VARIANT_FAILURES:
            variants = self._run(pyfuncitem, self.variants)
            _VARIANT_FAILURES[cache_key] = {
                sid[len(MISTAKE):]: _comparable(_failure_text(exc))
                for sid, exc in variants.failures.items()}
        self._record(pyfuncitem, fan, _VARIANT_FAILURES.get(cache_key)  # a kit: as recorded
                     or recorded_hints.failures(self.assignment, pyfuncitem))
        return True

    def _run(self, pyfuncitem, states: dict[str, SubmissionState]) -> FanOut:
        test = pyfuncitem.obj
        kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        hypothesis_hook = getattr(test, "hypothesis", None)
        if hypothesis_hook is None:
            return self._fan_out(states, lambda fan: fan.wrap(test)(**kwargs))
        inner = hypothesis_hook.inner_test
        key = (str(self.assignment.folder), self.assignment.max_examples, pyfuncitem.nodeid)
        if key in _EXAMPLES:
            try:
                return self._fan_out(states, lambda fan: fan.replay(inner, _EXAMPLES[key], kwargs))
            except ReplayExhausted:
                pass  # a submission went where no recorded one did: generate afresh
        recorded: list = []

        def generate(fan: FanOut) -> None:
            hypothesis_hook.inner_test = fan.wrap(inner, recorded, frozenset(kwargs))
            try:
                test(**kwargs)
            finally:
                hypothesis_hook.inner_test = inner

        fan = self._fan_out(states, generate)
        _EXAMPLES[key] = recorded  # hypothesis finished: these are all its examples
        return fan

    def _fan_out(self, states: dict[str, SubmissionState], run: Callable[[FanOut], None]) -> FanOut:
        """A fan-out over ``states`` driven by ``run``; its workers stop at the end."""
        fan = FanOut(self.assignment, states, self.launcher)
        try:
            run(fan)
        finally:
            fan.close()
        return fan

    def _explain(self, failure_text: str, variant_failures: dict[str, str]) -> list:
        """The cataloged mistakes that fail this test exactly as the submission did."""
        seen = _comparable(failure_text)
        return [m for m in self.mistakes or recorded_hints.mistakes(self.assignment)
                if variant_failures.get(m.id) == seen]

    def _record(self, item, fan: FanOut, variant_failures: dict[str, str]) -> None:
        key = self.points_key(item)
        doc = " ".join((item.function.__doc__ or "").split())
        for sid, state in self.states.items():
            view = fan.views.get(sid)
            failure = fan.failures.get(sid)
            feedback = _failure_text(failure) if failure is not None else ""
            passed = failure is None
            explained = self._explain(feedback, variant_failures) if failure is not None else []
            if explained:
                hints = "\n".join(f"Likely mistake: {m.hint}" for m in explained)
                feedback = f"{hints}\n\n{feedback}"
            banned = self._forbidden_used(state, view)
            if banned:
                passed = False
                used = ", ".join(name + (f" ({'; '.join(where)})" if where else "")
                                 for name, where in banned.items())
                feedback = (f"This test used {used}, which this assignment does not allow: "
                            "implement it yourself (see the handout)."
                            + (f"\n\n{feedback}" if feedback else ""))
            if view is not None and view.output and not passed:
                printed = "".join(view.output)
                if len(printed) > OUTPUT_SHOWN:
                    printed = printed[:OUTPUT_SHOWN] + "\n[... more output not shown]"
                feedback += f"\n\nYour code printed:\n{printed}"
            self.results[sid].tests.append(TestOutcome(
                key=key, name=item.name, visibility=key.split("/", 1)[0],
                max_score=self.assignment.points_for(key) / self.cases[key], passed=passed,
                feedback=self._for_student(feedback.strip(), state), description=doc,
                mistakes=[m.id for m in explained],
                evidence=getattr(failure, "evidence", None)))

    def _for_student(self, text: str, state: SubmissionState) -> str:
        """A text for the student with places in a notebook's module named by
        code cell and line (see locations.py); a .py file's text is unchanged."""
        return locations.for_student(text, self.assignment.module,
                                     getattr(state.submission, "line_map", ()))

    def _forbidden_used(self, state: SubmissionState, view: Student | None) -> dict[str, list[str]]:
        """The forbidden operations this test's calls ran, each with where they
        ran ("assignment.py, line 42, in f"). Only what ran decides (the
        worker's tripwire); the source is read only to place a finding that
        arrived without its place."""
        if view is None or not view.forbidden:
            return {}

        def natural(text: str) -> list:  # line 9 before line 10
            return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]

        rules = {rule.name: rule for rule in self.assignment.forbidden}
        used: dict[str, list[str]] = {}
        shown = 5  # places named per rule
        for finding in sorted(view.forbidden, key=natural):  # "rule" or "rule (file, line n, in f)"
            for name in sorted(rules, key=len, reverse=True):
                if finding == name:
                    used.setdefault(name, [])
                elif finding.startswith(name + " (") and finding.endswith(")"):
                    used.setdefault(name, []).append(finding[len(name) + 2:-1])
                else:
                    continue
                break
        for name, where in used.items():
            if not where and state.submission.source is not None:
                where += forbidden.places(state.submission.source, rules[name], view.called,
                                          self.assignment.module)
            if len(where) > shown:
                where[shown:] = [f"{len(where) - shown} more places"]
        return dict(sorted(used.items()))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item, call):
        """A cheap report: pytest's default formats full tracebacks with source.
        A test item only fails here when the grader itself failed (a fixture)."""
        if call.excinfo is None:
            outcome, longrepr = "passed", None
        elif call.excinfo.errisinstance(pytest.skip.Exception):
            outcome, longrepr = "skipped", (str(item.path), 0, str(call.excinfo.value))
        else:
            outcome, longrepr = "failed", _failure_text(call.excinfo.value)
            self.errors.append(f"{item.nodeid} ({call.when}): {longrepr}")
        return pytest.TestReport(item.nodeid, item.location, keywords={}, outcome=outcome,
                                 longrepr=longrepr, when=call.when, duration=call.duration,
                                 start=call.start, stop=call.stop)

    def pytest_sessionfinish(self, session, exitstatus):
        # Every test assignment.yaml gives points to, for the visibilities run,
        # must have been collected: a missing one is a grader error, never a
        # smaller denominator.
        configured = {key: points for key, points in self.assignment.points.items()
                      if key.split("/", 1)[0] in self.visibilities}
        missing = sorted(set(configured) - set(self.cases))
        if missing:
            self.errors.append("tests with points in assignment.yaml did not run: "
                               + ", ".join(missing))
        if self.errors or session.shouldstop or session.shouldfail:
            return  # an incomplete grade is never reported as a grade
        for sid, result in self.results.items():
            result.configured_max = float(sum(configured.values()))
            state = self.states[sid]
            result.execution_time = round(state.seconds, 3)  # time its own code ran
            result.sandbox_layers = state.layers
            if state.import_error is not None:
                result.messages.append(str(state.import_error))
            result.note_submission(state.submission)  # renamed id, unreadable status
            result.messages = [self._for_student(m, state) for m in result.messages]
            result.tests.sort(key=lambda t: (t.visibility != "public", t.key, t.name))
            self.on_result(result)


MISTAKE = "mistake:"
# (assignment folder, test node id) -> {mistake id: its failure, comparable}
_VARIANT_FAILURES: dict[tuple[str, str], dict[str, str]] = {}
# (assignment folder, max_examples, test node id) -> the examples hypothesis
# generated for it, replayed by later chunks (see fanout.py)
_EXAMPLES: dict[tuple[str, int, str], list] = {}


def _comparable(text: str) -> str:
    """A failure text with its numbers rounded: a variant run in the grader and
    the same code run in a worker may differ in the last float bits. For an
    exception only its first line counts (a worker adds the student's traceback)."""
    if text.startswith("While "):
        text = text.split("\n", 1)[0]
    return re.sub(r"-?\d+\.\d+(?:e[-+]?\d+)?",
                  lambda m: f"{float(m.group()):.3g}", text)


class _StudentSlot:
    """Stands in for ``student`` until the fan-out fills it (AttributeError, so
    that hypothesis's hasattr() probes of test arguments keep working)."""

    def __getattr__(self, name):
        raise AttributeError("the student fixture is filled in by the grading plugin; run "
                             "assignment tests with autograder, not plain pytest")


def _exception_groups() -> tuple[type, ...]:
    """BaseExceptionGroup (Python 3.11+) or the backport hypothesis uses on 3.10."""
    groups = [getattr(__import__("builtins"), "BaseExceptionGroup", None)]
    try:
        from exceptiongroup import BaseExceptionGroup as Backport
        groups.append(Backport)
    except ImportError:
        pass
    return tuple(g for g in groups if g is not None)


_GROUPS = _exception_groups()


def _failure_text(exc: BaseException) -> str:
    while _GROUPS and isinstance(exc, _GROUPS):  # hypothesis found several distinct failures
        exc = exc.exceptions[0]
    if isinstance(exc, (GradingFailure, StudentCodeError)):
        return str(exc)
    if isinstance(exc, SandboxFault):
        return f"The sandbox failed, not your code: {exc}."
    if isinstance(exc, AssertionError):
        return str(exc) or "A check of this test failed."
    return (f"Your result could not be checked: the grader met {type(exc).__name__}: "
            f"{str(exc)[:500]} while inspecting it (is it the right type and shape?).")


SUPPORT_PACKAGE = "grading"  # assignments/<id>/grading/: the assignment's cases and oracles


def _forget_test_modules(folder: Path) -> None:
    folder = str(folder.resolve())
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(folder) or name.startswith(("tests.public", "tests.hidden")) \
                or name == SUPPORT_PACKAGE or name.startswith(SUPPORT_PACKAGE + "."):
            del sys.modules[name]


def run_pytest(assignment: Assignment, submissions: list[Submission], launcher,
               on_result: Callable[[SubmissionResult], None], include_hidden: bool = True,
               quiet: bool = True) -> GradingPlugin:
    """Grade ``submissions`` with one in-process pytest session."""
    visibilities = ("public", "hidden") if include_hidden else ("public",)
    preload = getattr(launcher, "preload", None)
    if preload is not None:  # demo libraries the chunk imports, once in its zygote
        preload(sorted(imported_packages(submissions)))
    plugin = GradingPlugin(assignment, submissions, launcher, on_result, visibilities)
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
    # The assignment's own package (``from grading.oracles import ...``) is
    # importable for this session only: each assignment has its own.
    sys.path.insert(0, str(assignment.folder))
    try:
        code = pytest.main(args, plugins=[plugin])
    finally:
        # Another assignment (or another copy of this one) may be graded next in
        # this process; its test modules have the same names (test_public, ...).
        sys.path.remove(str(assignment.folder))
        _forget_test_modules(assignment.folder)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        plugin.errors.append(f"pytest stopped with exit code {int(code)}")
    return plugin
