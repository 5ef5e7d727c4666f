"""Forbidden means the operation, not its spelling; expected exceptions are typed.

Each assignment grades one batch: its reference, copies of it with one
function re-implemented through a private or aliased path of a forbidden
kernel (caught when it runs, with the file and line in the feedback), correct
code that only *mentions* forbidden names (full marks), and, for
multihead_attention, submissions that raise the wrong way.
"""

from __future__ import annotations

import re

import pytest

from autograder import assignment as assignments
from autograder.sandbox import tripwire
from conftest import ROOT, failed, grade_batch


def _reference(assignment_id: str) -> str:
    return (ROOT / "reference" / f"{assignment_id}.py").read_text()


def _replace(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


def _line(source: str, text: str) -> int:
    """The line of ``source`` holding ``text`` (once)."""
    lines = [n for n, line in enumerate(source.splitlines(), 1) if text in line]
    assert len(lines) == 1, (text, lines)
    return lines[0]


def _grade(tmp_path_factory, assignment_id: str, submissions: dict[str, str]) -> dict:
    tmp = tmp_path_factory.mktemp(assignment_id)
    folder = tmp / "subs"
    folder.mkdir()
    for name, source in submissions.items():
        (folder / f"{name}.py").write_text(source)
    outcome, results = grade_batch(tmp, sorted(folder.iterdir()), jobs=2,
                                   assignment=assignment_id)
    assert not outcome.errors, outcome.errors
    return results


def _caught(result, rule: str, where: str) -> list:
    """The failed tests of ``result``; each must say it used ``rule`` at ``where``."""
    lost = [t for t in result.tests if not t.passed]
    assert lost, "no test lost its points"
    expected = f"This test used {rule} ({where}), which this assignment does not allow"
    for test in lost:
        assert test.feedback.startswith(expected), (test.name, test.feedback[:300])
    return lost


# -- the rules themselves -------------------------------------------------------
@pytest.mark.parametrize("assignment_id", assignments.available())
def test_every_operator_in_the_rules_exists(assignment_id):
    """A misspelt operator would silently watch nothing."""
    for rule in assignments.load(assignment_id).forbidden:
        plan = rule.as_rule()["plan"]
        assert all(tripwire.overloads(op) for op in rule.ops if op != tripwire.ENGINE)
        assert bool(plan["overloads"]) or plan["engine"] or not rule.ops


# -- recurrent_cells ------------------------------------------------------------
LSTM_BODY = """    h, c = state
    gates = _affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    c_new = f * c + i * torch.tanh(g)   # the additive path that lets gradients survive
    h_new = o * torch.tanh(c_new)
    return h_new, c_new
"""


@pytest.fixture(scope="module")
def recurrent(tmp_path_factory):
    ref = _reference("recurrent_cells")
    subs = {
        "reference": ref,
        "vf_lstm_cell": _replace(ref, LSTM_BODY, "    return torch._VF.lstm_cell("
                                 "x, state, W_ih, W_hh, b_ih, b_hh)\n"),
        "ops_lstm_cell": _replace(ref, LSTM_BODY, "    return tuple(torch.ops.aten.lstm_cell.default("
                                  "x, list(state), W_ih, W_hh, b_ih, b_hh))\n"),
        "names_only": _replace(
            ref, "\nimport torch\n",
            "\nimport torch\n\n# Not used here: torch.nn.LSTM, torch.nn.LSTMCell, torch._VF.lstm_cell.\n"
            'NAMES = {"lstm": "LSTM", "gru": "GRU", "cell": "torch.nn.LSTMCell", '
            '"kernel": "lstm_cell"}\n'),
        "uses_torch_lstmcell": (ROOT / "examples" / "submissions" / "recurrent_cells" /
                                "uses_torch_lstmcell.py").read_text(),
    }
    return subs, _grade(tmp_path_factory, "recurrent_cells", subs)


def test_recurrent_reference_and_mere_mentions_score_100(recurrent):
    _, results = recurrent
    assert results["reference"].score == 100
    assert results["names_only"].score == 100  # a string "LSTM" and a comment are no use


@pytest.mark.parametrize("sid, spelling", [("vf_lstm_cell", "torch._VF.lstm_cell"),
                                           ("ops_lstm_cell", "torch.ops.aten.lstm_cell")])
def test_lstm_kernel_under_any_name_costs_the_lstm_tests(recurrent, sid, spelling):
    subs, results = recurrent
    result = results[sid]
    where = f"recurrent_cells.py, line {_line(subs[sid], spelling)}, in lstm_cell"
    lost = {t.name.split("[")[0] for t in _caught(result, "torch.lstm_cell", where)}
    assert {"test_lstm_cell_small", "test_lstm_cell_matches_torch"} <= lost
    assert not lost & {"test_rnn_cell_matches_torch", "test_gru_cell_matches_torch",
                       "test_clip_grad_norm_matches_torch"}
    assert 0 < result.score < 100


def test_lstm_cell_module_is_named_as_the_class(recurrent):
    """nn.LSTMCell runs the same kernel: the feedback names the class the student
    used, at the line that ran it."""
    subs, results = recurrent
    source = subs["uses_torch_lstmcell"]
    line = _line(source, "return cell(x, state)")
    feedback = "\n".join(t.feedback for t in results["uses_torch_lstmcell"].tests if not t.passed)
    assert f"This test used torch.nn.LSTMCell (recurrent_cells.py, line {line}, in lstm_cell" \
        in feedback
    assert "torch.lstm_cell" not in feedback


# -- attention_scoring ----------------------------------------------------------
SOFTMAX_BODY = """    row_max = scaled.amax(dim=-1, keepdim=True).detach()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp = torch.exp(scaled - row_max)
    total = exp.sum(dim=-1, keepdim=True)
    return exp / torch.where(total > 0, total, torch.ones_like(total))
"""
BACKWARD_BODY = """    scores = torch.einsum("bd,btd->bt", query, keys)
    weights = masked_softmax(scores)
    grad_values = weights.unsqueeze(-1) * grad_context.unsqueeze(1)        # (B, T, Dv)
    grad_weights = torch.einsum("btv,bv->bt", values, grad_context)        # (B, T)
    # Softmax Jacobian: dL/ds_t = w_t (dL/dw_t - sum_u w_u dL/dw_u)
    grad_scores = weights * (grad_weights - (weights * grad_weights).sum(-1, keepdim=True))
    grad_query = torch.einsum("bt,btd->bd", grad_scores, keys)
    grad_keys = grad_scores.unsqueeze(-1) * query.unsqueeze(1)
    return grad_query, grad_keys, grad_values
"""
# CS231n style: each layer object has forward() and its own, hand-written backward().
LAYERS = '''

class _Dot:
    def forward(self, q, k):
        self.q, self.k = q, k
        return torch.einsum("bd,btd->bt", q, k)

    def backward(self, grad):
        return torch.einsum("bt,btd->bd", grad, self.k), grad.unsqueeze(-1) * self.q.unsqueeze(1)


class _Softmax:
    def forward(self, scores):
        self.w = torch.softmax(scores, dim=-1)  # allowed: only masked_softmax may not
        return self.w

    def backward(self, grad):
        return self.w * (grad - (self.w * grad).sum(-1, keepdim=True))


class _Mix:
    def forward(self, w, v):
        self.w, self.v = w, v
        return torch.einsum("bt,btv->bv", w, v)

    def backward(self, grad):
        return torch.einsum("btv,bv->bt", self.v, grad), self.w.unsqueeze(-1) * grad.unsqueeze(1)
'''
LAYER_BACKWARD = """    dot, softmax, mix = _Dot(), _Softmax(), _Mix()
    mix.forward(softmax.forward(dot.forward(query, keys)), values)
    grad_weights, grad_values = mix.backward(grad_context)
    grad_query, grad_keys = dot.backward(softmax.backward(grad_weights))
    return grad_query, grad_keys, grad_values
"""
FUNC_BACKWARD = """    def context(q, k, v):
        return torch.einsum("bt,btv->bv", masked_softmax(torch.einsum("bd,btd->bt", q, k)), v)
    _, pullback = torch.func.vjp(context, query, keys, values)
    return pullback(grad_context)
"""


@pytest.fixture(scope="module")
def scoring(tmp_path_factory):
    ref = _reference("attention_scoring")
    subs = {
        "reference": ref,
        "private_softmax": _replace(ref, SOFTMAX_BODY, "    return torch.nan_to_num("
                                    "torch._softmax(scaled, -1, False), nan=0.0)\n"),
        "ops_softmax": _replace(ref, SOFTMAX_BODY, "    return torch.nan_to_num("
                                "torch.ops.aten._softmax.default(scaled, -1, False), nan=0.0)\n"),
        "layer_objects": _replace(ref, BACKWARD_BODY, LAYER_BACKWARD).replace(
            "\n\ndef decoder_step(", LAYERS + "\n\ndef decoder_step(", 1),
        "func_vjp": _replace(ref, BACKWARD_BODY, FUNC_BACKWARD),
    }
    return subs, _grade(tmp_path_factory, "attention_scoring", subs)


def test_scoring_reference_and_layer_objects_score_100(scoring):
    """Layer objects with their own .backward() are not autograd, and softmax is
    allowed outside masked_softmax."""
    _, results = scoring
    assert results["reference"].score == 100
    assert results["layer_objects"].score == 100, failed(results["layer_objects"])


@pytest.mark.parametrize("sid, spelling", [("private_softmax", "torch._softmax("),
                                           ("ops_softmax", "torch.ops.aten._softmax")])
def test_private_softmax_costs_the_softmax_tests(scoring, sid, spelling):
    subs, results = scoring
    result = results[sid]
    where = f"attention_scoring.py, line {_line(subs[sid], spelling)}, in masked_softmax"
    lost = {t.name.split("[")[0] for t in _caught(result, "torch.softmax", where)}
    assert {"test_masked_softmax_matches_torch", "test_shift_invariance"} <= lost
    assert not lost & {"test_dot_score_matches_torch", "test_additive_score_matches_torch"}


def test_autograd_through_torch_func_is_autograd(scoring):
    subs, results = scoring
    where = (f"attention_scoring.py, line {_line(subs['func_vjp'], 'return pullback(')}, "
             "in attention_backward")
    lost = {t.name.split("[")[0] for t in _caught(results["func_vjp"], "torch.autograd", where)}
    assert "test_attention_backward_matches_autograd" in lost
    assert "test_masked_softmax_matches_torch" not in lost


# -- multihead_attention --------------------------------------------------------
SDPA_RETURN = "    return weights @ v, weights\n"
MHA_FORWARD = """        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self.q_proj(query), self.n_heads)
"""
NATIVE_MHA = """        key = query if key is None else key
        value = key if value is None else value
        bias = [p.bias if p.bias is not None else torch.zeros_like(p.weight[0])
                for p in (self.q_proj, self.k_proj, self.v_proj, self.out_proj)]
        weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        return torch._native_multi_head_attention(
            query, key, value, self.d_model, self.n_heads, weight, torch.cat(bias[:3]),
            self.out_proj.weight, bias[3], None, True, False)
        q = split_heads(self.q_proj(query), self.n_heads)
"""
WRAPS_TORCH_MHA = """        key = query if key is None else key
        value = key if value is None else value
        torch_mha = nn.MultiheadAttention(self.d_model, self.n_heads, batch_first=True,
                                          dtype=query.dtype)
        return torch_mha(query, key, value, need_weights=True, average_attn_weights=False)
        q = split_heads(self.q_proj(query), self.n_heads)
"""


@pytest.fixture(scope="module")
def attention(tmp_path_factory):
    ref = _reference("multihead_attention")
    subs = {
        "reference": ref,
        # softmax(log w) v = w v: the right numbers, from the forbidden kernel
        "ops_sdpa": _replace(ref, SDPA_RETURN, "    out = torch.ops.aten.scaled_dot_product_attention("
                             "torch.zeros_like(q), torch.zeros_like(k), v, attn_mask=weights.log())\n"
                             "    return out, weights\n"),
        "native_mha": _replace(ref, MHA_FORWARD, NATIVE_MHA),
        "wraps_torch_mha": _replace(ref, MHA_FORWARD, WRAPS_TORCH_MHA),
        "uses_torch_sdpa": (ROOT / "examples" / "submissions" / "multihead_attention" /
                            "uses_torch_sdpa.py").read_text(),
        "raise_on_import": "raise ValueError\n",
        "own_subclass": _replace(ref, "\ndef causal_mask(",
                                 "\nclass HeadsError(ValueError):\n    pass\n\n\ndef causal_mask(")
        .replace("raise ValueError(", "raise HeadsError("),
        "shadowed_name": _replace(ref, "\ndef causal_mask(",
                                  "\nclass ValueError(Exception):\n    pass\n\n\ndef causal_mask("),
    }
    return subs, _grade(tmp_path_factory, "multihead_attention", subs)


def test_attention_reference_scores_100(attention):
    assert attention[1]["reference"].score == 100


def test_sdpa_kernel_through_torch_ops_costs_the_sdpa_tests(attention):
    subs, results = attention
    line = _line(subs["ops_sdpa"], "torch.ops.aten.scaled_dot_product_attention")
    where = f"multihead_attention.py, line {line}, in scaled_dot_product_attention"
    lost = {t.name.split("[")[0] for t in _caught(
        results["ops_sdpa"], "torch.nn.functional.scaled_dot_product_attention", where)}
    assert {"test_sdpa_matches_torch_without_mask", "test_sdpa_is_causal_matches_torch"} <= lost
    assert not lost & {"test_causal_mask_matches_tril", "test_split_heads_layout"}


def test_native_mha_kernel_costs_the_module_tests(attention):
    subs, results = attention
    line = _line(subs["native_mha"], "torch._native_multi_head_attention(")
    where = f"multihead_attention.py, line {line}, in MultiHeadAttention.forward"
    lost = {t.name.split("[")[0] for t in _caught(
        results["native_mha"], "torch.nn.MultiheadAttention", where)}
    assert "test_mha_self_attention_matches_torch" in lost
    assert not lost & {"test_sdpa_matches_torch_without_mask", "test_causal_mask_matches_tril"}


def test_torch_module_is_named_not_the_kernels_it_runs(attention):
    """nn.MultiheadAttention runs multi_head_attention_forward and attention
    kernels; the rule that matters is the class the student used."""
    subs, results = attention
    line = _line(subs["wraps_torch_mha"], "return torch_mha(")
    lost = _caught(results["wraps_torch_mha"], "torch.nn.MultiheadAttention",
                   f"multihead_attention.py, line {line}, in MultiHeadAttention.forward")
    assert not any("scaled_dot_product_attention (" in t.feedback
                   or "multi_head_attention_forward" in t.feedback for t in lost)


def test_bundled_sdpa_example_is_still_caught(attention):
    result = attention[1]["uses_torch_sdpa"]
    assert 0 < result.score < 100
    feedback = "\n".join(t.feedback for t in result.tests if not t.passed)
    assert re.search(r"This test used torch\.nn\.functional\.scaled_dot_product_attention "
                     r"\(multihead_attention\.py, line \d+, in ", feedback)


EXCEPTION_TESTS = {"test_split_heads_rejects_indivisible", "test_mha_structure"}


def _points(result, names) -> float:
    return sum(t.score for t in result.tests if t.name.split("[")[0] in names)


def test_import_error_earns_nothing_on_exception_tests(attention):
    result = attention[1]["raise_on_import"]
    assert result.score == 0
    feedback = [t.feedback for t in result.tests if t.name.split("[")[0] in EXCEPTION_TESTS]
    assert feedback and all("could not be imported" in f or "importing your module" in f
                            for f in feedback)


def test_students_own_subclass_of_valueerror_counts(attention):
    assert attention[1]["own_subclass"].score == 100, failed(attention[1]["own_subclass"])


def test_a_class_merely_named_valueerror_does_not(attention):
    result = attention[1]["shadowed_name"]
    assert failed(result) == EXCEPTION_TESTS
    assert _points(result, EXCEPTION_TESTS) == 0
    feedback = "\n".join(t.feedback for t in result.tests if not t.passed)
    assert "it raised multihead_attention.ValueError, which does not derive from Python's " \
        "ValueError" in feedback
