"""Hidden tests of masked_softmax: a probability distribution over real positions."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, fail, generator, random_tensor
from grading.cases import scoring_cases
from grading.oracles import softmax

TEMPERATURES = st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.0])
MASK_HINT = ("a padded position must get weight exactly 0: set its score to -inf before the "
             "exponential (a score of 0 still gets weight).")
EMPTY_HINT = ("a row with no real position must give all zeros, not NaN: guard the division "
              "when the sum of exponentials is 0 (or the row maximum is -inf).")


def scores_for(case, scale=3.0):
    return random_tensor((case.B, case.T), case.dtype, generator(case.seed), scale)


@given(case=scoring_cases(), masked=st.booleans(), temperature=TEMPERATURES)
def test_masked_softmax_matches_torch(student, case, masked, temperature):
    """The weights equal softmax(scores / temperature) over the real positions."""
    scores = scores_for(case)
    mask = case.mask(fully_masked_row=False) if masked else None
    assert_close(student.masked_softmax(scores, mask, temperature),
                 softmax(scores, mask, temperature), what="masked_softmax",
                 case=f"scores ({case.B}, {case.T}), {case.dtype}, seed {case.seed}, "
                      f"temperature {temperature}{', padded mask' if masked else ''}",
                 hint="divide the scores by the temperature, then softmax over the last axis "
                      "(" + MASK_HINT + ")" if masked else "divide the scores by the "
                      "temperature (a temperature > 1 flattens), then softmax over the last axis.")


@given(case=scoring_cases())
def test_masked_positions_get_exactly_zero(student, case):
    """Padded positions get weight exactly 0, and the real ones still sum to 1."""
    scores = scores_for(case)
    mask = case.mask(fully_masked_row=False)
    weights = student.masked_softmax(scores, mask)
    where = f"scores ({case.B}, {case.T}), seed {case.seed}"
    if not isinstance(weights, torch.Tensor) or weights.shape != scores.shape:
        fail(f"masked_softmax should return a tensor of shape {tuple(scores.shape)}.", case=where)
    leaked = weights[~mask]
    if (leaked != 0).any():
        fail(f"a padded position got weight {leaked[leaked != 0][0].item():.3g} instead of 0.",
             case=where, hint=MASK_HINT)
    assert_close(weights.sum(-1), torch.ones(case.B, dtype=case.dtype), what="weights.sum(-1)",
                 case=where, hint="the softmax runs over the last axis, the encoder positions.")


@given(case=scoring_cases())
def test_fully_masked_row_is_zero_not_nan(student, case):
    """A row with no real position (an empty source sentence) is all zeros, never NaN."""
    scores = scores_for(case)
    mask = case.mask(fully_masked_row=True)
    assert_close(student.masked_softmax(scores, mask), softmax(scores, mask),
                 what="masked_softmax with row 0 fully masked",
                 case=f"scores ({case.B}, {case.T}), seed {case.seed}", hint=EMPTY_HINT)


@given(case=scoring_cases(), shift=st.floats(-50, 50))
def test_shift_invariance(student, case, shift):
    """Adding the same constant to every score of a row changes nothing."""
    scores = scores_for(case)
    shifts = torch.linspace(-1, 1, case.B, dtype=case.dtype).unsqueeze(1) * shift
    a = student.masked_softmax(scores)
    b = student.masked_softmax(scores + shifts)
    assert_close(b, a, what="masked_softmax(scores + c)", case=f"seed {case.seed}, shift {shift:.3g}",
                 hint="softmax depends only on differences of scores within a row.")


@given(case=scoring_cases(), magnitude=st.sampled_from([1e3, 1e4]))
def test_no_overflow_for_large_scores(student, case, magnitude):
    """Scores of magnitude 1e4 give the exact softmax, not inf or NaN."""
    scores = scores_for(case, scale=magnitude)
    assert_close(student.masked_softmax(scores), softmax(scores), what="masked_softmax",
                 case=f"scores ({case.B}, {case.T}) of magnitude {magnitude:g}, seed {case.seed}",
                 rtol=1e-3, atol=1e-6,
                 hint="exp(1e4) overflows to inf: subtract each row's maximum before exp().")


@given(case=scoring_cases())
def test_temperature_limits(student, case):
    """Temperature -> infinity gives the uniform distribution over real positions;
    temperature -> 0 puts all the weight on the best-scoring real position."""
    scores = scores_for(case)
    mask = case.mask(fully_masked_row=False)
    hot = student.masked_softmax(scores, mask, 1e6)
    uniform = mask.to(case.dtype) / mask.sum(-1, keepdim=True)
    assert_close(hot, uniform, what="masked_softmax at temperature 1e6", rtol=1e-3, atol=1e-4,
                 case=case.describe(),
                 hint="at a high temperature the scores/temperature are all close to 0: divide "
                      "by the temperature, do not multiply.")
    cold = student.masked_softmax(scores, mask, 1e-6)
    best = scores.masked_fill(~mask, float("-inf")).argmax(-1)
    one_hot = torch.nn.functional.one_hot(best, case.T).to(case.dtype)
    assert_close(cold, one_hot, what="masked_softmax at temperature 1e-6", atol=1e-6,
                 case=case.describe(),
                 hint="at a low temperature the softmax becomes a hard argmax over the real "
                      "positions (a dictionary lookup); mask before taking the maximum.")
