"""Run-time detection of forbidden operations, installed in the worker.

Forbidden means the operation, not its spelling. A rule of ``assignment.yaml``
(see :class:`autograder.assignment.ForbiddenCall`) names what must not run in
student code, and this module notes it when it runs, whatever reached it:

* ``ops``: operators. A kernel of ours is registered with torch's dispatcher
  for each of their overloads; it notes the call, then hands it on to torch's
  own kernel. Every route to the operator goes through the dispatcher:
  ``torch.softmax``, ``Tensor.softmax``, ``torch._softmax``,
  ``torch.ops.aten._softmax.default``, ``torch._VF.lstm_cell``,
  ``torch._C._nn.scaled_dot_product_attention``, torch code calling it for the
  student (``F.softmin``, ``F.multi_head_attention_forward``), TorchScript.
  CompositeImplicitAutograd operators (``aten::lstm_cell``,
  ``aten::scaled_dot_product_attention``) get it for keys AutogradCPU and CPU
  (inference mode) and then run torch's decomposition; operators with kernels
  of their own (``aten::_softmax``) get it for key ADInplaceOrView, just below
  autograd, so gradients are untouched, or for AutogradCPU where that loses
  nothing (see :func:`watch_key`). Not seen: such an operator called on
  inference-mode tensors, or from inside another kernel's C++ (the fast path
  of ``nn.TransformerEncoderLayer``, whose ``nn.MultiheadAttention`` is a path).
* ``autograd::backward``: any backward pass started from Python
  (``Tensor.backward``, ``torch.autograd.grad``, ``torch.func``,
  ``torch.autograd.functional``): the engine object they all go through is
  wrapped. Not seen: TorchScript's autograd, or a second engine object.
* ``paths``: Python functions, replaced by a wrapper that notes the call, and
  classes. Their code names the rule when a watched operator or function runs
  inside them: ``nn.LSTMCell.forward`` runs ``aten::lstm_cell`` and the finding
  says ``torch.nn.LSTMCell``; ``nn.MultiheadAttention.forward`` runs
  ``multi_head_attention_forward`` or an attention kernel, and the finding says
  ``torch.nn.MultiheadAttention``. A class built but never run is no finding.

Measured (torch 2.13, CPU, this 2-vCPU VM; a worker forked from a warm
zygote, one test's calls): the kernels cost nothing on other operators;
installing the rules costs a worker 1.5-3 ms of CPU (~0.1 ms per overload,
plus ~1 ms that :func:`prepare` in the zygote would save), against ~33 ms per
worker in all. The alternatives: a ``TorchDispatchMode`` sees every operator
below autograd, but costs 5-10 us on every operator and ~1 ms at each
operator's first dispatch in a fresh worker (+5-7 ms per multi-head attention
test), and its first use imports torch._dynamo (~1 s) unless
``_should_skip_dynamo`` is overridden. A ``TorchFunctionMode`` sees Python
bindings (``torch._VF``, ``torch.ops``), but not what torch calls inside a
function it handled, nor TorchScript, for 2-5 us on every torch call.

The detection runs in the student's process, so it catches any spelling of a
forbidden operation, not a submission that sets out to disable it.

A call counts only when student code caused it, never the grader's own work in
the worker: the Python stack holds a frame of the student's file, or the grader
called an API name that the student's module bound straight to a torch
callable (``lstm_cell = torch.lstm_cell``). A finding reads
``"<rule> (<file>, line <n>, in <function>)"`` for the innermost student frame;
the rule's bare name is reported as well.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import torch

ENGINE = "autograd::backward"  # pseudo-operator: any backward pass
MAX_FINDINGS = 64              # distinct findings kept between two answers


class Rule(NamedTuple):
    name: str
    within: frozenset  # student function names; empty: anywhere in student code


_found: dict[str, None] = {}          # findings since the last answer, in order
_student_file: str | None = None
_worker_file: str | None = None        # the worker's own module (its frames are the grader's)
_entry_codes: frozenset = frozenset()  # Worker.op_call / op_new: they call student API names
_api_paths: list = []                  # (path, Rule) of the rules' Python classes and functions
_api_code_map: dict = {}               # their code objects -> Rule (see _api_codes)
_libraries: dict = {}                  # namespace -> torch.library.Library (keeps our kernels)


# -- planning: in the grader, once (ForbiddenCall.as_rule), else in the worker ----
def overloads(name: str) -> list[str]:
    """``"aten::softmax"`` -> ``["aten::softmax.int", "aten::softmax.int_out"]``;
    ``"aten::softmax.int"`` -> that one; ``"aten::lstm_cell"`` -> itself (its
    overload is the default one)."""
    qualified, _, wanted = name.partition(".")
    found = [s.overload_name for s in torch._C._jit_get_schemas_for_operator(qualified)]
    if not found or (wanted and wanted not in found):
        raise LookupError(f"no operator {name}")
    return [qualified + (f".{o}" if o else "") for o in found if not wanted or o == wanted]


def watch_key(overload: str) -> str:
    """The dispatch key our kernel for ``overload`` is registered for (see the
    module's doc): "CompositeImplicitAutograd" stands for AutogradCPU and CPU.
    Just below autograd (ADInplaceOrView) where autograd's kernel passes through
    that key; else at AutogradCPU, which loses nothing there: an out= or in-place
    variant (its kernel at ADInplaceOrView still runs after ours), or an operator
    without a derivative (whose autograd kernel skips ADInplaceOrView)."""
    def has(key: str) -> bool:
        return torch._C._dispatch_has_kernel_for_dispatch_key(overload, key)
    if has("CompositeImplicitAutograd"):
        return "CompositeImplicitAutograd"
    if has("ADInplaceOrView"):
        return "AutogradCPU"
    derivatives = _derivatives()
    if derivatives is not None and overload.partition("::")[2] not in derivatives:
        return "AutogradCPU"
    return "ADInplaceOrView"


@functools.cache
def _derivatives() -> frozenset | None:
    """Overloads with a derivative formula ("_softmax", "add.Tensor"): torch's own
    derivatives.yaml, which torchgen ships with it (None if it is missing)."""
    try:
        import torchgen

        text = (Path(torchgen.__file__).parent / "packaged" / "autograd" /
                "derivatives.yaml").read_text()
    except (ImportError, OSError):
        return None
    return frozenset(re.findall(r"^- name:\s+([\w.]+)\(", text, re.MULTILINE))


def resolve(ops: Iterable[str]) -> dict:
    """A rule's operators as the worker installs them: ``{"overloads": {overload:
    key}, "engine": bool}``. LookupError for an operator this torch lacks."""
    plan = {"overloads": {}, "engine": False}
    for name in ops:
        if name == ENGINE:
            plan["engine"] = True
        else:
            plan["overloads"].update((o, watch_key(o)) for o in overloads(name))
    return plan


def _resolve_known(ops: Iterable[str]) -> dict:
    """:func:`resolve` in a worker sent no plan: operators this torch lacks are
    skipped (the grader's own resolution refuses them)."""
    def exists(name: str) -> bool:
        try:
            return name == ENGINE or bool(overloads(name))
        except LookupError:
            return False
    return resolve([name for name in ops if exists(name)])


# -- installation ----------------------------------------------------------------
def prepare() -> None:
    """Optional, in the zygote after its warm-up: make the (empty) library our
    kernels join, which saves each forked worker ~1 ms and ~300 page faults
    (measured; made at import time instead, it saves almost nothing)."""
    _libraries.setdefault("aten", torch.library.Library("aten", "IMPL"))


def install(rules: Iterable[dict], student_file: str) -> None:
    """``rules``: ``ForbiddenCall.as_rule()`` dicts: ``name``, ``paths``,
    ``within``, ``ops`` and (resolved by the grader) ``plan``."""
    global _student_file, _worker_file, _entry_codes
    rules = list(rules)
    if not rules:
        return
    _student_file = student_file
    caller = sys._getframe(1)  # Worker.start: the grader's side of this process
    worker_class = caller.f_globals.get("Worker")
    _worker_file = caller.f_code.co_filename
    _entry_codes = frozenset(getattr(getattr(worker_class, op, None), "__code__", None)
                             for op in ("op_call", "op_new")) - {None}
    for rule in rules:
        watched = Rule(rule["name"], frozenset(rule.get("within") or ()))
        for path in rule.get("paths") or ():
            _watch_path(path, watched)
        plan = rule.get("plan") or _resolve_known(rule.get("ops") or ())
        for overload, key in plan["overloads"].items():
            _watch_overload(overload, key, watched)
        if plan["engine"]:
            _watch_engine(watched)


def _watch_overload(overload: str, key: str, rule: Rule) -> None:
    namespace, _, name = overload.partition("::")
    if namespace not in _libraries:
        _libraries[namespace] = torch.library.Library(namespace, "IMPL")
    library = _libraries[namespace]
    if key == "CompositeImplicitAutograd":
        kernel = _composite_kernel(overload, rule)
        library.impl(name, kernel, "AutogradCPU")
        library.impl(name, kernel, "CPU")  # tensors without autograd (inference mode)
    else:
        library.impl(name, _kernel_below(overload, key, rule), key, with_keyset=True)


@functools.cache
def _op(overload: str):
    """``"aten::lstm.input"`` -> torch.ops.aten.lstm.input (made when first run)."""
    namespace, _, name = overload.partition("::")
    packet, _, variant = name.partition(".")
    return getattr(getattr(getattr(torch.ops, namespace), packet), variant or "default")


def _composite_kernel(overload: str, rule: Rule):
    def kernel(*args, **kwargs):
        _note(rule)
        return _op(overload).decompose(*args, **kwargs)  # torch's own decomposition
    return kernel


_BELOW = {  # what a kernel at this key leaves to the keys after it
    "ADInplaceOrView": (torch._C._after_ADInplaceOrView_keyset,
                        torch._C._AutoDispatchBelowADInplaceOrView),
    "AutogradCPU": (torch._C._after_autograd_keyset, torch._C._AutoDispatchBelowAutograd),
}


def _kernel_below(overload: str, key: str, rule: Rule):
    after, guard = _BELOW[key]

    def kernel(keyset, *args, **kwargs):
        _note(rule)
        with guard():
            return _op(overload).redispatch(keyset & after, *args, **kwargs)
    return kernel


class _Engine:
    """Stands in for the autograd engine object that every backward pass started
    from Python goes through (``Variable._execution_engine``)."""

    def __init__(self, engine, rule: Rule):
        self._engine, self._rule = engine, rule

    def run_backward(self, *args, **kwargs):
        _note(self._rule)
        return self._engine.run_backward(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._engine, name)


def _watch_engine(rule: Rule) -> None:
    from torch.autograd.variable import Variable

    Variable._execution_engine = _Engine(Variable._execution_engine, rule)


def _resolve(path: str):
    """``torch.nn.functional.softmax`` -> (module torch.nn.functional, "softmax")."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        owner = sys.modules.get(".".join(parts[:cut]))
        try:
            owner = owner or importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1]
    raise LookupError(path)


def _watch_path(path: str, rule: Rule) -> None:
    """A function is wrapped. A class is not: what it runs is (its operators, or
    a wrapped function), and its methods' code names its rule (see _note)."""
    _api_paths.append((path, rule))
    try:
        owner, attr = _resolve(path)
        original = getattr(owner, attr)
    except (LookupError, AttributeError):
        return
    if not isinstance(original, type):
        setattr(owner, attr, _wrap_function(original, rule))


def _wrap_function(original, rule: Rule):
    @functools.wraps(original)
    def tripwire(*args, **kwargs):
        _note(rule)
        return original(*args, **kwargs)
    return tripwire


def _api_codes() -> dict:
    """Code object of each method of a path's class, and of a path's function ->
    its Rule; built when first needed (a finding), not in every worker."""
    if _api_code_map or not _api_paths:
        return _api_code_map
    for path, rule in _api_paths:
        try:
            owner, attr = _resolve(path)
            value = getattr(owner, attr)
        except (LookupError, AttributeError):
            continue
        values = vars(value).values() if isinstance(value, type) else \
            [getattr(value, "__wrapped__", value)]
        for item in values:
            code = getattr(getattr(item, "__func__", item), "__code__", None)
            if code is not None:
                _api_code_map.setdefault(code, rule)
    return _api_code_map


# -- attribution -----------------------------------------------------------------
def _note(rule: Rule) -> None:
    """Record ``rule`` if student code caused this call (see the module's doc)."""
    frame = sys._getframe(2)
    student = None            # the innermost frame of the student's file
    inner = []                # the code run between that frame and this call
    names = set()             # student functions on the stack (for ``within``)
    called_as = None          # the API name the grader called
    while frame is not None:
        code = frame.f_code
        if code.co_filename == _student_file:
            if student is None:
                student = frame
            names.add(code.co_name)
        elif code.co_filename == _worker_file:
            if code not in _entry_codes:
                if student is None:
                    return  # the grader's own work (its backward pass, copying results)
                break
            called_as = frame.f_locals.get("name")
            if type(called_as) is str:
                names.add(called_as)
            break
        elif student is None:
            inner.append(code)
        frame = frame.f_back
    if student is None and type(called_as) is not str:
        return
    api = None  # the outermost forbidden Python API in between: its rule is the one that matters
    if inner and _api_paths:
        codes = _api_codes()
        for code in inner:
            api = codes.get(code, api)
    for candidate in (api, rule):
        if candidate is not None and (not candidate.within or candidate.within & names):
            break
    else:
        return
    where = os.path.basename(_student_file or "")
    if student is not None:
        code = student.f_code
        where += f", line {student.f_lineno}, in {getattr(code, 'co_qualname', code.co_name)}"
    else:
        where += f", called as {called_as}"
    for finding in (candidate.name, f"{candidate.name} ({where})"):
        if finding not in _found and len(_found) < MAX_FINDINGS:
            _found[finding] = None


def take_used() -> list[str]:
    """The findings since the last call: each rule's bare name, then
    ``"<rule> (<file>, line <n>, in <function>)"`` for each place."""
    findings = list(_found)
    _found.clear()
    return findings
