"""Oracles for public tests: live in the course, recorded in a student kit.

Public tests write ``oracles.sdpa(q, k, v)`` (``from autograder.testing.recorded
import oracles``). Where the assignment's own ``grading`` package is there (the
course: ``assignments/<id>/grading/oracles.py``), that calls
``grading.oracles.sdpa``. A student kit carries no oracle code: instead, a data
file ``expected.bin`` beside the public tests holds the value each oracle
returned, for each call the public tests made, when the kit was built (see
:func:`recording` and ``autograder/release/kits.py``). A call is known by the
oracle's name and a digest of its arguments (tensors by dtype, shape and bytes,
other values by ``repr``, dict keys sorted), so the kit answers exactly the
calls the public tests make on their own inputs.

An oracle that returns something callable (an ``nn.Module`` built with given
weights) is followed through: ``oracles.torch_cell("rnn", params, dtype)(x, h)``
records the result of the second call under both calls' digests.

The file is written and read with :mod:`autograder.sandbox.wire` (JSON and raw
tensor bytes, never pickle).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import sys
from pathlib import Path
from typing import Any, Iterator

import torch

from ..sandbox import wire

EXPECTED = "expected.bin"  # beside the public tests, in a student kit
FORMAT = 1


class NotRecorded(BaseException):
    """A public test asked for a value the kit does not hold. A BaseException,
    so the grading engine reports it as the kit's fault (a grader error), never
    as a wrong answer of the student's code."""


def _digest(value: Any, h) -> None:
    if isinstance(value, torch.Tensor):
        h.update(b"T%s%s;" % (str(value.dtype).encode(), repr(tuple(value.shape)).encode()))
        h.update(wire.tensor_bytes(value))
    elif type(value) in (list, tuple):
        h.update(b"%s%d[" % (type(value).__name__.encode(), len(value)))
        for item in value:
            _digest(item, h)
        h.update(b"]")
    elif type(value) is dict:
        h.update(b"D%d{" % len(value))
        for k in sorted(value, key=repr):
            h.update(repr(k).encode() + b":")
            _digest(value[k], h)
        h.update(b"}")
    else:
        h.update(b"V" + repr(value).encode() + b";")


def call_key(name: str, args: tuple, kwargs: dict) -> str:
    """``name`` and a digest of the call's arguments."""
    h = hashlib.blake2b(digest_size=16)
    _digest(list(args), h)
    _digest({k: kwargs[k] for k in sorted(kwargs)}, h)
    return f"{name}({h.hexdigest()})"


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if type(value) in (list, tuple):
        return type(value)(_copy(v) for v in value)
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


# -- recording (kit builder) ---------------------------------------------------
class Recording:
    """What the oracles returned while recording: call key -> value, and the
    keys of calls that returned something callable."""

    def __init__(self):
        self.values: dict[str, Any] = {}
        self.callables: set[str] = set()

    def add(self, key: str, value: Any) -> None:
        try:  # a copy as plain data, exactly as the kit will hand it back
            self.values[key] = wire.decode(wire.encode(value), wire.REQUEST)
        except wire.NotPlainData as exc:
            raise TypeError(f"oracle call {key} returned something that cannot be "
                            f"recorded for a student kit: {exc}") from None

    def encode(self) -> bytes:
        """The data file: byte-identical for the same recorded values."""
        return wire.encode({"format": FORMAT,
                            "values": {k: self.values[k] for k in sorted(self.values)},
                            "callables": sorted(self.callables)})


_RECORDING: Recording | None = None


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    """Record every oracle call made (live, in the course) inside the block."""
    global _RECORDING
    if _RECORDING is not None:
        raise RuntimeError("oracle calls are already being recorded")
    _RECORDING = Recording()
    try:
        yield _RECORDING
    finally:
        _RECORDING = None


# -- where the values come from ------------------------------------------------
class _Recorded:
    """The values of one ``expected.bin``."""

    def __init__(self, path: Path):
        data = wire.decode(path.read_bytes(), wire.REQUEST)
        if type(data) is not dict or data.get("format") != FORMAT:
            raise NotRecorded(f"{path} is not a data file this autograder can read: "
                              "rebuild the kit")
        self.path, self.values, self.callables = path, data["values"], set(data["callables"])


_LOADED: dict[tuple[str, int], _Recorded] = {}


def _source(tests_folder: Path):
    """``grading.oracles`` of the assignment (the course), or the values
    recorded for its student kit."""
    assignment_folder = tests_folder.parent.parent  # assignments/<id>/tests/public
    if (assignment_folder / "grading" / "oracles.py").is_file():
        module = importlib.import_module("grading.oracles")
        where = Path(module.__file__).resolve()
        if assignment_folder.resolve() not in where.parents:
            raise RuntimeError(f"grading.oracles is {where}, not the one of "
                               f"{assignment_folder}: run the tests with autograder")
        return module
    path = tests_folder / EXPECTED
    if not path.is_file():
        raise NotRecorded(f"the public tests in {tests_folder} need the course's oracles "
                          f"(grading/oracles.py) or the values recorded in a kit ({EXPECTED}); "
                          "neither is there: rebuild the kit")
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = _Recorded(path)
    return _LOADED[key]


class _Call:
    """``oracles.<name>``, or what a callable oracle result returned."""

    def __init__(self, source, key: str, live: Any):
        self._source, self._key, self._live = source, key, live

    def __call__(self, *args, **kwargs):
        recorded = isinstance(self._source, _Recorded)
        # Grading in the course without recording needs no key (digests cost time).
        key = call_key(self._key, args, kwargs) if recorded or _RECORDING is not None else ""
        if recorded:
            if key in self._source.callables:
                return _Call(self._source, key, None)
            if key not in self._source.values:
                raise NotRecorded(
                    f"this check needs a value that was not recorded when the kit was built "
                    f"(oracle call {key}): rebuild the kit, and do not change the public "
                    "tests' inputs")
            return _copy(self._source.values[key])
        value = self._live(*args, **kwargs)
        if callable(value) and not isinstance(value, torch.Tensor):
            if _RECORDING is not None:
                _RECORDING.callables.add(key)
            return _Call(self._source, key, value)
        if _RECORDING is not None:
            _RECORDING.add(key, value)
        return value


class _Oracles:
    """``oracles.sdpa`` etc.: the assignment is the one whose test calls it."""

    def __getattr__(self, name: str) -> _Call:
        if name.startswith("_"):
            raise AttributeError(name)
        caller = sys._getframe(1).f_globals.get("__file__")
        if not caller:
            raise RuntimeError("oracles are for an assignment's test files")
        source = _source(Path(caller).resolve().parent)
        live = None if isinstance(source, _Recorded) else getattr(source, name)
        return _Call(source, name, live)


oracles = _Oracles()
