"""The worker's seccomp filter: an allowlist of the system calls a torch
computation needs; every other call fails with EPERM.

A denylist leaves open whatever nobody thought to list (io_uring reads files
past a filter on ``open``; ``pidfd_send_signal`` signals without ``kill``; SysV
and POSIX IPC share memory between workers). The list below started from what
workers actually called while grading all three assignments (``strace -f`` on
``autograder grade``: after the filter is loaded a worker only used brk, mmap,
mremap, munmap, newfstatat, openat, read and write) and adds what ordinary
Python, numpy, torch and lazy imports of installed packages need (dlopen of an
extension: mprotect, fstat, pread64; directory listing for import: getdents64;
time, random numbers, sleeping, threads' futexes). Docker's default profile
was the reference for what is harmless.

Files are not the filter's business: opening (and creating, renaming and
removing in the worker's private /tmp) is allowed only when a
filesystem layer (Landlock, or the mount view) confines what can be opened;
otherwise ``open`` is denied as before (lazy imports then fail, but nothing
outside the process can be read).
"""

from __future__ import annotations

import errno
import os

_CLONE_THREAD = 0x00010000

# Memory, time, identity of this process, its own signal handling, I/O on
# descriptors it already has. Nothing here reaches another process or a file
# it could not open.
ALLOWED = (
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
    "membarrier", "get_mempolicy",
    # descriptors it holds (its socket to the grader, files Landlock let it open)
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64",
    "pwritev", "pwritev2", "close", "close_range", "dup", "dup2", "dup3", "fcntl",
    "lseek", "fstat", "fstatfs", "ioctl", "poll", "ppoll", "select", "pselect6",
    "pipe", "pipe2", "eventfd2", "fsync", "fdatasync", "fadvise64", "flock",
    # looking at paths (what Landlock and the mount view let it see)
    "stat", "lstat", "newfstatat", "statx", "statfs", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd", "chdir", "fchdir",
    "getxattr", "lgetxattr", "fgetxattr",
    # time and sleeping (the grader's deadline stops a sleeper)
    "clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "time",
    "nanosleep", "getitimer", "setitimer", "alarm", "times", "getrusage",
    # its own identity and scheduling
    "getpid", "gettid", "getppid", "getpgrp", "getpgid", "getsid", "getuid", "geteuid",
    "getgid", "getegid", "getgroups", "getresuid", "getresgid", "capget", "uname",
    "sysinfo", "getrandom", "sched_yield", "sched_getaffinity", "sched_getparam",
    "sched_getscheduler", "getpriority", "getcpu",
    # its own signal handling and threads (RLIMIT_NPROC stops new threads anyway)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigsuspend", "sigaltstack", "futex", "futex_waitv", "set_robust_list",
    "get_robust_list", "set_tid_address", "rseq", "arch_prctl", "restart_syscall",
    "exit", "exit_group",
)
# Allowed only when a filesystem layer confines them to the worker's private
# /tmp (see the module docstring): tempfile, matplotlib's cache and lazy
# imports create, rename and remove files there.
OPENING = ("open", "openat", "openat2", "creat", "unlink", "unlinkat", "mkdir", "mkdirat",
           "rmdir", "rename", "renameat", "renameat2", "ftruncate", "truncate", "fallocate",
           "fchmod", "fchmodat", "chmod", "utimensat", "futimesat", "utimes", "utime")


def build(allow_open: bool) -> bytes | None:
    """The filter as a compiled BPF program (compiled once in the zygote: a
    worker only hands the bytes to the kernel), or None without libseccomp."""
    try:
        import pyseccomp as seccomp
    except Exception:  # not installed, or libseccomp missing
        return None
    try:
        rules = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))
        for name in ALLOWED + (OPENING if allow_open else ()):
            try:
                rules.add_rule(seccomp.ALLOW, name)
            except Exception:  # not a system call on this architecture
                pass
        # Threads only: clone without CLONE_THREAD is a fork. clone3 passes its
        # flags in memory a filter cannot read; ENOSYS makes libc use clone.
        rules.add_rule(seccomp.ALLOW, "clone",
                       seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD, _CLONE_THREAD))
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        # Its own limits only (resource.getrlimit); never another process's.
        rules.add_rule(seccomp.ALLOW, "prlimit64", seccomp.Arg(0, seccomp.EQ, 0))
        read_end, write_end = os.pipe()
        try:
            with os.fdopen(write_end, "wb", closefd=True) as sink:
                rules.export_bpf(sink)
            program = b""
            while chunk := os.read(read_end, 65536):
                program += chunk
        finally:
            os.close(read_end)
        return program if program and len(program) % 8 == 0 else None
    except Exception:
        return None
