"""Public tests: run them with `autograder check toy_softmax`. The hidden tests
that decide your grade check many more shapes, dtypes and temperatures."""

import torch

from autograder.testing import assert_close


def test_softmax_of_equal_scores_is_uniform(student):
    """Equal scores give equal weights: softmax([[1, 1, 1, 1]]) is 1/4 each."""
    x = torch.ones(1, 4)
    assert_close(student.softmax(x), torch.full((1, 4), 0.25), what="softmax(ones(1, 4))")
