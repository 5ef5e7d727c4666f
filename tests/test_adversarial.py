"""Submissions that attack the grader earn nothing, and the batch goes on.

Each attack is built on the untouched template, so any point it earned would
be unearned; the last submission of the batch is correct and must score 100.
"""

import json
import os
import random
import shutil
import socket
import threading
from pathlib import Path

import pytest

from conftest import ROOT, grade_batch, make_course

TEMPLATE = (ROOT / "student_templates" / "multihead_attention.py").read_text()
# What "writes_results" plants, unique to this run; the out folder and the
# port of the test's listener are filled in when the batch is built.
PLANTED = json.dumps({"score": 100, "planted": f"writes_results-{os.getpid()}-{random.random()}"})
OUT, PORT = "@OUT@", "@PORT@"
FUNCTIONS = ["causal_mask", "scaled_dot_product_attention", "split_heads", "merge_heads",
             "attention_cost"]


def every_function(body: str, prelude: str = "") -> str:
    """The template with every function (and the module's forward) replaced by ``body``."""
    text = prelude + "\n" + TEMPLATE
    for name in FUNCTIONS:
        text += f"\n\ndef {name}(*args, **kwargs):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    text += ("\n\nclass MultiHeadAttention(torch.nn.Module):\n"
             "    def __init__(self, *args, **kwargs):\n        super().__init__()\n"
             "    def forward(self, *args, **kwargs):\n"
             + "".join(f"        {line}\n" for line in body.splitlines()))
    return text


ATTACKS = {
    "loop_at_import": "while True:\n    pass\n" + TEMPLATE,
    "loop_in_calls": every_function("while True:\n    pass"),
    "sleep": every_function("import time\ntime.sleep(1000)"),
    "memory_bomb": every_function("return torch.ones(50 * 2**30 // 4)"),
    "memory_bomb_python": every_function("x = bytearray(50 * 2**30)\nreturn x"),
    "fork_bomb": every_function("import os\nwhile True:\n    os.fork()"),
    "sys_exit": every_function("import sys\nsys.exit(0)"),
    "os_exit_at_import": "import os\nos._exit(0)\n" + TEMPLATE,
    "keyboard_interrupt": every_function("raise KeyboardInterrupt"),
    "monkeypatch_torch": every_function(
        "return torch.zeros(1)",
        prelude="import torch\n"
                "torch.allclose = lambda *a, **k: True\n"
                "torch.testing.assert_close = lambda *a, **k: None\n"
                "torch.equal = lambda *a, **k: True\n"
                "torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)\n"),
    "tensor_subclass": every_function(
        "return Liar(torch.zeros(1))",
        prelude="import torch\n"
                "class Liar(torch.Tensor):\n"
                "    def __eq__(self, other): return True\n"
                "    def allclose(self, *a, **k): return True\n"),
    "attribute_tensor": every_function("t = torch.zeros(1)\nt.passed = True\nreturn t"),
    "prints_success": every_function(
        'print("All tests passed! score: 100/100")\nreturn None',
        prelude='print("All tests passed")\n'),
    # Plants a score in every results file it can reach, a classmate's too
    # (test_writes_results_left_nothing looks for what it planted).
    "writes_results": every_function(
        "import os, glob\n"
        f"for d in ['.', '/tmp', os.environ.get('HOME', '/'), '{OUT}'] + glob.glob('{OUT}/*'):\n"
        "    for name in ('results.json', 'grading.json'):\n"
        "        try:\n"
        f"            open(os.path.join(d, name), 'w').write({PLANTED!r})\n"
        "        except Exception:\n"
        "            pass\n"
        "return None"),
    "reads_reference": every_function(
        "import glob, itertools\n"
        "error = None\n"
        f"for path in itertools.chain(['{ROOT}/reference/multihead_attention.py'], "
        "glob.iglob('/**/reference/multihead_attention.py', recursive=True)):\n"
        "    try:\n"
        "        namespace = {}\n"
        "        exec(open(path).read(), namespace)\n"
        "        return namespace['causal_mask'](*args, **kwargs)\n"
        "    except Exception as exc:\n"
        "        error = exc\n"
        "raise error"),
    "searches_memory_for_secrets": every_function(
        "import gc, sys\n"
        "for obj in gc.get_objects():\n"
        "    if isinstance(obj, dict) and 'expected' in obj:\n"
        "        return obj['expected']\n"
        "for name, module in list(sys.modules.items()):\n"
        "    if 'reference' in name and hasattr(module, 'causal_mask'):\n"
        "        return module.causal_mask(*args, **kwargs)\n"
        "return None"),
    "kills_parent": every_function(
        "import os, signal\n"
        "for pid in (os.getppid(), 1, -1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except Exception:\n"
        "        pass\n"
        "os.killpg(0, signal.SIGKILL)"),
    # Connects to the test's own listener (test_network_reaches_nothing).
    "network": every_function(
        f"import socket\ns = socket.create_connection(('127.0.0.1', {PORT}), timeout=1)\n"
        "s.sendall(b'hello')\nreturn None"),
}


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection."""

    def __init__(self):
        self.accepted = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, address = self.server.accept()
            except OSError:
                return
            self.accepted.append(address)
            conn.close()


@pytest.fixture(scope="module")
def attack_batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks")
    course = make_course(tmp, call_seconds=1.5, import_seconds=3, submission_seconds=5,
                         cpu_seconds=5)
    subs = tmp / "subs"
    subs.mkdir()
    listener = Listener()
    for name, source in ATTACKS.items():
        source = source.replace(OUT, str(tmp / "out")).replace(PORT, str(listener.port))
        (subs / f"{name}.py").write_text(source)
    # Graded last: a correct submission after all the attacks.
    shutil.copy(ROOT / "reference" / "multihead_attention.py", subs / "zz_correct.py")
    try:
        outcome, results = grade_batch(tmp, sorted(subs.iterdir()), course=course)
    finally:
        listener.server.close()
    return outcome, results, tmp, listener.accepted


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_earns_nothing(attack_batch, attack):
    results = attack_batch[1]
    result = results[attack]
    earned = [t.name for t in result.tests if t.passed]
    assert result.score == 0, f"{attack} earned points in {earned}"
    assert result.max_score == 100


def test_batch_goes_on_after_attacks(attack_batch):
    outcome, results = attack_batch[:2]
    assert not outcome.errors
    assert results["zz_correct"].score == 100


@pytest.mark.parametrize("attack, words", [
    ("loop_at_import", "did not finish within"),
    ("sleep", "did not finish within"),
    ("memory_bomb", "allocate"),
    ("fork_bomb", "Operation not permitted"),
    ("sys_exit", "SystemExit"),
    ("os_exit_at_import", "exited"),
    ("tensor_subclass", "not a plain torch.Tensor"),
    # The reference is not in the worker's view (or, without a view, Landlock denies it).
    ("reads_reference", (f"No such file or directory: '{ROOT}/reference/multihead_attention.py'",
                         f"Permission denied: '{ROOT}/reference/multihead_attention.py'")),
])
def test_attacks_get_a_clear_message(attack_batch, attack, words):
    result = attack_batch[1][attack]
    text = "\n".join(result.messages + [t.feedback for t in result.tests])
    assert any(w in text for w in ((words,) if isinstance(words, str) else words)), text[:2000]


def test_writes_results_left_nothing(attack_batch):
    """Whatever "writes_results" could write is found: the planted score in
    any results file of the batch's folder, the grader's folder or /tmp."""
    tmp = attack_batch[2]
    candidates = [Path(d) / name for d in (Path.cwd(), Path("/tmp"), Path.home())
                  for name in ("results.json", "grading.json")]
    candidates += list(tmp.glob("**/results.json")) + list(tmp.glob("**/grading.json"))
    planted = [str(p) for p in candidates if p.is_file() and PLANTED in p.read_text(errors="replace")]
    assert planted == []
    # Every report is the grader's own: the attacker's says 0, the correct one 100.
    for sid, score in (("writes_results", 0), ("zz_correct", 100)):
        record = json.loads((tmp / "out" / sid / "results.json").read_text())
        assert record["score"] == score and "planted" not in record


def test_network_reaches_nothing(attack_batch):
    assert attack_batch[3] == []


def test_printed_output_is_shown_not_parsed(attack_batch):
    result = attack_batch[1]["prints_success"]
    assert any("Your code printed:\nAll tests passed" in t.feedback for t in result.tests)
