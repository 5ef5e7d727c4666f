"""The isolation layers a worker applies to itself before running student code.

Every layer is applied where the platform allows it and skipped otherwise;
:func:`apply` returns the names of the layers that are active so that
``--verbose`` can say what protects the grader on this machine. On Linux as
root all of them apply; on a student's laptop (macOS, no root) only rlimits and
a separate process remain, which is fine for advisory local checks.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import sys
from dataclasses import dataclass

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNET = 0x40000000
_CLONE_THREAD = 0x00010000
NOBODY = 65534

# Denied to student code. Processes and exec (fork bombs, shelling out), signals
# to others (killing the grader), sockets (exfiltration), tracing and reading
# other processes' memory, and opening files (reading the reference or hidden
# tests from disk, writing a results.json): everything a grading call needs is
# already in memory before the filter is loaded.
DENIED_SYSCALLS = (
    "socket", "socketpair", "connect", "execve", "execveat", "fork", "vfork",
    "ptrace", "kill", "tkill", "tgkill", "process_vm_readv", "process_vm_writev",
    "open", "openat", "openat2", "creat", "mkdir", "mkdirat", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    "chmod", "fchmodat", "truncate", "mount", "unshare", "setns", "bpf",
)


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 30          # per worker (one test); the wall clock is enforced by the grader
    memory_headroom_mb: int = 1024  # address space allowed on top of the worker's own size
    open_files: int = 64


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def warm_up() -> None:
    """Run in the zygote: what every worker would otherwise redo (and copy,
    page by page, from the zygote's memory) is done once and inherited."""
    global _prepared_filter
    if sys.platform.startswith("linux"):
        _libc()
        _prepared_filter = _build_seccomp()


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def prepare() -> list[str]:
    """The layers that do not depend on the request: done ahead of time in a
    pre-forked spare worker, so a test does not wait for them."""
    active = ["separate process"]
    os.setsid()
    active.append("own session")
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is not None and libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0) == 0:
        active.append("dies with its parent")
    if libc is not None and os.geteuid() == 0 and libc.unshare(_CLONE_NEWNET) == 0:
        active.append("no network (own network namespace)")
    return active


def lock_down(limits: Limits, keep_fds: tuple[int, ...]) -> list[str]:
    """The rest, once the request is known. Returns the layers it applied."""
    active = []
    linux = sys.platform.startswith("linux")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    libc = _libc() if linux else None
    _close_fds(keep_fds)
    active.append("inherited files closed")

    vm = _vm_size_bytes()
    rlimits = [
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, limits.open_files),
    ]
    if vm:  # relative to the worker's own size: torch alone is ~620 MB of address space
        rlimits.append((resource.RLIMIT_AS, vm + limits.memory_headroom_mb * 1024 * 1024))
    if hasattr(resource, "RLIMIT_NPROC"):
        rlimits.append((resource.RLIMIT_NPROC, 0))
    set_ok = []
    for which, value in rlimits:
        try:
            resource.setrlimit(which, (value, value))
            set_ok.append(which)
        except (ValueError, OSError):
            pass
    active.append("rlimits (" + ", ".join(_rlimit_name(w) for w in set_ok) + ")")

    if root:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            active.append("unprivileged user (nobody)")
        except OSError:
            pass
    if libc is not None and libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        active.append("no new privileges")
    if linux and _load_seccomp():
        active.append("seccomp (no exec, fork, kill, sockets or file opening)")
    return active


def _rlimit_name(which: int) -> str:
    names = {getattr(resource, n): n[len("RLIMIT_"):].lower() for n in dir(resource)
             if n.startswith("RLIMIT_")}
    return names.get(which, str(which))


def _close_fds(keep: tuple[int, ...]) -> None:
    """Close every inherited descriptor but ``keep``; 0-2 are pointed at /dev/null."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd not in keep:
            os.dup2(devnull, fd)
    lowest = 3
    for fd in sorted(keep):
        if fd >= lowest:
            os.closerange(lowest, fd)
            lowest = fd + 1
    os.closerange(lowest, 65536)


_prepared_filter = None


def _build_seccomp():
    """The filter object, built once per worker during :func:`prepare` (building
    it costs more than loading it)."""
    try:
        import pyseccomp as seccomp
    except Exception:  # not installed, or libseccomp missing
        return None
    try:
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        for name in DENIED_SYSCALLS:
            try:
                rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
            except Exception:  # syscall unknown on this architecture
                pass
        # clone3 cannot be filtered by flags; ENOSYS makes libc fall back to clone.
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        # clone without CLONE_THREAD is a fork.
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone",
                       seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD, 0))
        return rules
    except Exception:
        return None


def _load_seccomp() -> bool:
    rules = _prepared_filter or _build_seccomp()
    if rules is None:
        return False
    try:
        rules.load()
        return True
    except Exception:
        return False
