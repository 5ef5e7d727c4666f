"""The worker sandbox on its own: layers, limits, and the spawn fallback."""

import os

import pytest
import torch

from autograder.sandbox.session import StudentCodeError, WorkerSession
from autograder.sandbox.spawn_launcher import SpawnLauncher
from autograder.sandbox.zygote import Zygote

SOURCE = """
import os, torch
def double(x):
    print("doubling")
    return x * 2
def inplace(x):
    x.add_(1)
    return x
def spin():
    while True:
        pass
def leave():
    os._exit(3)
def hashes():
    return [hash("query"), hash("key"), list({"q", "k", "v", "out"})]
def noise():
    import random, numpy
    return torch.rand(3), random.random(), float(numpy.random.rand())
"""
REQUEST = {"module": "m", "filename": "m.py", "source": SOURCE,
           "limits": {"cpu_seconds": 5}, "forbidden": []}


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


def test_call_returns_plain_data_and_captures_output(zygote):
    session = WorkerSession(zygote, REQUEST, call_timeout=5, import_timeout=5)
    try:
        value = session.request("call", name="double", call_args=[torch.ones(3)])
        assert torch.equal(value["result"], torch.full((3,), 2.0))
        assert session.record.output == ["doubling\n"]
    finally:
        session.close()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_all_layers_are_active_as_root(zygote):
    session = WorkerSession(zygote, REQUEST, call_timeout=5, import_timeout=5)
    session.close()
    text = " ".join(session.layers)
    for layer in ("network namespace", "uid", "no new privileges", "seccomp allowlist", "rlimits",
                  "Landlock", "filesystem view", "private /tmp", "IPC namespace"):
        assert layer in text


def test_echo_shows_in_place_changes(zygote):
    session = WorkerSession(zygote, REQUEST, call_timeout=5, import_timeout=5)
    try:
        value = session.request("call", name="inplace", call_args=[torch.zeros(2)], echo_args=True)
        assert torch.equal(value["args_after"][0][0], torch.ones(2))
    finally:
        session.close()


def test_timeout_and_exit_are_described(zygote):
    session = WorkerSession(zygote, REQUEST, call_timeout=0.5, import_timeout=5)
    with pytest.raises(StudentCodeError, match="did not finish within 0.5 s"):
        session.request("call", name="spin", doing="spinning")
    session = WorkerSession(zygote, REQUEST, call_timeout=5, import_timeout=5)
    with pytest.raises(StudentCodeError, match="exit code 3"):
        session.request("call", name="leave", doing="leaving")


def test_spawn_launcher_for_platforms_without_fork():
    """macOS path: a fresh interpreter per worker, same protocol."""
    launcher = SpawnLauncher()
    try:
        session = WorkerSession(launcher, REQUEST, call_timeout=60, import_timeout=120)
        value = session.request("call", name="double", call_args=[torch.ones(2)])
        assert torch.equal(value["result"], torch.full((2,), 2.0))
        session.close()
    finally:
        launcher.close()


def test_worker_runs_the_code_the_grader_compiled(zygote):
    """The grader compiles a submission once; its workers run that code object
    (the source is still sent, for tracebacks)."""
    import marshal
    code = marshal.dumps(compile("def double(x):\n    return x * 3\n", "m.py", "exec"))
    session = WorkerSession(zygote, dict(REQUEST, code=code), call_timeout=5, import_timeout=5)
    try:
        value = session.request("call", name="double", call_args=[torch.ones(2)])
        assert torch.equal(value["result"], torch.full((2,), 3.0))
    finally:
        session.close()


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        release = os.uname().release.split("-")[0].split(".")
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


@pytest.mark.skipif(not (os.uname().sysname == "Linux" and _kernel_at_least(6, 1)),
                    reason="MADV_COLLAPSE needs Linux 6.1")
def test_private_memory_collapses_into_huge_pages():
    """What makes forking a torch-loaded zygote cheap: its heap on 2 MiB pages."""
    import subprocess
    import sys
    script = (
        "from autograder.sandbox.hugepages import collapse_private_memory\n"
        "import mmap\n"
        "m = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\n"
        "m.write(b'x' * (64 << 20))\n"
        "assert collapse_private_memory() > 0\n"
        "huge = [l for l in open('/proc/self/smaps_rollup') if l.startswith('AnonHugePages')]\n"
        "print(int(huge[0].split()[1]))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(out.stdout) >= 32 * 1024  # kB: at least half of the 64 MiB region


def test_random_numbers_are_the_same_in_every_worker(zygote):
    """Code that draws random numbers (e.g. an uninitialised nn.Linear) gets the
    same ones in every worker, so its feedback is the same in every run."""
    values = []
    for _ in range(2):
        session = WorkerSession(zygote, REQUEST, call_timeout=5, import_timeout=5)
        try:
            values.append(session.request("call", name="noise")["result"])
        finally:
            session.close()
    assert torch.equal(values[0][0], values[1][0]) and values[0][1:] == values[1][1:]


def test_string_hashes_are_the_same_in_every_worker_of_every_zygote(zygote):
    """A set of names iterates in the same order whenever a submission is
    graded (the grader's own hash seed is random)."""
    seen = []
    for launcher in (zygote, Zygote(huge_pages=False)):
        session = WorkerSession(launcher, REQUEST, call_timeout=5, import_timeout=30)
        try:
            seen.append(session.request("call", name="hashes")["result"])
        finally:
            session.close()
            if launcher is not zygote:
                launcher.close()
    assert seen[0] == seen[1]
