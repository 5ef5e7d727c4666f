import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close


@given(q_len=st.integers(1, 9), k_len=st.one_of(st.none(), st.integers(1, 9)))
def test_causal_mask_matches_tril(student, q_len, k_len):
    """causal_mask(L, S) is True exactly where key j <= query i, top-left aligned
    like PyTorch's is_causal, for square and non-square (L != S) shapes."""
    S = q_len if k_len is None else k_len
    expected = torch.ones(q_len, S, dtype=torch.bool).tril()
    args = (q_len,) if k_len is None else (q_len, k_len)
    assert_close(student.causal_mask(*args), expected,
                 what=f"causal_mask({', '.join(map(str, args))})",
                 case=f"q_len={q_len}, k_len={k_len}",
                 hint="True means 'may attend'; query i sees keys 0..i, including itself. "
                      "Mind the diagonal and non-square shapes.")
