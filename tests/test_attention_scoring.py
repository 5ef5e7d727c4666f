"""The attention_scoring assignment end to end: the reference, the template and
the bundled examples, graded in one batch (with two jobs)."""

import pytest

from conftest import failed, grade_examples


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return grade_examples(tmp_path_factory, "attention_scoring")


def test_reference_and_other_style_score_100(batch):
    assert batch["reference"].score == 100
    assert batch["correct_bmm_float64"].score == 100


def test_template_scores_zero(batch):
    assert batch["template"].score == 0


@pytest.mark.parametrize("sid, must_fail, words", [
    ("softmax_not_stabilised", {"test_no_overflow_for_large_scores"}, "subtract each row's maximum"),
    ("mask_by_zeroing_scores", {"test_masked_positions_get_exactly_zero"}, "exactly 0"),
    ("temperature_multiplied", {"test_temperature_limits", "test_masked_softmax_matches_torch"},
     "do not multiply"),
    ("jacobian_missing_term", {"test_attention_backward_matches_autograd"}, "subtracted term"),
    ("scores_with_new_state", {"test_decoder_step_matches_direct_computation"}, "*previous*"),
    ("uses_autograd_backward", {"test_attention_backward_matches_autograd"},
     "used torch.autograd"),
])
def test_each_mistake_loses_its_points_with_its_hint(batch, sid, must_fail, words):
    result = batch[sid]
    assert 0 < result.score < 100
    assert must_fail <= failed(result), failed(result)
    feedback = "\n".join(t.feedback for t in result.tests if not t.passed)
    assert words in feedback


def test_jacobian_mistake_costs_only_the_backward_test(batch):
    assert failed(batch["jacobian_missing_term"]) == {"test_attention_backward_matches_autograd"}
