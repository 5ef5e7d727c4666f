"""Static detection of forbidden calls."""

from autograder.assignment import ForbiddenCall
from autograder.engine.forbidden import MODULE_LEVEL, scan

SDPA = ForbiddenCall("torch.nn.functional.scaled_dot_product_attention",
                     ("torch.nn.functional.scaled_dot_product_attention",))
MHA = ForbiddenCall("torch.nn.MultiheadAttention", ("torch.nn.MultiheadAttention",))
SOFTMAX = ForbiddenCall("torch.Tensor.softmax", ("torch.Tensor.softmax",), ("masked_softmax",))


def test_alias_import():
    src = "import torch.nn.functional as F\ndef f(q):\n    return F.scaled_dot_product_attention(q, q, q)\n"
    assert scan(src, (SDPA,)) == {"f": {SDPA.name}}


def test_from_import_is_module_level_and_use_site():
    src = "from torch.nn import MultiheadAttention as M\nclass A:\n    def __init__(self):\n        self.m = M(4, 2)\n"
    assert scan(src, (MHA,)) == {"A": {MHA.name}}


def test_getattr_string():
    src = "import torch\ndef f(q):\n    return getattr(torch.nn.functional, 'scaled_dot_product_attention')(q, q, q)\n"
    assert scan(src, (SDPA,)) == {"f": {SDPA.name}}


def test_own_function_of_the_same_name_is_fine():
    src = ("def scaled_dot_product_attention(q, k, v):\n    return q\n"
           "class M:\n    def forward(self, x):\n        return scaled_dot_product_attention(x, x, x)\n")
    assert scan(src, (SDPA,)) == {}


def test_scoped_rule_applies_only_inside_its_function():
    src = ("def masked_softmax(s):\n    return s.softmax(-1)\n"
           "def attend(s):\n    return s.softmax(-1)\n")
    assert scan(src, (SOFTMAX,)) == {"masked_softmax": {SOFTMAX.name}}


def test_module_level_use():
    src = "import torch\nfused = torch.nn.functional.scaled_dot_product_attention\n"
    assert scan(src, (SDPA,)) == {MODULE_LEVEL: {SDPA.name}}
