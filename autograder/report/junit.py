"""JUnit XML of a batch, so any CI (GitLab merge requests, Jenkins, GitHub
test reporters) shows the tests: one <testsuite> per submission, one
<testcase> per test, the feedback as the failure text, points as properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..engine.scoring import SubmissionResult


def render(results: list[SubmissionResult], assignment: str) -> str:
    root = ET.Element("testsuites", name=assignment)
    total = failures = 0
    for result in sorted(results, key=lambda r: r.submission):
        failed = [t for t in result.tests if not t.passed]
        suite = ET.SubElement(root, "testsuite", name=f"{assignment}.{result.submission}",
                              tests=str(len(result.tests)), failures=str(len(failed)),
                              errors="0", skipped="0", time=f"{result.execution_time:.3f}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="score", value=f"{result.score:g}")
        ET.SubElement(props, "property", name="max_score", value=f"{result.max_score:g}")
        for message in result.messages:
            ET.SubElement(props, "property", name="message", value=message)
        for test in result.tests:
            case = ET.SubElement(suite, "testcase", classname=f"{result.submission}.{test.visibility}",
                                 name=test.name, time="0")
            case_props = ET.SubElement(case, "properties")
            ET.SubElement(case_props, "property", name="points", value=f"{test.score:g}")
            ET.SubElement(case_props, "property", name="max_points", value=f"{test.max_score:g}")
            if not test.passed:
                first_line = (test.feedback or "failed").splitlines()[0][:200]
                failure = ET.SubElement(case, "failure", message=first_line, type="WrongAnswer")
                failure.text = test.feedback
        total += len(result.tests)
        failures += len(failed)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
