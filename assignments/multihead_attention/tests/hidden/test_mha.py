"""Hidden tests of the MultiHeadAttention module (section 3.3)."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import (GradingFailure, assert_all_close, assert_close, fail, generator,
                                memoize, random_tensor, unpack)
from autograder.testing.gradients import expected_gradients
from grading.cases import mha_cases
from grading.checks import expect_value_error, grads, require_deterministic
from grading.oracles import mha_forward, sdpa_weights, torch_mha_forward

KEY_MASK_HINT = ("key_mask is True for real keys (the opposite of nn.MultiheadAttention's "
                 "key_padding_mask); it has shape (B, S) and must broadcast over heads and "
                 "queries as (B, 1, 1, S).")


def build(student, case):
    return student.MultiHeadAttention.build((case.d_model, case.n_heads), {"bias": case.bias},
                                            dtype=case.dtype, weights=case.weights())


def run(module, *args, **kwargs):
    return unpack(module(*args, **kwargs), 2, "MultiHeadAttention.forward", "out, weights")


def check(student, case, got, expected, described=None, hint=None):
    """Both outputs against the oracle's; ``described``: the input, when more
    than ``case`` (masks, flags)."""
    (out, weights), (expected_out, expected_weights) = got, expected
    described = described or case
    try:
        assert_close(weights, expected_weights, what="weights (B, h, L, S)", case=described,
                     hint=hint)
        assert_close(out, expected_out, what="out", case=described, hint=hint)
    except GradingFailure:
        deterministic(student, case)  # a random answer is told as such, not by its numbers
        raise


def deterministic(student, case):
    """Two calls of one module (the case's weights) on the same x, large enough
    that dropout cannot pass by chance, must agree."""
    module = build(student, case)
    x = random_tensor((4, 8, case.d_model), case.dtype, generator(11))
    require_deterministic(lambda: run(module, x), label="MultiHeadAttention.forward",
                          inputs=f"x (4, 8, {case.d_model}) and weights", case=case)


@given(case=mha_cases(cross=False))
def test_mha_self_attention_matches_torch(student, case):
    """Self-attention (key and value default to the query) equals
    torch.nn.MultiheadAttention with the same weights, for 1, 2 and 4 heads."""
    x, _ = case.inputs()
    check(student, case, run(build(student, case), x), torch_mha_forward(case, x),
          hint="project q, k, v, split the heads, attend with scale 1/sqrt(E/h) (the "
               "head size, not d_model), merge the heads, then apply out_proj.")


@given(case=mha_cases(cross=True))
def test_mha_cross_attention_matches_torch(student, case):
    """Cross-attention: queries (B, L, E) attend over encoder states (B, S, E) with
    L != S; value defaults to key."""
    query, memory = case.inputs()
    check(student, case, run(build(student, case), query, memory),
          torch_mha_forward(case, query, memory),
          hint="in cross-attention keys and values come from `key` (the encoder states); "
               "value=None means value = key, not value = query.")


@given(case=mha_cases(cross=True))
def test_mha_separate_value(student, case):
    """An explicit value tensor is projected by v_proj, independently of key."""
    query, memory = case.inputs()
    value = random_tensor(memory.shape, case.dtype, generator(case.seed + 9))
    check(student, case, run(build(student, case), query, memory, value),
          torch_mha_forward(case, query, memory, value),
          hint="use `value` for V when it is given.")


@given(case=mha_cases(), float_mask=st.booleans())
def test_mha_masks_match_torch(student, case, float_mask):
    """key_mask (True = real key) and attn_mask (bool or float, (L, S)) together
    equal nn.MultiheadAttention with the equivalent float masks."""
    query, memory = case.inputs()
    gen = generator(case.seed + 4)
    key_mask = torch.rand(case.B, case.key_len, generator=gen) < 0.7
    key_mask[:, 0] = True  # every row keeps a key: nn.MultiheadAttention gives NaN otherwise
    attn = torch.rand(case.L, case.key_len, generator=gen) < 0.7
    attn[:, 0] = True
    if float_mask:
        attn = random_tensor(attn.shape, case.dtype, gen)
    check(student, case,
          run(build(student, case), query, memory, attn_mask=attn, key_mask=key_mask),
          torch_mha_forward(case, query, memory, attn_mask=attn, key_mask=key_mask),
          f"{case.describe()}, key_mask and {'float' if float_mask else 'bool'} attn_mask",
          hint=KEY_MASK_HINT)


@given(case=mha_cases(min_batch=2))
def test_mha_fully_masked_keys_give_zeros(student, case):
    """A batch element whose keys are all masked gets zero weights and a finite
    output (out_proj's bias), never NaN: with key_mask alone, and with a float
    attn_mask as well (the other elements keep a real key)."""
    query, memory = case.inputs()
    key_mask = case.key_mask()
    module = build(student, case)
    described = f"{case.describe()}, key_mask with batch element 0 fully masked"
    check(student, case, run(module, query, memory, key_mask=key_mask),
          mha_forward(case, query, memory, key_mask=key_mask), described,
          hint=KEY_MASK_HINT + " A row with no real key must give zeros, not NaN.")
    # With a float attn_mask the key mask must still make those scores -inf: no finite
    # constant does (a row of scores + attn_mask - 1e9 is a softmax over the scores).
    attn = random_tensor((case.L, case.key_len), case.dtype, generator(case.seed + 8))
    check(student, case, run(module, query, memory, attn_mask=attn, key_mask=key_mask),
          mha_forward(case, query, memory, attn_mask=attn, key_mask=key_mask),
          f"{described} and a float attn_mask ({case.L}, {case.key_len})",
          hint=KEY_MASK_HINT + " Added to a float attn_mask, a masked key's score must "
                               "become -inf; a row with no real key gives zeros, not NaN.")


@given(case=mha_cases())
def test_mha_causal_matches_torch(student, case):
    """is_causal=True in the module equals nn.MultiheadAttention with an explicit
    causal mask (top-left aligned, also for cross-attention with L != S)."""
    query, memory = case.inputs()
    causal = torch.ones(case.L, case.key_len, dtype=torch.bool).tril()
    check(student, case, run(build(student, case), query, memory, is_causal=True),
          mha_forward(case, query, memory, attn_mask=causal),
          f"{case.describe()}, is_causal=True",
          hint="pass is_causal through to scaled_dot_product_attention.")


@given(case=mha_cases())
def test_mha_gradients_match_torch(student, case):
    """Gradients of the inputs and of all four projections' weights and biases
    equal autograd through nn.MultiheadAttention's math, through out and through
    the attention weights."""
    query, memory = case.inputs()
    gen = generator(case.seed + 6)
    grad_out = random_tensor((case.B, case.L, case.d_model), case.dtype, gen)
    grad_weights = random_tensor((case.B, case.n_heads, case.L, case.key_len), case.dtype, gen)
    module = build(student, case)
    args = (query,) if memory is None else (query, memory)
    tolerance = {"rtol": 1e-3, "atol": 1e-4} if case.dtype == torch.float32 else {}
    for grad_outputs, through in (((grad_out, None), ""),
                                  ((None, grad_weights), " through weights")):
        _, input_grads, param_grads = grads(
            module.method("forward"), args, grad_outputs=grad_outputs, outputs=("out", "weights"),
            wrt=tuple(range(len(args))), param_grads=True, case=case)
        expected = _expected_gradients(case, args, *grad_outputs)
        for i, name in enumerate(("query", "key")[:len(args)]):
            assert_close(input_grads[i], expected[i], what=f"the gradient of {name}{through}",
                         case=case, **tolerance)
        expected_params = dict(zip(case.weights(), expected[len(args):]))
        assert_all_close(param_grads, expected_params, what=f"the gradient{through} of",
                         case=case, hint="every projection must take part in the forward pass "
                                         "through differentiable operations.", **tolerance)


@memoize
def _expected_gradients(case, args, grad_out, grad_weights):
    """Autograd through the oracle: gradients of the inputs, then of the weights
    (in ``case.weights()`` order) for the given gradients of out and of the
    attention weights (either may be None); once per case for the whole batch."""
    weights = case.weights()
    wrt = [2 + i for i in range(len(args))] + [(1, name) for name in weights]
    return tuple(expected_gradients(_differentiable_oracle, (case, weights, *args),
                                    grad_outputs=(grad_out, grad_weights), wrt=wrt))


def _differentiable_oracle(case, weights, query, key=None):
    import torch.nn.functional as F
    key = query if key is None else key
    B, L, E = query.shape
    h = case.n_heads

    def project(x, name):
        return F.linear(x, weights[f"{name}.weight"], weights.get(f"{name}.bias")) \
            .reshape(B, -1, h, E // h).transpose(1, 2)

    q, k = project(query, "q_proj"), project(key, "k_proj")
    out = F.scaled_dot_product_attention(q, k, project(key, "v_proj"))
    out = out.transpose(1, 2).reshape(B, L, E)
    return (F.linear(out, weights["out_proj.weight"], weights.get("out_proj.bias")),
            sdpa_weights(q, k))


@given(case=mha_cases(cross=False), data=st.data())
def test_mha_permutation_equivariant(student, case, data):
    """Without a mask, self-attention is permutation equivariant: permuting the
    input positions permutes the outputs the same way (attention itself has no
    notion of order; that is why transformers add positional encodings)."""
    perm = torch.tensor(data.draw(st.permutations(range(case.L)), label="permutation"))
    x, _ = case.inputs()
    module = build(student, case)
    out, _ = run(module, x)
    out_perm, _ = run(module, x[:, perm])
    assert_close(out_perm, out[:, perm], what="out for permuted positions",
                 case=f"{case.describe()}, permutation {perm.tolist()}",
                 hint="with no mask, nothing may depend on absolute positions.")
    # The property together with the right values: a constant output is equivariant too.
    assert_close(out, torch_mha_forward(case, x)[0], what="out", case=case)


@given(case=mha_cases())
def test_mha_structure(student, case):
    """The module has exactly the spec's projections q_proj, k_proj, v_proj and
    out_proj, each (d_model, d_model), with biases only when bias=True, and it
    rejects d_model not divisible by n_heads with ValueError."""
    module = student.MultiHeadAttention(case.d_model, case.n_heads, bias=case.bias)
    shapes = module.parameter_shapes
    for name, weight in case.weights().items():
        if shapes.get(name) != tuple(weight.shape):
            fail(f"parameter {name} should have shape {tuple(weight.shape)}, found "
                 f"{shapes.get(name, 'nothing')}.", case=case,
                 hint="use nn.Linear(d_model, d_model, bias=bias) for each projection.")
    extra_bias = [n for n in shapes if n.endswith(".bias") and n.split(".")[0] in
                  ("q_proj", "k_proj", "v_proj", "out_proj") and not case.bias]
    if extra_bias:
        fail(f"bias=False, but the module has {', '.join(extra_bias)}.", case=case)
    odd = 2 * case.d_model + 1  # never divisible by 2 heads
    expect_value_error(student.MultiHeadAttention, odd, 2, what=f"MultiHeadAttention({odd}, 2)",
                       because="d_model is not divisible by n_heads")
