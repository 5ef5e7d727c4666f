"""The recurrent_cells assignment end to end: reference, template and the
bundled examples graded in one batch."""

import pytest

from conftest import failed, grade_examples


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return grade_examples(tmp_path_factory, "recurrent_cells")


def test_reference_and_other_style_score_100(batch):
    assert batch["reference"].score == 100
    assert batch["correct_fused_float64"].score == 100


def test_template_scores_zero(batch):
    assert batch["template"].score == 0


@pytest.mark.parametrize("sid, must_fail, words", [
    ("lstm_gates_ifog", {"test_lstm_cell_matches_torch"}, "i, f, g, o"),
    ("gru_z_on_wrong_term", {"test_gru_cell_matches_torch"}, "(1 - z) * n + z * h"),
    ("gru_reset_before_matmul", {"test_gru_cell_matches_torch"}, "*after* the matrix product"),
    ("reverse_not_rereversed", {"test_unroll_reverse_matches_flipped"}, "re-reverse"),
    ("clip_per_tensor", {"test_clip_grad_norm_matches_torch"}, "one global factor"),
    ("clip_always", {"test_clip_below_threshold_keeps_values"}, "never scale up"),
    ("uses_torch_lstmcell", {"test_lstm_cell_matches_torch"}, "torch.nn.LSTMCell ("),
])
def test_each_mistake_loses_its_points_with_its_hint(batch, sid, must_fail, words):
    result = batch[sid]
    assert 0 < result.score < 100
    assert must_fail <= failed(result), failed(result)
    feedback = "\n".join(t.feedback for t in result.tests if not t.passed)
    assert words in feedback


def test_clipping_mistake_costs_only_clipping(batch):
    assert failed(batch["clip_always"]) == {"test_clip_below_threshold_keeps_values"}
