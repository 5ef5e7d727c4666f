"""Hidden tests of masked_softmax: a probability distribution over real positions."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, assert_tensor, fail, generator, random_tensor
from autograder.testing.gradients import call_with_grad
from grading.cases import scoring_cases
from grading.checks import assert_gradients
from grading.oracles import softmax

TEMPERATURES = st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.0])
MASK_HINT = ("a padded position must get weight exactly 0: set its score to -inf before the "
             "exponential (a score of 0 still gets weight).")
EMPTY_HINT = ("a row with no real position must give all zeros, not NaN: guard the division "
              "when the sum of exponentials is 0 (or the row maximum is -inf).")
FINITE_HINT = ("a padded position must lose against every real score, however low: only a "
               "score of -inf guarantees that (a finite stand-in such as -1e9 wins as soon as "
               "the real scores are lower).")


def scores_for(case, scale=3.0):
    return random_tensor((case.B, case.T), case.dtype, generator(case.seed), scale)


def upstream(case):
    """dL/dweights (B, T), back-propagated through the student's weights."""
    return random_tensor((case.B, case.T), case.dtype, generator(case.seed + 6))


@given(case=scoring_cases(), masked=st.booleans(), temperature=TEMPERATURES)
def test_masked_softmax_matches_torch(student, case, masked, temperature):
    """The weights equal softmax(scores / temperature) over the real positions, and
    their gradient with respect to the scores equals autograd's."""
    scores = scores_for(case)
    mask = case.mask(fully_masked_row=False) if masked else None
    g = upstream(case)
    where = (f"scores ({case.B}, {case.T}), {case.dtype}, seed {case.seed}, "
             f"temperature {temperature}{', padded mask' if masked else ''}")
    weights, grads = call_with_grad(student.masked_softmax, (scores, mask, temperature),
                                    grad_outputs=(g,), wrt=[0])
    assert_close(weights, softmax(scores, mask, temperature), what="masked_softmax", case=where,
                 hint="divide the scores by the temperature, then softmax over the last axis "
                      "(" + MASK_HINT + ")" if masked else "divide the scores by the "
                      "temperature (a temperature > 1 flattens), then softmax over the last axis.")
    assert_gradients(grads, softmax, (scores, mask, temperature), grad_outputs=(g,), wrt=[0],
                     inputs=("scores",), outputs=("the weights",), what="masked_softmax",
                     case=where)


@given(case=scoring_cases())
def test_masked_positions_get_exactly_zero(student, case):
    """Padded positions get weight exactly 0 (even when every real score is below
    -1e12), and the real ones still sum to 1."""
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
    # The property together with the right values: uniform weights over the real
    # positions also give padding 0 and sum to 1.
    assert_close(weights, softmax(scores, mask), what="masked_softmax", case=where)
    # However low the real scores, a padded position must lose against them: a
    # finite stand-in for -inf (-1e9, -1e10) does not. The padding's own scores
    # are lower still, so only the mask decides. Only the padding is checked
    # here: scores this far beyond 1e4 are no stability test.
    low = -(scores.abs() + 1) * torch.where(mask, 1e12, 1e13).to(case.dtype)
    weights = student.masked_softmax(low, mask)
    where = f"{where}, every real score below -1e12"
    assert_tensor(weights, what="masked_softmax", shape=scores.shape, dtype=case.dtype, case=where)
    leaked = weights[~mask]
    if (leaked != 0).any():
        fail(f"a padded position got weight {leaked[leaked != 0][0].item():.3g} instead of 0 "
             "when the real scores are very low.", case=where, hint=FINITE_HINT)


@given(case=scoring_cases(min_b=2, min_t=2))
def test_fully_masked_row_is_zero_not_nan(student, case):
    """A row with no real position (an empty source sentence) is all zeros, never NaN,
    and its gradients are finite (zero); the other rows are the softmax over their
    real positions."""
    scores = scores_for(case)
    mask = case.mask(fully_masked_row=True).clone()
    mask[1, -1] = False  # row 1 has real positions and padding
    g = upstream(case)
    where = f"scores ({case.B}, {case.T}), seed {case.seed}, row 0 fully masked"
    weights, grads = call_with_grad(student.masked_softmax, (scores, mask), grad_outputs=(g,),
                                    wrt=[0])
    expected = softmax(scores, mask)
    assert_tensor(weights, what="masked_softmax", shape=scores.shape, dtype=case.dtype, case=where)
    # The rows with a real position first: padding there is a masking question,
    # the empty row another one.
    assert_close(weights[1:], expected[1:], what="masked_softmax of rows 1 and after "
                 "(each has a real position)", case=where, hint=MASK_HINT)
    assert_close(weights[0], expected[0], what="masked_softmax of row 0 (no real position)",
                 case=where, hint=EMPTY_HINT)
    assert_gradients(grads, softmax, (scores, mask), grad_outputs=(g,), wrt=[0],
                     inputs=("scores",), outputs=("the weights",), what="masked_softmax",
                     case=where, hint="the gradient of a fully masked row must be finite "
                     "(zero), not NaN: a 0/0 anywhere in the computation, even in a torch.where "
                     "branch that is not selected, makes it NaN; divide by a guarded sum instead.")


@given(case=scoring_cases(), shift=st.floats(-50, 50))
def test_shift_invariance(student, case, shift):
    """Adding the same constant to every score of a row changes nothing."""
    scores = scores_for(case)
    shifts = torch.linspace(-1, 1, case.B, dtype=case.dtype).unsqueeze(1) * shift
    a = student.masked_softmax(scores)
    b = student.masked_softmax(scores + shifts)
    assert_close(b, a, what="masked_softmax(scores + c)", case=f"seed {case.seed}, shift {shift:.3g}",
                 hint="softmax depends only on differences of scores within a row.")
    # The property together with the right values: a constant is shift-invariant too.
    assert_close(a, softmax(scores), what="masked_softmax", case=f"seed {case.seed}")


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
    """Temperature -> infinity gives the uniform distribution over real positions
    (padding still exactly 0); temperature -> 0 puts all the weight on the
    best-scoring real position."""
    scores = scores_for(case)
    mask = case.mask(fully_masked_row=False)
    # The limits together with the right values in between: uniform or one-hot
    # answers match one limit each, never a temperature of 1.
    assert_close(student.masked_softmax(scores, mask, 1.0), softmax(scores, mask, 1.0),
                 what="masked_softmax at temperature 1", case=case.describe())
    hot = student.masked_softmax(scores, mask, 1e6)
    assert_tensor(hot, what="masked_softmax at temperature 1e6", shape=scores.shape,
                  dtype=case.dtype, case=case.describe())
    if (hot[~mask] != 0).any():
        fail(f"at temperature 1e6 a padded position got weight "
             f"{hot[~mask][hot[~mask] != 0][0].item():.3g} instead of 0.", case=case.describe(),
             hint="a padded position must get weight exactly 0 at every temperature. If its "
                  "score is a finite stand-in for -inf, dividing by the temperature shrinks it "
                  "too (-1e4 / 1e6 is only -0.01): use -inf.")
    uniform = mask.to(case.dtype) / mask.sum(-1, keepdim=True)
    assert_close(hot, uniform, what="masked_softmax at temperature 1e6", rtol=1e-3, atol=1e-4,
                 case=case.describe(),
                 hint="at a high temperature the scores/temperature are all close to 0: divide "
                      "by the temperature, do not multiply.")
    cold = student.masked_softmax(scores, mask, 1e-12)
    best = scores.masked_fill(~mask, float("-inf")).argmax(-1)
    one_hot = torch.nn.functional.one_hot(best, case.T).to(case.dtype)
    assert_close(cold, one_hot, what="masked_softmax at temperature 1e-12", atol=1e-6,
                 case=case.describe(),
                 hint="at a low temperature the softmax becomes a hard argmax over the real "
                      "positions (a dictionary lookup); mask before taking the maximum.")
