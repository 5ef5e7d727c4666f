"""Where gradients go in and come out of nested arguments and results.

A differentiable function may take a tuple (an LSTM state ``(h, c)``, a tuple
of weights) and return one (``(outputs, (h_n, c_n))``). A gradient leaf is
named by a *path* of positions and keys from the call's arguments
(``(1, 0)``: the first tensor inside the second argument), and upstream
gradients are given nested like the result (``(g_out, (g_h, g_c))``).

One module for both sides, so the worker (the student's call) and the grader
(autograd through an oracle) read ``wrt`` and ``grad_outputs`` the same way.
Nothing here trusts what it walks: a path that does not fit raises an ordinary
exception naming the place.
"""

from __future__ import annotations

from typing import Any

import torch


def _place(path) -> str:
    return "".join(f"[{step!r}]" for step in path)


def _copied(container):
    """A changeable copy of a dict, list or tuple (tuples become lists)."""
    if isinstance(container, dict):
        return dict(container)
    if isinstance(container, (list, tuple)):
        return list(container)
    raise TypeError(f"cannot take a gradient inside a {type(container).__name__}")


def _rebuilt(original, copy):
    """``copy`` in the type of ``original``: a tuple (or namedtuple) again."""
    if isinstance(original, tuple):
        return original._make(copy) if hasattr(original, "_make") else tuple(copy)
    return copy


def _with_leaf(value, path: tuple, leaves: list):
    """``value`` with the tensor at ``path`` replaced by a fresh leaf that
    requires grad; every container on the way is a new one, the caller's never
    changes."""
    if not path:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"a gradient was asked of a {type(value).__name__}, not a tensor")
        leaf = value.detach().clone().requires_grad_(True)
        leaves.append(leaf)
        return leaf
    copy = _copied(value)
    copy[path[0]] = _with_leaf(copy[path[0]], path[1:], leaves)
    return _rebuilt(value, copy)


def make_leaves(args: list, kwargs: dict, wrt) -> list[torch.Tensor]:
    """Replace in ``args`` and ``kwargs`` (the caller's own top-level copies)
    each tensor named in ``wrt`` by a fresh leaf, and return the leaves in
    ``wrt`` order. An entry of ``wrt`` is a position, a keyword, or a path
    (list or tuple) whose first step is one of those and whose further steps
    are keys of dicts or indices of lists and tuples."""
    leaves: list[torch.Tensor] = []
    for key in wrt:
        path = tuple(key) if isinstance(key, (list, tuple)) else (key,)
        if not path:
            raise ValueError("an empty path in wrt")
        top = args if isinstance(path[0], int) else kwargs
        top[path[0]] = _with_leaf(top[path[0]], path[1:], leaves)
    return leaves


def pairs(result: Any, grad_outputs) -> list[tuple[tuple[int, ...], torch.Tensor, torch.Tensor]]:
    """``(path, output, gradient)`` for every gradient given in ``grad_outputs``:
    one entry per output of the call (a result that is one tensor is one
    output), each a tensor, None (no gradient), or a list or tuple mirroring
    that output's own structure. ``output`` is whatever the result holds there
    (a tensor; whether it is in autograd's graph is for the caller to ask). A
    structure that does not fit raises, naming the place."""
    found: list[tuple[tuple[int, ...], torch.Tensor, torch.Tensor]] = []
    outputs = [result] if isinstance(result, torch.Tensor) else result
    _walk(outputs, grad_outputs, (), found)
    return found


def _walk(output, grad, path: tuple, found: list) -> None:
    if grad is None:
        return
    if isinstance(grad, torch.Tensor):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"result{_place(path)} is a {type(output).__name__}, not a tensor: "
                            "no gradient can flow back through it")
        found.append((path, output, grad))
        return
    if not isinstance(grad, (list, tuple)):
        raise TypeError(f"the gradient for result{_place(path)} is a {type(grad).__name__}")
    if not isinstance(output, (list, tuple)):
        raise TypeError(f"result{_place(path)} is a {type(output).__name__} where a tuple of "
                        f"{len(grad)} values was expected")
    for i, g in enumerate(grad):
        if g is None:
            continue
        if i >= len(output):
            raise ValueError(f"result{_place(path)} has {len(output)} values where at least "
                             f"{i + 1} were expected")
        _walk(output[i], g, path + (i,), found)


def describe(path) -> str:
    """A path as the student reads it: ``result[1][0]``."""
    return "result" + _place(path)
