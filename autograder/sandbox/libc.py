"""The C library, loaded once for the whole sandbox (isolation, Landlock, the
filesystem view, huge pages), for the calls Python does not wrap."""

from __future__ import annotations

import ctypes

_LIBC = None


def libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long  # raw system calls return a long
    return _LIBC
