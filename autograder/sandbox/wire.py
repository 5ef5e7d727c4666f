"""Messages between the trusted grader and an untrusted worker.

A message is a length-prefixed frame: a JSON description of plain data (dicts,
lists, tuples, strings, bytes, numbers, booleans, None) in which each tensor or
bytes value is a reference to a raw block of bytes that follows. Decoding runs no pickle
and no code: JSON is parsed, and every tensor is rebuilt by the grader as a
fresh, ordinary, contiguous CPU tensor from its dtype, shape and bytes. A tensor
subclass, a sparse or meta tensor, or any other object is refused with a message
naming it, so it becomes a wrong answer, never a pass.

What a receiver accepts is bounded (:class:`Bounds`): the grader reading a
worker's answer (``ANSWER``) never buffers more than ``MAX_FRAME`` bytes, and
refuses too many values, too deep a nesting, too many tensors or elements
before building them. Only the receiving side's bounds protect anything: the
sending side of a worker runs student code.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy
import torch

_HEADER = struct.Struct("!Q")
_LENGTHS = struct.Struct("!QQ")

DTYPES = {str(d).replace("torch.", ""): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
    torch.complex128, torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)}
_ITEMSIZE = {name: torch.empty((), dtype=d).element_size() for name, d in DTYPES.items()}


@dataclass(frozen=True)
class Bounds:
    """How much one frame may hold. Only the receiving side's bounds count: a
    worker's sending side runs student code, which can rewrite it."""
    frame: int     # bytes after the 8-byte header (description + blocks)
    text: int      # bytes of the JSON description
    items: int     # JSON values (every element, member and the top one)
    depth: int     # nesting of JSON arrays and objects
    blocks: int    # tensors plus bytes values
    elements: int  # elements of all tensors together
    dims: int = 32  # dimensions of one tensor
    sender: str = "the answer from your code"  # for the refusal's text


# What the grader accepts from a worker. Measured by logging every answer the
# grader decoded while grading the reference solution and the example
# submissions of each assignment (`autograder grade <id> reference/<id>.py
# examples/submissions/<id>/*`, the course's three assignments, 3,609 worker
# answers): the largest frame was 1,966,483 bytes (a multi-head attention layer's
# results and gradients), the largest JSON description 1,003 bytes, 140 values,
# nesting 14, 13 tensors, 491,520 elements in one answer. The worker itself cuts
# printed output at 8,000 characters, an error message at 2,000 and a traceback
# at 4,000: escaped as \uXXXX (12 bytes for a character outside the BMP) that
# is at most ~170 KB of description.
MAX_FRAME = 12 * 2**20      # 12 MiB: 6.4x the largest answer (a float64 one is 2x)
MAX_TEXT = 2**20            # 1 MiB: ~6x the worst legitimate description
MAX_ITEMS = 50_000          # 357x the 140 values measured; decoding 50,000 costs <= ~8 MiB
MAX_DEPTH = 64              # 4.5x the deepest (14); json.loads recurses in C
MAX_BLOCKS = 10_000         # ~770x the 13 tensors measured; each costs a Python object
MAX_ELEMENTS = 4 * 2**20    # 8.5x the 491,520 elements measured
ANSWER = Bounds(frame=MAX_FRAME, text=MAX_TEXT, items=MAX_ITEMS, depth=MAX_DEPTH,
                blocks=MAX_BLOCKS, elements=MAX_ELEMENTS)

# Requests (grader -> worker, and the zygote's control line) come from the
# trusted grader and carry the submission's source and every test input (the
# largest measured: 4,522,270 bytes): as generous as before.
MAX_REQUEST = 512 * 2**20
REQUEST = Bounds(frame=MAX_REQUEST, text=MAX_REQUEST, items=10**8, depth=500,
                 blocks=10**7, elements=MAX_REQUEST, dims=64, sender="the grader's request")


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


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string literal
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
REFUSAL_SHOWN = 500  # characters of a worker's "refused" text passed on


def _check_shape(text: str, bounds: Bounds) -> None:
    """Refuse, before json.loads builds anything, a description with too many
    values or nested too deep (C-speed counts; json.loads recurses in C and
    would build every value). With each string replaced by one letter, what is
    left of a JSON text is its structure: a value is the top one, or follows a
    comma, or opens a non-empty array or object. For text that is not JSON,
    json.loads builds nothing past the first place where it stops being JSON,
    and up to there the counts are exact."""
    skeleton = _STRING.sub("s", text)
    opening = skeleton.count("[") + skeleton.count("{")
    if opening != skeleton.count("]") + skeleton.count("}"):
        raise ValueError("unbalanced brackets")
    values = 1 + skeleton.count(",") + opening - skeleton.count("[]") - skeleton.count("{}")
    if max(values, opening) > bounds.items:  # in JSON each bracket opens a value
        raise WireError(f"{bounds.sender} holds more than {bounds.items:,} values, "
                        "more than the grader accepts")
    depth = 0
    for char in _NOT_BRACKET.sub("", skeleton):  # at most 2 * bounds.items brackets
        if char in "[{":
            depth += 1
            if depth > bounds.depth:
                raise WireError(f"{bounds.sender} nests data more than "
                                f"{bounds.depth} levels deep, more than the grader accepts")
        else:
            depth -= 1


def decode(data, bounds: Bounds = ANSWER) -> Any:
    """Rebuild a message (``data``: bytes, a bytearray or a memoryview, never
    copied whole); raises WireError if malformed or over ``bounds``, NotPlainData
    if refused."""
    view = memoryview(data).cast("B")
    try:
        text_len, blob_len = _LENGTHS.unpack_from(view)
    except struct.error as exc:
        raise WireError(f"the worker's answer is malformed ({exc})") from None
    if text_len > bounds.text:
        raise WireError(f"{bounds.sender} has a description of {text_len:,} bytes, "
                        f"more than the {bounds.text:,} the grader accepts")
    if _LENGTHS.size + text_len + blob_len != len(view):
        raise WireError("the worker's answer is malformed (lengths do not match)")
    blob = view[_LENGTHS.size + text_len:]
    try:
        # The encoder writes ASCII (json.dumps escapes the rest), so the text
        # is one byte a character and json.loads never guesses an encoding.
        text = str(view[_LENGTHS.size:_LENGTHS.size + text_len], "ascii")
        _check_shape(text, bounds)
        tree = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"the worker's answer is malformed ({str(exc)[:200]})") from None
    del text
    cursor = {"offset": 0, "index": 0, "elements": 0}  # blobs follow in the order they are met

    def next_block() -> None:
        if cursor["index"] >= bounds.blocks:
            raise WireError(f"{bounds.sender} holds more than {bounds.blocks:,} "
                            f"tensors and bytes values, more than the grader accepts")

    def tensor(node):
        dtype_name, shape = node.get("dtype"), node.get("shape")
        if dtype_name not in DTYPES or type(shape) is not list or len(shape) > bounds.dims \
                or not all(type(s) is int and s >= 0 for s in shape):
            raise WireError("the worker's answer holds a malformed tensor")
        next_block()
        count = 1
        for s in shape:  # at most bounds.dims numbers, of at most 4,300 digits (Python's cap)
            count *= s
        if cursor["elements"] + count > bounds.elements:
            raise WireError(f"{bounds.sender} holds tensors of more than "
                            f"{bounds.elements:,} elements in all, more than the grader accepts")
        if count == 0 and max(shape, default=0) > bounds.elements:
            raise WireError("the worker's answer holds a malformed tensor")  # e.g. [0, 2**70]
        size = count * _ITEMSIZE[dtype_name]
        start = cursor["offset"]
        if start + size > len(blob) or node.get("t") != cursor["index"]:
            raise WireError("the worker's answer holds a truncated tensor")
        cursor["offset"], cursor["index"] = start + size, cursor["index"] + 1
        cursor["elements"] += count
        out = torch.empty(shape, dtype=DTYPES[dtype_name])
        if count:  # one copy, from the frame straight into the tensor's own memory
            out.view(-1).view(torch.uint8).numpy()[:] = numpy.frombuffer(
                blob[start:start + size], dtype=numpy.uint8)
        return out

    def raw(node):
        size, start = node.get("n"), cursor["offset"]
        if type(size) is not int or size < 0 or node["b"] != cursor["index"] \
                or start + size > len(blob):
            raise WireError("the worker's answer holds truncated bytes")
        next_block()
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
            raise NotPlainData(str(node["refused"])[:REFUSAL_SHOWN])
        raise WireError("the worker's answer is malformed")

    try:
        return walk(tree)
    except (TypeError, ValueError, RuntimeError, RecursionError) as exc:
        raise WireError(f"the worker's answer is malformed ({str(exc)[:200]})") from None


def frame(obj: Any) -> bytes:
    payload = encode(obj)
    return _HEADER.pack(len(payload)) + payload


def send(end, obj: Any) -> None:
    """Write one frame to ``end``: a descriptor, or a socket object (Windows,
    where sockets are not descriptors)."""
    if isinstance(end, socket.socket):
        end.sendall(frame(obj))
    else:
        _write_all(end, frame(obj))


def recv(end, bounds: Bounds = REQUEST) -> Any:
    """Read one frame from ``end`` (as for :func:`send`). The default bounds are
    for requests from the grader; a side that reads from untrusted code passes
    ``ANSWER``."""
    def read_into(view: memoryview) -> int:
        if isinstance(end, socket.socket):
            return end.recv_into(view, min(len(view), 1 << 20))
        chunk = os.read(end, min(len(view), 1 << 20))  # plain read(2): a worker's filter allows it
        view[:len(chunk)] = chunk
        return len(chunk)

    return decode(_read_frame(read_into, bounds), bounds)


def recv_before(sock, deadline: float, bounds: Bounds = ANSWER) -> Any:
    """Like :func:`recv` on a socket, for the grader reading a worker's answer:
    give up (``TimeoutError``) at ``deadline`` (a ``time.monotonic()`` value),
    so a worker cannot stall the grader half-way through a message, and never
    hold more than ``bounds.frame`` bytes of it."""
    def read_into(view: memoryview) -> int:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            return sock.recv_into(view, min(len(view), 1 << 20))
        except socket.timeout:
            raise TimeoutError from None

    return decode(_read_frame(read_into, bounds), bounds)


def _read_frame(read_into, bounds: Bounds) -> bytearray:
    """A frame's payload, read into one buffer allocated once the header has
    shown its size to be within ``bounds``."""
    header = bytearray(_HEADER.size)
    _fill(read_into, memoryview(header))
    (size,) = _HEADER.unpack(header)
    if size > bounds.frame:
        raise WireError(f"{bounds.sender} is {size:,} bytes, more than the "
                        f"{bounds.frame:,} the grader accepts")
    buffer = bytearray(size)
    _fill(read_into, memoryview(buffer))
    return buffer


def _fill(read_into, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = read_into(view[got:])
        if not n:
            raise Closed("the worker closed its end")
        got += n


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
