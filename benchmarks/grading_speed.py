"""Grading speed and memory against the `import torch` floor.

    python benchmarks/grading_speed.py            # all assignments, batches of 64
    python benchmarks/grading_speed.py --batch 16 # quicker

Prints, from one run, for each assignment: the time of `python -c "import
torch"`, of the same test suite run in-process on the reference without the
sandbox (torch import + the suite's own compute: the floor any grader pays),
and of grading one submission with the CLI. For multihead_attention also a batch
at --jobs 1 and --jobs 2: marginal seconds per submission, speed-up, the same
batch's tests run in-process on trusted copies (the tests' own cost per
submission), and peak memory of the whole process tree. Ratios, not absolute
targets: machines differ.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")

IN_PROCESS = """
import importlib.util, sys
import torch
from autograder import assignment, submission
from autograder.engine.inprocess import InProcessLauncher
from autograder.engine.plugin import run_pytest
a = assignment.load(sys.argv[1])
spec = importlib.util.spec_from_file_location("ref", a.reference)
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
sub = submission.load(a.reference, a.module)
results = []
run_pytest(a, [sub], InProcessLauncher(ref), results.append)
assert results and results[0].score == results[0].max_score, "the reference must pass"
"""


IN_PROCESS_BATCH = """
import importlib.util, sys, time
from autograder import assignment, submission
from autograder.engine.inprocess import InProcessLauncher
from autograder.engine.plugin import run_pytest
from autograder.executors.local import CHUNK
a = assignment.load(sys.argv[1])
spec = importlib.util.spec_from_file_location("ref", a.reference)
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
subs = [submission.load(p, a.module) for p in sys.argv[2:]]
def run(batch):
    started = time.perf_counter()
    for i in range(0, len(batch), CHUNK):
        run_pytest(a, batch[i:i + CHUNK], InProcessLauncher(ref), lambda r: None)
    return time.perf_counter() - started
run(subs[:1])  # imports, first-call costs
print((run(subs) - run(subs[:1])) / (len(subs) - 1))
"""


def in_process_marginal(assignment: str, subs: list[Path]) -> float:
    """Seconds per extra submission when the batch's tests run in-process on the
    submissions as trusted code: what the tests themselves cost, the floor that
    the sandbox adds to."""
    out = subprocess.run([sys.executable, "-c", IN_PROCESS_BATCH, assignment, *map(str, subs)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def timed(cmd: list[str], **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=ROOT, **kwargs)
    return time.perf_counter() - started


def _pss(pid: str) -> int:
    """Proportional set size: shared pages (torch's libraries, the zygote's
    copy-on-write memory) count once across the processes sharing them."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def _tree_rss(root: int) -> tuple[int, int]:
    """(summed PSS, largest RSS) in bytes of ``root`` and all its descendants."""
    parents, rss, pss = {}, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as statm:
                rss[int(entry)] = int(statm.read().split()[1]) * PAGE
            parents[int(entry)] = int(fields[1])
            pss[int(entry)] = _pss(entry)
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(pss.get(p, 0) for p in tree), max((rss.get(p, 0) for p in tree), default=0)


def grade(paths: list[Path], out: Path, jobs: int, assignment: str,
          sample_memory: bool = False) -> tuple[float, int, int]:
    """Wall seconds, peak summed PSS and peak single-process RSS of one CLI run
    (memory only when asked: reading every process's smaps costs CPU too)."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "autograder", "grade", assignment,
                                *map(str, paths), "--out", str(out), "--jobs", str(jobs)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    peak = [0, 0]

    def sample():
        while process.poll() is None:
            total, largest = _tree_rss(process.pid)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)
            time.sleep(0.25)
    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    process.wait()
    elapsed = time.perf_counter() - started
    if sample_memory:
        sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"grading failed with exit code {process.returncode}")
    return elapsed, peak[0], peak[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--assignments", nargs="*",  # none: only the batch measurements
                        default=["recurrent_cells", "attention_scoring", "multihead_attention"])
    args = parser.parse_args()
    torch_import = min(timed([sys.executable, "-c", "import torch"]) for _ in range(3))
    print(f"machine: {os.cpu_count()} cores; python -c 'import torch': {torch_import:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for assignment in args.assignments:
            reference = ROOT / "reference" / f"{assignment}.py"
            floor = timed([sys.executable, "-c", IN_PROCESS, assignment])
            one, _, _ = grade([reference], tmp / "one", 1, assignment)
            print(f"{assignment}: in-process suite {floor:.2f} s; graded in the sandbox "
                  f"{one:.2f} s = {one / floor:.2f}x (torch import + suite), "
                  f"{one / torch_import:.1f}x the torch import")
        assignment = "multihead_attention"
        subs = []
        for i in range(args.batch):
            path = tmp / "batch" / f"student{i:03d}.py"
            path.parent.mkdir(exist_ok=True)
            shutil.copy(ROOT / "reference" / f"{assignment}.py", path)
            subs.append(path)
        one, _, _ = grade(subs[:1], tmp / "one", 1, assignment)
        jobs1, _, _ = grade(subs, tmp / "b1", 1, assignment)
        jobs2, _, _ = grade(subs, tmp / "b2", 2, assignment)
        _, total, largest = grade(subs[:16], tmp / "m2", 2, assignment, sample_memory=True)
        n = args.batch - 1
        floor = in_process_marginal(assignment, subs)
        print(f"{assignment}, batch of {args.batch}: --jobs 1 {jobs1:.1f} s (marginal "
              f"{(jobs1 - one) / n:.2f} s/submission); --jobs 2 {jobs2:.1f} s (marginal "
              f"{(jobs2 - one) / n:.2f} s/submission), speed-up {jobs1 / jobs2:.2f}x")
        print(f"the suite's own compute per submission (in-process, no sandbox, one core): "
              f"{floor:.2f} s; --jobs 1 marginal = {(jobs1 - one) / n / floor:.1f}x that")
        print(f"peak memory of a batch of 16 at --jobs 2: {total / 2**30:.2f} GiB (PSS summed over the process "
              f"tree), {largest / 2**30:.2f} GiB largest process (RSS)")


if __name__ == "__main__":
    main()
