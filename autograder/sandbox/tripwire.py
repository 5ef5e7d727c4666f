"""Run-time detection of forbidden operations, installed in the worker.

Forbidden means the operation, not its spelling. A rule of ``assignment.yaml``
(see :class:`autograder.assignment.ForbiddenCall`) names what must not run in
student code: ``ops`` are operators, seen when they run whatever Python
spelling reached them (``torch.softmax``, ``Tensor.softmax``, ``torch._softmax``,
``torch.ops.aten._softmax.default``, torch code that calls it for the student,
TorchScript); ``paths`` are Python-level callables and classes
(``torch.nn.MultiheadAttention``, ``F.multi_head_attention_forward``). Each
layer is installed only when a rule of the assignment needs it:

* operators with a kernel of their own (``aten::_softmax``,
  ``aten::_scaled_dot_product_flash_attention_for_cpu``): a
  ``TorchDispatchMode`` sees every call below autograd;
* CompositeImplicitAutograd operators (``aten::lstm_cell``,
  ``aten::scaled_dot_product_attention``) are decomposed into other operators
  before any dispatch mode sees them: a kernel registered for them (keys
  AutogradCPU and CPU) notes the call and runs torch's own decomposition;
* ``autograd::backward``: the dispatch mode notes operators that the autograd
  engine runs (``Tensor.backward``, ``torch.autograd.grad``, ``torch.func``, or
  the engine called directly);
* ``paths``: the callable is replaced by a wrapper that notes the call (a
  class: its ``__init__``); its code also names the rule when an operator runs
  inside it (``nn.MultiheadAttention.forward`` runs ``multi_head_attention_forward``
  and an attention kernel: the finding names ``torch.nn.MultiheadAttention``).

Measured alternatives (torch 2.13, CPU): a ``TorchFunctionMode`` sees every
Python binding (``torch._VF``, ``torch._C._nn``, ``torch.ops.aten``) but neither
calls torch makes inside a function it handled nor TorchScript, and costs
~2-5 us on every torch call; the registered kernels cost nothing on any other
operator. A dispatch mode costs ~5-10 us per operator (its first use would
import torch._dynamo, ~1 s in every worker: ``_should_skip_dynamo`` avoids it).

A call counts only when student code caused it, never the grader's own work in
the worker: the Python stack holds a frame of the student's file, or the grader
called an API name that the student's module bound straight to a torch
callable (``lstm_cell = torch.lstm_cell``). A finding reads
``"<rule> (<file>, line <n>, in <function>)"`` for the innermost student frame;
the bare rule name is reported as well.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from typing import Iterable, NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ENGINE = "autograd::backward"  # pseudo-operator: anything the autograd engine runs
MAX_FINDINGS = 64              # distinct findings kept between two answers


class Rule(NamedTuple):
    name: str
    within: frozenset  # student function names; empty: anywhere in student code


_found: dict[str, None] = {}          # findings since the last answer, in order
_student_file: str | None = None
_api_codes: dict = {}                  # code of a forbidden Python API -> its Rule
_kernels: dict = {}                    # "aten::_softmax" -> {"default": Rule}: the dispatch mode's
_graph_task_id = torch._C._current_graph_task_id  # >= 0 while the autograd engine runs
_engine: Rule | None = None
_worker_file: str | None = None        # the worker's own module (its frames are the grader's)
_entry_codes: frozenset = frozenset()  # Worker.op_call / op_new: they call student API names
_alive: list = []                      # the registered kernels and the mode live as long as we do


# -- planning: in the grader, once (ForbiddenCall.as_rule), or in the worker ------
def overloads(name: str) -> list[str]:
    """``"aten::softmax"`` -> ``["aten::softmax.int", "aten::softmax.int_out"]``;
    ``"aten::softmax.int"`` -> that one; ``"aten::lstm_cell"`` -> itself (its
    overload is the default one). Names only: no torch.ops objects are made."""
    qualified, _, wanted = name.partition(".")
    found = [s.overload_name for s in torch._C._jit_get_schemas_for_operator(qualified)]
    if not found or (wanted and wanted not in found):
        raise LookupError(f"no operator {name}")
    return [qualified + (f".{o}" if o else "") for o in found if not wanted or o == wanted]


def is_composite(overload: str) -> bool:
    """True when a dispatch mode never sees ``overload`` itself: it is decomposed
    into other operators first (CompositeImplicitAutograd)."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(overload, "CompositeImplicitAutograd")


def resolve(ops: Iterable[str]) -> dict:
    """A rule's operators by the layer that sees them: ``{"composite": [...],
    "kernels": [...], "engine": bool}``. LookupError for an unknown operator."""
    plan = {"composite": [], "kernels": [], "engine": False}
    for name in ops:
        if name == ENGINE:
            plan["engine"] = True
            continue
        for overload in overloads(name):
            plan["composite" if is_composite(overload) else "kernels"].append(overload)
    return plan


def _resolve_known(ops: Iterable[str]) -> dict:
    """:func:`resolve`, in a worker sent no plan: operators this torch lacks are
    skipped (the grader's resolution, and its tests, refuse them)."""
    def exists(name: str) -> bool:
        try:
            return name == ENGINE or bool(overloads(name))
        except LookupError:
            return False
    return resolve([name for name in ops if exists(name)])


# -- installation ----------------------------------------------------------------
def install(rules: Iterable[dict], student_file: str) -> None:
    """``rules``: ``ForbiddenCall.as_rule()`` dicts: ``name``, ``paths``,
    ``within``, ``ops`` and (resolved by the grader) ``plan``."""
    global _student_file, _engine, _worker_file, _entry_codes
    rules = list(rules)
    if not rules:
        return
    _student_file = student_file
    caller = sys._getframe(1)  # Worker.start: the grader's side of this process
    worker_class = caller.f_globals.get("Worker")
    _worker_file = caller.f_code.co_filename
    _entry_codes = frozenset(getattr(getattr(worker_class, op, None), "__code__", None)
                             for op in ("op_call", "op_new")) - {None}
    libraries: dict[str, torch.library.Library] = {}
    for rule in rules:
        watched = Rule(rule["name"], frozenset(rule.get("within") or ()))
        for path in rule.get("paths") or ():
            _watch_path(path, watched)
        plan = rule.get("plan") or _resolve_known(rule.get("ops") or ())
        for overload in plan["composite"]:
            namespace, _, name = overload.partition("::")
            if namespace not in libraries:
                libraries[namespace] = torch.library.Library(namespace, "IMPL")
            kernel = _composite_kernel(overload, watched)
            for key in ("AutogradCPU", "CPU"):  # with autograd, and in inference mode
                libraries[namespace].impl(name, kernel, key)
        for overload in plan["kernels"]:
            packet, _, name = overload.partition(".")
            _kernels.setdefault(packet, {})[name or "default"] = watched
        if plan["engine"]:
            _engine = watched
    _alive.extend(libraries.values())
    if _kernels or _engine is not None:
        mode = _DispatchWatch()
        mode.__enter__()  # for the worker's lifetime
        _alive.append(mode)


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
    try:
        owner, attr = _resolve(path)
        original = getattr(owner, attr)
    except (LookupError, AttributeError):
        return
    if isinstance(original, type):
        for value in vars(original).values():  # its methods name the rule (see _note)
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None:
                _api_codes.setdefault(code, rule)
        _wrap_class(original, rule)
    else:
        code = getattr(original, "__code__", None)
        if code is not None:
            _api_codes.setdefault(code, rule)
        setattr(owner, attr, _wrap_function(original, rule))


def _wrap_function(original, rule: Rule):
    @functools.wraps(original)
    def tripwire(*args, **kwargs):
        _note(rule)
        return original(*args, **kwargs)
    return tripwire


def _wrap_class(cls, rule: Rule) -> None:
    original_init = cls.__init__

    @functools.wraps(original_init)
    def tripwire_init(self, *args, **kwargs):
        _note(rule)
        original_init(self, *args, **kwargs)

    cls.__init__ = tripwire_init


def _composite_kernel(overload: str, rule: Rule):
    namespace, _, name = overload.partition("::")
    packet, _, variant = name.partition(".")

    def kernel(*args, **kwargs):
        _note(rule)
        op = getattr(getattr(getattr(torch.ops, namespace), packet), variant or "default")
        return op.decompose(*args, **kwargs)  # torch's CompositeImplicitAutograd kernel itself
    return kernel


class _DispatchWatch(TorchDispatchMode):
    """Sees every operator below autograd; notes the watched ones."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # True would import torch._dynamo at the first operator (~1 s)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        watched = _kernels.get(func._name)  # "aten::_softmax" -> {"default": Rule, ...}
        if watched is not None and func._overloadname in watched:
            _note(watched[func._overloadname])
        elif _engine is not None and _graph_task_id() >= 0:
            _note(_engine)
        return func(*args, **(kwargs or {}))


# -- attribution -----------------------------------------------------------------
def _note(rule: Rule) -> None:
    """Record ``rule`` if student code caused this call (see the module's doc)."""
    frame = sys._getframe(2)
    student = None            # the innermost frame of the student's file
    api = None                # the outermost forbidden Python API inside that frame
    names = set()             # student functions on the stack (for ``within``)
    called_as = None          # the API name the grader called, if it called torch directly
    while frame is not None:
        code = frame.f_code
        if code.co_filename == _student_file:
            if student is None:
                student = frame
            names.add(code.co_name)
        elif code.co_filename == _worker_file:
            if code in _entry_codes:
                called_as = frame.f_locals.get("name")
                if type(called_as) is str:
                    names.add(called_as)
            if student is None and code not in _entry_codes:
                return  # the grader's own work (its backward pass, copying results)
            break
        elif student is None:
            api = _api_codes.get(code, api)
        frame = frame.f_back
    if student is None and called_as is None:
        return
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
