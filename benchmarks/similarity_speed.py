"""Time of ``autograder similarity`` on a synthetic class.

    python benchmarks/similarity_speed.py              # 1,000 submissions
    python benchmarks/similarity_speed.py --count 200  # quicker

Generates ``--count`` submissions of multihead_attention by mutating the
reference and the bundled examples (examples/submissions/multihead_attention/)
the ways students disguise copies and differ honestly: local variables renamed,
functions reordered, code reformatted, comments and dead statements added, one
function left as the template's stub, one function taken from another source.
Most are ``.py`` files; every 20th is a folder, a ``.zip`` or a notebook, so
every form ``grade`` accepts is read. Then runs the command in this process and
prints the time of each phase and in all, and the peak memory.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "multihead_attention"


def sources() -> list[str]:
    examples = ROOT / "examples" / "submissions" / ASSIGNMENT
    return [(ROOT / "reference" / f"{ASSIGNMENT}.py").read_text()] + [
        path.read_text() for path in sorted(examples.glob("*.py"))]


def mutate(source: str, other: str, stubs: dict[str, ast.stmt], rng: random.Random) -> str:
    tree = ast.parse(source)
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    if rng.random() < 0.3:  # one function from another source
        foreign = [n for n in ast.parse(other).body if isinstance(n, ast.FunctionDef)]
        if foreign:
            pick = rng.choice(foreign)
            tree.body = [pick if getattr(n, "name", None) == pick.name else n for n in tree.body]
    if rng.random() < 0.2:  # one function left unfinished: the template's stub
        name = rng.choice(sorted(set(defs) & set(stubs)))
        tree.body = [stubs[name] if getattr(n, "name", None) == name else n for n in tree.body]
    if rng.random() < 0.7:  # local variables renamed
        params = {a.arg for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                  for a in f.args.args}
        stored = {n.id for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                  for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        mapping = {name: f"{name}_{rng.randrange(1000)}" for name in sorted(stored - params)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in mapping:
                node.id = mapping[node.id]
    if rng.random() < 0.5:  # functions reordered (imports first)
        rng.shuffle(tree.body)
        tree.body.sort(key=lambda n: not isinstance(n, (ast.Import, ast.ImportFrom)))
    if rng.random() < 0.3:  # dead statements
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and len(node.body) > 2:
                node.body.insert(1, ast.parse(f"_check = {rng.randrange(100)}").body[0])
    text = ast.unparse(tree) if rng.random() < 0.8 else source
    lines = []
    for line in text.splitlines():
        if rng.random() < 0.1:
            indent = line[:len(line) - len(line.lstrip())]
            lines.append(f"{indent}# {rng.choice(['why', 'TODO', 'see lecture 5', 'fix'])}")
        lines.append(line)
    return "\n".join(lines) + "\n"


def write(folder: Path, count: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    pool = sources()
    template = ast.parse((ROOT / "student_templates" / f"{ASSIGNMENT}.py").read_text())
    stubs = {n.name: n for n in template.body if isinstance(n, ast.FunctionDef)}
    paths = []
    for number in range(count):
        text = mutate(rng.choice(pool), rng.choice(pool), stubs, rng)
        sid = f"student{number:04d}"
        form = number % 20
        if form == 1:  # a folder (a repository)
            path = folder / sid
            path.mkdir()
            (path / f"{ASSIGNMENT}.py").write_text(text)
        elif form == 2:
            path = folder / f"{sid}.zip"
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr(f"repo/{ASSIGNMENT}.py", text)
        elif form == 3:
            path = folder / f"{sid}.ipynb"
            cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                      "source": chunk} for chunk in text.split("\n\n\n")]
            path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                        "nbformat_minor": 5}))
        else:
            path = folder / f"{sid}.py"
            path.write_text(text)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    from autograder import assignment, submission
    from autograder.similarity import compare, fingerprints, index

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "subs").mkdir()
        started = time.perf_counter()
        paths = write(tmp / "subs", args.count)
        print(f"generated {len(paths)} submissions in {time.perf_counter() - started:.1f} s")

        # The phases, measured separately.
        a = assignment.load(ASSIGNMENT)
        clock = [(time.perf_counter(), time.process_time())]

        def lap() -> str:
            clock.append((time.perf_counter(), time.process_time()))
            (wall0, cpu0), (wall1, cpu1) = clock[-2:]
            return f"{wall1 - wall0:.1f} s ({cpu1 - cpu0:.1f} s CPU)"

        subs = submission.load_batch([str(p) for p in paths], a.module)
        read = lap()
        excluded = fingerprints.all_kgrams(a.template.read_text())
        prints = [fingerprints.fingerprint(s.source, excluded) for s in subs if s.source]
        fingerprinted = lap()
        pairs = index.score_pairs([p.spans for p in prints])
        scored = lap()
        print(f"read {read}, fingerprint {fingerprinted}, score {len(pairs)} of "
              f"{len(prints) * (len(prints) - 1) // 2} pairs {scored}")

        # The whole command, as the CLI runs it.
        outcome = compare(ASSIGNMENT, paths, tmp / "out")
        elapsed = lap()
        sizes = {name: (tmp / "out" / name).stat().st_size
                 for name in ("similarity.csv", "similarity.html")}
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"autograder similarity, {outcome.compared} submissions: {elapsed} in all; "
              f"similarity.csv {sizes['similarity.csv'] / 1e6:.1f} MB, similarity.html "
              f"{sizes['similarity.html'] / 1e6:.1f} MB; peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
