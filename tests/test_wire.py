"""The grader-worker codec: plain data round-trips, everything else is refused."""

import math

import pytest
import torch

from autograder.sandbox import wire


def roundtrip(value):
    return wire.decode(wire.encode(value))


def test_plain_data_roundtrips():
    value = {"a": (torch.arange(6.0).reshape(2, 3), [None, True, 3, "s"]), 2: float("-inf"),
             "empty": torch.empty(0, 4), "flag": torch.tensor([True, False]),
             "half": torch.ones(2, dtype=torch.bfloat16)}
    back = roundtrip(value)
    assert torch.equal(back["a"][0], value["a"][0]) and back["a"][1] == [None, True, 3, "s"]
    assert back[2] == -math.inf and back["empty"].shape == (0, 4)
    assert back["flag"].dtype == torch.bool and back["half"].dtype == torch.bfloat16
    assert type(back["a"]) is tuple and math.isnan(roundtrip(float("nan")))


def test_bytes_travel_beside_tensors():
    value = {"code": b"\x00\xffcode", "t": torch.arange(3), "empty": b"", "more": [b"ab"]}
    back = roundtrip(value)
    assert back["code"] == b"\x00\xffcode" and back["empty"] == b"" and back["more"] == [b"ab"]
    assert torch.equal(back["t"], torch.arange(3))


def test_decoded_tensors_are_fresh_plain_tensors():
    source = torch.arange(12.0).reshape(3, 4).t()  # non-contiguous
    back = roundtrip(source)
    assert type(back) is torch.Tensor and back.is_contiguous() and torch.equal(back, source)
    assert roundtrip(torch.nn.Parameter(torch.ones(2)).detach()).requires_grad is False


class Sneaky(torch.Tensor):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("value, words", [
    (torch.ones(2).as_subclass(Sneaky), "Sneaky"),
    (torch.nn.Parameter(torch.ones(2)), "Parameter"),
    (torch.ones(2).to_sparse(), "layout"),
    (torch.ones(2, device="meta"), "device"),
    (object(), "object"),
    ({"x": lambda: 1}, "function"),
])
def test_everything_else_is_refused(value, words):
    with pytest.raises(wire.NotPlainData, match=words):
        roundtrip(value)


def test_tensor_with_attributes_is_refused():
    t = torch.ones(2)
    t.passed = True
    with pytest.raises(wire.NotPlainData, match="attributes"):
        roundtrip(t)


@pytest.mark.parametrize("data", [b"", b"\x00" * 8, wire.encode([1])[:-1] + b"x",
                                  wire.encode(torch.ones(4))[:-3],
                                  wire.encode([b"abcd", torch.ones(1)])[:-5]])
def test_malformed_frames_raise_wire_error(data):
    with pytest.raises(wire.WireError):
        wire.decode(data)

