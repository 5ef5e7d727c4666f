"""Correct work is never marked down: not for its style, its habits or the
machine's load. Each submission here is correct, written the other way."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, grade_sources

REFERENCE = (ROOT / "reference" / "multihead_attention.py").read_text()

HABITS = '''import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
import torch

NAMES = {"sdpa": "torch.nn.functional.scaled_dot_product_attention",
         "mha": "torch.nn.MultiheadAttention"}  # torch names in strings never count
# A comment naming nn.MultiheadAttention and F.scaled_dot_product_attention.


def _meta_shape(n):
    with torch.device("meta"):  # a lazy import inside torch
        return torch.empty(n).shape
''' + REFERENCE + '''

if __name__ == "__main__":
    weights = scaled_dot_product_attention(*(torch.randn(1, 3, 4) for _ in range(3)))[1]
    plt.imshow(weights[0].numpy())
    plt.show()
    display(np.asarray(weights))
'''

# The Annotated Transformer's layout: four projections in a ModuleList, exposed
# under the spec's names as aliases of the same nn.Linear objects.
ALIASED = REFERENCE.replace(
    """        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)""",
    """        self.linears = nn.ModuleList([nn.Linear(d_model, d_model, bias=bias)
                                      for _ in range(4)])
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = self.linears""")


@pytest.fixture(scope="module")
def styles_batch(tmp_path_factory):
    assert ALIASED != REFERENCE
    return grade_sources(tmp_path_factory.mktemp("styles"), "multihead_attention",
                         {"habits": HABITS, "aliased_modulelist": ALIASED}, jobs=1)


@pytest.mark.parametrize("sid", ["habits", "aliased_modulelist"])
def test_correct_styles_get_full_marks(styles_batch, sid):
    result = styles_batch[sid]
    failed = {t.key: t.feedback[:300] for t in result.tests if not t.passed}
    assert result.score == result.max_score == 100, failed


def _grade_cli(tmp, sub, env=None):
    out = tmp / "out"
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", "multihead_attention",
                           str(sub), "--out", str(out)], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))
    assert done.returncode == 0, done.stderr
    record = json.loads((out / sub.stem / "grading.json").read_text())
    return record["score"], [(t["key"], t["passed"], t["feedback"]) for t in record["tests"]]


def test_same_score_and_feedback_under_cpu_saturation(tmp_path):
    """No wall clock decides a point: a submission with mistakes (so that its
    feedback has content) gets the same score and feedback, word for word, on
    an idle machine and on one saturated by busy processes."""
    sub = tmp_path / "mistakes.py"
    sub.write_text((ROOT / "examples" / "submissions" / "multihead_attention" /
                    "causal_triu_leak.py").read_text())
    idle = _grade_cli(tmp_path / "idle", sub)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(2 * (os.cpu_count() or 1))]
    try:
        busy = _grade_cli(tmp_path / "busy", sub)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert idle == busy
    assert 0 < idle[0] < 100
