"""Public tests: run them with `autograder check attention_scoring`.

A sample only: the hidden tests check the same functions on many shapes,
dtypes, masks and temperatures, and the properties in the handout.
"""

import torch

from autograder.testing import assert_close, generator, random_tensor, unpack
from autograder.testing.recorded import oracles

# query (B, Dq), keys (B, T, Dk), values (B, T, Dv), drawn in that order
B, T, DQ, DK, DV = 2, 5, 4, 4, 3
CASE = "query (2, 4), keys (2, 5, 4), values (2, 5, 3), float32, seed 0"


def small_inputs():
    gen = generator(0)
    return (random_tensor((B, DQ), torch.float32, gen),
            random_tensor((B, T, DK), torch.float32, gen),
            random_tensor((B, T, DV), torch.float32, gen))


def test_dot_score_small(student):
    """dot_score(q, K)[b, t] = q_b . k_bt (Luong dot)."""
    q, k, _ = small_inputs()
    assert_close(student.dot_score(q, k), torch.einsum("bd,btd->bt", q, k),
                 what="dot_score", case=CASE)


def test_masked_softmax_rows_sum_to_one(student):
    """Weights over real positions sum to 1; padded positions get exactly 0."""
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert_close(student.masked_softmax(scores, mask), oracles.softmax(scores, mask),
                 what="masked_softmax(scores, mask)", case="scores (2, 3), float32")


def test_attend_small(student):
    """attend returns (context, weights): the context is the weighted sum of values."""
    q, k, v = small_inputs()
    scores = torch.einsum("bd,btd->bt", q, k)
    context, weights = unpack(student.attend(scores, v), 2, "attend", "context, weights")
    expected = oracles.softmax(scores)
    assert_close(weights, expected, what="weights", case=CASE)
    assert_close(context, torch.einsum("bt,btd->bd", expected, v), what="context", case=CASE)


def test_decoder_step_small(student):
    """One Bahdanau decoder step on a padded batch."""
    gen = torch.Generator().manual_seed(1)
    B, T, H, De, Dy, A = 2, 4, 3, 5, 2, 6
    params = {"W_q": torch.randn(A, H, generator=gen), "W_k": torch.randn(A, De, generator=gen),
              "v": torch.randn(A, generator=gen), "W_ih": torch.randn(H, Dy + De, generator=gen),
              "W_hh": torch.randn(H, H, generator=gen), "b_ih": torch.randn(H, generator=gen),
              "b_hh": torch.randn(H, generator=gen)}
    y, s, enc = torch.randn(B, Dy, generator=gen), torch.randn(B, H, generator=gen), \
        torch.randn(B, T, De, generator=gen)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    got = unpack(student.decoder_step(y, s, enc, params, mask), 3, "decoder_step",
                 "s_new, context, weights")
    for name, a, e in zip(("weights", "context", "s_new"), got[::-1],
                          oracles.decoder_step(y, s, enc, params, mask)[::-1]):
        assert_close(a, e, what=name, case="B=2, T=4, H=3, De=5, Dy=2, seed 1")
