"""Trivial baselines: answers of the right shape that compute nothing.

A property such as "rows sum to one" or "never looks ahead" is also true of
uniform weights, and "masked positions get zero" of all-zero weights. A test
that checks only such a property gives points for no work. ``validate``
grades each baseline below, built from any assignment's reference with no
knowledge of it, and requires that it scores 0 apart from the tests the
assignment declares structural (``validate: structural:`` in
assignment.yaml, e.g. a module's parameter names).

Each baseline is the reference with every API function and every API class's
``forward`` wrapped: the reference's answer is computed, then every tensor in
it is replaced, keeping shape and dtype:

- ``zeros``: zeros (False for bool tensors, 0 for integers);
- ``uniform``: over the last axis, the same value on every position the
  reference's answer gives a non-zero value, e.g. uniform attention weights
  over exactly the allowed keys; bool tensors become all True;
- ``one_hot``: one-hot at the largest value of the reference's answer along
  the last axis (a hard attention that picks an allowed key);
- ``random``: seeded random values of the same shape.

Gradients never flow through a baseline's answers.
"""

from __future__ import annotations

KINDS = ("zeros", "uniform", "one_hot", "random")

_WRAPPER = '''

# ---- trivial baseline "{kind}" (autograder/baselines.py) ----
def _autograder_baseline():
    import functools as _functools

    import torch as _torch

    def degenerate(value):
        if isinstance(value, _torch.Tensor):
            value = value.detach()
            if value.dtype == _torch.bool:
                return {bool_expr}
            if not value.is_floating_point() and not value.is_complex():
                return _torch.zeros_like(value)
            return {float_expr}
        if isinstance(value, (list, tuple)):
            return type(value)(degenerate(v) for v in value) if type(value) in (list, tuple) \\
                else type(value)(*(degenerate(v) for v in value))
        if isinstance(value, dict):
            return {{k: degenerate(v) for k, v in value.items()}}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return type(value)(0)
        return value

    def support_uniform(value):
        if value.dim() == 0:
            return _torch.ones_like(value)
        support = (value != 0).to(value.dtype)
        return support / support.sum(-1, keepdim=True).clamp_min(1)

    def one_hot(value):
        if value.dim() == 0 or value.shape[-1] == 0:
            return _torch.zeros_like(value)
        hot = _torch.zeros_like(value)
        return hot.scatter(-1, value.abs().argmax(-1, keepdim=True), 1)

    def random_like(value):
        generator = _torch.Generator().manual_seed(0)
        return _torch.rand(value.shape, generator=generator, dtype=_torch.float64).to(value.dtype)

    def wrap(function):
        @_functools.wraps(function)
        def baseline(*args, **kwargs):
            return degenerate(function(*args, **kwargs))
        return baseline

    namespace = globals()
    for name in {functions!r}:
        if callable(namespace.get(name)):
            namespace[name] = wrap(namespace[name])
    for name in {classes!r}:
        cls = namespace.get(name)
        if isinstance(cls, type) and hasattr(cls, "forward"):
            cls.forward = wrap(cls.forward)


_autograder_baseline()
'''

_EXPRESSIONS = {
    "zeros": ("_torch.zeros_like(value)", "_torch.zeros_like(value)"),
    "uniform": ("_torch.ones_like(value)", "support_uniform(value)"),
    "one_hot": ("_torch.zeros_like(value)", "one_hot(value)"),
    "random": ("random_like(value) > 0.5", "random_like(value)"),
}


def source(reference: str, kind: str, functions: tuple[str, ...],
           classes: tuple[str, ...]) -> str:
    """The baseline ``kind`` of a reference module's source."""
    bool_expr, float_expr = _EXPRESSIONS[kind]
    return reference + _WRAPPER.format(kind=kind, bool_expr=bool_expr, float_expr=float_expr,
                                       functions=tuple(functions), classes=tuple(classes))
