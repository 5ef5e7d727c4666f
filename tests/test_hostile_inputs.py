"""Every submission input is hostile (sandbox-notes.md, "Paths are
attacker-controlled"). A symlink to the reference, a FIFO, a crafted zip, a
malformed notebook or a name like ``..`` must make *that* submission
unreadable (score 0, the reason in its results) or be renamed, and never stop
the batch, read a file outside the submission, or write outside ``--out``.

Most cases call :func:`autograder.submission.load` directly (milliseconds);
one module-scoped batch grades them all together with one correct copy of the
reference, because a batch costs seconds."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import struct
import threading
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from autograder.engine.scoring import SubmissionResult
from autograder.engine.scoring import TestOutcome as Outcome  # "Test*" would be collected
from autograder.report import gradebook, junit
from autograder.report.files import OutsideRoot, child, write_atomic
from autograder.submission import (MAX_SOURCE_BYTES, Submission, assign_ids, load,
                                   notebook_to_module, SubmissionProblem)

from conftest import ROOT, grade_batch

MODULE = "multihead_attention.py"
REFERENCE = ROOT / "reference" / MODULE
SOURCE = "def f():\n    return 1\n" * 40
SYMLINK = "is a symbolic link; submit the file itself"


# -- crafting hostile files ------------------------------------------------------

def make_zip(path: Path, entries) -> Path:
    """A deflated zip of (name or ZipInfo, text) entries."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, text in entries:
            if isinstance(info, zipfile.ZipInfo):
                info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return path


def patch_zip(path: Path, local: tuple[int, str, int] | None = None,
              central: tuple[int, str, int] | None = None, orflags: int = 0) -> Path:
    """Rewrite a field of the first local and/or central header: (offset in the
    header, struct format, value); ``orflags`` ORs bits into both flag fields.
    This is how an attacker's zip lies: zipfile itself never writes these."""
    data = bytearray(path.read_bytes())
    start_local, start_central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    if local:
        struct.pack_into(local[1], data, start_local + local[0], local[2])
    if central:
        struct.pack_into(central[1], data, start_central + central[0], central[2])
    if orflags:
        for start, offset in ((start_local, 6), (start_central, 8)):
            flags = struct.unpack_from("<H", data, start + offset)[0]
            struct.pack_into("<H", data, start + offset, flags | orflags)
    path.write_bytes(bytes(data))
    return path


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how zip -y stores a link
    return info


def corrupt_zip(path: Path) -> Path:
    """A zip whose compressed data has flipped bytes (zlib error or CRC error)."""
    make_zip(path, [(f"repo/{MODULE}", SOURCE)])
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", data, 26)
    start = 30 + name_len + extra_len
    for i in range(start + 4, start + 20):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def notebook(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def hostile_zips(folder: Path) -> dict[str, tuple[Path, str]]:
    """{name: (zip, the reason expected in its problem)}."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = REFERENCE.read_text()
    return {
        "zip_symlink": (make_zip(folder / "zip_symlink.zip",
                                 [(symlink_entry(f"repo/{MODULE}"), str(REFERENCE))]),
                        "is a symbolic link"),
        "zip_absolute": (make_zip(folder / "zip_absolute.zip", [(f"/tmp/{MODULE}", reference)]),
                         "absolute path"),
        "zip_dotdot": (make_zip(folder / "zip_dotdot.zip", [(f"repo/../../{MODULE}", reference)]),
                       "'..'"),
        "zip_encrypted": (patch_zip(make_zip(folder / "zip_encrypted.zip", [(MODULE, reference)]),
                                    orflags=0x1), "encrypted"),
        "zip_corrupt": (corrupt_zip(folder / "zip_corrupt.zip"), "damaged"),
        # Declares 2 GB in its central directory (a bomb's header), 1 KB inside.
        "zip_bomb_declared": (patch_zip(make_zip(folder / "zip_bomb_declared.zip",
                                                 [(MODULE, reference)]),
                                        central=(24, "<I", 0x7FFFFFFF)), "uncompressed"),
        # Really inflates to 3 MB (from a few KB): over the module's budget.
        "zip_bomb_actual": (make_zip(folder / "zip_bomb_actual.zip",
                                     [(MODULE, "#" * (3 * 1024 * 1024))]), "larger than"),
        # Declares 100 bytes but holds 3 MB: the bounded read stops at 100 and
        # the CRC check fails; memory never holds the 3 MB.
        "zip_bomb_lying": (patch_zip(make_zip(folder / "zip_bomb_lying.zip",
                                              [(MODULE, "#" * (3 * 1024 * 1024))]),
                                     local=(22, "<I", 100), central=(24, "<I", 100)), "damaged"),
        "zip_not_a_zip": (notebook(folder / "zip_not_a_zip.zip", "PK\x05\x06 nope"), "damaged"),
    }


def hostile_notebooks(folder: Path) -> dict[str, tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "nb_deep": (notebook(folder / "nb_deep.ipynb", "[" * 100_000), "nested too deeply"),
        "nb_cells_not_list": (notebook(folder / "nb_cells_not_list.ipynb",
                                       json.dumps({"cells": {"0": "x"}})), "no list of cells"),
        "nb_cell_string": (notebook(folder / "nb_cell_string.ipynb",
                                    json.dumps({"cells": ["def f(): pass"]})), "not a JSON object"),
        "nb_source_not_text": (notebook(folder / "nb_source_not_text.ipynb", json.dumps(
            {"cells": [{"cell_type": "code", "source": [1, 2]}]})), "not text"),
        "nb_not_json": (notebook(folder / "nb_not_json.ipynb", "{cells: ["), "not valid .ipynb"),
        "nb_top_list": (notebook(folder / "nb_top_list.ipynb", "[]"), "no list of cells"),
    }


def hostile_links(folder: Path) -> dict[str, tuple[Path, str]]:
    """Links to what a student must never get read: the reference, a classmate,
    the grader's memory, an endless device."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classmate").mkdir()
    (folder / "classmate" / MODULE).write_text(REFERENCE.read_text())
    cases = {}
    for name, target in (("link_reference", REFERENCE), ("link_mem", "/proc/self/mem"),
                         ("link_zero", "/dev/zero")):
        os.symlink(target, folder / f"{name}.py")
        cases[name] = (folder / f"{name}.py", SYMLINK)
    inner = folder / "link_inside_folder"
    inner.mkdir()
    os.symlink(REFERENCE, inner / MODULE)
    cases["link_inside_folder"] = (inner, f"{MODULE} {SYMLINK}")
    # A notebook link is refused too, not skipped in favour of something else.
    inner_nb = folder / "link_notebook_inside_folder"
    inner_nb.mkdir()
    os.symlink(REFERENCE, inner_nb / "multihead_attention.ipynb")
    cases["link_notebook_inside_folder"] = (inner_nb, SYMLINK)
    os.symlink(folder / "classmate", folder / "link_folder")  # a symlinked directory
    cases["link_folder"] = (folder / "link_folder", SYMLINK)
    fifo = folder / "fifo.py"
    os.mkfifo(fifo)
    cases["fifo"] = (fifo, "not a regular file")
    fifo_inside = folder / "fifo_inside_folder"
    fifo_inside.mkdir()
    os.mkfifo(fifo_inside / MODULE)
    cases["fifo_inside_folder"] = (fifo_inside, "not a regular file")
    return cases


def load_quickly(path: Path, seconds: float = 10) -> Submission:
    """``load`` in a thread: a FIFO opened for reading would block forever, and
    the test should fail, not hang."""
    box = []
    thread = threading.Thread(target=lambda: box.append(load(path, MODULE)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert box, f"load({path}) blocked"
    return box[0]


# -- load(), case by case ------------------------------------------------------

def test_links_fifos_and_symlinked_folders_are_unreadable(tmp_path):
    for name, (path, reason) in hostile_links(tmp_path).items():
        sub = load_quickly(path)
        assert sub.source is None and reason in sub.problem, (name, sub.problem)
    # The folder the links point at is fine when submitted itself.
    assert load(tmp_path / "classmate", MODULE).source == REFERENCE.read_text()


def test_a_device_in_a_folder_is_never_opened(tmp_path):
    folder = tmp_path / "dev"
    folder.mkdir()
    try:
        os.mknod(folder / MODULE, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # like /dev/zero
    except (PermissionError, AttributeError):
        pytest.skip("creating a device node needs root")
    assert "not a regular file" in load_quickly(folder).problem


def test_listing_a_folder_ignores_links_and_special_files(tmp_path):
    """The 'only source file in the folder' fallback never picks a link."""
    folder = tmp_path / "upload"
    folder.mkdir()
    os.symlink(REFERENCE, folder / "solution.py")
    os.mkfifo(folder / "pipe.py")
    assert "no multihead_attention.py" in load_quickly(folder).problem
    (folder / "mine.py").write_text(SOURCE)
    assert load_quickly(folder).source == SOURCE
    # A folder named like the module is not searched (nor one nested 10 000 deep).
    nested = tmp_path / "nested"
    (nested / MODULE / MODULE).mkdir(parents=True)
    assert "is a folder" in load_quickly(nested).problem


def test_py_that_is_not_utf8_or_too_large_is_unreadable(tmp_path):
    (tmp_path / "latin1.py").write_bytes("x = 'é'\n".encode("latin-1"))
    assert "not UTF-8" in load(tmp_path / "latin1.py", MODULE).problem
    (tmp_path / "huge.py").write_bytes(b"#" * (MAX_SOURCE_BYTES + 1))
    assert "larger than" in load(tmp_path / "huge.py", MODULE).problem
    (tmp_path / "huge_nb.ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": "X = '" + "#" * (MAX_SOURCE_BYTES + 1) + "'"}]}))
    assert "larger than" in load(tmp_path / "huge_nb.ipynb", MODULE).problem


@pytest.mark.parametrize("kind", ["zips", "notebooks"])
def test_hostile_zips_and_notebooks_are_unreadable(tmp_path, kind):
    cases = (hostile_zips if kind == "zips" else hostile_notebooks)(tmp_path)
    for name, (path, reason) in cases.items():
        sub = load(path, MODULE)
        assert sub.source is None and reason in sub.problem, (name, sub.problem)


def test_notebook_to_module_raises_only_submission_problem():
    for text in ("[" * 100_000, '{"cells": 3}', '{"cells": [null]}', "\"x\"",
                 json.dumps({"cells": [{"cell_type": "code", "source": "x = (" * 50_000}]}),
                 json.dumps({"cells": [{"cell_type": "code", "source": "x = 1\0"}]})):
        with pytest.raises(SubmissionProblem):
            notebook_to_module(text)


def test_load_never_raises_on_damaged_zips_and_notebooks(tmp_path):
    """Every truncation and many byte flips of a good zip and notebook: each
    comes back as a Submission, readable or with a problem, never an exception."""
    good = make_zip(tmp_path / "good.zip", [(f"repo/{MODULE}", SOURCE)]).read_bytes()
    nb = json.dumps({"cells": [{"cell_type": "code", "source": SOURCE}]}).encode()
    target_zip, target_nb = tmp_path / "t.zip", tmp_path / "t.ipynb"
    for original, target in ((good, target_zip), (nb, target_nb)):
        variants = [original[:n] for n in range(0, len(original), 7)]
        variants += [original[:i] + bytes([original[i] ^ 0xA5]) + original[i + 1:]
                     for i in range(0, len(original), 3)]
        for data in variants:
            target.write_bytes(data)
            sub = load(target, MODULE)
            assert (sub.source is None) == (sub.problem is not None)


# -- ids -------------------------------------------------------------------------

def test_ids_are_safe_unique_folder_names_and_the_student_is_told():
    raw = ["alice", "alice", "..", ".hidden", "grades.csv", "Summary.HTML", "a\\b", "x\0y\x1b",
           "", "=1+2"]
    subs = assign_ids([Submission(i, Path(f"p{n}"), SOURCE) for n, i in enumerate(raw)])
    ids = [s.id for s in subs]
    assert len({i.casefold() for i in ids}) == len(ids)
    for sub in subs:
        assert sub.id and not sub.id.startswith(".")
        assert not any(c in sub.id for c in "/\\\0\x1b")
        assert sub.id.casefold() not in {"grades.csv", "summary.html", "junit.xml"}
    assert ids[0] == "alice" and ids[1] == "alice-2" and ids[-1] == "=1+2"
    assert "also named 'alice'" in subs[1].notes[0]
    assert not subs[0].notes and not subs[-1].notes
    assert all(s.notes for s in subs[2:-1])


def test_id_of_dot_dot_dot_py_is_not_dot_dot(tmp_path):
    (tmp_path / "...py").write_text(SOURCE)
    [sub] = assign_ids([load(tmp_path / "...py", MODULE)])
    assert sub.source == SOURCE and sub.id not in ("..", ".", "") and not sub.id.startswith(".")


# -- reports ---------------------------------------------------------------------

def test_write_atomic_refuses_paths_outside_root(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_atomic(out / "alice" / "results.json", "{}", root=out)
    assert (out / "alice" / "results.json").read_text() == "{}"
    os.symlink(tmp_path, out / "escape")  # a link inside out pointing out of it
    for bad in (out / ".." / "x.json", out / "escape" / "x.json", tmp_path / "y" / "z.json",
                Path("/") / "x.json"):
        with pytest.raises(OutsideRoot):
            write_atomic(bad, "no", root=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    for name in ("..", ".", "", "a/b", "/etc"):
        with pytest.raises(OutsideRoot):
            child(out, name)
    assert child(out, "alice") == out / "alice"


def _result(sid: str, feedback: str, messages=()) -> SubmissionResult:
    return SubmissionResult(sid, "multihead_attention", messages=list(messages), tests=[
        Outcome("public/t.py::test_a", "test_a", "public", 50, True),
        # A test id that is a formula (a record written by hand or by an old version).
        Outcome("=cmd|' /C calc'!A0", "=cmd|' /C calc'!A0", "hidden", 50, False, feedback)])


def test_junit_parses_whatever_students_print():
    nasty = "".join(map(chr, range(0, 32))) + "\ud800 lone \udfff \ufffe\uffff end"
    results = [_result("bad\x00id\x1b", nasty * 500, [f"message {nasty}"]),
               _result("good", "")]
    xml = junit.render(results, "multihead_attention")
    root = ET.fromstring(xml.encode("utf-8"))
    failures = root.findall(".//failure")
    assert len(failures) == 2
    assert len(failures[0].text) <= junit.FAILURE_CHARS + 100
    assert "\x00" not in xml and "\ud800" not in xml and "\t" in failures[0].text
    assert root.find("testsuite").get("name") == "multihead_attention.badid"


def test_gradebook_neutralises_formulas_and_has_a_status_column():
    unreadable = _result("@SUM(1)", "")
    unreadable.status = "unreadable"
    rows = list(csv.reader(gradebook.render([_result("=1+2", ""), _result("-x", ""),
                                             _result("+y", ""), _result("\tz", ""),
                                             unreadable]).splitlines()))
    assert rows[0][:4] == ["submission", "score", "max_score", "status"]
    assert rows[0][5] == "'=cmd|' /C calc'!A0"
    assert {r[0] for r in rows[1:]} == {"'=1+2", "'-x", "'+y", "'\tz", "'@SUM(1)"}
    assert {r[0]: r[3] for r in rows[1:]}["'@SUM(1)"] == "unreadable"


def test_status_survives_the_record_and_old_records_get_one():
    result = _result("a", "")
    result.status = "unreadable"
    assert SubmissionResult.from_dict(result.to_dict()).status == "unreadable"
    old = result.to_dict()
    del old["status"]
    assert SubmissionResult.from_dict(old).status == "graded"
    old["messages"] = ["Your submission could not be read: x is a symbolic link."]
    assert SubmissionResult.from_dict(old).status == "unreadable"


# -- one batch with all of them ---------------------------------------------------

def _tree(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` (links not followed) with its kind, size and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            found[os.path.relpath(path, folder)] = (stat.S_IFMT(st.st_mode), st.st_size,
                                                    st.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    subs = tmp / "subs"
    subs.mkdir()
    shutil.copy(REFERENCE, subs / "correct.py")
    expected = {}  # id: reason in its messages
    for cases in (hostile_links(subs / "links"), hostile_zips(subs / "zips"),
                  hostile_notebooks(subs / "notebooks")):
        expected.update({name: reason for name, (_, reason) in cases.items()})
    paths = [subs / "correct.py"]
    paths += sorted((subs / "links").glob("link_*")) + sorted((subs / "links").glob("fifo*"))
    paths += sorted((subs / "zips").iterdir()) + sorted((subs / "notebooks").iterdir())
    # Names that would escape --out, hide, overwrite a report or collide. Their
    # content is a syntax error: graded (score 0) without starting a worker.
    broken = "def causal_mask(:\n"
    (subs / "...py").write_text(broken)
    (subs / "grades.csv.py").write_text(broken)   # id "grades.csv"
    (subs / "summary.html").mkdir()               # id "summary.html"
    (subs / "summary.html" / MODULE).write_text(broken)
    for folder in ("a", "b"):
        (subs / folder).mkdir()
        (subs / folder / "dup.py").write_text(broken)
    (subs / "=1+2.py").write_text(broken)
    paths += [subs / "...py", subs / "grades.csv.py", subs / "summary.html",
              subs / "a" / "dup.py", subs / "b" / "dup.py", subs / "=1+2.py"]
    before = _tree(tmp)
    reference_before = REFERENCE.read_bytes()
    outcome, results = grade_batch(tmp, paths)
    after = {k: v for k, v in _tree(tmp).items() if k != "out" and not k.startswith("out/")}
    assert REFERENCE.read_bytes() == reference_before
    return tmp, outcome, results, expected, before, after


def test_batch_grades_everything_and_unreadable_ones_score_zero(hostile_batch):
    tmp, outcome, results, expected, _, _ = hostile_batch
    assert not outcome.errors
    assert results["correct"].score == 100 and results["correct"].status == "graded"
    for sid, reason in expected.items():
        result = results[sid]
        assert result.score == 0 and result.status == "unreadable", sid
        assert any("could not be read" in m and reason in m for m in result.messages), \
            (sid, result.messages)
        data = json.loads((tmp / "out" / sid / "results.json").read_text())
        assert data["score"] == 0 and reason in data["output"]


def test_batch_renames_ids_and_tells_the_student(hostile_batch):
    tmp, outcome, results, _, _, _ = hostile_batch
    out = tmp / "out"
    assert "dup" in results and "dup-2" in results
    assert any("also named 'dup'" in m for m in results["dup-2"].messages)
    assert any("'grades.csv'" in m for m in results["grades.csv-2"].messages)
    assert any("'summary.html'" in m for m in results["summary.html-2"].messages)
    assert any("'..'" in m for m in results["submission"].messages)
    assert results["=1+2"].status == "graded" and results["=1+2"].score == 0
    # The reports at the top of out are the grader's, not a submission's folder.
    assert (out / "grades.csv").is_file() and (out / "summary.html").is_file()
    assert {p.name for p in out.iterdir()} == set(results) | {"grades.csv", "summary.html"}
    assert all((out / sid / "results.json").is_file() for sid in results)


def test_batch_writes_nothing_outside_out(hostile_batch):
    _, _, _, _, before, after = hostile_batch
    assert after == before


def test_batch_grades_csv_is_safe_to_open_in_a_spreadsheet(hostile_batch):
    tmp, _, results, _, _, _ = hostile_batch
    with open(tmp / "out" / "grades.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:4] == ["submission", "score", "max_score", "status"]
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {("'" + s if s.startswith("=") else s) for s in results}
    assert by_id["'=1+2"][1:4] == ["0", "100", "graded"]
    assert by_id["correct"][1:4] == ["100", "100", "graded"]
    assert by_id["link_reference"][3] == "unreadable"
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_batch_junit_parses(hostile_batch):
    _, outcome, _, _, _, _ = hostile_batch
    ET.fromstring(junit.render(outcome.results, "multihead_attention").encode("utf-8"))
