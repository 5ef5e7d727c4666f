"""assignment.yaml is the one place for points: it must match the tests."""

import ast

import pytest

from autograder import assignment as assignments


@pytest.mark.parametrize("assignment_id", assignments.available())
def test_points_sum_to_100_and_match_the_test_functions(assignment_id):
    a = assignments.load(assignment_id)
    assert a.max_score == 100
    found = set()
    for visibility, folder in (("public", a.public_tests), ("hidden", a.hidden_tests)):
        for path in folder.glob("test_*.py"):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    found.add(f"{visibility}/{path.name}::{node.name}")
    assert found == set(a.points), (found ^ set(a.points))


@pytest.mark.parametrize("assignment_id", assignments.available())
def test_every_api_name_is_tested_by_hidden_tests(assignment_id):
    a = assignments.load(assignment_id)
    hidden = "\n".join(p.read_text() for p in a.hidden_tests.glob("test_*.py"))
    for name in a.api:
        assert f"student.{name}" in hidden or f"{name}(" in hidden, name
