"""Messages between the trusted grader and an untrusted worker.

A message is a length-prefixed frame holding a ``torch.save`` payload of plain
data: dicts, lists, tuples, strings, numbers, booleans, None and tensors. It is
decoded with ``torch.load(weights_only=True)``, which never runs pickled code.

``weights_only`` still lets through a few things a cheating or careless
submission could return (``nn.Parameter``, sparse or meta tensors, a tensor
carrying Python attributes), so :func:`plain` re-checks every value on the
grader's side and rebuilds tensors as fresh, ordinary CPU tensors.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import time
from typing import Any

import torch

MAX_FRAME = 512 * 1024 * 1024  # a worker cannot make the grader buffer more than this
_HEADER = struct.Struct("!Q")


class WireError(Exception):
    """The other side sent something that is not a well-formed message."""


class Closed(WireError):
    """The other side went away (it exited, crashed or was killed)."""


def encode(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def decode(data: bytes) -> Any:
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # refused classes, corrupt bytes, ...
        raise WireError(f"could not decode the worker's answer safely: {exc}") from None


def frame(obj: Any) -> bytes:
    payload = encode(obj)
    return _HEADER.pack(len(payload)) + payload


def send(fd: int, obj: Any) -> None:
    _write_all(fd, frame(obj))


def recv(fd: int) -> Any:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    if size > MAX_FRAME:
        raise WireError(f"answer of {size} bytes is larger than the {MAX_FRAME} allowed")
    return decode(_read_exact(fd, size))


def recv_before(sock, deadline: float) -> Any:
    """Like :func:`recv` on a socket, but give up (``TimeoutError``) at ``deadline``
    (a ``time.monotonic()`` value): a worker cannot stall the grader half-way
    through a message."""
    def read_exact(n: int) -> bytes:
        chunks, remaining = [], n
        while remaining:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = sock.recv(min(remaining, 1 << 20))
            except socket.timeout:
                raise TimeoutError from None
            if not chunk:
                raise Closed("the worker closed its end")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    (size,) = _HEADER.unpack(read_exact(_HEADER.size))
    if size > MAX_FRAME:
        raise WireError(f"answer of {size} bytes is larger than the {MAX_FRAME} allowed")
    return decode(read_exact(size))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, n: int) -> bytes:
    chunks, remaining = [], n
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise Closed("the worker closed its end")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class NotPlainData(Exception):
    """A value that is not plain data: a tensor subclass, an exotic layout, ..."""


def plain(obj: Any, where: str = "result") -> Any:
    """Return a copy of ``obj`` made only of built-in containers and plain tensors.

    Raises :class:`NotPlainData` naming the offending part: a submission that
    returns a tensor subclass or a tensor with attributes gets a wrong answer
    with this message, never a pass.
    """
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is torch.Tensor:
        if obj.__dict__:
            raise NotPlainData(f"{where} is a tensor carrying extra Python attributes "
                               f"({', '.join(sorted(obj.__dict__))}); return a plain tensor")
        if obj.layout is not torch.strided:
            raise NotPlainData(f"{where} has layout {obj.layout}; return a dense (strided) tensor")
        if obj.device.type != "cpu":
            raise NotPlainData(f"{where} is on device {obj.device}; return a CPU tensor")
        fresh = torch.empty(obj.shape, dtype=obj.dtype)
        fresh.copy_(obj)
        return fresh
    if isinstance(obj, torch.Tensor):
        raise NotPlainData(f"{where} is a {type(obj).__name__}, not a plain torch.Tensor")
    if type(obj) in (list, tuple):
        items = [plain(item, f"{where}[{i}]") for i, item in enumerate(obj)]
        return items if type(obj) is list else tuple(items)
    if type(obj) is dict:
        out = {}
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise NotPlainData(f"{where} has a key of type {type(key).__name__}")
            out[key] = plain(value, f"{where}[{key!r}]")
        return out
    raise NotPlainData(f"{where} is a {type(obj).__name__}, which the grader does not accept")
