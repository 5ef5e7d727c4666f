"""Hidden tests of the three scoring functions (section 3.2)."""

import torch
from hypothesis import given

from autograder.testing import assert_close, generator, random_tensor
from grading.cases import scoring_cases
from grading.oracles import bahdanau_scores


@given(case=scoring_cases(same_dims=True))
def test_dot_score_matches_torch(student, case):
    """Luong dot: score[b, t] = q_b . k_bt, for every batch row and position."""
    q, k, _ = case.tensors()
    assert_close(student.dot_score(q, k), torch.bmm(k, q.unsqueeze(-1)).squeeze(-1),
                 what="dot_score", case=case,
                 hint="one dot product per encoder position: contract the feature axis, "
                      "keep batch and time.")


@given(case=scoring_cases())
def test_general_score_matches_torch(student, case):
    """Luong general: score[b, t] = q_b^T W k_bt with W (Dq, Dk)."""
    q, k, _ = case.tensors()
    W = random_tensor((case.Dq, case.Dk), case.dtype, generator(case.seed + 2))
    expected = torch.bmm(k, (q @ W).unsqueeze(-1)).squeeze(-1)
    assert_close(student.general_score(q, k, W), expected, what="general_score", case=case,
                 hint="W maps the key space to the query space: q^T W k, with W of shape "
                      "(Dq, Dk); mind the order and which side is transposed.")


@given(case=scoring_cases())
def test_additive_score_matches_torch(student, case):
    """Bahdanau: score[b, t] = v^T tanh(W_q q_b + W_k k_bt)."""
    q, k, _ = case.tensors()
    gen = generator(case.seed + 3)
    W_q = random_tensor((case.A, case.Dq), case.dtype, gen)
    W_k = random_tensor((case.A, case.Dk), case.dtype, gen)
    v = random_tensor((case.A,), case.dtype, gen)
    assert_close(student.additive_score(q, k, W_q, W_k, v), bahdanau_scores(q, k, W_q, W_k, v),
                 what="additive_score", case=f"{case.describe()}, A={case.A}",
                 hint="add the projected query (broadcast over time) to every projected key "
                      "*before* the tanh, then take the dot product with v.")
