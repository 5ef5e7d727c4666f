"""Memoised oracles: the reference's answers are computed once per batch.

Grading is deterministic, so every submission in a batch meets the same inputs;
an oracle wrapped with :func:`memoize` computes each expected value once and
hands later submissions a copy, so a submission pays only for its own code.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Callable

import torch

from ..sandbox.wire import tensor_bytes

MAX_ENTRIES = 4096


def _key(value: Any):
    if isinstance(value, torch.Tensor):
        digest = hashlib.blake2b(tensor_bytes(value), digest_size=16).digest()
        return ("T", str(value.dtype), tuple(value.shape), digest)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_key(v) for v in value))
    if isinstance(value, dict):
        return ("D", tuple(sorted((k, _key(v)) for k, v in value.items())))
    return ("V", repr(value))


def _copy(value: Any):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def memoize(fn: Callable) -> Callable:
    cache: dict = {}

    @functools.wraps(fn)
    def cached(*args, **kwargs):
        key = (_key(args), _key(kwargs))
        if key not in cache:
            if len(cache) >= MAX_ENTRIES:
                cache.clear()
            cache[key] = fn(*args, **kwargs)
        return _copy(cache[key])

    cached.cache = cache
    return cached
