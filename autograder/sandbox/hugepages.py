"""Make forking the zygote cheap by backing its heap with huge pages.

A torch-loaded interpreter holds ~180 MB of private anonymous memory (Python
objects from importing torch, libtorch's operator registry). ``fork()`` copies
one page-table entry per 4 KiB page of it and ``exit()`` tears them down again:
measured here, 10 ms to fork and 12 ms for a child that does nothing to exit,
paid by every worker, i.e. by every (test, submission) pair. Collapsing that
memory into 2 MiB transparent huge pages (``MADV_COLLAPSE``, Linux 6.1+) turns
tens of thousands of entries into about a hundred: 2 ms and 4 ms. A worker that
then writes to a huge page splits only that page's table, which the kernel
(5.8+) does instead of copying 2 MiB.

Where the call is unknown (older kernels, macOS) nothing changes but speed.
"""

from __future__ import annotations

import ctypes
import sys

from .isolation import libc, proc_self

_MADV_COLLAPSE = 25
_HUGE = 2 << 20


def collapse_private_memory() -> int:
    """Collapse this process's private writable anonymous memory into huge pages.

    Returns how many mappings were collapsed whole; 0 where the kernel cannot
    do it (a mapping that fails part-way keeps the parts that worked). Call
    once, in the zygote, after everything is imported.
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        madvise = libc().madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        regions = [line.split() for line in proc_self("maps").splitlines()]
    except (OSError, AttributeError):
        return 0
    collapsed = 0
    for fields in regions:
        perms = fields[1]
        path = fields[5] if len(fields) > 5 else ""
        # Only anonymous private memory (and the brk heap): file mappings are
        # shared with the page cache and cost fork nothing.
        if perms[:2] != "rw" or perms[3] != "p" or (path and path != "[heap]"):
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        start = (low + _HUGE - 1) & ~(_HUGE - 1)
        end = high & ~(_HUGE - 1)
        if end > start and madvise(start, end - start, _MADV_COLLAPSE) == 0:
            collapsed += 1
    return collapsed
