"""``feedback.md``: the report a student reads, as Markdown (CI summaries show it)."""

from __future__ import annotations

from ..engine.scoring import SubmissionResult


def _fence(text: str) -> str:
    return "```text\n" + text.replace("```", "'''") + "\n```"


def render(result: SubmissionResult, title: str) -> str:
    passed = sum(t.passed for t in result.tests)
    lines = [f"# {title}: feedback for {result.submission}", "",
             f"**Score: {result.score:g} / {result.max_score:g}** "
             f"({passed} of {len(result.tests)} tests passed)", ""]
    for message in result.messages:
        lines += ["> " + line for line in message.splitlines()] + [""]
    lines += ["| | test | points | kind |", "|---|---|---|---|"]
    for t in result.tests:
        mark = "✅" if t.passed else "❌"
        lines.append(f"| {mark} | `{t.name}` | {t.score:g} / {t.max_score:g} | {t.visibility} |")
    failed = [t for t in result.tests if not t.passed]
    if failed:
        lines += ["", "## What to fix", ""]
        for t in failed:
            lines += [f"### `{t.name}` ({t.max_score:g} points)", ""]
            if t.description:
                lines += [f"*Checks:* {t.description}", ""]
            lines += [_fence(t.feedback or "failed"), ""]
            if t.evidence:
                lines += ["*feedback.html plots the expected and your values for this test.*", ""]
    return "\n".join(lines).rstrip() + "\n"
