"""What assignment tests import: comparisons with feedback-quality messages,
shared hypothesis strategies, and memoised oracles."""

from .compare import (GradingFailure, assert_all_close, assert_close, assert_tensor, fail,
                      unpack)
from .memo import memoize
from .strategies import (AttentionCase, MHACase, RNNCase, ScoringCase, attention_cases,
                         float_dtypes, generator, mha_cases, random_mask, random_tensor,
                         rnn_cases, scoring_cases, seeds)

__all__ = [
    "GradingFailure", "assert_all_close", "assert_close", "assert_tensor", "fail", "unpack",
    "memoize", "AttentionCase", "MHACase", "attention_cases", "float_dtypes", "generator",
    "mha_cases", "random_mask", "random_tensor", "seeds", "ScoringCase", "scoring_cases", "RNNCase", "rnn_cases",
]
