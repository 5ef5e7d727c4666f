"""Hidden tests of attend: soft alignment and the dictionary-lookup limit."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, unpack
from grading.cases import scoring_cases
from grading.oracles import softmax


@given(case=scoring_cases(same_dims=True), masked=st.booleans(),
       temperature=st.sampled_from([0.5, 1.0, 3.0]))
def test_attend_matches_weighted_sum(student, case, masked, temperature):
    """weights = masked_softmax(scores, mask, temperature) and context = sum_t w_t v_t;
    a row with no real position has a zero context."""
    q, k, v = case.tensors()
    scores = torch.einsum("bd,btd->bt", q, k)
    mask = case.mask() if masked else None
    context, weights = unpack(student.attend(scores, v, mask, temperature), 2, "attend",
                              "context, weights")
    expected = softmax(scores, mask, temperature)
    where = f"{case.describe()}, temperature {temperature}{', mask with row 0 empty' if masked else ''}"
    assert_close(weights, expected, what="weights", case=where)
    assert_close(context, torch.einsum("bt,btd->bd", expected, v), what="context", case=where,
                 hint="the context is the weights-weighted sum of the values over time: "
                      "(B, T) x (B, T, Dv) -> (B, Dv).")


@given(case=scoring_cases(same_dims=True))
def test_attend_low_temperature_is_lookup(student, case):
    """As the temperature goes to 0, attention becomes a hard dictionary lookup:
    the context is the value of the best-matching real key."""
    q, k, v = case.tensors()
    scores = torch.einsum("bd,btd->bt", q, k)
    mask = case.mask(fully_masked_row=False)
    context, _ = unpack(student.attend(scores, v, mask, 1e-6), 2, "attend", "context, weights")
    best = scores.masked_fill(~mask, float("-inf")).argmax(-1)
    assert_close(context, v[torch.arange(case.B), best], what="context at temperature 1e-6",
                 case=case, atol=1e-5,
                 hint="at a low temperature all weight goes to the best real key.")
