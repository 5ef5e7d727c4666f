"""multihead_attention is fair both ways, proven in one graded batch:

- every differentiable output is checked against the oracle's gradients: a
  reference that detaches the attention weights (of scaled_dot_product_attention
  or of MultiHeadAttention) loses points, and so does a key mask filled with
  -1e9 where a float attn_mask meets a batch element with no real key;
- common real mistakes, each written as students write it (not only as the
  catalog's patch), lose points and get their own hint: masks filled with a
  finite constant, dropout left on, assert instead of ValueError, a residual
  connection or a LayerNorm inside the module, head-averaged weights;
- correct code written the other way (a fused qkv projection, einsum everywhere,
  float64 inside, masks built with torch.where) never loses a point.
"""

import pytest

from conftest import ROOT, failed, failures, grade_sources, with_definitions
from conftest import patched as patched_source

REFERENCE = (ROOT / "reference" / "multihead_attention.py").read_text()
ID = "multihead_attention"


def patched(*pairs: tuple[str, str]) -> str:
    return patched_source(REFERENCE, *pairs)


RETURN_SDPA = "    return weights @ v, weights\n"
SPLIT = "return x.reshape(B, L, n_heads, E // n_heads).transpose(1, 2)"
RETURN_MHA = "return self.out_proj(merge_heads(out)), weights"
FILL_SDPA = 'scores = scores.masked_fill(~allowed, float("-inf"))'
FILL_KEYS = 'mask = mask.masked_fill(~keys, float("-inf"))'
INIT_OUT = "        self.out_proj = nn.Linear(d_model, d_model, bias=bias)\n"
RAISE_SPLIT = ('    if E % n_heads != 0:\n        raise ValueError(f"embedding size {E} is not '
               'divisible by {n_heads} heads")')
RAISE_MHA = ('        if d_model % n_heads != 0:\n            raise ValueError(f"d_model={d_model} '
             'is not divisible by n_heads={n_heads}")')

# Mutants of the reference that scored 100 before the tests checked them ->
# the test that must catch each now.
MUTANTS = {
    "detached_sdpa_weights": (patched((RETURN_SDPA, "    return weights @ v, weights.detach()\n")),
                              "test_sdpa_gradients_match_torch"),
    "detached_mha_weights": (patched((RETURN_MHA, RETURN_MHA + ".detach()")),
                             "test_mha_gradients_match_torch"),
    "key_mask_minus_1e9": (patched((FILL_KEYS, "mask = mask.masked_fill(~keys, -1e9)")),
                           "test_mha_fully_masked_keys_give_zeros"),
    # split_heads and merge_heads are differentiable API functions of their own,
    # whether or not a student's module calls them.
    "detached_split_heads": (patched((SPLIT, SPLIT + ".detach()")), "test_split_heads_layout"),
    "detached_merge_heads": (patched(("return x.transpose(1, 2).reshape(B, L, h * d)",
                                      "return x.transpose(1, 2).reshape(B, L, h * d).detach()")),
                             "test_merge_heads_inverts_split"),
}

# Real mistakes, as students write them -> (tests that must fail, the
# cataloged mistake whose hint they get there).
MISTAKES = {
    "sdpa_fill_minus_1e9": (patched((FILL_SDPA, "scores = scores.masked_fill(~allowed, -1e9)")),
                            {"test_sdpa_bool_mask_matches_torch"},
                            "mask_filled_with_finite_value"),
    "sdpa_where_minus_1e10": (patched((FILL_SDPA, "scores = torch.where(allowed, scores, "
                                       "torch.full_like(scores, -1e10))")),
                              {"test_sdpa_bool_mask_matches_torch"},
                              "mask_filled_with_finite_value"),
    "key_mask_additive_minus_1e10": (patched((FILL_KEYS, "mask = mask + (~keys).to(mask.dtype) "
                                              "* -1e10")),
                                     {"test_mha_fully_masked_keys_give_zeros"},
                                     "key_mask_filled_with_finite_value"),
    # F.dropout is active unless training=False: random in both functions.
    "functional_dropout": (patched((RETURN_SDPA, "    weights = torch.nn.functional.dropout("
                                    "weights, 0.1)\n" + RETURN_SDPA)),
                           {"test_sdpa_matches_torch_without_mask",
                            "test_mha_self_attention_matches_torch"}, "dropout_left_on"),
    # The Annotated Transformer: nn.Dropout handed to the attention function.
    "annotated_dropout": (patched(
        ("def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):",
         "def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None,\n"
         "                                 dropout=None):"),
        (RETURN_SDPA, "    if dropout is not None:\n        weights = dropout(weights)\n"
         + RETURN_SDPA),
        (INIT_OUT, INIT_OUT + "        self.dropout = nn.Dropout(p=0.1)\n"),
        ("attn_mask=mask, is_causal=is_causal)",
         "attn_mask=mask, is_causal=is_causal,\n"
         "                                                    dropout=self.dropout)")),
        {"test_mha_self_attention_matches_torch"}, "dropout_left_on"),
    # minGPT: dropout on the output projection, left in training mode.
    "mingpt_resid_dropout": (patched(
        (INIT_OUT, INIT_OUT + "        self.resid_dropout = nn.Dropout(0.1)\n"),
        (RETURN_MHA, "return self.resid_dropout(self.out_proj(merge_heads(out))), weights")),
        {"test_mha_self_attention_matches_torch"}, "dropout_left_on"),
    "assert_in_split_heads": (patched((RAISE_SPLIT, "    assert E % n_heads == 0, "
                                       "'E must be divisible by n_heads'")),
                              {"test_split_heads_rejects_indivisible"},
                              "assert_instead_of_value_error"),
    "assert_in_module": (patched((RAISE_MHA, "        assert d_model % n_heads == 0")),
                         {"test_mha_structure"}, "assert_instead_of_value_error"),
    "residual": (patched((RETURN_MHA, "return self.out_proj(merge_heads(out)) + query, weights")),
                 {"test_mha_self_attention_matches_torch"}, "residual_inside_attention"),
    "add_and_norm": (patched(
        (INIT_OUT, INIT_OUT + "        self.ln = nn.LayerNorm(d_model)\n"),
        (RETURN_MHA, "out = self.out_proj(merge_heads(out))\n"
                     "        return self.ln(out + query), weights")),
        {"test_mha_self_attention_matches_torch"}, "layernorm_inside_attention"),
    "head_averaged_weights": (patched((RETURN_MHA, "return self.out_proj(merge_heads(out)), "
                                       "weights.sum(dim=1) / self.n_heads")),
                              {"test_mha_self_attention_matches_torch",
                               "test_mha_cross_attention_matches_torch"},
                              "head_averaged_weights"),
}

# -- correct submissions in other styles ---------------------------------

FUSED_QKV = with_definitions(REFERENCE, '''
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    """The three input projections as one matrix product, built in forward from
    q_proj, k_proj and v_proj's weights (self-attention), or split again."""

    def __init__(self, d_model, n_heads, bias=True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key=None, value=None, attn_mask=None, key_mask=None,
                is_causal=False):
        projections = (self.q_proj, self.k_proj, self.v_proj)
        weight = torch.cat([p.weight for p in projections])
        bias = None if self.q_proj.bias is None else torch.cat([p.bias for p in projections])
        if key is None and value is None:
            q, k, v = F.linear(query, weight, bias).chunk(3, dim=-1)
        else:
            key = query if key is None else key
            value = key if value is None else value
            weights, biases = weight.chunk(3), (None,) * 3 if bias is None else bias.chunk(3)
            q, k, v = (F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
        q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))
        if key_mask is not None:
            keys = key_mask[:, None, None, :]
            if attn_mask is None:
                attn_mask = keys
            elif attn_mask.dtype == torch.bool:
                attn_mask = attn_mask & keys
            else:
                attn_mask = attn_mask.masked_fill(~keys, float("-inf"))
        out, attn = scaled_dot_product_attention(q, k, v, attn_mask, is_causal)
        return self.out_proj(merge_heads(out)), attn
''')

EINSUM = with_definitions(REFERENCE, '''
def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    L, S, E = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = E ** -0.5 if scale is None else scale
    scores = torch.einsum("...le,...se->...ls", q, k) * scale
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        scores = scores + attn_mask
    allowed = attn_mask if attn_mask is not None and attn_mask.dtype == torch.bool else None
    if is_causal:
        causal = causal_mask(L, S)
        allowed = causal if allowed is None else allowed & causal
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    top = scores.amax(-1, keepdim=True).detach()
    top = top.masked_fill(top == float("-inf"), 0.0)
    exp = torch.exp(scores - top)
    total = torch.einsum("...ls->...l", exp).unsqueeze(-1)
    weights = exp / total.clamp_min(torch.finfo(exp.dtype).tiny)
    return torch.einsum("...ls,...sv->...lv", weights, v), weights


def split_heads(x, n_heads):
    B, L, E = x.shape
    if E % n_heads:
        raise ValueError("E is not divisible by n_heads")
    return torch.einsum("blhd->bhld", x.reshape(B, L, n_heads, E // n_heads))


def merge_heads(x):
    B, h, L, d = x.shape
    return torch.einsum("bhld->blhd", x).reshape(B, L, h * d)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, bias=True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError("d_model is not divisible by n_heads")
        self.n_heads = n_heads
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(d_model, d_model, bias=bias))

    @staticmethod
    def _linear(layer, x):
        y = torch.einsum("ble,fe->blf", x, layer.weight)
        return y if layer.bias is None else y + layer.bias

    def forward(self, query, key=None, value=None, attn_mask=None, key_mask=None,
                is_causal=False):
        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self._linear(self.q_proj, query), self.n_heads)
        k = split_heads(self._linear(self.k_proj, key), self.n_heads)
        v = split_heads(self._linear(self.v_proj, value), self.n_heads)
        mask = attn_mask
        if key_mask is not None:
            keys = key_mask[:, None, None, :]
            if mask is None:
                mask = keys
            elif mask.dtype == torch.bool:
                mask = mask & keys
            else:
                mask = mask.masked_fill(~keys, float("-inf"))
        out, weights = scaled_dot_product_attention(q, k, v, mask, is_causal)
        return self._linear(self.out_proj, merge_heads(out)), weights
''')

# The reference's function under another name, called in float64 by a wrapper.
FLOAT64_INSIDE = REFERENCE.replace(
    "def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):",
    "def _sdpa_native(q, k, v, attn_mask=None, is_causal=False, scale=None):", 1) + '''

def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """The same math in float64, cast back to the input's dtype."""
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        attn_mask = attn_mask.double()
    out, weights = _sdpa_native(q.double(), k.double(), v.double(), attn_mask, is_causal, scale)
    return out.to(q.dtype), weights.to(q.dtype)
'''

WHERE_MASKS = with_definitions(REFERENCE, '''
def causal_mask(q_len, k_len=None):
    k_len = q_len if k_len is None else k_len
    i = torch.arange(q_len)[:, None]
    j = torch.arange(k_len)[None, :]
    return torch.where(j <= i, True, False)


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = torch.where(attn_mask, scores, neg_inf)
        else:
            scores = scores + attn_mask
    if is_causal:
        scores = torch.where(causal_mask(q.shape[-2], k.shape[-2]), scores, neg_inf)
    alive = torch.isfinite(scores).any(dim=-1, keepdim=True)
    safe = torch.where(alive, scores, torch.zeros_like(scores))
    weights = torch.where(alive, torch.softmax(safe, dim=-1), torch.zeros_like(safe))
    return weights @ v, weights
''').replace(FILL_KEYS, 'mask = torch.where(keys, mask, torch.tensor(float("-inf"), '
                        'dtype=mask.dtype))')

STYLES = {"fused_qkv": FUSED_QKV, "einsum_everywhere": EINSUM, "float64_inside": FLOAT64_INSIDE,
          "where_masks": WHERE_MASKS}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mha_fairness")
    assert REFERENCE not in STYLES.values()
    return grade_sources(tmp, ID, {"reference": REFERENCE,
                                   **{sid: source for sid, (source, _) in MUTANTS.items()},
                                   **{sid: source for sid, (source, _, _) in MISTAKES.items()},
                                   **STYLES})


@pytest.mark.parametrize("sid", ["reference", *STYLES])
def test_correct_styles_get_full_marks(batch, sid):
    result = batch[sid]
    assert result.score == result.max_score == 100, failures(result)


def _feedback(result, test: str) -> str:
    return "\n".join(t.feedback for t in result.tests
                     if t.name.split("[")[0] == test and not t.passed)


@pytest.mark.parametrize("sid", list(MUTANTS))
def test_mutants_that_scored_100_lose_points(batch, sid):
    result = batch[sid]
    must_fail = MUTANTS[sid][1]
    assert result.score < 100
    assert must_fail in failed(result), failures(result)


def test_detached_outputs_are_named(batch):
    for sid, said in (("detached_sdpa_weights", "scaled_dot_product_attention returned weights"),
                      ("detached_mha_weights", "MultiHeadAttention.forward returned weights"),
                      ("detached_split_heads", "split_heads returned its output"),
                      ("detached_merge_heads", "merge_heads returned its output")):
        feedback = _feedback(batch[sid], MUTANTS[sid][1])
        assert f"{said} without gradients" in feedback, feedback[:400]


@pytest.mark.parametrize("sid", list(MISTAKES))
def test_real_mistakes_get_their_own_hint(batch, sid):
    _, must_fail, mistake = MISTAKES[sid]
    result = batch[sid]
    assert result.score < 100
    assert must_fail <= failed(result), failures(result)
    for test in result.tests:
        if test.name.split("[")[0] in must_fail and not test.passed:
            # Its own hint, and no other mistake's.
            assert test.mistakes == [mistake], (test.name, test.mistakes, test.feedback[:400])


def test_randomness_is_told_without_random_numbers(batch):
    """The failure names the inputs, not values that change from run to run."""
    for sid in ("functional_dropout", "annotated_dropout", "mingpt_resid_dropout"):
        feedback = _feedback(batch[sid], "test_mha_self_attention_matches_torch")
        assert "returned different results for the same x" in feedback, feedback[:400]


def test_assert_is_told_the_api_asks_for_value_error(batch):
    feedback = _feedback(batch["assert_in_split_heads"], "test_split_heads_rejects_indivisible")
    assert "raised AssertionError; it should raise ValueError" in feedback, feedback[:400]
