"""Comparison messages: the feedback a failed comparison gives."""

import pytest
import torch

from autograder.testing.compare import GradingFailure, assert_close


def test_failures_localise_the_differing_positions():
    """When only head 1 of 2 is wrong, the message says so."""
    expected = torch.zeros(2, 2, 3, 3)
    actual = expected.clone()
    actual[:, 1] += 1.0
    with pytest.raises(GradingFailure, match=r"Only index 1 \(of 2\) along axis 1 differ"):
        assert_close(actual, expected, what="weights")


def test_failure_names_element_error_and_carries_evidence():
    expected = torch.arange(6.0).reshape(2, 3)
    actual = expected.clone()
    actual[1, 2] = 9.0
    with pytest.raises(GradingFailure) as info:
        assert_close(actual, expected, what="out", case="x (2, 3), seed 4")
    text = str(info.value)
    assert "out differs at index [1, 2]: got 9, expected 5" in text and "seed 4" in text
    assert info.value.evidence["expected"] == expected.tolist()


def test_dtype_and_shape_mismatches_are_explained():
    with pytest.raises(GradingFailure, match="dtype torch.float64, expected torch.float32"):
        assert_close(torch.zeros(2, dtype=torch.float64), torch.zeros(2), what="out")
    with pytest.raises(GradingFailure, match=r"shape \(3,\), expected \(2,\)"):
        assert_close(torch.zeros(3), torch.zeros(2), what="out")
