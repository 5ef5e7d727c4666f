"""``summary.html``: the instructor's view of a batch: score distribution,
pass rate of every test, and the most frequent misconceptions."""

from __future__ import annotations

import statistics
from collections import Counter

import jinja2

from ..engine.scoring import SubmissionResult
from . import plots

_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}: class summary</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 table { border-collapse: collapse; width: 100%; } td, th { padding: .25rem .5rem; border-bottom: 1px solid #ddd; text-align: left; }
 .bar { background: #3b7dd8; height: .8rem; display: inline-block; }
</style></head><body>
<h1>{{ title }}: class summary</h1>
<p>{{ n }} submissions; mean {{ "%.1f"|format(mean) }}, median {{ "%.1f"|format(median) }} of {{ "%g"|format(max_score) }}.</p>
<figure><figcaption>Score distribution</figcaption>{{ histogram|safe }}</figure>
<h2>Most frequent misconceptions</h2>
{% if mistakes %}<table><tr><th>submissions</th><th>mistake</th><th>hint given</th></tr>
{% for id, count, hint in mistakes %}<tr><td>{{ count }}</td><td>{{ id }}</td><td>{{ hint }}</td></tr>{% endfor %}
</table>{% else %}<p>No cataloged mistake was recognised.</p>{% endif %}
<h2>Pass rate per test</h2>
<table><tr><th>test</th><th>kind</th><th>passed</th><th></th></tr>
{% for name, kind, rate in rates %}<tr><td>{{ name }}</td><td>{{ kind }}</td><td>{{ "%.0f"|format(100 * rate) }}%</td>
<td><span class="bar" style="width: {{ (200 * rate)|round|int }}px"></span></td></tr>{% endfor %}
</table>
</body></html>
""")


def render(results: list[SubmissionResult], title: str, hints: dict[str, str]) -> str:
    scores = [r.score for r in results]
    max_score = max((r.max_score for r in results), default=0)
    passed, total, kinds = Counter(), Counter(), {}
    seen = Counter()
    for result in results:
        for test in result.tests:
            total[test.name] += 1
            passed[test.name] += test.passed
            kinds[test.name] = test.visibility
        for mistake in {m for t in result.tests for m in t.mistakes}:
            seen[mistake] += 1
    rates = sorted(((name, kinds[name], passed[name] / total[name]) for name in total),
                   key=lambda row: (row[2], row[0]))
    return _TEMPLATE.render(
        title=title, n=len(results), max_score=max_score,
        mean=statistics.fmean(scores) if scores else 0,
        median=statistics.median(scores) if scores else 0,
        histogram=plots.score_histogram(scores, max_score), rates=rates,
        mistakes=[(m, c, hints.get(m, "")) for m, c in seen.most_common(10)])
