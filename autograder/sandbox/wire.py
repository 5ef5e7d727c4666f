"""Messages between the trusted grader and an untrusted worker.

A message is a length-prefixed frame: a JSON description of plain data (dicts,
lists, tuples, strings, bytes, numbers, booleans, None) in which each tensor or
bytes value is a reference to a raw block of bytes that follows. Decoding runs no pickle
and no code: JSON is parsed, and every tensor is rebuilt by the grader as a
fresh, ordinary, contiguous CPU tensor from its dtype, shape and bytes. A tensor
subclass, a sparse or meta tensor, or any other object is refused with a message
naming it, so it becomes a wrong answer, never a pass.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from typing import Any

import torch

MAX_FRAME = 512 * 1024 * 1024  # a worker cannot make the grader buffer more than this
_HEADER = struct.Struct("!Q")
_LENGTHS = struct.Struct("!QQ")

DTYPES = {str(d).replace("torch.", ""): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
    torch.complex128, torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)}


class WireError(Exception):
    """The other side sent something that is not a well-formed message."""


class Closed(WireError):
    """The other side went away (it exited, crashed or was killed)."""


class NotPlainData(Exception):
    """A value that is not plain data: a tensor subclass, an exotic layout, ..."""


def _describe_tensor_problem(t: torch.Tensor, where: str) -> str | None:
    if type(t) is not torch.Tensor:
        return f"{where} is a {type(t).__name__}, not a plain torch.Tensor"
    if t.__dict__:
        return (f"{where} is a tensor carrying extra Python attributes "
                f"({', '.join(sorted(t.__dict__))}); return a plain tensor")
    if t.layout is not torch.strided:
        return f"{where} has layout {t.layout}; return a dense (strided) tensor"
    if t.device.type != "cpu":
        return f"{where} is on device {t.device}; return a CPU tensor"
    if str(t.dtype).replace("torch.", "") not in DTYPES:
        return f"{where} has dtype {t.dtype}, which the grader does not accept"
    return None


def encode(obj: Any) -> bytes:
    blobs: list[bytes] = []

    def walk(value, path):
        # ``path`` (keys and indices from the top) becomes words only for a refusal.
        if value is None or type(value) in (bool, int, str):
            return value
        if type(value) is float:
            return {"f": repr(value)}  # keeps nan and inf exact
        if type(value) is bytes:
            blobs.append(value)
            return {"b": len(blobs) - 1, "n": len(value)}
        if isinstance(value, torch.Tensor):
            problem = _describe_tensor_problem(value, _where(path))
            if problem:
                return {"refused": problem}
            blobs.append(tensor_bytes(value))
            return {"t": len(blobs) - 1, "dtype": str(value.dtype).replace("torch.", ""),
                    "shape": list(value.shape)}
        if type(value) in (list, tuple):
            items = [walk(v, (path, i)) for i, v in enumerate(value)]
            return items if type(value) is list else {"tuple": items}
        if type(value) is dict:
            return {"dict": [[k if type(k) in (str, int) else repr(k), walk(v, (path, k))]
                             for k, v in value.items()]}
        return {"refused": f"{_where(path)} is a {type(value).__name__}, which the grader does not accept"}

    text = json.dumps(walk(obj, None)).encode()
    return _LENGTHS.pack(len(text), sum(len(b) for b in blobs)) + text + b"".join(blobs)


def tensor_bytes(t: torch.Tensor) -> bytes:
    """A tensor's elements as raw bytes, in row-major order."""
    data = t.detach().contiguous()
    return data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""


def _where(path) -> str:
    """(((None, 0), 'w') -> "your result[0]['w']"."""
    steps = []
    while path is not None:
        path, step = path
        steps.append(f"[{step!r}]")
    return "your result" + "".join(reversed(steps))


def decode(data: bytes) -> Any:
    """Rebuild a message; raises WireError if malformed, NotPlainData if refused."""
    try:
        text_len, blob_len = _LENGTHS.unpack_from(data)
        text = data[_LENGTHS.size:_LENGTHS.size + text_len]
        blob = memoryview(data)[_LENGTHS.size + text_len:]
        if len(text) != text_len or len(blob) != blob_len:
            raise ValueError("lengths do not match")
        tree = json.loads(text)
    except (struct.error, ValueError, RecursionError) as exc:
        raise WireError(f"the worker's answer is malformed ({exc})") from None
    cursor = {"offset": 0, "index": 0}  # blobs follow in the order tensors are met

    def tensor(node):
        dtype = DTYPES.get(node.get("dtype"))
        shape = node.get("shape")
        if dtype is None or type(shape) is not list or not all(type(s) is int and s >= 0
                                                                 for s in shape):
            raise WireError("the worker's answer holds a malformed tensor")
        count = 1
        for s in shape:
            count *= s
        size = count * torch.empty((), dtype=dtype).element_size()
        start = cursor["offset"]
        chunk = blob[start:start + size]
        if len(chunk) != size or node.get("t") != cursor["index"]:
            raise WireError("the worker's answer holds a truncated tensor")
        cursor["offset"], cursor["index"] = start + size, cursor["index"] + 1
        if count == 0:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(bytearray(chunk), dtype=torch.uint8).view(dtype).reshape(shape)

    def raw(node):
        size, start = node.get("n"), cursor["offset"]
        if type(size) is not int or size < 0 or node["b"] != cursor["index"] \
                or start + size > len(blob):
            raise WireError("the worker's answer holds truncated bytes")
        cursor["offset"], cursor["index"] = start + size, cursor["index"] + 1
        return bytes(blob[start:start + size])

    def walk(node):
        if node is None or type(node) in (bool, int, str, list):
            return [walk(n) for n in node] if type(node) is list else node
        if type(node) is not dict:
            raise WireError("the worker's answer is malformed")
        if "t" in node:
            return tensor(node)
        if "b" in node:
            return raw(node)
        if "f" in node:
            return float(node["f"])
        if "tuple" in node:
            return tuple(walk(n) for n in node["tuple"])
        if "dict" in node:
            return {k: walk(v) for k, v in node["dict"]}
        if "refused" in node:
            raise NotPlainData(str(node["refused"]))
        raise WireError("the worker's answer is malformed")

    try:
        return walk(tree)
    except (TypeError, ValueError, RuntimeError, RecursionError) as exc:
        raise WireError(f"the worker's answer is malformed ({exc})") from None


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
