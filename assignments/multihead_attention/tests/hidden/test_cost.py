"""Hidden tests of attention_cost: self-attention is O(n^2) in time and memory."""

import torch
from hypothesis import given, strategies as st
from torch.utils.flop_counter import FlopCounterMode

from autograder.testing import fail, memoize


@memoize
def measured_flops(seq_len, d_model, n_heads, batch):
    """FLOPs of one self-attention forward of torch's MultiheadAttention, counted
    by torch.utils.flop_counter (2 per multiply-add, softmax ignored). With
    need_weights=True it runs the explicit bmm path; the fused CPU kernel it
    takes otherwise is not counted by FlopCounterMode."""
    mha = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True)
    x = torch.zeros(batch, seq_len, d_model)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        mha(x, x, x, need_weights=True)
    return counter.get_total_flops()


@given(n=st.integers(1, 40), h=st.sampled_from([1, 2, 4]), head=st.integers(1, 8),
       batch=st.integers(1, 3), bytes_per_element=st.sampled_from([2, 4, 8]))
def test_attention_cost_matches_flop_counter(student, n, h, head, batch, bytes_per_element):
    """flops equal what FlopCounterMode counts for a self-attention forward, and
    score_bytes is the size of the (B, h, n, n) attention matrix."""
    d = h * head
    cost = student.attention_cost(n, d, h, batch=batch, bytes_per_element=bytes_per_element)
    where = f"seq_len={n}, d_model={d}, n_heads={h}, batch={batch}, bytes={bytes_per_element}"
    if not isinstance(cost, dict) or {"flops", "score_bytes"} - set(cost):
        fail(f"attention_cost should return a dict with 'flops' and 'score_bytes', got {cost!r}.")
    expected = measured_flops(n, d, h, batch)
    if cost["flops"] != expected:
        fail(f"flops = {cost['flops']}, but FlopCounterMode counts {expected} ({where}).",
             hint="count 2 FLOPs per multiply-add: four (B*n, d) x (d, d) projections and "
                  "two batched matmuls, q k^T and weights @ v, each 2*B*n^2*d over all heads.")
    expected_bytes = batch * h * n * n * bytes_per_element
    if cost["score_bytes"] != expected_bytes:
        fail(f"score_bytes = {cost['score_bytes']}, expected {expected_bytes} ({where}).",
             hint="one score per (batch, head, query, key): B*h*n^2 elements.")


@given(n=st.integers(64, 4096), d=st.sampled_from([8, 64, 512]))
def test_attention_cost_grows_quadratically(student, n, d):
    """Doubling the sequence length multiplies score_bytes by exactly 4 and the
    n^2 term of the flops by 4: the reason long contexts are expensive."""
    small, large = student.attention_cost(n, d, 8 if d % 8 == 0 else 1), \
        student.attention_cost(2 * n, d, 8 if d % 8 == 0 else 1)
    if large["score_bytes"] != 4 * small["score_bytes"]:
        fail(f"score_bytes grows from {small['score_bytes']} to {large['score_bytes']} when "
             f"seq_len doubles from {n}; it should grow 4x.")
    # flops(2n) - 2 flops(n) cancels the projections (linear in n) and leaves 8 n^2 d.
    if large["flops"] - 2 * small["flops"] != 8 * n * n * d:
        fail(f"after removing the terms linear in seq_len, flops should grow with seq_len^2 "
             f"(seq_len={n}, d_model={d}).", hint="the attention matmuls cost 4*B*n^2*d.")
