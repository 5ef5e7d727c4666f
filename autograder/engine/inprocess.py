"""Running code through the ``student`` API *in this process*, unsandboxed.

Only for code that is trusted or whose result is not a grade: the reference and
cataloged mistake variants in the grader, and a student's own functions when
they check their notebook with otter's ``grader.check`` in Jupyter (the
official grade always goes through the sandboxed worker). It reuses the
worker's operations and the wire format, so a test sees exactly the same plain,
copied data as from a worker.
"""

from __future__ import annotations

import types

from ..sandbox import wire
from ..sandbox.session import CallRecord, StudentCodeError, describe_error
from ..sandbox.worker import Worker


class InProcessLauncher:
    """Stands where a zygote stands; every session calls into ``namespace``."""

    def __init__(self, namespace: dict | types.ModuleType):
        self.namespace = namespace

    def open_session(self, request: dict, call_timeout: float, import_timeout: float):
        return InProcessSession(self.namespace)

    def close(self) -> None:
        pass


class InProcessSession:
    layers = ["none: in-process (advisory check, not a grade)"]

    def __init__(self, namespace):
        module = namespace if isinstance(namespace, types.ModuleType) else \
            types.SimpleNamespace(**namespace)
        self.ops = Worker.__new__(Worker)  # the worker's operations, without its process
        self.ops.module, self.ops.handles = module, {}
        self.record = CallRecord()

    def request(self, op: str, timeout: float | None = None, doing: str = "", **args):
        args = wire.decode(wire.encode(args))  # inputs are copies, as over the wire
        try:
            value = getattr(self.ops, "op_" + op)(**args)
        except Exception as exc:  # worded as a worker's error, so failures compare equal
            raise StudentCodeError(describe_error(
                {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": ""},
                doing)) from None
        try:
            return wire.decode(wire.encode(value))
        except wire.NotPlainData as exc:
            raise StudentCodeError(f"While {doing}: {exc}.", kind="not-plain") from None

    def close(self, want_status: bool = True):
        return None
