"""JUnit XML of a batch, so any CI (GitLab merge requests, Jenkins, GitHub
test reporters) shows the tests: one <testsuite> per submission, one
<testcase> per test, the feedback as the failure text, points as properties.

Feedback carries what student code printed or raised, and ids come from file
names: either may hold characters XML 1.0 cannot represent at all (NUL, other
control characters, lone surrogates, U+FFFE/U+FFFF). ElementTree writes them
as they are, and every parser then rejects the whole file, so a single student
could hide a batch from CI. They are removed from every attribute and text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..engine.scoring import SubmissionResult

FAILURE_CHARS = 4000  # of one test's feedback: a CI page is not the place for megabytes

# Everything outside XML 1.0's Char production.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value) -> str:
    """``value`` as text XML 1.0 can hold."""
    return _NOT_XML.sub("", str(value))


def _element(parent, tag: str, **attributes) -> ET.Element:
    return ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attributes.items()})


def render(results: list[SubmissionResult], assignment: str) -> str:
    root = ET.Element("testsuites", name=xml_text(assignment))
    total = failures = 0
    for result in sorted(results, key=lambda r: r.submission):
        failed = [t for t in result.tests if not t.passed]
        suite = _element(root, "testsuite", name=f"{assignment}.{result.submission}",
                         tests=str(len(result.tests)), failures=str(len(failed)),
                         errors="0", skipped="0", time=f"{result.execution_time:.3f}")
        props = _element(suite, "properties")
        _element(props, "property", name="score", value=f"{result.score:g}")
        _element(props, "property", name="max_score", value=f"{result.max_score:g}")
        for message in result.messages:
            _element(props, "property", name="message", value=message)
        for test in result.tests:
            case = _element(suite, "testcase", classname=f"{result.submission}.{test.visibility}",
                            name=test.name, time="0")
            case_props = _element(case, "properties")
            _element(case_props, "property", name="points", value=f"{test.score:g}")
            _element(case_props, "property", name="max_points", value=f"{test.max_score:g}")
            if not test.passed:
                text = xml_text(test.feedback or "failed")
                if len(text) > FAILURE_CHARS:
                    text = text[:FAILURE_CHARS] + "\n[... truncated; see the student's feedback]"
                first_line = (text.splitlines() or ["failed"])[0][:200]
                failure = _element(case, "failure", message=first_line, type="WrongAnswer")
                failure.text = text
        total += len(result.tests)
        failures += len(failed)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
