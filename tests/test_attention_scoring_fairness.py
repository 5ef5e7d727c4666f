"""attention_scoring grades what the spec promises, and only that.

Graded in one batch:
- every differentiable output is checked against autograd through the oracles:
  a reference that hands back a .detach()ed copy of any one output loses points,
  with feedback naming that output;
- a finite stand-in for -inf in the mask (-1e9, -1e10, torch.finfo(dtype).min,
  before or after the temperature) is explained by its own catalog entry, never
  by "padded positions get a score of 0";
- correct code written the other way scores 100: attention_backward as
  CS231n-style layer objects (forward/backward methods, ``layer.backward(dout)``),
  bmm, einsum (with logsumexp) and float64 inside.
"""

import pytest

from conftest import ROOT, failures, grade_sources
from conftest import patched as patched_source

REFERENCE = (ROOT / "reference" / "attention_scoring.py").read_text()


def patched(*pairs: tuple[str, str]) -> str:
    return patched_source(REFERENCE, *pairs)


# -- mutants: one differentiable output detached -------------------------------

RETURN_ATTEND = "    return context, weights\n"
RETURN_DECODER = "    return s_new, context, weights\n"

DETACHED = {
    # name: (patch, the test that must fail, the output the feedback names)
    "detached_dot_score": (
        ('return torch.einsum("bd,btd->bt", query, keys)',
         'return torch.einsum("bd,btd->bt", query, keys).detach()'),
        "test_dot_score_matches_torch", "dot_score returned the scores"),
    "detached_general_score": (
        ('return torch.einsum("bd,btd->bt", query @ W, keys)',
         'return torch.einsum("bd,btd->bt", query @ W, keys).detach()'),
        "test_general_score_matches_torch", "general_score returned the scores"),
    "detached_additive_score": (
        ("    return hidden @ v\n", "    return (hidden @ v).detach()\n"),
        "test_additive_score_matches_torch", "additive_score returned the scores"),
    "detached_masked_softmax": (
        ("return exp / torch.where(total > 0, total, torch.ones_like(total))",
         "return (exp / torch.where(total > 0, total, torch.ones_like(total))).detach()"),
        "test_masked_softmax_matches_torch", "masked_softmax returned the weights"),
    "detached_attend_weights": (
        (RETURN_ATTEND, "    return context, weights.detach()\n"),
        "test_attend_matches_weighted_sum", "attend returned the weights"),
    "detached_attend_context": (
        (RETURN_ATTEND, "    return context.detach(), weights\n"),
        "test_attend_matches_weighted_sum", "attend returned the context"),
    "detached_decoder_state": (
        (RETURN_DECODER, "    return s_new.detach(), context, weights\n"),
        "test_decoder_step_gradients_reach_every_parameter", "decoder_step returned s_new"),
    "detached_decoder_context": (
        (RETURN_DECODER, "    return s_new, context.detach(), weights\n"),
        "test_decoder_step_gradients_reach_every_parameter",
        "decoder_step returned the context"),
    "detached_decoder_weights": (
        (RETURN_DECODER, "    return s_new, context, weights.detach()\n"),
        "test_decoder_step_gradients_reach_every_parameter",
        "decoder_step returned the attention weights"),
}

# -- finite stand-ins for -inf (the catalog's entry patches in -1e9 after the
# temperature; these are the other spellings of the same mistake) --------------

MASK_AFTER = 'scaled = scaled.masked_fill(~mask, float("-inf"))'
MASK_BEFORE = '''    scaled = scores / temperature
    if mask is not None:
        scaled = scaled.masked_fill(~mask, float("-inf"))
'''
FINITE = {
    "mask_minus_1e10": patched((MASK_AFTER, "scaled = scaled.masked_fill(~mask, -1e10)")),
    "mask_finfo_min": patched(
        (MASK_AFTER, "scaled = scaled.masked_fill(~mask, torch.finfo(scaled.dtype).min)")),
    "mask_1e9_before_temperature": patched((MASK_BEFORE, '''    scaled = scores
    if mask is not None:
        scaled = scaled.masked_fill(~mask, -1e9)
    scaled = scaled / temperature
''')),
}

# -- correct, written the other way --------------------------------------------

REST = REFERENCE[:REFERENCE.index("def attention_backward(")]
DECODER = REFERENCE[REFERENCE.index("def decoder_step("):]

LAYERS = REST + '''
class DotScores:
    """s = K q, one score per position."""

    def forward(self, q, K):
        self.q, self.K = q, K
        return torch.einsum("bd,btd->bt", q, K)

    def backward(self, dout):
        dq = torch.einsum("bt,btd->bd", dout, self.K)
        dK = dout.unsqueeze(-1) * self.q.unsqueeze(1)
        return dq, dK


class Softmax:
    def forward(self, s):
        self.w = masked_softmax(s)
        return self.w

    def backward(self, dout):
        w = self.w
        return w * (dout - (w * dout).sum(dim=-1, keepdim=True))


class WeightedSum:
    """c = sum_t w_t v_t."""

    def forward(self, w, V):
        self.w, self.V = w, V
        return torch.einsum("bt,btv->bv", w, V)

    def backward(self, dout):
        dw = torch.einsum("btv,bv->bt", self.V, dout)
        dV = self.w.unsqueeze(-1) * dout.unsqueeze(1)
        return dw, dV


def attention_backward(query, keys, values, grad_context):
    """Forward through the layers, then each layer's backward in reverse order."""
    scores, softmax, weighted_sum = DotScores(), Softmax(), WeightedSum()
    with torch.no_grad():  # a hand-written backward pass needs no graph
        weighted_sum.forward(softmax.forward(scores.forward(query, keys)), values)
        dw, dV = weighted_sum.backward(grad_context)
        dq, dK = scores.backward(softmax.backward(dw))
    return dq, dK, dV


''' + DECODER

MODULE_LAYERS = REST + '''
class Layer(torch.nn.Module):
    """A layer with a hand-written backward, called as layer(...) and layer.backward(dout)."""


class Scores(Layer):
    def forward(self, q, K):
        self.cache = (q, K)
        return torch.bmm(K, q.unsqueeze(-1)).squeeze(-1)

    def backward(self, dout):
        q, K = self.cache
        return torch.bmm(dout.unsqueeze(1), K).squeeze(1), dout.unsqueeze(-1) * q.unsqueeze(1)


class Softmax(Layer):
    def forward(self, s):
        self.cache = masked_softmax(s)
        return self.cache

    def backward(self, dout):
        w = self.cache
        jacobian = torch.diag_embed(w) - w.unsqueeze(-1) * w.unsqueeze(-2)  # (B, T, T)
        return torch.bmm(jacobian, dout.unsqueeze(-1)).squeeze(-1)


class Blend(Layer):
    def forward(self, w, V):
        self.cache = (w, V)
        return torch.bmm(w.unsqueeze(1), V).squeeze(1)

    def backward(self, dout):
        w, V = self.cache
        return (torch.bmm(V, dout.unsqueeze(-1)).squeeze(-1),
                torch.bmm(w.unsqueeze(-1), dout.unsqueeze(1)))


def attention_backward(query, keys, values, grad_context):
    scores, softmax, blend = Scores(), Softmax(), Blend()
    blend(softmax(scores(query, keys)), values)
    dout, grad_values = blend.backward(grad_context)
    dout = softmax.backward(dout)
    grad_query, grad_keys = scores.backward(dout)
    return grad_query, grad_keys, grad_values


''' + DECODER

BMM = '''import torch


def dot_score(query, keys):
    return torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)


def general_score(query, keys, W):
    return torch.bmm(query.unsqueeze(1) @ W, keys.transpose(1, 2)).squeeze(1)


def additive_score(query, keys, W_q, W_k, v):
    B = keys.shape[0]
    projected_keys = torch.bmm(keys, W_k.T.unsqueeze(0).expand(B, -1, -1))     # (B, T, A)
    hidden = torch.tanh(projected_keys + torch.nn.functional.linear(query, W_q).unsqueeze(1))
    return torch.bmm(hidden, v.reshape(1, -1, 1).expand(B, -1, -1)).squeeze(-1)


def masked_softmax(scores, mask=None, temperature=1.0):
    z = scores / temperature
    if mask is not None:
        z = torch.where(mask, z, torch.full_like(z, float("-inf")))
    top = z.max(dim=-1, keepdim=True).values.detach()
    top = torch.where(top == float("-inf"), torch.zeros_like(top), top)
    e = torch.exp(z - top)
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total == 0, torch.ones_like(total), total)


def attend(scores, values, mask=None, temperature=1.0):
    weights = masked_softmax(scores, mask, temperature)
    return torch.bmm(weights.unsqueeze(1), values).squeeze(1), weights


def attention_backward(query, keys, values, grad_context):
    weights = masked_softmax(dot_score(query, keys))
    grad_values = torch.bmm(weights.unsqueeze(-1), grad_context.unsqueeze(1))
    grad_weights = torch.bmm(values, grad_context.unsqueeze(-1)).squeeze(-1)
    mean = torch.bmm(weights.unsqueeze(1), grad_weights.unsqueeze(-1)).squeeze(-1)
    grad_scores = weights * (grad_weights - mean)
    grad_query = torch.bmm(grad_scores.unsqueeze(1), keys).squeeze(1)
    grad_keys = torch.bmm(grad_scores.unsqueeze(-1), query.unsqueeze(1))
    return grad_query, grad_keys, grad_values


def decoder_step(y_prev, s_prev, enc_outputs, params, enc_mask=None):
    scores = additive_score(s_prev, enc_outputs, params["W_q"], params["W_k"], params["v"])
    context, weights = attend(scores, enc_outputs, enc_mask)
    W_y, W_c = params["W_ih"].split([y_prev.shape[-1], context.shape[-1]], dim=1)
    s_new = torch.tanh(torch.addmm(params["b_ih"], y_prev, W_y.T) + context @ W_c.T
                       + torch.addmm(params["b_hh"], s_prev, params["W_hh"].T))
    return s_new, context, weights
'''

EINSUM = '''import torch


def dot_score(query, keys):
    return torch.einsum("btd,bd->bt", keys, query)


def general_score(query, keys, W):
    return torch.einsum("bi,ij,btj->bt", query, W, keys)


def additive_score(query, keys, W_q, W_k, v):
    hidden = torch.tanh(torch.einsum("ad,bd->ba", W_q, query)[:, None, :]
                        + torch.einsum("ak,btk->bta", W_k, keys))
    return torch.einsum("bta,a->bt", hidden, v)


def masked_softmax(scores, mask=None, temperature=1.0):
    z = scores / temperature
    if mask is not None:
        z = z.masked_fill(mask.logical_not(), float("-inf"))
    log_total = torch.logsumexp(z, dim=-1, keepdim=True)
    # An empty row: log_total is -inf; exp(-inf - 0) gives its zeros.
    log_total = torch.where(torch.isfinite(log_total), log_total, torch.zeros_like(log_total))
    return torch.exp(z - log_total)


def attend(scores, values, mask=None, temperature=1.0):
    weights = masked_softmax(scores, mask, temperature)
    return torch.einsum("bt,btv->bv", weights, values), weights


def attention_backward(query, keys, values, grad_context):
    w = masked_softmax(dot_score(query, keys))
    grad_w = torch.einsum("btv,bv->bt", values, grad_context)
    grad_s = w * grad_w - w * torch.einsum("bt,bt->b", w, grad_w)[:, None]
    return (torch.einsum("bt,btd->bd", grad_s, keys), torch.einsum("bt,bd->btd", grad_s, query),
            torch.einsum("bt,bv->btv", w, grad_context))


def decoder_step(y_prev, s_prev, enc_outputs, params, enc_mask=None):
    scores = additive_score(s_prev, enc_outputs, params["W_q"], params["W_k"], params["v"])
    context, weights = attend(scores, enc_outputs, enc_mask)
    x = torch.cat([y_prev, context], dim=-1)
    s_new = torch.tanh(torch.einsum("hi,bi->bh", params["W_ih"], x) + params["b_ih"]
                       + torch.einsum("hj,bj->bh", params["W_hh"], s_prev) + params["b_hh"])
    return s_new, context, weights
'''

FLOAT64 = '''import torch


def dot_score(query, keys):
    return (keys.double() @ query.double().unsqueeze(-1)).squeeze(-1).to(query.dtype)


def general_score(query, keys, W):
    return (keys.double() @ (W.double().T @ query.double().T).T.unsqueeze(-1)) \\
        .squeeze(-1).to(query.dtype)


def additive_score(query, keys, W_q, W_k, v):
    q, k = query.double(), keys.double()
    hidden = torch.tanh((q @ W_q.double().T)[:, None] + k @ W_k.double().T)
    return (hidden @ v.double()).to(query.dtype)


def masked_softmax(scores, mask=None, temperature=1.0):
    z = scores.double() / temperature
    if mask is not None:
        z = z.masked_fill(~mask, float("-inf"))
    top = z.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isinf(top), torch.zeros_like(top), top).detach()
    e = (z - top).exp()
    total = e.sum(dim=-1, keepdim=True)
    return (e / torch.where(total > 0, total, torch.ones_like(total))).to(scores.dtype)


def attend(scores, values, mask=None, temperature=1.0):
    weights = masked_softmax(scores, mask, temperature)
    context = (weights.double()[:, None, :] @ values.double())[:, 0]
    return context.to(values.dtype), weights


def attention_backward(query, keys, values, grad_context):
    dtype = query.dtype
    q, K, V, g = (t.double() for t in (query, keys, values, grad_context))
    w = masked_softmax(torch.einsum("bd,btd->bt", q, K))
    grad_w = torch.einsum("btv,bv->bt", V, g)
    grad_s = w * (grad_w - (w * grad_w).sum(-1, keepdim=True))
    return (torch.einsum("bt,btd->bd", grad_s, K).to(dtype),
            (grad_s[..., None] * q[:, None]).to(dtype), (w[..., None] * g[:, None]).to(dtype))


def decoder_step(y_prev, s_prev, enc_outputs, params, enc_mask=None):
    dtype = s_prev.dtype
    p = {name: value.double() for name, value in params.items()}
    s, enc = s_prev.double(), enc_outputs.double()
    scores = additive_score(s, enc, p["W_q"], p["W_k"], p["v"])
    context, weights = attend(scores, enc, enc_mask)
    x = torch.cat([y_prev.double(), context], dim=-1)
    s_new = torch.tanh(x @ p["W_ih"].T + p["b_ih"] + s @ p["W_hh"].T + p["b_hh"])
    return s_new.to(dtype), context.to(dtype), weights.to(dtype)
'''

CORRECT = {"layer_objects": LAYERS, "module_layers": MODULE_LAYERS, "bmm": BMM,
           "einsum_logsumexp": EINSUM, "float64_inside": FLOAT64}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attention_scoring_fairness")
    return grade_sources(tmp, "attention_scoring",
                         {**{name: patched(patch) for name, (patch, _, _) in DETACHED.items()},
                          **FINITE, **CORRECT})


@pytest.mark.parametrize("sid", sorted(CORRECT))
def test_correct_code_written_the_other_way_scores_100(batch, sid):
    result = batch[sid]
    assert result.score == result.max_score == 100, failures(result)


@pytest.mark.parametrize("sid", sorted(DETACHED))
def test_a_detached_output_loses_points_and_is_named(batch, sid):
    _, test, named = DETACHED[sid]
    result = batch[sid]
    assert result.score < 100
    failing = {t.name.split("[")[0]: t.feedback for t in result.tests if not t.passed}
    assert test in failing, sorted(failing)
    assert named + " without gradients: autograd finds no path" in failing[test], failing[test]


@pytest.mark.parametrize("sid", sorted(FINITE))
def test_a_finite_mask_constant_gets_its_own_hint(batch, sid):
    result = batch[sid]
    assert result.score < 100
    failing = [t for t in result.tests if not t.passed]
    assert any(t.name.startswith("test_fully_masked_row_is_zero_not_nan") for t in failing)
    for t in failing:
        assert "mask_with_finite_constant" in t.mistakes, (t.name, t.feedback[:400])
        assert "mask_by_zeroing_scores" not in t.mistakes, (t.name, t.feedback[:400])
