"""What assignment tests import from the framework: comparisons with
feedback-quality messages, strategy primitives and memoisation. An
assignment's own cases and oracles live in ``assignments/<id>/grading/``."""

from .compare import (GradingFailure, assert_all_close, assert_close, assert_tensor, fail,
                      unpack)
from .memo import memoize
from .strategies import (describe_dtype, describe_shape, float_dtypes, generator, random_mask,
                         random_tensor, seeds)

__all__ = [
    "GradingFailure", "assert_all_close", "assert_close", "assert_tensor", "fail", "unpack",
    "memoize", "describe_dtype", "describe_shape", "float_dtypes", "generator", "random_mask",
    "random_tensor", "seeds",
]
