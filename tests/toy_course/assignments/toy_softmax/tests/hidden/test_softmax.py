import torch
from hypothesis import given

from autograder.testing import assert_close
from grading.cases import softmax_cases
from grading.oracles import softmax


@given(case=softmax_cases())
def test_softmax_matches_torch(student, case):
    """softmax equals torch.softmax(x / T) for any shape, dtype and temperature."""
    x = case.x()
    assert_close(student.softmax(x, temperature=case.temperature),
                 softmax(x, case.temperature), what="softmax", case=case)


@given(case=softmax_cases())
def test_softmax_is_stable_for_large_inputs(student, case):
    """Inputs of size ~1000 give finite weights equal to torch's (subtract the max)."""
    x = case.x(scale=1000.0)
    assert_close(student.softmax(x, temperature=case.temperature),
                 softmax(x, case.temperature), what="softmax of large inputs", case=case)


@given(case=softmax_cases())
def test_softmax_is_pure(student, case):
    """softmax does not modify its input, and its values are right."""
    x = case.x()
    assert_close(student.softmax.pure(x, temperature=case.temperature),
                 softmax(x, case.temperature), what="softmax", case=case)
