"""Hidden tests of decoder_step: one step of a seq2seq decoder with attention."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import (assert_close, fail, generator, random_tensor, seeds, unpack,
                                float_dtypes)
from autograder.testing.gradients import call_with_grad
from grading.checks import assert_gradients
from grading.oracles import decoder_step

PREVIOUS_STATE_HINT = ("Bahdanau attention scores the encoder states with the *previous* "
                       "decoder state s_prev (the new one does not exist yet); the context then "
                       "feeds the recurrent update together with y_prev.")


def make(B, T, H, De, Dy, A, dtype, seed):
    gen = generator(seed)
    r = lambda *shape: random_tensor(shape, dtype, gen, 0.7)  # noqa: E731
    params = {"W_q": r(A, H), "W_k": r(A, De), "v": r(A), "W_ih": r(H, Dy + De),
              "W_hh": r(H, H), "b_ih": r(H), "b_hh": r(H)}
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return r(B, Dy), r(B, H), r(B, T, De), params, mask


sizes = st.fixed_dictionaries({
    "B": st.integers(1, 4), "T": st.integers(1, 7), "H": st.integers(1, 8),
    "De": st.integers(1, 8), "Dy": st.integers(1, 5), "A": st.integers(1, 8),
    "dtype": float_dtypes(), "seed": seeds()})


def describe(s):
    return (f"B={s['B']}, T={s['T']}, H={s['H']}, De={s['De']}, Dy={s['Dy']}, A={s['A']}, "
            f"{s['dtype']}, seed {s['seed']}")


@given(s=sizes, masked=st.booleans())
def test_decoder_step_matches_direct_computation(student, s, masked):
    """s_new, context and weights equal a direct computation of the equations."""
    y, h, enc, params, mask = make(**s)
    mask = mask if masked else None
    got = unpack(student.decoder_step(y, h, enc, params, mask), 3, "decoder_step",
                 "s_new, context, weights")
    expected = decoder_step(y, h, enc, params, mask)
    for name, a, e in zip(("weights", "context", "s_new"), got[::-1], expected[::-1]):
        assert_close(a, e, what=name, case=describe(s) + (", padded" if masked else ""),
                     hint=PREVIOUS_STATE_HINT if name == "weights" else
                     "s_new = tanh(W_ih [y_prev; context] + b_ih + W_hh s_prev + b_hh): "
                     "concatenate y_prev first, then the context.")


@given(s=sizes)
def test_decoder_step_ignores_padded_positions(student, s):
    """Padded encoder positions get zero weight, and changing their states
    changes nothing."""
    y, h, enc, params, mask = make(**s)
    s_new, context, weights = unpack(student.decoder_step(y, h, enc, params, mask), 3,
                                     "decoder_step", "s_new, context, weights")
    if isinstance(weights, torch.Tensor) and weights.shape == mask.shape and (weights[~mask] != 0).any():
        fail("a padded encoder position got a non-zero attention weight.", case=describe(s),
             hint="pass enc_mask to attend so padded positions are excluded from the softmax.")
    noisy = enc.clone()
    noisy[~mask] = 100.0
    s_new2, _, _ = unpack(student.decoder_step(y, h, noisy, params, mask), 3, "decoder_step")
    assert_close(s_new2, s_new, what="s_new after changing padded encoder states",
                 case=describe(s), hint="padding must not influence the decoder.")
    # The property together with the right values: a constant state ignores padding too.
    assert_close(s_new, decoder_step(y, h, enc, params, mask)[0], what="s_new", case=describe(s))


@given(s=sizes)
def test_decoder_step_gradients_reach_every_parameter(student, s):
    """Gradients of all three outputs (s_new, context and the attention weights) flow
    to every parameter and input, equal to autograd's."""
    y, h, enc, params, mask = make(**s)
    gen = generator(s["seed"] + 9)
    grad_outputs = (random_tensor((s["B"], s["H"]), s["dtype"], gen),
                    random_tensor((s["B"], s["De"]), s["dtype"], gen),
                    random_tensor((s["B"], s["T"]), s["dtype"], gen))
    names = sorted(params)
    wrt = [0, 1, 2] + [(3, n) for n in names]
    args = (y, h, enc, params, mask)
    _, grads = call_with_grad(student.decoder_step, args, grad_outputs=grad_outputs, wrt=wrt)
    assert_gradients(grads, decoder_step, args, grad_outputs=grad_outputs, wrt=wrt,
                     inputs=["y_prev", "s_prev", "enc_outputs"] + names,
                     outputs=("s_new", "the context", "the attention weights"),
                     what="decoder_step", case=describe(s),
                     hint="every parameter must be used through differentiable operations "
                          "(no .detach(), no in-place writes into inputs), and every output "
                          "is differentiable.")
