"""Gradients into and out of nested arguments and results (the engine, not an
assignment): wrt paths into tuples, grad_outputs nested like the result,
outputs outside autograd's graph reported by their place, and a worker's
malformed report refused. Each runs in-process and in a real sandboxed worker."""

from collections import namedtuple

import pytest
import torch

from autograder import assignment as assignments
from autograder.engine.inprocess import InProcessLauncher
from autograder.engine.student import Student, SubmissionState
from autograder.sandbox.session import CallRecord
from autograder.sandbox.zygote import shared_launcher
from autograder.submission import Submission
from autograder.testing import GradingFailure
from autograder.testing.gradients import (DetachedOutputs, Gradients, NoGradients,
                                          assert_gradients, call_with_grad, expected_gradients,
                                          require_gradients)
from conftest import ROOT

ASSIGNMENT = assignments.load("toy_softmax", root=ROOT / "tests" / "toy_course")

SOURCE = '''
import torch

def cell(x, state, W):
    """An LSTM-shaped toy: a state (h, c) in, (h', (h', c')) out."""
    h, c = state
    c_new = torch.tanh(x @ W + h) * c
    h_new = torch.sigmoid(c_new)
    return h_new, (h_new, c_new)

def cell_detached_c(x, state, W):
    h_new, (h, c) = cell(x, state, W)
    return h_new, (h, c.detach())

def cell_all_detached(x, state, W):
    h_new, (h, c) = cell(x, state, W)
    return h_new.detach(), (h.detach(), c.detach())

def cell_list(x, state, W):
    h_new, (h, c) = cell(x, state, W)
    return [h_new, [h, c]]

def flat(x, state, W):
    return cell(x, state, W)[0]

def forge(x, state, W):
    """Student code rewriting the worker's answer about gradients."""
    import autograder.sandbox.worker as worker
    worker.Worker._backward = lambda self, *args: {"detached": [[7, 7]]}
    return cell(x, state, W)

def cell_named(x, state, W):
    State = __import__("collections").namedtuple("State", "h c")
    h_new, (h, c) = cell(x, state, W)
    return h_new, State(h, c)
'''


def oracle(x, state, W):
    h, c = state
    c_new = torch.tanh(x @ W + h) * c
    h_new = torch.sigmoid(c_new)
    return h_new, (h_new, c_new)


def inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, h, c = (torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    W = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    grads = tuple(torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    return (x, (h, c), W), (grads[0], (grads[1], grads[2]))


WRT = [0, (1, 0), (1, 1), 2]
NAMES = ("h'", ("final h", "final c"))


def in_process():
    namespace = {}
    exec(compile(SOURCE, "toy_softmax.py", "exec"), namespace)
    return InProcessLauncher(namespace)


@pytest.fixture(params=["in-process", "sandboxed"])
def student(request):
    launcher = in_process() if request.param == "in-process" else shared_launcher()
    state = SubmissionState(Submission("s", ROOT / "toy_softmax.py", SOURCE))
    view = Student(ASSIGNMENT, state, launcher)
    yield view
    view.close()


def test_wrt_paths_into_tuples_and_nested_grad_outputs(student):
    args, grad_outputs = inputs()
    state_before = args[1]
    result, got = call_with_grad(student.cell, args, grad_outputs=grad_outputs, wrt=WRT)
    expected = expected_gradients(oracle, args, grad_outputs=grad_outputs, wrt=WRT)
    assert isinstance(got, Gradients) and len(got.inputs) == 4
    for a, e in zip(got.inputs, expected):
        assert torch.allclose(a, e)
    assert all(g.abs().sum() > 0 for g in expected)  # every leaf, c included, is reached
    assert torch.allclose(result[1][1], oracle(*args)[1][1])
    assert args[1] is state_before and type(args[1]) is tuple  # the caller's tuple untouched


def test_a_partial_gradient_skips_outputs_given_none(student):
    args, (g, (g_h, _)) = inputs()
    grad_outputs = (None, (g_h, None))
    _, got = call_with_grad(student.cell, args, grad_outputs=grad_outputs, wrt=WRT)
    expected = expected_gradients(oracle, args, grad_outputs=grad_outputs, wrt=WRT)
    assert_gradients(got, expected, inputs=["x", "h", "c", "W"], outputs=NAMES)


def test_a_list_mirrors_a_tuple_and_a_namedtuple_is_a_tuple(student):
    args, grad_outputs = inputs()
    expected = expected_gradients(oracle, args, grad_outputs=grad_outputs, wrt=WRT)
    for name in ("cell_list", "cell_named"):
        _, got = call_with_grad(getattr(student, name), args, grad_outputs=grad_outputs, wrt=WRT)
        assert_gradients(got, expected, inputs=["x", "h", "c", "W"], outputs=NAMES)


def test_a_detached_nested_output_is_reported_by_its_place(student):
    args, grad_outputs = inputs()
    with pytest.raises(DetachedOutputs) as raised:
        student.cell_detached_c.with_grad(args, grad_outputs=grad_outputs, wrt=WRT)
    assert raised.value.paths == ((1, 1),)
    assert "cell_detached_c returned result[1][1] without gradients" in str(raised.value)
    # The values still come back, to be checked first.
    result, got = call_with_grad(student.cell_detached_c, args, grad_outputs=grad_outputs,
                                 wrt=WRT)
    assert isinstance(got, NoGradients) and got.detached == ((1, 1),)
    assert torch.allclose(result[1][1], oracle(*args)[1][1])
    with pytest.raises(GradingFailure) as failure:
        require_gradients(got, outputs=NAMES, detached_hint="keep c in the graph")
    assert str(failure.value) == (
        "cell_detached_c returned final c without gradients: autograd finds no path from "
        "final c back to the inputs, so nothing can be learnt through it.\n"
        "Hint: keep c in the graph")


def test_every_detached_output_is_named(student):
    args, grad_outputs = inputs()
    _, got = call_with_grad(student.cell_all_detached, args, grad_outputs=grad_outputs, wrt=WRT)
    assert got.detached == ((0,), (1, 0), (1, 1))
    with pytest.raises(GradingFailure, match="returned h', final h and final c without "
                                             "gradients: autograd finds no path from any of "
                                             "them back"):
        require_gradients(got, outputs=NAMES)


def test_a_result_that_does_not_fit_the_gradients_fails_after_the_values(student):
    """flat returns one tensor where gradients are given for two outputs: the
    values come back from a plain call, the mismatch is told afterwards."""
    args, grad_outputs = inputs()
    result, got = call_with_grad(student.flat, args, grad_outputs=grad_outputs, wrt=WRT)
    assert torch.allclose(result, oracle(*args)[0]) and isinstance(got, NoGradients)
    with pytest.raises(GradingFailure, match="back-propagating through the result of flat "
                                             "failed: ValueError: result has 1 values"):
        require_gradients(got, outputs=NAMES)


def test_expected_gradients_keep_the_callers_containers():
    State = namedtuple("State", "h c")
    (x, (h, c), W), grad_outputs = inputs()
    state = State(h, c)
    seen = []

    def spy(x, state, W):
        seen.append(type(state))
        return oracle(x, state, W)

    expected_gradients(spy, (x, state, W), grad_outputs=grad_outputs, wrt=WRT)
    assert seen == [State] and not state.h.requires_grad and state.h is h


# -- a hostile worker's report --------------------------------------------------

def test_a_report_forged_by_student_code_is_refused():
    """In a real worker, student code can replace the worker's backward pass:
    what it sends is checked against the gradients the grader gave."""
    state = SubmissionState(Submission("s", ROOT / "toy_softmax.py", SOURCE))
    view = Student(ASSIGNMENT, state, shared_launcher())
    try:
        args, grad_outputs = inputs()
        with pytest.raises(GradingFailure, match="answer about gradients is malformed"):
            view.forge.with_grad(args, grad_outputs=grad_outputs, wrt=WRT)
    finally:
        view.close()


class _Scripted:
    """A session whose every answer is the one given: a worker under the
    control of student code can send anything."""
    layers: list = []

    def __init__(self, grads):
        self.grads, self.record = grads, CallRecord()

    def request(self, op, timeout=None, doing="", **args):
        return {"result": torch.zeros(1), "args_after": (args["call_args"], args["call_kwargs"]),
                "grads": self.grads}

    def close(self, want_status=True):
        return None


class _ScriptedLauncher:
    def __init__(self, grads):
        self.grads = grads

    def open_session(self, request, call_timeout, import_timeout):
        return _Scripted(self.grads)


def scripted(grads) -> Student:
    return Student(ASSIGNMENT, SubmissionState(Submission("s", ROOT / "x.py", "")),
                   _ScriptedLauncher(grads))


@pytest.mark.parametrize("detached", [
    [], "1", None, 3, {"0": 1}, [[]], [[5]], [[1]], [[1, 0, 0]], [[0, 0]], [["0"]], [[True]],
    [[-1]], [[1.0, 0]], [[[1]]], [(1, 0)], [[0], [1, 0], [1, 1], [0]], [[0]] * 10**4,
    [[2**70]],
])
def test_a_malformed_detached_answer_is_refused(detached):
    args, grad_outputs = inputs()
    with pytest.raises(GradingFailure, match="answer about gradients is malformed") as raised:
        scripted({"detached": detached}).cell.with_grad(args, grad_outputs=grad_outputs, wrt=WRT)
    assert not isinstance(raised.value, DetachedOutputs)


@pytest.mark.parametrize("grads", [
    {"inputs": [torch.zeros(1)] * 3, "params": {}}, {"inputs": "xx", "params": {}},
    {"inputs": [torch.zeros(1)] * 4, "params": []}, {"inputs": [torch.zeros(1)] * 4},
])
def test_malformed_gradients_are_refused(grads):
    args, grad_outputs = inputs()
    with pytest.raises(GradingFailure, match="answer about gradients is malformed"):
        scripted(grads).cell.with_grad(args, grad_outputs=grad_outputs, wrt=WRT)


def test_a_well_formed_report_names_only_places_given_a_gradient():
    args, (g, (g_h, g_c)) = inputs()
    view = scripted({"detached": [[1, 1], [0]]})
    with pytest.raises(DetachedOutputs) as raised:
        view.cell.with_grad(args, grad_outputs=(g, (g_h, g_c)), wrt=WRT)
    assert raised.value.paths == ((0,), (1, 1))
    with pytest.raises(GradingFailure, match="malformed"):  # no gradient was given to c
        scripted({"detached": [[1, 1]]}).cell.with_grad(args, grad_outputs=(g, (g_h, None)),
                                                        wrt=WRT)
