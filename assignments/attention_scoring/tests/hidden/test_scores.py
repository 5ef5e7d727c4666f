"""Hidden tests of the three scoring functions (section 3.2): values and gradients."""

from hypothesis import given

from autograder.testing import assert_close, generator, random_tensor
from autograder.testing.gradients import call_with_grad
from grading.cases import scoring_cases
from grading.checks import assert_gradients
from grading.oracles import bahdanau_scores, dot_scores, general_scores


def upstream(case):
    """dL/dscores (B, T), back-propagated through the student's scores."""
    return random_tensor((case.B, case.T), case.dtype, generator(case.seed + 5))


@given(case=scoring_cases(same_dims=True))
def test_dot_score_matches_torch(student, case):
    """Luong dot: score[b, t] = q_b . k_bt, for every batch row and position; its
    gradients with respect to the query and the keys equal autograd's."""
    q, k, _ = case.tensors()
    g = upstream(case)
    scores, grads = call_with_grad(student.dot_score, (q, k), grad_outputs=(g,), wrt=[0, 1])
    assert_close(scores, dot_scores(q, k), what="dot_score", case=case,
                 hint="one dot product per encoder position: contract the feature axis, "
                      "keep batch and time.")
    assert_gradients(grads, dot_scores, (q, k), grad_outputs=(g,), wrt=[0, 1],
                     inputs=("query", "keys"), outputs=("the scores",), what="dot_score",
                     case=case)


@given(case=scoring_cases())
def test_general_score_matches_torch(student, case):
    """Luong general: score[b, t] = q_b^T W k_bt with W (Dq, Dk); its gradients with
    respect to the query, the keys and W equal autograd's."""
    q, k, _ = case.tensors()
    W = random_tensor((case.Dq, case.Dk), case.dtype, generator(case.seed + 2))
    g = upstream(case)
    scores, grads = call_with_grad(student.general_score, (q, k, W), grad_outputs=(g,),
                                   wrt=[0, 1, 2])
    assert_close(scores, general_scores(q, k, W), what="general_score", case=case,
                 hint="W maps the key space to the query space: q^T W k, with W of shape "
                      "(Dq, Dk); mind the order and which side is transposed.")
    assert_gradients(grads, general_scores, (q, k, W), grad_outputs=(g,), wrt=[0, 1, 2],
                     inputs=("query", "keys", "W"), outputs=("the scores",),
                     what="general_score", case=case)


@given(case=scoring_cases())
def test_additive_score_matches_torch(student, case):
    """Bahdanau: score[b, t] = v^T tanh(W_q q_b + W_k k_bt); its gradients with
    respect to the query, the keys, W_q, W_k and v equal autograd's."""
    q, k, _ = case.tensors()
    gen = generator(case.seed + 3)
    W_q = random_tensor((case.A, case.Dq), case.dtype, gen)
    W_k = random_tensor((case.A, case.Dk), case.dtype, gen)
    v = random_tensor((case.A,), case.dtype, gen)
    g = upstream(case)
    args = (q, k, W_q, W_k, v)
    where = f"{case.describe()}, A={case.A}"
    scores, grads = call_with_grad(student.additive_score, args, grad_outputs=(g,),
                                   wrt=[0, 1, 2, 3, 4])
    assert_close(scores, bahdanau_scores(*args), what="additive_score", case=where,
                 hint="add the projected query (broadcast over time) to every projected key "
                      "*before* the tanh, then take the dot product with v.")
    assert_gradients(grads, bahdanau_scores, args, grad_outputs=(g,), wrt=[0, 1, 2, 3, 4],
                     inputs=("query", "keys", "W_q", "W_k", "v"), outputs=("the scores",),
                     what="additive_score", case=where)
