"""What a hostile worker can make the grader hold or show: bounded by the grader.

Student code runs in the worker and can rewrite anything there (its output cap,
its error report, ``wire.send``, or write raw bytes to its socket), so these
tests attack from inside a real worker and check what the grader received.
"""

import json
import re
import resource
import socket
import struct
import subprocess
import threading
import time
import tracemalloc

import pytest
import torch

from autograder.sandbox import session as session_module
from autograder.sandbox import wire
from autograder.sandbox.session import StudentCodeError, WorkerSession, describe_error
from autograder.sandbox.zygote import Zygote

MB = 2**20
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def payload(text: bytes, blob: bytes = b"") -> bytes:
    """A hand-made frame body (what follows the 8-byte header)."""
    return struct.pack("!QQ", len(text), len(blob)) + text + blob


def send_frame_in_background(sock: socket.socket, body: bytes):
    """Write a header and ``body`` from a thread, as a worker would; a refused
    write is fine."""
    def write():
        try:
            sock.sendall(struct.pack("!Q", len(body)) + body)
        except OSError:
            pass
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def traced_peak(fn):
    """(result or exception, peak bytes Python allocated while running fn)."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - the caller looks at it
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def reset_peak_rss() -> None:
    """Linux: let the peak RSS (and ru_maxrss) start from the current RSS, so a
    spike is seen even if this process once used more."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


# -- frame size: refused from the header, before anything is allocated ----------

def test_a_header_claiming_a_terabyte_is_refused_without_allocating():
    grader, worker = socket.socketpair()
    with grader, worker:
        worker.sendall(struct.pack("!Q", 2**40))
        result, peak = traced_peak(lambda: wire.recv_before(grader, deadline=time.monotonic() + 60))
        assert isinstance(result, wire.WireError) and "more than" in str(result), result
        assert peak < MB
        worker.sendall(struct.pack("!Q", 2**40))  # the other reader, with the answer bounds
        result, peak = traced_peak(lambda: wire.recv(grader.fileno(), wire.ANSWER))
        assert isinstance(result, wire.WireError) and "more than" in str(result), result
        assert peak < MB


def test_a_frame_one_byte_over_the_limit_is_refused_unread():
    """A well-formed frame of MAX_FRAME + 1 bytes really sent: not buffered, not decoded."""
    description_size = len(json.dumps({"b": 0, "n": wire.MAX_FRAME}))  # as many digits
    n = wire.MAX_FRAME + 1 - 16 - description_size
    body = payload(json.dumps({"b": 0, "n": n}).encode(), b"x" * n)
    assert len(body) == wire.MAX_FRAME + 1 and wire.decode(body, wire.REQUEST) == b"x" * n
    grader, worker = socket.socketpair()
    writer = send_frame_in_background(worker, body)
    result, peak = traced_peak(lambda: wire.recv_before(grader, deadline=time.monotonic() + 60))
    grader.close()
    writer.join(10)
    worker.close()
    assert isinstance(result, wire.WireError), result
    assert f"{wire.MAX_FRAME + 1:,} bytes, more than the {wire.MAX_FRAME:,}" in str(result)
    assert peak < MB  # only the header was read


def test_a_frame_at_the_limit_is_read_into_one_buffer():
    """The largest frame accepted: decoding it costs about one copy of its
    tensors on top of the frame itself (measured as the peak RSS)."""
    value = torch.arange((wire.MAX_FRAME - 200) // 8, dtype=torch.float64)
    body = wire.encode(value)
    assert wire.MAX_FRAME - 300 < len(body) <= wire.MAX_FRAME
    grader, worker = socket.socketpair()
    writer = send_frame_in_background(worker, body)
    reset_peak_rss()
    before = max_rss_bytes()
    back = wire.recv_before(grader, deadline=time.monotonic() + 60)
    growth = max_rss_bytes() - before
    writer.join(10)
    grader.close()
    worker.close()
    assert torch.equal(back, value)
    assert growth < 3 * len(body), f"{growth / MB:.1f} MiB for a {len(body) / MB:.1f} MiB frame"


def test_the_description_part_has_its_own_limit():
    text = json.dumps("a" * wire.MAX_TEXT).encode()
    with pytest.raises(wire.WireError, match="description of"):
        wire.decode(payload(text))
    with pytest.raises(wire.WireError, match="description of"):  # claimed, not sent
        wire.decode(struct.pack("!QQ", 2**40, 0))


def test_requests_from_the_grader_keep_their_generous_limit():
    """A request (grader -> worker) may be larger than any answer."""
    value = {"state": torch.zeros(wire.MAX_ELEMENTS + 1, dtype=torch.uint8)}
    grader, worker = socket.socketpair()
    with grader, worker:
        writer = send_frame_in_background(grader, wire.encode(value))
        back = wire.recv(worker.fileno())
        writer.join(10)
    assert torch.equal(back["state"], value["state"])
    with pytest.raises(wire.WireError, match="elements"):
        wire.decode(wire.encode(value))


# -- shape of the description: nesting, values, tensors, elements ---------------

def test_deep_nesting_is_refused_with_a_clear_message():
    deep = b"[" * (wire.MAX_DEPTH + 1) + b"]" * (wire.MAX_DEPTH + 1)
    with pytest.raises(wire.WireError, match=f"more than {wire.MAX_DEPTH} levels deep"):
        wire.decode(payload(deep))
    very_deep = b"[" * 40_000 + b"]" * 40_000  # json.loads itself would recurse too far
    with pytest.raises(wire.WireError, match="levels deep"):
        wire.decode(payload(very_deep))
    fine = b"[" * (wire.MAX_DEPTH - 1) + b"1" + b"]" * (wire.MAX_DEPTH - 1)
    in_strings = b'["' + b"[" * 1000 + b'\\\\", "{", ' + fine + b"]"  # brackets in strings are text
    assert wire.decode(payload(in_strings))[:2] == ["[" * 1000 + "\\", "{"]


def test_too_many_values_are_refused_before_they_are_built():
    many = b"[" + b"[]," * wire.MAX_ITEMS + b"[]]"  # MAX_ITEMS + 2 values
    assert len(many) < wire.MAX_TEXT
    body = payload(many)
    result, peak = traced_peak(lambda: wire.decode(body))
    assert isinstance(result, wire.WireError), type(result)
    assert f"more than {wire.MAX_ITEMS:,} values" in str(result)
    assert peak < 3 * len(many)  # the text and its skeleton; the lists would take ~20x
    just = b"[" + b"[]," * (wire.MAX_ITEMS - 2) + b"[]]"  # exactly MAX_ITEMS values
    assert len(wire.decode(payload(just))) == wire.MAX_ITEMS - 1


def test_too_many_tensors_and_elements_are_refused():
    with pytest.raises(wire.WireError, match="tensors and bytes values"):
        wire.decode(wire.encode([b""] * (wire.MAX_BLOCKS + 1)))
    assert len(wire.decode(wire.encode([torch.empty(0)] * (wire.MAX_ITEMS // 6)))) > 8000
    with pytest.raises(wire.WireError, match="elements in all"):
        wire.decode(wire.encode([torch.ones(wire.MAX_ELEMENTS // 2, dtype=torch.bool)] * 3))
    shape = b'{"t": 0, "dtype": "float32", "shape": [' + b", ".join([b"0"] * 100) + b"]}"
    with pytest.raises(wire.WireError, match="malformed tensor"):
        wire.decode(payload(shape))
    huge = b'{"t": 0, "dtype": "float32", "shape": [0, ' + str(2**70).encode() + b"]}"
    with pytest.raises(wire.WireError, match="malformed tensor"):
        wire.decode(payload(huge))


def test_a_refusal_text_from_the_worker_is_cut():
    with pytest.raises(wire.NotPlainData) as info:
        wire.decode(payload(json.dumps({"refused": "r" * (wire.MAX_TEXT // 2)}).encode()))
    assert len(str(info.value)) <= wire.REFUSAL_SHOWN


def test_text_that_is_not_ascii_is_refused():
    """The grader's encoder writes ASCII; anything else is not its message (and
    json.loads would guess a UTF-16 or UTF-32 encoding from NUL bytes)."""
    with pytest.raises(wire.WireError, match="malformed"):
        wire.decode(payload('"caf\u00e9"'.encode()))
    assert wire.decode(payload(json.dumps("caf\u00e9 \U0001F600").encode())) == "caf\u00e9 \U0001F600"


# -- texts shown to a student: cut and cleaned by the grader ---------------------

def test_a_ten_megabyte_error_message_is_cut_and_cleaned():
    noisy = "\x00\x1b[2J\r\x07\u202e\ud800 text\tand\nlines " * (10 * MB // 25)
    text = describe_error({"type": "Boom\x00" * MB, "message": noisy, "traceback": noisy},
                          "calling f()")
    assert len(text) < 100 + session_module.TYPE_SHOWN + session_module.MESSAGE_SHOWN \
        + session_module.TRACEBACK_SHOWN
    assert not CONTROL.search(text)
    assert "text\tand\nlines" in text and text.startswith("While calling f(), your code raised Boom")
    text.encode("utf-8")  # no lone surrogate left to break a report


# -- attacks from inside a real worker --------------------------------------------

ATTACKS = r'''
import gc, os, stat, struct, sys
import autograder.sandbox.worker as worker_module
from autograder.sandbox import tripwire, wire


def _socket_fd():
    for obj in gc.get_objects():
        if type(obj) is worker_module.Worker:
            return obj.fd
    for fd in range(3, 65):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                return fd
        except OSError:
            pass


def shout(n):
    worker_module.OUTPUT_LIMIT = 10**12
    sys.stdout.limit = 10**12  # the collector was built with the old default
    sys.stdout.write("y" * n)
    return n


def raw_frame(kind, size):
    if kind == "items":  # a valid frame: millions of tiny lists
        text = b"[" + b"[]," * (size // 3) + b"[]]"
    elif kind == "deep":
        text = b"[" * (size // 2) + b"]" * (size // 2)
    else:  # "garbage": not even JSON
        text = b"\xff" * size
    data = struct.pack("!QQ", len(text), 0) + text
    data = struct.pack("!Q", len(data)) + data
    fd, view = _socket_fd(), memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass  # the grader hung up: it refused the frame
    return "sent"


def fail_loudly(size):
    worker_module.Worker._describe = lambda self, exc: {
        "type": "Err\x00or" * 10_000, "message": str(exc), "traceback": "\x1b[2J\r" * (size // 10)}
    raise ValueError("\x00\x1b[31mred\u202e" + "m" * size + "\r")


def claim_forbidden():
    tripwire.take_used = lambda: (
        ["torch.softmax", "torch.softmax (attacks.py, line 3, in f)",
         "torch.softmax (\x1b[2J" + "p" * 10_000 + ")", "torch.softmax (", "torch.softmaxx"]
        + ["\x00bogus" * 1000] * 50 + ["x"] * 5000)
    return 1
'''
REQUEST = {"module": "attacks", "filename": "attacks.py", "source": ATTACKS,
           "limits": {"cpu_seconds": 20},
           "forbidden": [{"name": "torch.softmax", "paths": [], "within": []}]}


@pytest.fixture(scope="module")
def zygote():
    z = Zygote(huge_pages=False)
    yield z
    z.close()


def open_session(zygote):
    return WorkerSession(zygote, REQUEST, call_timeout=30, import_timeout=30)


def printed(session) -> int:
    return sum(len(s) for s in session.record.output)


def test_lifting_the_workers_output_cap_gets_no_more_than_the_graders(zygote):
    session = open_session(zygote)
    try:
        reset_peak_rss()
        before = max_rss_bytes()
        try:
            session.request("call", name="shout", call_args=[50 * MB], doing="shouting")
        except StudentCodeError as exc:  # 50 MB of output is more than a frame may hold
            assert exc.kind == "garbled" and "more than" in str(exc)
        assert max_rss_bytes() - before < 100 * MB
        assert printed(session) <= session_module.OUTPUT_PER_ANSWER + len(session_module.TRUNCATED)
    finally:
        session.close()


def test_output_is_cut_per_answer_and_per_session(zygote):
    session = open_session(zygote)
    per_call, kept = [], []
    try:
        for _ in range(12):  # each answer carries 300 KB of output, under the frame limits
            assert session.request("call", name="shout", call_args=[300_000])["result"] == 300_000
            per_call.append(printed(session))
            kept += session.record.output
            session.record.output.clear()  # as the grading fixture does after each call
    finally:
        session.close()
    note = session_module.TRUNCATED
    assert max(per_call) <= session_module.OUTPUT_PER_ANSWER + len(note)
    assert session_module.OUTPUT_PER_SESSION <= sum(per_call) \
        <= session_module.OUTPUT_PER_SESSION + len(note)  # the session's share, then nothing
    assert per_call[-1] == 0 and all(s.endswith(note) for s in kept)
    first_cut = per_call.index(0)
    assert all(n == 0 for n in per_call[first_cut:])  # dropped after one last note


@pytest.mark.parametrize("kind, size, words", [
    ("items", 40 * MB, f"more than the {wire.MAX_FRAME:,}"),  # over MAX_FRAME: from its header
    ("items", wire.MAX_FRAME - 64, "description of"),  # within MAX_FRAME, over MAX_TEXT
    ("items", wire.MAX_TEXT - 64, "values"),           # within MAX_TEXT, over MAX_ITEMS
    ("deep", 80_000, "levels deep"),                   # 40,000 deep: under MAX_ITEMS
    ("garbage", wire.MAX_TEXT - 64, "malformed"),
])
def test_a_hand_made_frame_fails_the_call_and_costs_the_grader_little(zygote, kind, size, words):
    session = open_session(zygote)
    try:
        reset_peak_rss()
        before = max_rss_bytes()
        with pytest.raises(StudentCodeError) as info:
            session.request("call", name="raw_frame", call_args=[kind, size],
                            doing="calling raw_frame()")
        growth = max_rss_bytes() - before
        assert growth < 100 * MB, f"the grader grew by {growth / MB:.0f} MiB"
        text = str(info.value)
        assert info.value.kind == "garbled" and words in text, text
        assert text.startswith("While calling raw_frame(): ") and len(text) < 300
        assert not CONTROL.search(text)
        assert not session.alive  # the worker was stopped: its line is out of step
        with pytest.raises(StudentCodeError, match="no longer running"):
            session.request("call", name="shout", call_args=[1], doing="calling shout()")
    finally:
        session.close()


def test_a_long_noisy_error_report_is_cut_and_cleaned(zygote):
    session = open_session(zygote)
    try:
        with pytest.raises(StudentCodeError) as info:  # ~600 KB: within the frame limits
            session.request("call", name="fail_loudly", call_args=[300_000],
                            doing="calling fail_loudly()")
        text = str(info.value)
        assert info.value.kind == "error" and "red" in text and "mmmm" in text
        assert len(text) < 100 + session_module.TYPE_SHOWN + session_module.MESSAGE_SHOWN \
            + session_module.TRACEBACK_SHOWN
        assert not CONTROL.search(text)
    finally:
        session.close()
    session = open_session(zygote)
    try:
        with pytest.raises(StudentCodeError) as info:  # 10 MB: over the description limit
            session.request("call", name="fail_loudly", call_args=[10 * MB],
                            doing="calling fail_loudly()")
        assert info.value.kind == "garbled" and len(str(info.value)) < 300
    finally:
        session.close()


def test_forbidden_names_are_only_those_watched(zygote):
    session = open_session(zygote)
    try:
        session.request("call", name="claim_forbidden")
        long_place = "[2J" + "p" * (session_module.PLACE_SHOWN - 3) + " [...]"
        assert session.record.forbidden == {
            "torch.softmax", "torch.softmax (attacks.py, line 3, in f)",
            f"torch.softmax ({long_place})"}
    finally:
        session.close()


# -- a fake worker, for answers no real worker would send ----------------------------

class ScriptedLauncher:
    """Stands where a zygote stands; its "worker" (a thread) sends the given
    answers. The pid it reports is a real child of ours (a sleep), so that a
    session killing its worker kills only that."""

    def __init__(self, answers):
        self.answers, self.children = answers, {}

    def spawn(self, request):
        grader, worker = socket.socketpair()

        def serve():
            with worker:
                for i, answer in enumerate(self.answers):
                    if i:  # the first answer is the import's, unasked
                        try:
                            wire.recv(worker.fileno())
                        except wire.WireError:
                            return
                    worker.sendall(wire.frame(answer))
        threading.Thread(target=serve, daemon=True).start()
        child = subprocess.Popen(["sleep", "60"])
        self.children[child.pid] = child
        return child.pid, grader.detach()

    def reap(self, pid):
        child = self.children.pop(pid)
        child.kill()
        return child.wait()

    def forget(self, pid):
        self.reap(pid)


def test_layers_output_and_names_from_a_scripted_worker_are_bounded():
    noisy = "\x1b]0;owned\x07" + "L" * 1000
    answers = [
        {"ok": True, "layers": [noisy] * 100, "output": "\x00" * 10 + "o" * 20_000,
         "forbidden": [None, ["x"], "torch.softmax"]},
        {"ok": True, "value": 1, "output": 7, "forbidden": "torch.softmax"},
    ]
    session = WorkerSession(ScriptedLauncher(answers), REQUEST, call_timeout=5, import_timeout=5)
    assert len(session.layers) == session_module.LAYERS
    assert all(len(x) <= session_module.LAYER_SHOWN + 6 and not CONTROL.search(x)
               for x in session.layers)
    assert session.record.output == ["o" * session_module.OUTPUT_PER_ANSWER
                                     + session_module.TRUNCATED]
    assert session.record.forbidden == {"torch.softmax"}
    assert session.request("call", name="f") == 1
    session.close(want_status=False)
