"""Comparisons whose failure messages are feedback.

Like ``pytest.approx``, a failed comparison says which element differs, by how
much, on which input (shapes, dtype and the seed that rebuilds it) and, where the
test knows a likely cause, why. Tolerances follow the dtype: float32 results of
a correct implementation written in another style (einsum or bmm, fused
projections, float64 inside) agree with the oracle well within them.
"""

from __future__ import annotations

from typing import Any

import torch

# (rtol, atol) per dtype: loose enough for reordered float32 sums, tight enough
# that a missing 1/sqrt(d_k) or a one-position mask error is far outside.
TOLERANCES = {
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
    torch.float32: (2e-4, 2e-5),
    torch.float64: (1e-7, 1e-9),
}


class GradingFailure(AssertionError):
    """A wrong answer. ``str(exc)`` is the feedback shown to the student."""


def fail(message: str, *, case: Any = None, hint: str | None = None,
         evidence: dict | None = None) -> None:
    failure = GradingFailure(_compose(message, case, hint))
    failure.evidence = evidence  # expected vs actual, for the plots of feedback.html
    raise failure


EVIDENCE_SIDE = 24  # a plotted matrix is at most 24 x 24 (a vector 96 long)


def _evidence(what: str, actual: torch.Tensor, expected: torch.Tensor, index: tuple) -> dict | None:
    """The matrix (or vector) around the first differing element, for plotting."""
    if expected.dim() == 0:
        return None
    if expected.dim() == 1:
        sl = (slice(0, 4 * EVIDENCE_SIDE),)
    else:
        sl = tuple(index[:-2]) + (slice(0, EVIDENCE_SIDE), slice(0, EVIDENCE_SIDE))
    where = f" at {list(index[:-2])}" if expected.dim() > 2 else ""
    return {"what": what + where,
            "expected": expected[sl].double().tolist(),
            "actual": actual[sl].double().tolist()}


def _localise(wrong: torch.Tensor) -> str:
    """Which positions differ, when the differences are confined to some of them:
    e.g. only head 1 of 2, or only query positions after the first."""
    if wrong.dim() < 2 or wrong.all():
        return ""
    parts = []
    for axis in range(wrong.dim()):
        size = wrong.shape[axis]
        if size < 2:
            continue
        others = [d for d in range(wrong.dim()) if d != axis]
        hit = wrong.permute(axis, *others).reshape(size, -1).any(dim=1)
        indices = hit.nonzero().flatten().tolist()
        if 0 < len(indices) < size:
            shown = _ranges(indices)
            parts.append(f"{'index' if len(indices) == 1 else 'indices'} {shown} (of {size}) "
                         f"along axis {axis}")
    if not parts:
        return ""
    return " Only " + " and ".join(parts[:3]) + " differ."


def _ranges(indices: list[int]) -> str:
    runs, start = [], indices[0]
    for a, b in zip(indices, indices[1:] + [None]):
        if b != a + 1:
            runs.append(str(start) if start == a else f"{start}-{a}")
            start = b
    return ", ".join(runs)


def _compose(message: str, case: Any, hint: str | None) -> str:
    parts = [message]
    if case is not None:
        parts.append(f"Input: {describe(case)}.")
    if hint:
        parts.append(f"Hint: {hint}")
    return "\n".join(parts)


def describe(case: Any) -> str:
    return case.describe() if hasattr(case, "describe") else str(case)


def unpack(result: Any, count: int, what: str, names: str = "") -> tuple:
    """Check that a function returned a tuple of ``count`` values."""
    if not isinstance(result, (tuple, list)) or len(result) != count:
        got = (f"a {type(result).__name__} of length {len(result)}"
               if isinstance(result, (tuple, list)) else f"a {type(result).__name__}")
        fail(f"{what} should return a tuple of {count} values{f' ({names})' if names else ''}, "
             f"but returned {got}.")
    return tuple(result)


def assert_tensor(actual: Any, *, what: str, shape=None, dtype=None, case: Any = None) -> torch.Tensor:
    """Check type, shape and dtype, with a message for each way it can be wrong."""
    if not isinstance(actual, torch.Tensor):
        fail(f"{what} should be a tensor, but is a {type(actual).__name__}.", case=case)
    if shape is not None and tuple(actual.shape) != tuple(shape):
        fail(f"{what} has shape {tuple(actual.shape)}, expected {tuple(shape)}.", case=case)
    if dtype is not None and actual.dtype != dtype:
        fail(f"{what} has dtype {actual.dtype}, expected {dtype} (outputs keep the "
             "input's dtype).", case=case)
    return actual


def assert_close(actual: Any, expected: torch.Tensor, *, what: str = "the output",
                 case: Any = None, hint: str | None = None,
                 rtol: float | None = None, atol: float | None = None) -> None:
    """Element-wise comparison with a message naming the first differing element."""
    assert_tensor(actual, what=what, shape=expected.shape, dtype=expected.dtype, case=case)
    if expected.dtype == torch.bool or not expected.is_floating_point():
        wrong = actual != expected
        if wrong.any():
            index = tuple(int(i) for i in wrong.nonzero()[0])
            fail(f"{what} differs at index {list(index)}: got {actual[index].item()}, "
                 f"expected {expected[index].item()} ({int(wrong.sum())} of {wrong.numel()} "
                 f"elements differ).{_localise(wrong)}", case=case, hint=hint,
                 evidence=_evidence(what, actual.double(), expected.double(), index))
        return
    default_rtol, default_atol = TOLERANCES.get(expected.dtype, (1e-5, 1e-8))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    a, e = actual.double(), expected.double()
    # The same criterion as below (inf equal to itself, NaN only where expected),
    # in one call: most answers pass, and only a failure needs the details.
    if torch.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True):
        return
    nan_wrong = torch.isnan(a) & ~torch.isnan(e)
    if nan_wrong.any():
        index = tuple(int(i) for i in nan_wrong.nonzero()[0])
        fail(f"{what} contains NaN (first at index {list(index)}, {int(nan_wrong.sum())} in all) "
             f"where the expected values are finite.{_localise(nan_wrong)}", case=case,
             evidence=_evidence(what, a, e, index),
             hint=hint or "NaN usually comes from a softmax over a row where every "
                          "position is masked, or from exp() of a huge score.")
    both_nan = torch.isnan(a) & torch.isnan(e)
    a, e = torch.where(both_nan, 0.0, a), torch.where(both_nan, 0.0, e)
    error = (a - e).abs()
    exact_inf = torch.isinf(e) & (a == e)
    wrong = ~((error <= atol + rtol * e.abs()) | exact_inf)
    if wrong.any():
        index = tuple(int(i) for i in wrong.nonzero()[0])
        finite = torch.where(torch.isfinite(error), error, torch.zeros_like(error))
        fail(f"{what} differs at index {list(index)}: got {a[index].item():.6g}, expected "
             f"{e[index].item():.6g}. {int(wrong.sum())} of {wrong.numel()} elements are "
             f"outside the tolerance (rtol={rtol:g}, atol={atol:g}); the largest error is "
             f"{finite.max().item():.3g}.{_localise(wrong)}", case=case, hint=hint,
             evidence=_evidence(what, a, e, index))


def assert_all_close(actual: Any, expected: dict[str, torch.Tensor], *, what: str,
                     case: Any = None, hint: str | None = None, **tolerances) -> None:
    """``assert_close`` over a dict of named tensors (gradients, parameters)."""
    if not isinstance(actual, dict):
        fail(f"{what}: expected named values, got {type(actual).__name__}.", case=case)
    for name, value in expected.items():
        if name not in actual:
            fail(f"{what}: {name} is missing.", case=case, hint=hint)
        assert_close(actual[name], value, what=f"{what} {name}", case=case, hint=hint,
                     **tolerances)
