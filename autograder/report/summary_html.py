"""``summary.html``: the instructor's view of a batch: one row per student
(score, status, a link to their feedback.html), the score distribution, the
pass rate of every test and the most frequent misconceptions.

It sits at the top of ``--out``; each student's report is ``<id>/feedback.html``
beside it, so the links work from disk, from an artifact and from a web server.
"""

from __future__ import annotations

import statistics
from collections import Counter
from urllib.parse import quote

import jinja2

from ..engine.scoring import SubmissionResult
from . import plots
from .feedback_html import STYLE, display_names, points

_ENV = jinja2.Environment(autoescape=True)
_ENV.filters["points"] = points

_TEMPLATE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}: class summary</title>
<style>{{ style }}
 .bar { background: #3b7dd8; height: .8rem; display: inline-block; vertical-align: middle; }
 .unreadable { color: #a4161a; font-weight: bold; }
</style></head><body><main>
<h1>{{ title }}: class summary</h1>
<p>{{ n }} submissions; mean {{ "%.1f"|format(mean) }}, median {{ median|points }} of {{ max_score|points }}.
{% if unreadable %}<span class="unreadable">{{ unreadable }} could not be read</span> (score 0, see their reports).{% endif %}</p>
<nav aria-label="sections"><a href="#students">Students</a> · <a href="#distribution">Score distribution</a> · <a href="#misconceptions">Misconceptions</a> · <a href="#pass-rates">Pass rate per test</a></nav>
<h2 id="students">Students</h2>
<table>
<caption>One row per submission: its score, whether it could be read, and its feedback</caption>
<thead><tr><th scope="col">submission</th><th scope="col" class="num">score</th><th scope="col">status</th><th scope="col">report</th></tr></thead>
<tbody>
{% for s in students %}<tr><th scope="row" class="id">{{ s.id }}</th><td class="num">{{ s.score|points }} / {{ s.max_score|points }}</td>
<td class="status{% if s.status == "unreadable" %} unreadable{% endif %}">{{ s.status }}</td><td class="report"><a href="{{ s.href }}">feedback<span class="visually-hidden"> for {{ s.id }}</span></a></td></tr>
{% endfor %}</tbody></table>
<h2 id="distribution">Score distribution</h2>
<figure><figcaption>Submissions per score range</figcaption>{{ histogram|safe }}</figure>
<h2 id="misconceptions">Most frequent misconceptions</h2>
{% if mistakes %}<table><caption>Cataloged mistakes recognised in the submissions</caption>
<thead><tr><th scope="col" class="num">submissions</th><th scope="col">mistake</th><th scope="col">hint given</th></tr></thead>
<tbody>{% for id, count, hint in mistakes %}<tr><td class="num">{{ count }}</td><td class="id">{{ id }}</td><td>{{ hint }}</td></tr>{% endfor %}</tbody>
</table>{% else %}<p>No cataloged mistake was recognised.</p>{% endif %}
<h2 id="pass-rates">Pass rate per test</h2>
{% if not rates %}<p>No submission could be read, so no test ran.</p>{% else %}<table><caption>Share of the readable submissions that passed each test, lowest first</caption>
<thead><tr><th scope="col">test</th><th scope="col" class="kind">kind</th><th scope="col" class="num">passed</th><th scope="col"><span class="visually-hidden">bar</span></th></tr></thead>
<tbody>{% for name, kind, rate in rates %}<tr><td class="id">{{ name }}</td><td class="kind">{{ kind }}</td><td class="num">{{ "%.0f"|format(100 * rate) }}%</td>
<td><span class="bar" style="width: {{ (8 * rate)|round(2) }}rem" aria-hidden="true"></span></td></tr>{% endfor %}</tbody>
</table>{% endif %}
</main></body></html>
""")


def render(results: list[SubmissionResult], title: str, hints: dict[str, str]) -> str:
    scores = [r.score for r in results]
    max_score = max((r.max_score for r in results), default=0)
    # Pass rates over the submissions that could be read: an unreadable one fails
    # every test alike and says nothing about any test.
    readable = [r for r in results if getattr(r, "status", "graded") != "unreadable"]
    passed, total, kinds = Counter(), Counter(), {}
    seen = Counter()
    for result in readable:
        for test in result.tests:
            uid = test.id
            total[uid] += 1
            passed[uid] += test.passed
            kinds[uid] = test.visibility
        for mistake in {m for t in result.tests for m in t.mistakes}:
            seen[mistake] += 1
    names = display_names([t for r in readable for t in r.tests])
    rates = sorted(((names[uid], kinds[uid], passed[uid] / total[uid]) for uid in total),
                   key=lambda row: (row[2], row[0]))
    students = [{"id": r.submission, "score": r.score, "max_score": r.max_score,
                 "status": getattr(r, "status", "graded"),
                 "href": quote(r.submission, safe="") + "/feedback.html"}
                for r in sorted(results, key=lambda r: r.submission)]
    return _TEMPLATE.render(
        title=title, n=len(results), max_score=max_score, style=STYLE, students=students,
        unreadable=len(results) - len(readable),
        mean=statistics.fmean(scores) if scores else 0,
        median=statistics.median(scores) if scores else 0,
        histogram=plots.score_histogram(scores, max_score), rates=rates,
        mistakes=[(m, c, hints.get(m, "")) for m, c in seen.most_common(10)])
