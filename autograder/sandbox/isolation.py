"""The isolation layers a worker applies to itself before running student code.

Every layer is applied where the platform allows it and skipped otherwise;
:func:`apply` returns the names of the layers that are active so that
``--verbose`` can say what protects the grader on this machine. On Linux as
root all of them apply; on a student's laptop (macOS, no root) only rlimits and
a separate process remain, which is fine for advisory local checks.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

try:
    import resource
except ImportError:  # Windows: no rlimits; the grader's deadlines still apply
    resource = None

from . import filesystem_view, landlock, syscall_policy
from .libc import libc  # noqa: F401  (also used as isolation.libc by zygote and hugepages)

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNET = 0x40000000
_CLONE_NEWIPC = 0x08000000

# Each worker runs as a uid of its own, derived from its pid (unique among
# live processes): workers cannot signal, trace or share files with one
# another, and RLIMIT_NPROC counts each alone. Far above any real account;
# AUTOGRADER_WORKER_UID_BASE moves the range where that is not so.
UID_BASE = int(os.environ.get("AUTOGRADER_WORKER_UID_BASE", 0x40000000))


# For the framework's own tests only: prove that each attack test fails when
# the layer it relies on is gone (set in the grader's environment, read when
# the zygote starts; a submission cannot set it). Names: view, landlock,
# seccomp, uid, ipc, tmp, netns.
DISABLED = frozenset(filter(None, os.environ.get("AUTOGRADER_DISABLE_LAYERS", "").split(",")))


def worker_uid(pid: int) -> int:
    return UID_BASE + pid % (1 << 24)


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 30          # per worker (one test); the wall clock is enforced by the grader
    memory_headroom_mb: int = 1024  # address space allowed on top of the worker's own size
    open_files: int = 64



def warm_up() -> None:
    """Run in the zygote: what every worker would otherwise redo (and copy,
    page by page, from the zygote's memory) is done once and inherited. The
    filesystem view is entered here, so every worker is forked inside it."""
    global _view, _readable, _filters, _own_size, _tmp_root, _proc_self_fd
    if not sys.platform.startswith("linux"):
        return
    libc()
    _own_size = _vm_size_bytes()
    _proc_self_fd = os.open("/proc/self", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    _readable = filesystem_view.readable_paths()
    _view = "view" not in DISABLED and filesystem_view.enter_view(_readable)
    if not _view:
        # Workers' temporary folders, one per worker (see worker_tmp), removed
        # by the zygote as it reaps each worker.
        # Under /tmp itself where it exists: a grader's TMPDIR may sit below a
        # folder that the workers' uids cannot traverse.
        _tmp_root = tempfile.mkdtemp(prefix="autograder-workers-",
                                     dir="/tmp" if os.path.isdir("/tmp") else None)
        os.chmod(_tmp_root, 0o711)
    _filters = {allow_open: syscall_policy.build(allow_open) for allow_open in (True, False)}


_view = False
_proc_self_fd: int | None = None  # the zygote's /proc/self, opened before the view hides /proc
_readable: list[str] = []
_filters: dict[bool, bytes | None] = {}
_tmp_root: str | None = None


def proc_self(name: str) -> str:
    """A file of this process's /proc/self (the zygote's, also inside the view)."""
    if _proc_self_fd is None:
        with open(f"/proc/self/{name}") as handle:
            return handle.read()
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=_proc_self_fd)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


_zygote_tmp: str | None = None


def zygote_tmp() -> str:
    """A writable folder for the zygote's own imports (caches of preloaded
    modules), and the environment that points libraries at it. Inside the view
    a small tmpfs on /tmp, seen only by the zygote: each worker mounts its own
    private /tmp over it."""
    global _zygote_tmp
    if _zygote_tmp is None:
        if _view and os.geteuid() == 0:
            filesystem_view.mount_tmp(16 * 1024 * 1024)
            _zygote_tmp = "/tmp/zygote"
            os.makedirs(_zygote_tmp, mode=0o700, exist_ok=True)
        else:
            _zygote_tmp = tempfile.mkdtemp(prefix="zygote-", dir=_tmp_root)
        os.environ.update(MPLCONFIGDIR=_zygote_tmp, XDG_CACHE_HOME=_zygote_tmp,
                          MPLBACKEND="Agg")
    return _zygote_tmp


def worker_tmp(pid: int) -> str | None:
    """The temporary folder of worker ``pid`` where it has no private /tmp."""
    return None if _tmp_root is None else os.path.join(_tmp_root, str(pid))


def forget_worker(pid: int) -> None:
    """In the zygote, once worker ``pid`` is reaped: remove what it left."""
    folder = worker_tmp(pid)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def remove_tmp_root() -> None:
    if _tmp_root is not None:
        shutil.rmtree(_tmp_root, ignore_errors=True)


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux)."""
    return sys.platform.startswith("linux") and libc().prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0) == 0


_network_left = False


def leave_network() -> bool:
    """Move this process (the zygote) into a new network namespace with no
    interfaces but a down loopback; its workers inherit it. One namespace for
    all of them costs ~1.2 ms once instead of per worker, and shares nothing a
    worker could use: sockets are denied by seccomp anyway."""
    global _network_left
    if (not _network_left and "netns" not in DISABLED and sys.platform.startswith("linux")
            and os.geteuid() == 0
            and libc().unshare(_CLONE_NEWNET) == 0):
        _network_left = True
    return _network_left


def _vm_size_bytes() -> int:
    try:
        for line in proc_self("status").splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def prepare() -> list[str]:
    """The layers that do not depend on the request: done ahead of time in a
    pre-forked spare worker, so a test does not wait for them."""
    active = ["separate process"]
    if hasattr(os, "setsid"):  # not on Windows
        os.setsid()
        active.append("own session")
    if die_with_parent():
        active.append("dies with its parent")
    if leave_network():
        active.append("no network (a network namespace without interfaces)")
    return active


def lock_down(limits: Limits, keep_fds: tuple[int, ...]) -> list[str]:
    """The rest, once the request is known. Returns the layers it applied.
    Order matters: namespaces and the private /tmp need root, so they come
    before the uid is dropped; Landlock and seccomp come last, as they would
    deny the calls made before them."""
    active = []
    linux = sys.platform.startswith("linux")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    _close_fds(keep_fds)
    active.append("inherited files closed")
    uid = worker_uid(os.getpid()) if root and "uid" not in DISABLED else None

    if _view:
        active.append("filesystem view: the Python installation read-only, nothing else")
    tmp = None
    if linux and root and "ipc" not in DISABLED and libc().unshare(_CLONE_NEWIPC) == 0:
        active.append("own IPC namespace")
    if _view and root and filesystem_view.private_tmp(uid):
        tmp = "/tmp"
        active.append("private /tmp")
    elif worker_tmp(os.getpid()) is not None:
        tmp = worker_tmp(os.getpid())
        try:
            os.mkdir(tmp, 0o700)
            if uid is not None:
                os.chown(tmp, uid, uid)
        except OSError:
            tmp = None
    _private_environment(tmp)

    if resource is not None:
        active.append(_set_rlimits(limits))
    if uid is not None:  # fails closed: a worker that stays root never runs student code
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        active.append(f"unprivileged user of its own (uid {uid})")
    if linux and libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        active.append("no new privileges")
    confined = False
    if linux and "landlock" not in DISABLED:
        enforced = landlock.restrict(_readable + list(filesystem_view.DEVICES),
                                     [tmp] if tmp else [])
        if enforced:
            confined = True
            active.append("Landlock (" + ", ".join(enforced) + ")")
    confined = confined or _view
    if linux and "seccomp" not in DISABLED and _load_seccomp(allow_open=confined):
        active.append("seccomp allowlist" + ("" if confined else " (no file opening)"))
    return active


# What a worker keeps of the grader's environment: locale, time zone and the
# search path. Nothing else: a CI token or cloud credential in the grader's
# environment must never reach student code (it could print it into feedback).
KEPT_ENVIRONMENT = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM",
                    "SYSTEMROOT")  # Windows: sockets and random numbers need it


def _private_environment(tmp: str | None) -> None:
    """Only :data:`KEPT_ENVIRONMENT` and ``LC_*`` survive; libraries get a home
    and a temporary folder (its private one), and a plotting backend that never
    opens a window (``plt.show()`` is harmless)."""
    for name in list(os.environ):
        if name not in KEPT_ENVIRONMENT and not name.startswith("LC_"):
            del os.environ[name]
    if tmp:
        os.environ.update(TMPDIR=tmp, TEMP=tmp, TMP=tmp, HOME=tmp, MPLCONFIGDIR=tmp)
    tempfile.tempdir = None  # recomputed from TMPDIR on next use
    os.environ["MPLBACKEND"] = "Agg"


def _set_rlimits(limits: Limits) -> str:
    vm = _own_size or _vm_size_bytes()  # a worker is the size of the zygote it was forked from
    rlimits = [
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        # Files can only be written in its private /tmp; this bounds each one.
        (resource.RLIMIT_FSIZE, filesystem_view.TMP_BYTES),
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
    return "rlimits (" + ", ".join(_rlimit_name(w) for w in set_ok) + ")"


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
    if os.name == "nt":  # a fresh interpreter inherits no handle there; sockets are not fds
        os.close(devnull)
        return
    lowest = 3
    for fd in sorted(keep):
        if fd >= lowest:
            os.closerange(lowest, fd)
            lowest = fd + 1
    os.closerange(lowest, 65536)


_own_size = 0
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _load_seccomp(allow_open: bool) -> bool:
    """Install the filter; needs no-new-privileges (set just before)."""
    program = _filters.get(allow_open) or syscall_policy.build(allow_open)
    if program is None:
        return False
    code = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(code, ctypes.c_void_p))
    return libc().prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0
