"""Prove that each test of tests/test_sandbox_attacks.py can fail: rerun its
attacks with sandbox layers switched off and show that they then succeed.

Not collected by pytest (slow). Run from the repository root, as root:

    python tests/prove_layers.py [--only ATTACK,...] [--keep]

Each run grades in a fresh ``autograder grade`` process (its zygote reads
AUTOGRADER_DISABLE_LAYERS when it starts) inside a PID namespace of its own,
public tests only, and prints one table: for each attack and set of layers
switched off, the outcome with every layer and without those. An outcome is
"held" when the attack got nothing and "BREACH" when it earned points, leaked
something or left something behind.

Two protections are not layers of AUTOGRADER_DISABLE_LAYERS and are removed
by patching the grader in its own process instead:

* ``clean-zygote``: the zygote is a fresh interpreter, holding nothing of the
  grader (replaced by a zygote forked from the grader at its first worker,
  after the grader read the batch; for the library, forked after the first
  batch).

``+netns`` (the zygote's empty network namespace) is the layer name ``netns``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_adversarial as adversarial
import test_sandbox_attacks as attacks

CLI = [sys.executable, "-m", "autograder"]

# Grader patches, run before the CLI in the grading process.
DIRTY_ZYGOTE = attacks.FORKED_ZYGOTE + '''
import autograder.grade as g
import autograder.sandbox.zygote as z
from autograder.sandbox.launcher import Launcher

class LateZygote(Launcher):
    """A zygote forked from the grader at the first worker: after the grader
    read the batch, with the grader's memory and environment."""
    real = None
    def _zygote(self):
        if self.real is None:
            self.real = forked_from_this_process()
        return self.real
    def spawn(self, request): return self._zygote().spawn(request)
    def reap(self, pid): return self._zygote().reap(pid)
    def forget(self, pid): return self._zygote().forget(pid)
    def close(self):
        if self.real is not None:
            self.real.close()

late = LateZygote()
z.shared_launcher = g.shared_launcher = lambda many_workers=True: late
'''


def patched_cli(patch: str) -> list[str]:
    return [sys.executable, "-c", patch + "import sys\nfrom autograder.cli import run\nrun()\n"]


MAIN = ["read_files", "io_uring", "ipc", "ptrace", "write_outside", "network", "fork_exec",
        "adversarial reads_reference", "adversarial writes_results", "adversarial network"]

# attack -> the sets of protections to remove, one row each. "*" marks the
# proof: every protection that stops the attack, removed together, so the
# attack must then succeed. The other rows show what each layer does alone.
ROWS = {
    "read_files": ["view", "landlock", "uid", "seccomp", "view,landlock,uid",
                   "*view,landlock,uid,seccomp"],
    "io_uring": ["seccomp", "*view,landlock,uid,seccomp"],
    "write_outside": ["view", "landlock", "uid", "seccomp", "*view,landlock,uid,seccomp"],
    "ipc": ["seccomp", "ipc", "*seccomp,ipc"],
    "ptrace": ["seccomp", "uid", "landlock", "seccomp,uid", "*seccomp,uid,landlock"],
    "fork_exec": ["seccomp", "uid", "*seccomp,uid"],
    "network": ["seccomp", "landlock", "seccomp,landlock", "*seccomp,landlock+netns"],
    "signals": ["seccomp", "landlock", "uid", "seccomp,landlock", "seccomp,uid",
                "*seccomp,landlock,uid"],
    # The cases of tests/test_adversarial.py that could not fail before.
    "adversarial reads_reference": ["*view,landlock,uid,seccomp"],
    "adversarial writes_results": ["*view,landlock,uid,seccomp"],
    "adversarial network": ["seccomp,landlock", "*seccomp,landlock+netns"],
    "gc_search": ["*clean-zygote"],
    "gc_search --jobs 2": ["*clean-zygote"],
    "gc_search library": ["*clean-zygote"],
    "environment --jobs 2": ["*clean-zygote"],
}


def configs(attack: str) -> list[str]:
    return [c.lstrip("*") for c in ROWS[attack]]


def workdir(base: Path, prefix: str) -> Path:
    """A folder for one run, traversable by workers that have no view."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    folder.chmod(0o711)
    return folder


def ipc_leftovers() -> list[str]:
    keys = attacks.sysv_keys()
    mine = {attacks.IPC_KEY: "shm", attacks.IPC_KEY + 1: "msg", attacks.IPC_KEY + 2: "sem"}
    found = [f"{kind} key {k:#x}" for kind, ks in keys.items() for k in ks if k in mine]
    found += [f"/dev/shm/{n}" for n in os.listdir("/dev/shm") if attacks.NONCE in n]
    if attacks.posix_mq_exists(attacks.NONCE):
        found.append(f"mqueue {attacks.NONCE}")
    return found


def clean_host() -> None:
    """Remove what a successful attack left on the host."""
    for flag, key in (("-M", attacks.IPC_KEY), ("-Q", attacks.IPC_KEY + 1),
                      ("-S", attacks.IPC_KEY + 2)):
        subprocess.run(["ipcrm", flag, str(key)], capture_output=True, check=False)
    for name in os.listdir("/dev/shm"):
        if attacks.NONCE in name:
            os.unlink(os.path.join("/dev/shm", name))
    if attacks.posix_mq_exists(attacks.NONCE):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(ctypes.c_long(241), ctypes.c_char_p(attacks.NONCE.encode()))  # mq_unlink
    for folder in (Path("/tmp"), Path("/"), Path.home(), Path.cwd(), attacks.ROOT):
        for path in folder.glob(f"*{attacks.NONCE}*"):
            if path.is_file():
                path.unlink()


def describe(result: dict | None, extra: list[str]) -> tuple[bool, str]:
    """(breach, text) for one attacker's results.json and what the host shows."""
    if result is None:
        return True, "; ".join(["BREACH: no result (the grader was killed)"] + extra)
    shown = result["shown"]
    notes = []
    if result["score"] > 0:
        notes.append(f"{result['score']:g}/{result['max_score']:g} points")
    if attacks.TAG in shown:
        start = shown.find(attacks.TAG)
        notes.append("leaked " + shown[start:start + 90].replace("\n", " ").replace("|", "/"))
    notes += extra
    if notes:
        return True, "BREACH: " + "; ".join(notes)
    return False, f"held (0/{result['max_score']:g}, nothing leaked)"


def run_main(base: Path, disable: str, only: list[str]) -> dict[str, tuple[bool, str]]:
    """One batch of the main attacks and a correct classmate."""
    tmp = workdir(base, f"prove-{disable.replace(',', '-') or 'all'}-")
    course = attacks.attack_course(tmp)
    subs, decoy = tmp / "subs", tmp / "repo-decoy"
    subs.mkdir()
    decoy.mkdir()
    listener = attacks.Listener()
    layers, _, patch = disable.partition("+")
    if patch == "netns":
        layers = ",".join(filter(None, [layers, "netns"]))
    python = None
    sources = attacks.main_attacks(course, tmp / "out", listener.port, listener.abstract, [],
                                   repo=decoy)
    for name in ("reads_reference", "writes_results", "network"):
        sources["adversarial " + name] = adversarial.ATTACKS[name].replace(
            adversarial.OUT, str(tmp / "out")).replace(adversarial.PORT, str(listener.port))
    sources = {k: v for k, v in sources.items() if k in only}
    sources["a_classmate"] = attacks.classmate(attacks.MARKER)
    for name, source in sources.items():
        (subs / f"{name.replace(' ', '_')}.py").write_text(source)
    clean_host()
    try:
        run = attacks.grade_in_subprocess(tmp, course, sorted(subs.iterdir()), disable=layers,
                                          public_only=True, pid_namespace=True, python=python)
    finally:
        listener.close()
    ipc = ipc_leftovers()
    planted = attacks.planted_files(tmp, decoy, Path("/tmp") / f"planted_{attacks.NONCE}")
    planted += [str(p) for folder in (Path("/tmp"), Path("/"), Path.home())
                for p in folder.glob(f"planted_{attacks.NONCE}*")]
    results_planted = [str(p) for p in list(tmp.glob("**/results.json"))
                       + list(tmp.glob("**/grading.json"))
                       + [Path(d) / n for d in ("/tmp", "/root") for n in ("results.json",
                                                                             "grading.json")]
                       if p.is_file() and adversarial.PLANTED in p.read_text(errors="replace")]
    for path in results_planted:
        if not path.startswith(str(tmp)):
            os.unlink(path)
    clean_host()
    outcomes = {}
    for name in sources:
        if name == "a_classmate":
            continue
        sid = name.replace(" ", "_")
        extra = []
        if name == "adversarial writes_results" and results_planted:
            extra.append("planted a score in " + ", ".join(results_planted)[:300])
        if name == "adversarial network" and any("hello" in a for a in listener.accepted):
            extra.append("listener saw " + ", ".join(a for a in listener.accepted if "hello" in a))
        if name == "ipc" and ipc:
            extra.append("left on the host: " + ", ".join(ipc))
        if name == "write_outside" and planted:
            extra.append("planted " + ", ".join(sorted(set(planted)))[:300])
        if name == "network" and any("attack" in a for a in listener.accepted):
            extra.append("listener saw " + ", ".join(a for a in listener.accepted
                                                     if "attack" in a))
        outcomes[name] = describe(run["results"][sid], extra)
    classmate = run["results"]["a_classmate"]
    if run["exit"] != 0 or classmate is None or classmate["score"] != classmate["max_score"]:
        print(f"  [{disable or 'all layers'}] grader exit {run['exit']}, classmate "
              f"{classmate and classmate['score']}: {run['stderr'][-500:]}", file=sys.stderr)
    return outcomes


def run_parallel(base: Path, disable: str, attacker: str) -> tuple[bool, str]:
    """``--jobs 2``: the attacker next to two correct submissions."""
    tmp = workdir(base, f"prove-{attacker}-{disable.replace(',', '-') or 'all'}-")
    course = attacks.attack_course(tmp)
    subs = tmp / "subs"
    subs.mkdir()
    sources = {"a_classmate": attacks.classmate(attacks.MARKER), "b_correct": attacks.reference(),
               attacker: attacks.signal_attacker() if attacker == "signals"
               else attacks.attack_source(attacks.ENVIRONMENT, carry_solution=False)
               if attacker == "environment" else attacks.gc_attacker()}
    for name, source in sources.items():
        (subs / f"{name}.py").write_text(source)
    python = patched_cli(DIRTY_ZYGOTE) if disable == "clean-zygote" else None
    run = attacks.grade_in_subprocess(tmp, course, sorted(subs.iterdir()), jobs=2,
                                      disable="" if python else disable, public_only=True,
                                      pid_namespace=True, python=python)
    extra = []
    if run["exit"] != 0:
        extra.append(f"grader exit {run['exit']}")
    for sid in ("a_classmate", "b_correct"):
        result = run["results"][sid]
        if result is None or result["score"] != result["max_score"]:
            extra.append(f"{sid} {'no result' if result is None else result['score']:}")
    result = run["results"][attacker]
    if result is not None and "".join(attacks.MARKER) in result["shown"]:
        extra.append("classmate's marker in its feedback")
    return describe(result, extra)


def run_library(base: Path, dirty: bool) -> tuple[bool, str]:
    tmp = workdir(base, f"prove-library-{'dirty' if dirty else 'clean'}-")
    run = attacks.library_twice(tmp, dirty=dirty)
    extra = []
    if "".join(attacks.FIRST_BATCH_MARKER) in run["shown"]:
        extra.append("first batch's marker in its feedback")
    result = {"score": run["scores"]["gc_search"], "max_score": 100, "shown": run["shown"]}
    return describe(result, extra)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="comma list of attacks (rows of ROWS)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    if os.geteuid() != 0 or not attacks.can_unshare_pid():
        print("needs root and unshare --pid", file=sys.stderr)
        return 2
    rows = {k: v for k, v in ROWS.items() if not args.only or k in args.only.split(",")}
    base = Path(tempfile.mkdtemp(prefix="prove-layers-"))
    base.chmod(0o711)  # workers without the view (a uid of their own) use folders below it
    started = time.monotonic()
    cells: dict[tuple[str, str], tuple[bool, str]] = {}
    try:
        main_rows = [a for a in rows if a in MAIN]
        all_configs = [""] + sorted({d for a in main_rows for d in configs(a)})
        for disable in all_configs if main_rows else []:
            wanted = [a for a in main_rows if disable == "" or disable in configs(a)]
            print(f"... main batch, off: {disable or '(nothing)'}", file=sys.stderr, flush=True)
            for name, outcome in run_main(base, disable, wanted).items():
                cells[(name, disable)] = outcome
        if "signals" in rows:
            for disable in [""] + configs("signals"):
                print(f"... signals, off: {disable or '(nothing)'}", file=sys.stderr, flush=True)
                cells[("signals", disable)] = run_parallel(base, disable, "signals")
        if "gc_search" in rows:
            for disable in ("", "clean-zygote"):
                print(f"... gc_search --jobs 1, off: {disable or '(nothing)'}", file=sys.stderr,
                      flush=True)
                run = run_main_gc(base, disable)
                cells[("gc_search", disable)] = run
        if "gc_search --jobs 2" in rows:
            for disable in ("", "clean-zygote"):
                print(f"... gc_search --jobs 2, off: {disable or '(nothing)'}", file=sys.stderr,
                      flush=True)
                cells[("gc_search --jobs 2", disable)] = run_parallel(base, disable, "gc_search")
        if "environment --jobs 2" in rows:
            for disable in ("", "clean-zygote"):
                print(f"... environment --jobs 2, off: {disable or '(nothing)'}",
                      file=sys.stderr, flush=True)
                cells[("environment --jobs 2", disable)] = \
                    run_parallel(base, disable, "environment")
        if "gc_search library" in rows:
            for dirty in (False, True):
                print(f"... library twice, dirty={dirty}", file=sys.stderr, flush=True)
                cells[("gc_search library", "clean-zygote" if dirty else "")] = \
                    run_library(base, dirty)
    finally:
        clean_host()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("\n| attack | protections removed | with every layer | with them removed | "
          "the test can fail |")
    print("|---|---|---|---|---|")
    sound = True
    for attack, removed in rows.items():
        baseline = cells.get((attack, ""), (None, "?"))
        for row in removed:
            disable = row.lstrip("*")
            without = cells.get((attack, disable), (None, "?"))
            proven = baseline[0] is False and without[0] is True
            if row.startswith("*"):
                verdict = "**yes**" if proven else "**NO**"
                sound = sound and proven
            else:  # a part of the protections only: the others may well hold
                verdict = ("yes (this alone stops it)" if proven else
                           "(the others hold)" if without[0] is False else "?")
            print(f"| {attack} | {disable.replace('+', ' + ')} | {baseline[1]} | {without[1]} | "
                  f"{verdict} |")
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0 if sound else 1


def run_main_gc(base: Path, disable: str) -> tuple[bool, str]:
    """The memory searcher at --jobs 1 next to a correct classmate."""
    tmp = workdir(base, f"prove-gc-{disable or 'all'}-")
    course = attacks.attack_course(tmp)
    subs = tmp / "subs"
    subs.mkdir()
    (subs / "a_classmate.py").write_text(attacks.classmate(attacks.MARKER))
    (subs / "gc_search.py").write_text(attacks.gc_attacker())
    python = patched_cli(DIRTY_ZYGOTE) if disable == "clean-zygote" else None
    run = attacks.grade_in_subprocess(tmp, course, sorted(subs.iterdir()), public_only=True,
                                      pid_namespace=True, python=python)
    result = run["results"]["gc_search"]
    extra = []
    if result is not None and "".join(attacks.MARKER) in result["shown"]:
        extra.append("classmate's marker in its feedback")
    return describe(result, extra)


if __name__ == "__main__":
    sys.exit(main())
