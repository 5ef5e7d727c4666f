"""Landlock: the worker restricts its own view of the filesystem (Linux >= 5.13).

Landlock needs no privilege, so it is the filesystem layer everywhere Linux
is: as root it backs up the mount view (:mod:`.filesystem_view`), and without
root (a student's Linux laptop, a CI runner, a Docker container whose profile
forbids mounts) it is the only one. After :func:`restrict`, the process can
read only beneath the paths it was given, write only beneath its private
temporary folder, and (ABI 6 and later) can neither signal nor reach through
abstract unix sockets any process outside its own Landlock domain: each
worker creates its own domain, so workers cannot signal one another, the
zygote or the grader. ABI 4 and later also deny TCP bind and connect.

The kernel interface is three system calls, called through ctypes (the
numbers are the same on every architecture Linux has added them to).
"""

from __future__ import annotations

import ctypes
import os
import sys

from .libc import libc

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_V1 = (1 << 13) - 1      # execute .. make_sym
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = EXECUTE | READ_FILE | READ_DIR
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | _TRUNCATE | _IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _syscall():
    return libc().syscall


def abi() -> int:
    """The Landlock ABI version this kernel offers, 0 if none (or not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        version = _syscall()(_CREATE_RULESET, None, ctypes.c_size_t(0),
                             ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (AttributeError, OSError):
        return 0
    return max(int(version), 0)


def _handled(version: int) -> tuple[int, int, int, int]:
    """(filesystem rights, network rights, scopes, size of the attribute) known to ``version``."""
    fs = _FS_V1
    if version >= 2:
        fs |= _REFER
    if version >= 3:
        fs |= _TRUNCATE
    if version >= 5:
        fs |= _IOCTL_DEV
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if version >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if version >= 6 else 0
    size = 8 if version < 4 else (16 if version < 6 else 24)
    return fs, net, scoped, size


def restrict(read: list[str], write: list[str], version: int | None = None) -> list[str]:
    """Restrict this process for good: read beneath ``read``, read and write
    beneath ``write``, nothing else. Paths that do not exist are skipped.
    Returns what the domain enforces, for ``--verbose`` (empty: not applied)."""
    version = abi() if version is None else version
    if version <= 0:
        return []
    fs, net, scoped, size = _handled(version)
    attr = _RulesetAttr(fs, net, scoped)
    call = _syscall()
    ruleset = call(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return []
    try:
        for paths, rights in ((read, READ), (write, fs & ~_IOCTL_DEV)):
            for path in paths:
                _add_path(call, ruleset, path, rights & fs)
        if call(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return []
    finally:
        os.close(ruleset)
    enforced = ["files"]
    if net:
        enforced.append("TCP")
    if scoped:
        enforced.append("signals and abstract sockets to other processes")
    return enforced


def _add_path(call, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not _is_dir(fd):  # fstat works on O_PATH descriptors
            rights &= _FILE_ONLY  # a rule on a file may only hold rights that apply to files
        rule = _PathBeneathAttr(rights, fd)
        call(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
             ctypes.byref(rule), ctypes.c_uint32(0))
    finally:
        os.close(fd)


def _is_dir(fd: int) -> bool:
    import stat
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    except OSError:
        return False
