"""``feedback.html``: the same report as feedback.md, self-contained for a browser."""

from __future__ import annotations

import jinja2

from ..engine.scoring import SubmissionResult

_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}: {{ r.submission }}</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 .score { font-size: 1.6rem; font-weight: bold; }
 table { border-collapse: collapse; width: 100%; } td, th { padding: .25rem .5rem; border-bottom: 1px solid #ddd; text-align: left; }
 .passed { color: #17692f; } .failed { color: #a4161a; }
 pre { background: #f6f6f6; padding: .75rem; white-space: pre-wrap; border-left: 4px solid #a4161a; }
 .message { background: #fff4e5; padding: .75rem; white-space: pre-wrap; }
 img { max-width: 100%; }
</style></head><body>
<h1>{{ title }}: {{ r.submission }}</h1>
<p class="score">Score: {{ "%g"|format(r.score) }} / {{ "%g"|format(r.max_score) }}</p>
<p>{{ passed }} of {{ r.tests|length }} tests passed.</p>
{% for m in r.messages %}<div class="message">{{ m }}</div>{% endfor %}
<table><tr><th></th><th>test</th><th>points</th><th>kind</th></tr>
{% for t in r.tests %}<tr class="{{ t.status }}"><td>{{ "✔" if t.passed else "✘" }}</td>
<td><a href="#{{ loop.index }}">{{ t.name }}</a></td>
<td>{{ "%g"|format(t.score) }} / {{ "%g"|format(t.max_score) }}</td><td>{{ t.visibility }}</td></tr>
{% endfor %}</table>
{% for t in r.tests if not t.passed %}
<h2 id="{{ loop.index }}" class="failed">{{ t.name }} ({{ "%g"|format(t.max_score) }} points)</h2>
{% if t.description %}<p><em>Checks:</em> {{ t.description }}</p>{% endif %}
<pre>{{ t.feedback }}</pre>
{% set f = figures.get(t.name) %}{% if f %}<figure><figcaption>{{ f.what }}: {% if f.kind == "image" %}expected | yours | |difference|{% else %}<span style="color:#1f77b4">expected</span> and <span style="color:#ff7f0e">yours</span>{% endif %}</figcaption>
{% if f.kind == "image" %}<img alt="expected, your and difference heatmaps" src="{{ f.data }}">{% else %}{{ f.data|safe }}{% endif %}</figure>{% endif %}
{% endfor %}
</body></html>
""")


MAX_FIGURES = 6  # one screen: the first failures are what a student fixes first


def render(result: SubmissionResult, title: str) -> str:
    figures = {}
    for test in result.tests:
        if not test.passed and test.evidence and len(figures) < MAX_FIGURES:
            from . import plots
            image = plots.evidence(test.evidence)
            if image:
                figures[test.name] = image
    return _TEMPLATE.render(r=result, title=title, figures=figures,
                            passed=sum(t.passed for t in result.tests))
