"""The static scan of forbidden spellings: it only places a run-time finding in
the source, so it must find torch paths and nothing else."""

from autograder.assignment import ForbiddenCall
from autograder.engine.forbidden import MODULE_LEVEL, places, scan

SDPA = ForbiddenCall("torch.nn.functional.scaled_dot_product_attention",
                     ("torch.nn.functional.scaled_dot_product_attention",))
MHA = ForbiddenCall("torch.nn.MultiheadAttention", ("torch.nn.MultiheadAttention",))
SOFTMAX = ForbiddenCall("torch.softmax", (), ("masked_softmax",), ("aten::_softmax",))
LSTM = ForbiddenCall("torch.lstm_cell", (), (), ("aten::lstm_cell",))
AUTOGRAD = ForbiddenCall("torch.autograd", ("torch.autograd.grad",), ("attention_backward",),
                         ("autograd::backward",))


def test_alias_import():
    src = "import torch.nn.functional as F\ndef f(q):\n    return F.scaled_dot_product_attention(q, q, q)\n"
    assert scan(src, (SDPA,)) == {"f": {SDPA.name}}


def test_from_import_is_found_at_the_use_site():
    src = "from torch.nn import MultiheadAttention as M\nclass A:\n    def __init__(self):\n        self.m = M(4, 2)\n"
    assert scan(src, (MHA,)) == {"A": {MHA.name}}


def test_getattr_on_a_torch_path():
    src = "import torch\ndef f(q):\n    return getattr(torch.nn.functional, 'scaled_dot_product_attention')(q, q, q)\n"
    assert scan(src, (SDPA,)) == {"f": {SDPA.name}}


def test_own_function_of_the_same_name_is_fine():
    src = ("def scaled_dot_product_attention(q, k, v):\n    return q\n"
           "class M:\n    def forward(self, x):\n        return scaled_dot_product_attention(x, x, x)\n")
    assert scan(src, (SDPA,)) == {}


def test_scoped_rule_applies_only_inside_its_function():
    src = ("import torch\ndef masked_softmax(s):\n    return torch.softmax(s, -1)\n"
           "def attend(s):\n    return torch.softmax(s, -1)\n")
    assert scan(src, (SOFTMAX,)) == {"masked_softmax": {SOFTMAX.name}}


def test_module_level_use():
    src = "import torch\nfused = torch.nn.functional.scaled_dot_product_attention\n"
    assert scan(src, (SDPA,)) == {MODULE_LEVEL: {SDPA.name}}


def test_an_operator_under_any_torch_path():
    src = ("import torch\nfrom torch import _VF\n"
           "def a(x):\n    return torch._VF.lstm_cell(x)\n"
           "def b(x):\n    return _VF.lstm_cell(x)\n"
           "def c(x):\n    return torch.ops.aten.lstm_cell.default(x)\n"
           "def masked_softmax(s):\n    return torch._softmax(s, -1, False)\n")
    assert scan(src, (LSTM, SOFTMAX)) == {"a": {LSTM.name}, "b": {LSTM.name}, "c": {LSTM.name},
                                          "masked_softmax": {SOFTMAX.name}}


def test_strings_comments_and_other_objects_never_count():
    src = ('import torch\n# torch.nn.LSTM and torch._VF.lstm_cell are not used\n'
           'NAMES = {"lstm": "LSTM", "cell": "lstm_cell"}\n'
           'def masked_softmax(s, layer):\n    layer.softmax(s)\n    return getattr(layer, "softmax")(s)\n'
           'def attention_backward(q, layer):\n    return layer.backward(q)\n')
    assert scan(src, (LSTM, SOFTMAX, AUTOGRAD)) == {}


def test_places_name_the_file_line_and_function():
    src = ("import torch\n\nclass M:\n    def forward(self, q):\n"
           "        return torch.ops.aten.scaled_dot_product_attention(q, q, q)\n")
    rule = ForbiddenCall(SDPA.name, (), (), ("aten::scaled_dot_product_attention",))
    assert places(src, rule, {"M"}, "m.py") == ["m.py, line 5, in M.forward"]
    assert places(src, rule, {"other"}, "m.py") == []
