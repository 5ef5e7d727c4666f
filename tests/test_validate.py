"""autograder validate: every assignment is sound, and an unsound one is caught."""

import pytest
import yaml

from autograder import assignment as assignments
from autograder.validate import validate
from conftest import make_course


@pytest.mark.parametrize("assignment_id", assignments.available())
def test_assignment_is_sound(assignment_id):
    """Reference full marks, template 0, and every cataloged mistake loses points
    with its own hint reaching the feedback (through the sandboxed engine)."""
    assert validate(assignment_id) == []


def test_an_unsound_catalog_is_reported(tmp_path, monkeypatch):
    course = make_course(tmp_path)
    catalog = course / "assignments" / "multihead_attention" / "mistakes.yaml"
    entries = yaml.safe_load(catalog.read_text())[:1]
    entries.append({"id": "harmless_rename", "hint": "not a mistake at all",
                    "patch": [{"old": "L, S = q.size(-2), k.size(-2)",
                               "new": "L, S = q.shape[-2], k.shape[-2]"}]})
    catalog.write_text(yaml.safe_dump(entries))
    (course / "assignments" / "multihead_attention" / "tests" / "public" / "test_extra.py") \
        .write_text("def test_extra(student):\n    student.not_in_hidden_tests()\n")
    monkeypatch.setenv("AUTOGRADER_COURSE", str(course))
    points = yaml.safe_load((course / "assignments/multihead_attention/assignment.yaml").read_text())
    points["points"]["public"]["test_extra.py::test_extra"] = 0
    (course / "assignments/multihead_attention/assignment.yaml").write_text(yaml.safe_dump(points))
    problems = "\n".join(validate("multihead_attention"))
    assert "mistake harmless_rename loses no points" in problems
    assert "not_in_hidden_tests" in problems
    assert "catalog has 2 entries" in problems
