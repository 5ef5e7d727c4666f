"""Templates are generated from the references and must not drift."""

import ast

from autograder import assignment as assignments
from autograder.templates import render, solution_lines, write_all


def test_templates_match_their_references():
    drifted = write_all(check=True)
    assert not drifted, f"run `autograder templates`: {drifted} drifted from reference/"


def test_template_imports_cleanly_and_every_stub_raises():
    for assignment_id in assignments.available():
        a = assignments.load(assignment_id)
        source = a.template.read_text()
        namespace = {}
        exec(compile(source, str(a.template), "exec"), namespace)
        for name in a.functions:
            body = next(n for n in ast.parse(source).body
                        if isinstance(n, ast.FunctionDef) and n.name == name).body
            assert isinstance(body[-1], ast.Raise), name
            assert "NotImplementedError" in ast.unparse(body[-1]) and "handout" in ast.unparse(body[-1])
        reference = a.reference.read_text()
        # Lines that also stand outside the solution regions (docstrings) are public.
        secret = solution_lines(reference)
        public = set(line.strip() for line in reference.splitlines()) - set(secret)
        public |= {line.strip() for line in reference.splitlines()
                   if reference.count(line.strip()) > secret.count(line.strip())}
        for line in secret:
            if len(line) > 25 and line not in public:
                assert line not in source, f"solution line leaked into the template: {line}"


def test_render_marks():
    text = render("def f(x):\n    '''doc'''\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n",
                  "3.3")
    assert 'raise NotImplementedError("f: see the handout (README.md), section 3.3")' in text
    assert "return x" not in text and "'''doc'''" in text
