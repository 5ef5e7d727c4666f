"""Hidden tests of attend: soft alignment and the dictionary-lookup limit."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, assert_tensor, generator, random_tensor, unpack
from autograder.testing.gradients import call_with_grad
from grading.cases import scoring_cases
from grading.checks import assert_gradients
from grading.oracles import attend, softmax


@given(case=scoring_cases(same_dims=True, min_b=2, min_t=2), masked=st.booleans(),
       temperature=st.sampled_from([0.5, 1.0, 3.0]))
def test_attend_matches_weighted_sum(student, case, masked, temperature):
    """weights = masked_softmax(scores, mask, temperature) and context = sum_t w_t v_t;
    a row with no real position has zero weights and a zero context. The gradients of both outputs
    with respect to the scores and the values equal autograd's."""
    q, k, v = case.tensors()
    scores = torch.einsum("bd,btd->bt", q, k)
    mask = None
    if masked:  # row 0 empty, row 1 with real positions and padding
        mask = case.mask().clone()
        mask[1, -1] = False
    gen = generator(case.seed + 7)
    grad_outputs = (random_tensor((case.B, case.Dv), case.dtype, gen),
                    random_tensor((case.B, case.T), case.dtype, gen))
    args = (scores, v, mask, temperature)
    result, grads = call_with_grad(student.attend, args, grad_outputs=grad_outputs, wrt=[0, 1])
    context, weights = unpack(result, 2, "attend", "context, weights")
    expected = softmax(scores, mask, temperature)
    where = (f"{case.describe()}, temperature {temperature}"
             f"{', mask with row 0 empty and row 1 padded' if masked else ''}")
    if masked:  # the rows with a real position first, then the empty one
        assert_tensor(weights, what="weights", shape=expected.shape, dtype=case.dtype, case=where)
        assert_close(weights[1:], expected[1:], what="weights of rows 1 and after (each has "
                     "a real position)", case=where)
    assert_close(weights, expected, what="weights", case=where)
    assert_close(context, torch.einsum("bt,btd->bd", expected, v), what="context", case=where,
                 hint="the context is the weights-weighted sum of the values over time: "
                      "(B, T) x (B, T, Dv) -> (B, Dv).")
    assert_gradients(grads, attend, args, grad_outputs=grad_outputs, wrt=[0, 1],
                     inputs=("scores", "values"), outputs=("the context", "the weights"),
                     what="attend", case=where)


@given(case=scoring_cases(same_dims=True))
def test_attend_low_temperature_is_lookup(student, case):
    """As the temperature goes to 0, attention becomes a hard dictionary lookup:
    the context is the value of the best-matching real key (at temperature 1 it is
    the soft blend of the values)."""
    q, k, v = case.tensors()
    scores = torch.einsum("bd,btd->bt", q, k)
    mask = case.mask(fully_masked_row=False)
    # The limit together with the right values away from it: a lookup of the
    # best key is not an answer at temperature 1.
    soft, _ = unpack(student.attend(scores, v, mask), 2, "attend", "context, weights")
    assert_close(soft, torch.einsum("bt,btd->bd", softmax(scores, mask), v),
                 what="context at temperature 1", case=case)
    context, _ = unpack(student.attend(scores, v, mask, 1e-12), 2, "attend", "context, weights")
    best = scores.masked_fill(~mask, float("-inf")).argmax(-1)
    assert_close(context, v[torch.arange(case.B), best], what="context at temperature 1e-12",
                 case=case, atol=1e-5,
                 hint="at a low temperature all weight goes to the best real key.")
