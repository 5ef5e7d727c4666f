"""The worker sandbox on its own: layers, limits, and the spawn fallback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autograder.sandbox.launcher import SandboxFault
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


# -- the sandbox failing is the grader's fault, never a student's zero --------

def test_a_stopped_zygote_is_a_sandbox_fault():
    launcher = Zygote(huge_pages=False)
    launcher._process.kill()
    launcher._process.wait()
    try:
        with pytest.raises(SandboxFault, match="stopped answering"):
            WorkerSession(launcher, REQUEST, call_timeout=5, import_timeout=5)
    finally:
        launcher.close()


def test_a_batch_whose_sandbox_stops_is_a_grader_error_not_zeros(tmp_path):
    """Killed for memory, say: no submission is given a score at all."""
    from autograder.grade import grade
    from conftest import ROOT

    subs = []
    for name in ("alice", "bob"):
        path = tmp_path / name / "multihead_attention.py"
        path.parent.mkdir()
        path.write_text((ROOT / "reference" / "multihead_attention.py").read_text())
        subs.append(str(path))
    launcher = Zygote(huge_pages=False)
    launcher._process.kill()
    launcher._process.wait()
    try:
        outcome = grade("multihead_attention", subs, tmp_path / "out", include_hidden=False,
                        launcher=launcher)
    finally:
        launcher.close()
    assert outcome.results == []
    assert any("The sandbox failed, not your code" in e for e in outcome.errors), outcome.errors
    assert any("no result was written for 2 of 2" in e for e in outcome.errors), outcome.errors


# -- what a sandbox interpreter gets of the grader ----------------------------

def test_only_named_variables_reach_the_sandbox(monkeypatch):
    from autograder.sandbox import interpreter

    monkeypatch.setenv("AUTOGRADER_DISABLE_LAYERS", "")
    monkeypatch.setenv("AUTOGRADER_DEPLOY_TOKEN", "secret")
    monkeypatch.setenv("GITHUB_TOKEN", "secret")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    env = interpreter.environment()
    assert "AUTOGRADER_DEPLOY_TOKEN" not in env and "GITHUB_TOKEN" not in env
    assert "AUTOGRADER_DISABLE_LAYERS" in env and env["LC_ALL"] == "C.UTF-8"
    assert "secret" not in " ".join(interpreter.command("autograder.sandbox.zygote:main"))


PATH_ONLY = """
import sys
from autograder.sandbox.zygote import Zygote
from autograder.sandbox.session import WorkerSession
request = {"module": "m", "filename": "m.py", "limits": {"cpu_seconds": 5}, "forbidden": [],
           "source": "import probe_on_grader_path\\ndef f():\\n    return probe_on_grader_path.VALUE\\n"}
with Zygote(huge_pages=False) as zygote:
    session = WorkerSession(zygote, request, call_timeout=10, import_timeout=60)
    print("VALUE", session.request("call", name="f")["result"])
    session.close()
"""


def test_workers_import_what_the_grader_imports_from_its_path(tmp_path):
    """A package the grader finds only through PYTHONPATH or a user install
    (a student's `pip install --user torch`) is found by the zygote too."""
    import shutil
    import tempfile

    # Like ~/.local/lib/python3.X/site-packages: an installed location (readable
    # in the view), outside /tmp (each worker has a private one).
    home = Path(tempfile.mkdtemp(prefix=".autograder-test-", dir=Path.home()))
    try:
        site = home / "site-packages"
        site.mkdir()
        (site / "probe_on_grader_path.py").write_text("VALUE = 42\n")
        home.chmod(0o755)
        env = dict(os.environ, PYTHONPATH=str(site))
        done = subprocess.run([sys.executable, "-c", PATH_ONLY], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(home)
    assert "VALUE 42" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def test_ctrl_c_early_in_check_is_one_line_and_exit_130(tmp_path):
    """A terminal sends SIGINT to the whole foreground group, here while the
    grader and the zygote import torch: no crash, no traceback, nothing left."""
    from conftest import ROOT

    for delay in (0.6, 1.2):
        proc = subprocess.Popen([sys.executable, "-m", "autograder", "check",
                                 "multihead_attention",
                                 str(ROOT / "reference" / "multihead_attention.py")],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            continue  # finished before the signal: nothing to see
        assert proc.returncode in (130, 1), (proc.returncode, err[-2000:])
        assert "Traceback" not in err and "Segmentation" not in err, err[-2000:]


def test_closing_a_zygote_does_not_wait_on_a_forked_copy_of_its_socket():
    """A process forked from the grader (a --jobs grader, a library caller's
    fork) holds a copy of the control socket: the zygote must quit anyway."""
    launcher = Zygote(huge_pages=False)
    session = WorkerSession(launcher, REQUEST, call_timeout=5, import_timeout=30)
    session.close()
    holder = os.fork()
    if holder == 0:
        time.sleep(60)
        os._exit(0)
    try:
        started = time.monotonic()
        launcher.close()
        assert launcher._process.returncode is not None
        assert time.monotonic() - started < 30  # a bound on a hang, not a score
    finally:
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
