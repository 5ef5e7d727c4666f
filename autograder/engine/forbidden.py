"""Where a submission's source spells a forbidden call: an explanation, never the judge.

Whether a test used a forbidden operation is decided at run time, in the
worker, by what actually ran (:mod:`autograder.sandbox.tripwire`): a string
"LSTM", a comment, or another object's ``.backward()`` never costs points.
This scan only reads the source (never runs it) to point at the lines that
spell a rule's callables, when a run-time finding arrives without its place.

A spelling counts only when it is a torch path: reached through an alias
(``import torch.nn.functional as F; F.scaled_dot_product_attention``), imported
by name, looked up with ``getattr(<torch path>, "name")``, or an operator of the
rule under any torch path (``torch._VF.lstm_cell``, ``torch.ops.aten._softmax``).
Attributes of objects the scan cannot trace to torch (``x.softmax``,
``layer.backward``) are never matched: the run time sees those.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from typing import NamedTuple

from ..assignment import ForbiddenCall

MODULE_LEVEL = "<module>"


class Spelling(NamedTuple):
    rule: str
    owner: str      # the top-level function or class, or MODULE_LEVEL
    where: str      # qualified name of the innermost function, or MODULE_LEVEL
    line: int


def scan(source: str, rules: tuple[ForbiddenCall, ...]) -> dict[str, set[str]]:
    """Map each top-level function/class name (or ``<module>``) to the names of
    the rules whose callables it spells."""
    found: dict[str, set[str]] = defaultdict(set)
    for spelling in spellings(source, rules):
        found[spelling.owner].add(spelling.rule)
    return dict(found)


def places(source: str, rule: ForbiddenCall, owners, filename: str) -> list[str]:
    """``"file.py, line 12, in f"`` for each spelling of ``rule`` at module level
    or inside one of ``owners`` (the API names a test called)."""
    owners = set(owners) | {MODULE_LEVEL}
    return [f"{filename}, line {s.line}, in {s.where}" if s.where != MODULE_LEVEL
            else f"{filename}, line {s.line}, at module level"
            for s in spellings(source, (rule,)) if s.owner in owners]


def spellings(source: str, rules: tuple[ForbiddenCall, ...]) -> list[Spelling]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return []
    aliases = _import_aliases(tree)
    matchers = [(rule, _Matcher(rule)) for rule in rules]
    found: list[Spelling] = []
    seen = set()
    for top in tree.body:
        owner = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
            else MODULE_LEVEL
        for node, where in _walk(top, MODULE_LEVEL):
            path = _torch_path(node, aliases)
            if path is None:
                continue
            for rule, matcher in matchers:
                if rule.within and owner not in rule.within:
                    continue
                line = getattr(node, "lineno", 0)
                if matcher.matches(path) and (rule.name, where, line) not in seen:
                    seen.add((rule.name, where, line))
                    found.append(Spelling(rule.name, owner, where, line))
    return found


class _Matcher:
    """The torch paths that spell one rule: its ``paths`` (and their attributes
    reached through a class, ``torch.nn.LSTMCell``), and any torch path ending
    in one of its operators (``aten::_softmax``: ``torch._softmax``,
    ``torch.softmax``, ``torch.ops.aten._softmax.default``)."""

    def __init__(self, rule: ForbiddenCall):
        self.paths = set(rule.paths)
        self.op_names = set()
        for op in rule.ops:
            base = op.partition("::")[2].partition(".")[0]
            if base:
                self.op_names |= {base, base.lstrip("_")}

    def matches(self, path: str) -> bool:
        if path in self.paths:
            return True
        parts = path.split(".")
        return parts[-1] in self.op_names or (len(parts) > 2 and parts[-2] in self.op_names
                                              and parts[-3] == "aten")


def _walk(node: ast.AST, where: str):
    """Every node under ``node`` with the qualified name of its innermost function."""
    for child in ast.iter_child_nodes(node):
        inner = where
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = node.name if where == MODULE_LEVEL else f"{where}.{node.name}"
        yield child, inner
        yield from _walk(child, inner)


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted path, from every import of torch in the file."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return {name: path for name, path in aliases.items()
            if path == "torch" or path.startswith("torch.")}


def _torch_path(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The torch path that ``node`` spells (a name, an attribute chain, or
    ``getattr(<torch path>, "literal")``), else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == "getattr" and len(node.args) >= 2 \
            and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
        owner = _dotted(node.args[0], aliases)
        return f"{owner}.{node.args[1].value}" if owner else None
    if isinstance(node, (ast.Attribute, ast.Name)):
        return _dotted(node, aliases)
    return None


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id]] + parts[::-1])
    return None
