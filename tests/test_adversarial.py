"""Submissions that attack the grader earn nothing, and the batch goes on.

Each attack is built on the untouched template, so any point it earned would
be unearned; the last submission of the batch is correct and must score 100.
"""

import shutil

import pytest

from conftest import ROOT, grade_batch, make_course

TEMPLATE = (ROOT / "student_templates" / "multihead_attention.py").read_text()
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
    "writes_results": every_function(
        "import json, os, glob\n"
        "for d in ['.', '/tmp', os.environ.get('HOME', '/')] + glob.glob('/tmp/**/out/*', recursive=True):\n"
        "    try:\n"
        "        open(os.path.join(d, 'results.json'), 'w').write(json.dumps({'score': 100}))\n"
        "    except Exception:\n"
        "        pass\n"
        "return None"),
    "reads_reference": every_function(
        "import glob\n"
        "for path in glob.glob('/**/reference/multihead_attention.py', recursive=True) + "
        f"['{ROOT}/reference/multihead_attention.py']:\n"
        "    try:\n"
        "        namespace = {}\n"
        "        exec(open(path).read(), namespace)\n"
        "        return namespace['causal_mask'](*args, **kwargs)\n"
        "    except Exception:\n"
        "        pass\n"
        "return None"),
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
    "network": every_function(
        "import socket\ns = socket.create_connection(('127.0.0.1', 22), timeout=1)\nreturn None"),
}


@pytest.fixture(scope="module")
def attack_batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks")
    course = make_course(tmp, call_seconds=1.5, import_seconds=3, submission_seconds=5,
                         cpu_seconds=5)
    subs = tmp / "subs"
    subs.mkdir()
    for name, source in ATTACKS.items():
        (subs / f"{name}.py").write_text(source)
    # Graded last: a correct submission after all the attacks.
    shutil.copy(ROOT / "reference" / "multihead_attention.py", subs / "zz_correct.py")
    return grade_batch(tmp, sorted(subs.iterdir()), course=course)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_earns_nothing(attack_batch, attack):
    outcome, results = attack_batch
    result = results[attack]
    earned = [t.name for t in result.tests if t.passed]
    assert result.score == 0, f"{attack} earned points in {earned}"
    assert result.max_score == 100


def test_batch_goes_on_after_attacks(attack_batch):
    outcome, results = attack_batch
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
    ("reads_reference", ""),
])
def test_attacks_get_a_clear_message(attack_batch, attack, words):
    result = attack_batch[1][attack]
    text = "\n".join(result.messages + [t.feedback for t in result.tests])
    assert words in text


def test_printed_output_is_shown_not_parsed(attack_batch):
    result = attack_batch[1]["prints_success"]
    assert any("Your code printed:\nAll tests passed" in t.feedback for t in result.tests)
