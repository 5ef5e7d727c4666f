"""What a worker can see of the filesystem: the Python installation, read-only,
and a private empty ``/tmp``; no course kit, reference, hidden test, ``--out``
or other submission.

Two layers, each enough on its own for reading:

* As root (the course's grader, Gradescope, CI), the zygote moves into its own
  mount namespace whose root is a small read-only tmpfs holding read-only bind
  mounts of the paths in :func:`readable_paths` and nothing else, and chroots
  into it; every worker inherits that view. Each worker then takes a mount
  namespace of its own with a fresh, size-limited tmpfs on ``/tmp`` (measured:
  ~0.2 ms), so nothing one worker writes is seen by another or outlives it.
  This also makes an installation under a private home (``/root/.pyenv``, 0700)
  importable by the workers' unprivileged uids: the view's directories are
  traversable, the installation's own permissions are kept.
* Everywhere on Linux, Landlock (:mod:`.landlock`) limits the worker to the
  same paths, plus its own temporary folder for writing.

Where neither exists (macOS, Windows, old kernels), the worker may not open
files at all (the seccomp filter denies ``open`` when no filesystem layer is
active), and on platforms without seccomp nothing confines it: ``check`` on a
laptop is advisory, the grade comes from the course's Linux grader.
"""

from __future__ import annotations

import ctypes
import os
import site
import sys

from .libc import libc

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18

TMP_BYTES = 64 * 1024 * 1024  # a worker's private /tmp (matplotlib's cache, tempfile)

# System libraries an extension module may dlopen, time zones and fonts for
# plotting libraries, and harmless devices. Never /etc as a whole, /home,
# /root, /proc or the course.
SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/localtime",
                "/etc/fonts", "/etc/alternatives")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def readable_paths() -> list[str]:
    """The Python installation and its packages: prefixes, site-packages and
    every ``sys.path`` entry that is an installed location (never the current
    folder or a project on the path: that is where a course would live)."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    try:
        candidates += site.getsitepackages()
    except AttributeError:  # some virtualenv versions
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        candidates.append(user_site)
    for entry in sys.path:
        if entry and ("site-packages" in entry or "dist-packages" in entry
                      or entry.endswith((".zip", ".egg"))):
            candidates.append(entry)
    return _outermost([os.path.realpath(p) for p in candidates + list(SYSTEM_PATHS)
                       if p and os.path.exists(p)])


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths inside another one of the list (bound or allowed already)."""
    kept: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    enc = (lambda s: None if s is None else s.encode())
    if libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def enter_view(paths: list[str]) -> bool:
    """In the zygote, as root: a private mount namespace whose root holds only
    ``paths`` (read-only), the devices and an empty ``/tmp``; then chroot
    into it. False where mounts are not allowed (a container without
    CAP_SYS_ADMIN): Landlock alone confines the workers then."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    if libc().unshare(_CLONE_NEWNS) != 0:
        return False
    try:
        # Nothing done here propagates back to the host's mounts.
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        # The new root is a tmpfs mounted over /proc, in this namespace only:
        # no source is ever under /proc, nothing is left on the host when the
        # zygote ends, and the workers get no /proc (the zygote keeps its own
        # /proc/self open, see isolation.proc_self).
        root = "/proc"
        _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
        for path in paths + [d for d in DEVICES if os.path.exists(d)]:
            _bind_read_only(path, root + path, device=path in DEVICES)
        for link in SYSTEM_PATHS:  # /lib -> usr/lib on merged-/usr systems
            if os.path.islink(link) and not os.path.lexists(root + link):
                os.symlink(os.readlink(link), root + link)
        os.makedirs(root + "/tmp", mode=0o755, exist_ok=True)
        _mount(None, root, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        os.chdir(root)
        if libc().chroot(b".") != 0:
            raise OSError(ctypes.get_errno(), "chroot")
        os.chdir("/")
    except OSError:
        # Half-built, before the chroot: the root is still the host's, in a
        # private namespace; Landlock alone confines the workers then.
        return False
    return True


def _bind_read_only(source: str, target: str, device: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, _MS_BIND | _MS_REC)
    _mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID
           | (0 if device else _MS_NODEV))


def private_tmp(uid: int | None) -> bool:
    """In a worker, as root inside the view: a mount namespace of its own
    with a fresh tmpfs on /tmp owned by ``uid``. False where not allowed."""
    if libc().unshare(_CLONE_NEWNS) != 0:
        return False
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    try:
        _mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
               f"size={TMP_BYTES},nr_inodes=4096,mode=0700{owner}")
    except OSError:
        return False
    return True


def mount_tmp(size: int) -> None:
    """A fresh tmpfs on /tmp in this process's mount namespace (the zygote's,
    for the caches of modules it preloads)."""
    _mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
           f"size={size},nr_inodes=1024,mode=0711")
