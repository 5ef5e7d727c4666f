"""The instructor's course tools: ``similarity``, ``export`` and ``diff`` (issue 17)."""

from __future__ import annotations

import ast
import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from autograder.engine.scoring import SubmissionResult
from autograder.engine.scoring import TestOutcome as Outcome
from autograder.report import gradebook
from autograder.similarity import compare, fingerprints

ROOT = Path(__file__).resolve().parents[1]
MHA = ROOT / "examples" / "submissions" / "multihead_attention"
STYLES = Path(__file__).resolve().parent / "similarity_styles"
# The bundled examples of typical mistakes are the reference with one line
# changed: to a similarity checker they are copies of the reference (and of
# each other), so pairs among them are neither planted nor honest.
DERIVED = {"alice"} | {p.stem for p in MHA.glob("*.py") if p.name != "correct_einsum.py"}
PLANTED = {frozenset({"bob", "mallory"}), frozenset({"carol", "eve"})}


def disguise(source: str) -> str:
    """What a student hiding a copy does: every local variable renamed, the
    functions in reverse order, the code reformatted, comments added."""
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    params = {a.arg for f in functions for a in f.args.args}
    local = {n.id for f in functions for n in ast.walk(f)
             if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} - params
    renamed = {name: f"my_{name[::-1]}_{i}" for i, name in enumerate(sorted(local))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in renamed:
            node.id = renamed[node.id]
    definitions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    tree.body = [n for n in tree.body if n not in definitions] + definitions[::-1]
    lines = []
    for line in ast.unparse(tree).splitlines():
        if line.lstrip().startswith("def "):
            lines.append(line[:len(line) - len(line.lstrip())] + "# my own approach, see notes")
        lines.append(line)
    return "\n".join(lines) + "\n"


def notebook(cells: list[str]) -> str:
    return json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# HW 3"}] + [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": cell} for cell in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A class in every submission form, with two planted copies; compared once."""
    subs = tmp_path_factory.mktemp("similarity") / "subs"
    subs.mkdir()
    (subs / "alice").mkdir()  # a repository folder: the reference's style
    shutil.copy(ROOT / "reference" / "multihead_attention.py", subs / "alice")
    bob = (MHA / "correct_einsum.py").read_text()
    with zipfile.ZipFile(subs / "bob.zip", "w") as archive:  # einsum style, zipped
        archive.writestr("hw3/multihead_attention.py", bob)
    carol = (STYLES / "carol_loops.py").read_text().split("\n\n\n")
    cells = [carol[0], "\n\n\n".join(carol[1:3]), "\n\n\n".join(carol[3:6]),
             "\n\n\n".join(carol[6:]), "m = MultiHeadAttention(8, 2)\nprint(m(torch.randn(1, 3, 8)))"]
    (subs / "carol.ipynb").write_text(notebook(cells))  # loops, in a notebook
    shutil.copy(STYLES / "dave_bmm.py", subs / "dave.py")  # bmm style
    for name in ("tina", "tom"):  # untouched templates
        shutil.copy(ROOT / "student_templates" / "multihead_attention.py", subs / f"{name}.py")
    for path in MHA.glob("*.py"):
        if path.name != "correct_einsum.py":
            shutil.copy(path, subs / path.name)
    # Planted: bob's code disguised; carol's notebook cells pasted into a .py.
    (subs / "mallory.py").write_text(disguise(bob))
    eve = "\n\n".join(cells).replace("logits", "scores").replace("probs", "attn_weights")
    (subs / "eve.py").write_text("# Eve's homework 3\n" + eve.replace(
        "m = MultiHeadAttention(8, 2)\nprint(", "if __name__ == '__main__':\n    print(").replace(
        "print(m(torch", "print(MultiHeadAttention(8, 2)(torch"))
    (subs / "broken.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    out = subs.parent / "out"
    outcome = compare("multihead_attention", sorted(subs.iterdir()), out)
    scores = {frozenset({a, b}): score for a, b, score in outcome.pairs}
    return outcome, scores, out


def score(scores, a, b):
    return scores.get(frozenset({a, b}), 0.0)


def test_planted_copies_rank_above_every_honest_pair(planted):
    outcome, scores, _ = planted
    ids = {sid for pair in scores for sid in pair}
    assert {"alice", "bob", "carol", "dave", "mallory", "eve"} <= ids
    honest = {frozenset({a, b}): score(scores, a, b) for a in ids for b in ids
              if a < b and frozenset({a, b}) not in PLANTED
              and not (a in DERIVED and b in DERIVED)}
    lowest_planted = min(score(scores, *pair) for pair in PLANTED)
    worst_honest = max(honest, key=honest.get)
    assert lowest_planted > honest[worst_honest], (lowest_planted, sorted(worst_honest))
    assert lowest_planted > 0.8
    top = [frozenset({a, b}) for a, b, _ in outcome.pairs
           if not (a in DERIVED and b in DERIVED)][:2]
    assert set(top) == PLANTED


def test_independent_styles_score_low(planted):
    _, scores, _ = planted
    for a, b in [("alice", "bob"), ("alice", "carol"), ("alice", "dave"), ("bob", "carol"),
                 ("bob", "dave"), ("carol", "dave")]:
        assert score(scores, a, b) < 0.3, (a, b, score(scores, a, b))


def test_untouched_templates_are_not_flagged(planted):
    _, scores, _ = planted
    assert score(scores, "tina", "tom") < 0.05
    assert all(score(scores, "tina", other) < 0.05 for other in ("alice", "bob", "carol", "dave"))


def test_reports_csv_and_html(planted):
    outcome, _, out = planted
    rows = list(csv.reader((out / "similarity.csv").read_text().splitlines()))
    assert rows[0] == ["a", "b", "score"]
    values = [float(row[2]) for row in rows[1:]]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    assert ("broken", "the .zip file is damaged or not a zip") in outcome.skipped
    html = (out / "similarity.html").read_text()
    assert "broken" in html and "<mark>" in html and "mallory" in html


def test_fingerprints_ignore_order_names_comments_and_docstrings():
    a = ("def f(x):\n    '''Doc.'''\n    total = 0\n    for item in x:\n        total += item * 2 + 1\n"
         "    return total / len(x) if x else 0\n\n\ndef g(y):\n    return [f(z) for z in y if z]\n")
    b = ("# helper first\ndef g(values):\n    return [f(v)  # keep\n            for v in values if v]\n\n"
         "def f(data):\n    acc = 0\n    for d in data:\n        acc += d*2+1\n"
         "    return acc / len(data) if data else 0\n")
    fa, fb = fingerprints.fingerprint(a, k=5, w=2), fingerprints.fingerprint(b, k=5, w=2)
    assert fa.spans and set(fa.spans) == set(fb.spans)


@pytest.mark.parametrize("hostile", [
    "def f(:\n", "x = '''never closed\n", "a\0b = 1\n", "if x:\n  y\n z\n", "(" * 10000,
    "\ufeff\u202edef f(): return 1\n", ""])
def test_fingerprints_never_raise(hostile):
    fingerprints.fingerprint(hostile)


def test_student_text_is_escaped_in_the_html(tmp_path):
    evil = ((ROOT / "reference" / "multihead_attention.py").read_text()
            + "\n\nBANNER = '</pre><script>alert(1)</script>'\n# </pre><script>alert(2)</script>\n")
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "evil.py").write_text(evil)
    (subs / "<img src=x onerror=alert(3)>.py").write_text(evil)
    (subs / "=HYPERLINK(1).py").write_text(evil)
    outcome = compare("multihead_attention", sorted(subs.iterdir()), tmp_path / "out")
    assert len(outcome.pairs) == 3
    html = (tmp_path / "out" / "similarity.html").read_text()
    assert "<script" not in html and "<img" not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html
    assert "default-src 'none'" in html  # no script runs even if escaping failed
    text = (tmp_path / "out" / "similarity.csv").read_text()
    assert "'=HYPERLINK(1)" in text and "\n=" not in text and ",=" not in text


# -- export and diff: result folders written as `grade` writes them -----------

def result(sid: str, passed: dict[str, tuple[float, bool]], status="graded") -> SubmissionResult:
    tests = [Outcome(key=f"hidden/test_mha.py::{name}", name=name, visibility="hidden",
                         max_score=points, passed=ok) for name, (points, ok) in passed.items()]
    return SubmissionResult(submission=sid, assignment="multihead_attention", tests=tests,
                            status=status,
                            configured_max=sum(points for points, _ in passed.values()))


def write_run(folder: Path, results: list[SubmissionResult]) -> Path:
    folder.mkdir(parents=True)
    for r in results:
        (folder / r.submission).mkdir()
        (folder / r.submission / "grading.json").write_text(json.dumps(r.to_dict()))
    (folder / "grades.csv").write_text(gradebook.render(results))
    return folder


def test_canvas_export_matches_the_documented_layout(tmp_path):
    from autograder.export import export
    run = write_run(tmp_path / "run", [
        result("alice", {"test_a": (4, True), "test_b": (6, True)}),
        result("bob", {"test_a": (4, True), "test_b": (6, False)}),
        result("zed", {"test_a": (4, False), "test_b": (6, False)}),
    ])
    roster = tmp_path / "roster.csv"
    roster.write_text("Submission_ID,student_name,canvas_id,sis_user_id,sis_login_id,section\n"
                      'alice,"Liddell, Alice",101,S1,aliddell,Sec 1\n'
                      "bob,=cmd|' /C calc'!A0,102,S2,bbuilder,Sec 2\n"
                      'carol,"Danvers, Carol",103,S3,cdanvers,Sec 1\n', encoding="utf-8")
    err = io.StringIO()
    out = tmp_path / "canvas.csv"
    outcome = export(run, "canvas", out, roster=roster, assignment_name="Multi-head attention",
                     canvas_assignment_id="98765", err=err)
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
         "Multi-head attention (98765)"],
        ["    Points Possible", "", "", "", "", "10"],
        ["Liddell, Alice", "101", "S1", "aliddell", "Sec 1", "10"],
        ["'=cmd|' /C calc'!A0", "102", "S2", "bbuilder", "Sec 2", "4"],
        ["Danvers, Carol", "103", "S3", "cdanvers", "Sec 1", ""],  # blank: no submission
    ]
    assert [s["submission_id"] for s in outcome.missing] == ["carol"]
    assert outcome.unknown == ["zed"]
    message = err.getvalue()
    assert "carol" in message and "zed" in message and "alice" not in message

    new = tmp_path / "new.csv"  # a new assignment: its name alone, points from the row
    export(run, "canvas", new, roster=roster, err=io.StringIO())
    assert next(csv.reader(new.open()))[-1] == "Multi-head attention"


def test_plain_csv_export_lists_everyone(tmp_path):
    from autograder.export import CSV_HEADER, export
    run = write_run(tmp_path / "run", [result("alice", {"test_a": (4, True)}),
                                       result("=zed", {"test_a": (4, False)}, "unreadable")])
    roster = tmp_path / "roster.csv"
    roster.write_text("submission_id,student_name\nalice,Alice\ncarol,Carol\n")
    out = tmp_path / "grades.csv"
    err = io.StringIO()
    export(run, "csv", out, roster=roster, err=err)
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert tuple(rows[0]) == CSV_HEADER
    assert [(r["submission"], r["score"], r["status"]) for r in rows] == [
        ("alice", "4", "graded"), ("carol", "", "missing"), ("'=zed", "0", "unreadable")]
    assert "carol" in err.getvalue() and "=zed" in err.getvalue()


def test_diff_lists_exactly_the_students_a_points_change_affects(tmp_path):
    from autograder.regrade_diff import diff_folders, render_csv, render_text
    old, new = [], []
    # test_b is worth 3 points, then 5; test_c was broken and now passes for s2 and s4.
    outcomes = {"s1": (True, True, True), "s2": (True, False, False), "s3": (False, True, True),
                "s4": (False, False, False), "s5": (True, False, True)}
    for sid, (a, b, c) in outcomes.items():
        old.append(result(sid, {"test_a": (2, a), "test_b": (3, b), "test_c": (1, c)}))
        fixed = c or sid in ("s2", "s4")
        new.append(result(sid, {"test_a": (2, a), "test_b": (5, b), "test_c": (1, fixed)}))
    diff = diff_folders(write_run(tmp_path / "old", old), write_run(tmp_path / "new", new))
    changed = {c.submission: c for c in diff.students}
    assert set(changed) == {"s1", "s2", "s3", "s4"}  # s5 fails test_b and passed test_c
    assert [c.submission for c in diff.students] == ["s1", "s3", "s2", "s4"]  # +2, +2, +1, +1
    assert changed["s1"].points_changed == ["test_b (3 -> 5)"] and changed["s1"].change == 2
    assert changed["s2"].now_pass == ["test_c"] and changed["s2"].points_changed == []
    summary = {t.name: t.summary() for t in diff.tests}
    assert summary["test_c"] == "test_c: 2 students now pass, 0 now fail"
    assert summary["test_b"] == "test_b: worth 3 -> 5 points (2 students who pass it in both runs)"
    assert "test_a" not in summary
    text = render_text(diff)
    assert "s1: 6 -> 8 (+2)" in text and "test_c: 2 students now pass, 0 now fail" in text
    rows = list(csv.DictReader(render_csv(diff).splitlines()))
    assert [r["submission"] for r in rows] == ["s1", "s3", "s2", "s4"]
    assert rows[2]["now_pass"] == "test_c" and rows[0]["change"] == "2"


# -- the command line ----------------------------------------------------------

def run_cli(capsys, *argv) -> tuple[int, str, str]:
    from autograder.cli import main
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_commands(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(MHA / "correct_einsum.py", subs / "bob.py")
    (subs / "mallory.py").write_text(disguise((MHA / "correct_einsum.py").read_text()))
    code, out, _ = run_cli(capsys, "similarity", "multihead_attention", *map(str, subs.iterdir()),
                           "--out", str(tmp_path / "sim"))
    assert code == 0 and "bob" in out and (tmp_path / "sim" / "similarity.html").exists()

    old = write_run(tmp_path / "old", [result("bob", {"test_a": (2, True)})])
    new = write_run(tmp_path / "new", [result("bob", {"test_a": (3, True)})])
    code, out, _ = run_cli(capsys, "diff", str(old), str(new), "--out", str(tmp_path / "d.csv"))
    assert code == 0 and "bob: 2 -> 3 (+1)" in out and (tmp_path / "d.csv").exists()

    code, _, err = run_cli(capsys, "export", "--results", str(new), "--format", "csv",
                           "--out", str(tmp_path / "g.csv"))
    assert code == 0 and (tmp_path / "g.csv").exists()


@pytest.mark.parametrize("argv", [
    ["similarity", "no_such_assignment", "x.py", "--out", "OUT"],
    ["similarity", "multihead_attention", "MISSING.py", "--out", "OUT"],
    ["export", "--results", "MISSING", "--format", "canvas", "--out", "OUT/x.csv"],
    ["export", "--results", "RUN", "--format", "canvas", "--roster", "MISSING.csv",
     "--out", "OUT/x.csv"],
    ["diff", "RUN", "MISSING"],
])
def test_cli_usage_errors_are_one_line_exit_2(tmp_path, capsys, argv):
    write_run(tmp_path / "RUN", [result("bob", {"test_a": (2, True)})])
    argv = [str(tmp_path / a) if a.isupper() or a.endswith((".py", ".csv")) else a for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "error" in err
