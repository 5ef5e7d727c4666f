"""Grading speed against the `import torch` floor (run: python benchmarks/grading_speed.py).

Prints, from one run: the time of `python -c "import torch"`, the time to grade
one submission with the CLI, and the marginal time per submission in a batch of
16 (one and two jobs). Ratios, not absolute targets: machines differ.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "multihead_attention"


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def grade_seconds(paths: list[Path], out: Path, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    return timed([sys.executable, "-m", "autograder", "grade", ASSIGNMENT, *map(str, paths),
                  "--out", str(out), "--jobs", str(jobs)])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference = ROOT / "reference" / f"{ASSIGNMENT}.py"
        subs = []
        for i in range(16):
            path = tmp / f"student{i:02d}.py"
            shutil.copy(reference, path)
            subs.append(path)
        torch_import = min(timed([sys.executable, "-c", "import torch"]) for _ in range(3))
        one = grade_seconds(subs[:1], tmp / "one", 1)
        batch1 = grade_seconds(subs, tmp / "b1", 1)
        batch2 = grade_seconds(subs, tmp / "b2", 2)
    print(f"python -c 'import torch'        {torch_import:7.2f} s")
    print(f"grade 1 submission              {one:7.2f} s  ({one / torch_import:.1f}x the torch import)")
    print(f"batch of 16, --jobs 1           {batch1:7.2f} s  marginal {(batch1 - one) / 15:.2f} s/submission")
    print(f"batch of 16, --jobs 2           {batch2:7.2f} s  marginal {(batch2 - one) / 15:.2f} s/submission,"
          f" speed-up {batch1 / batch2:.2f}x")


if __name__ == "__main__":
    main()
