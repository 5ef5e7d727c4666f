"""``results.json`` in Gradescope's autograder format (cli.md)."""

from __future__ import annotations

import json

from ..engine.scoring import SubmissionResult
from .feedback_html import display_names

VISIBILITY = {"public": "visible", "hidden": "after_published"}


def render(result: SubmissionResult) -> str:
    tests = []
    # A test's name, or its unique id where a public and a hidden test share it.
    names = display_names(result.tests)
    for test in result.tests:
        output = test.feedback if not test.passed else ""
        if test.description:
            output = f"Checks: {test.description}" + (f"\n\n{output}" if output else "")
        tests.append({
            "name": names[test.id], "score": round(test.score, 4), "max_score": round(test.max_score, 4),
            "status": test.status, "output": output, "visibility": VISIBILITY[test.visibility],
        })
    data = {
        "score": result.score,
        "max_score": result.max_score,
        "execution_time": result.execution_time,
        "output": "\n\n".join(result.messages) or
                  f"{sum(t.passed for t in result.tests)} of {len(result.tests)} tests passed.",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    return json.dumps(data, indent=2) + "\n"
