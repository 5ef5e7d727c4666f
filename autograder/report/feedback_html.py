"""``feedback.html``: the same report as feedback.md, self-contained for a browser.

It opens from disk with nothing loaded from the network, reads on a phone
(viewport, a table that wraps instead of overflowing), links each failed test in
the table to its section, and gives every figure a text alternative. Tests are
identified by their unique id (the key in assignment.yaml with its parameters,
``hidden/test_mha.py::test_x``): a public and a hidden test may share a name.
"""

from __future__ import annotations

import re
from collections import Counter

import jinja2

from ..engine.scoring import SubmissionResult

STYLE = """
 *, *::before, *::after { box-sizing: border-box; }
 body { font-family: system-ui, sans-serif; line-height: 1.45; max-width: 62rem;
        margin: 1.5rem auto; padding: 0 1rem; color: #222; overflow-wrap: break-word; }
 .id { overflow-wrap: anywhere; }
 h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
 .score { font-size: 1.5rem; font-weight: bold; }
 table { border-collapse: collapse; width: 100%; }
 caption { text-align: left; font-weight: bold; padding: .25rem 0; }
 td, th { padding: .3rem .5rem; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
 th { background: #f3f3f3; }
 td.num, th.num { text-align: right; white-space: nowrap; }
 td.mark, thead th { white-space: nowrap; overflow-wrap: normal; }
 tbody th { background: transparent; font-weight: 600; }
 .passed { color: #17692f; } .failed { color: #a4161a; }
 a { color: #0b57d0; }
 pre { background: #f6f6f6; padding: .75rem; white-space: pre-wrap; overflow-wrap: anywhere;
       border-left: 4px solid #a4161a; font-size: .9rem; }
 .message { background: #fff4e5; padding: .75rem; white-space: pre-wrap; border-left: 4px solid #e8a33d; }
 figure { margin: 1rem 0; }
 figcaption { font-weight: bold; margin-bottom: .25rem; }
 .panels { display: flex; flex-wrap: wrap; gap: .5rem 1rem; }
 svg.panel, svg.curve, svg.histogram { max-width: 100%; height: auto; }
 .alt { font-size: .9rem; color: #444; }
 .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
 @media (max-width: 40rem) {
   body { margin: .75rem auto; padding: 0 .6rem; }
   .kind { display: none; }
   .word { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
   td, th { padding: .25rem .3rem; }
   table { font-size: .9rem; }
   td.num { white-space: normal; }
 }
"""

_ENV = jinja2.Environment(autoescape=True)


def points(value: float) -> str:
    """Points as people read them: ``2``, ``1.5``, ``0.67`` (2 decimals at most)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


_ENV.filters["points"] = points


def display_names(tests) -> dict[str, str]:
    """{test id: what to show}: the test's name, or its id where two different
    tests share that name (a public and a hidden ``test_mha_matches_torch``)."""
    ids_by_name: dict[str, set[str]] = {}
    for t in tests:
        ids_by_name.setdefault(t.name, set()).add(t.id)
    return {uid: (name if len(ids) == 1 else uid)
            for name, ids in ids_by_name.items() for uid in ids}


def anchors(tests) -> dict[str, str]:
    """{test id: a unique HTML id}: letters, digits, ``-`` and ``_`` only."""
    out: dict[str, str] = {}
    used: Counter = Counter()
    for t in tests:
        uid = t.id
        if uid in out:
            continue
        slug = "test-" + re.sub(r"[^A-Za-z0-9_-]+", "-", uid).strip("-")
        used[slug] += 1
        out[uid] = slug if used[slug] == 1 else f"{slug}-{used[slug]}"
    return out


_TEMPLATE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}: {{ r.submission }}</title>
<style>{{ style }}</style></head><body><main>
<h1 class="id">{{ title }}: {{ r.submission }}</h1>
<p class="score">Score: {{ r.score|points }} / {{ r.max_score|points }}</p>
{% if unreadable %}<p><strong>Your submission could not be read, so no test could run.</strong></p>
{% else %}<p>{{ passed }} of {{ r.tests|length }} tests passed.{% if failed %} <a href="#what-to-fix">What to fix</a>{% endif %}</p>{% endif %}
{% for m in r.messages %}<div class="message" role="note">{{ m }}</div>{% endfor %}
<table>
<caption>Tests{% if failed and not unreadable %}: each failed test links to what to fix{% endif %}</caption>
<thead><tr><th scope="col">result</th><th scope="col">test</th><th scope="col" class="num">points</th><th scope="col" class="kind">kind</th></tr></thead>
<tbody>
{% for t in r.tests %}{% set uid = ids[loop.index0] %}<tr class="{{ t.status }}"><td class="mark"><span aria-hidden="true">{{ "✔" if t.passed else "✘" }}</span> <span class="word">{{ t.status }}</span></td>
<td class="id">{% if not t.passed and not unreadable %}<a href="#{{ anchor[uid] }}">{{ names[uid] }}</a>{% else %}{{ names[uid] }}{% endif %}</td>
<td class="num">{{ t.score|points }} / {{ t.max_score|points }}</td><td class="kind">{{ t.visibility }}</td></tr>
{% endfor %}</tbody></table>
{% if failed and not unreadable %}<h2 id="what-to-fix">What to fix</h2>
{% for t in failed %}{% set uid = failed_ids[loop.index0] %}<section aria-labelledby="{{ anchor[uid] }}">
<h3 id="{{ anchor[uid] }}" class="failed id">{{ names[uid] }} ({{ t.max_score|points }} points, {{ t.visibility }})</h3>
{% if t.description %}<p><em>Checks:</em> {{ t.description }}</p>{% endif %}
<pre>{{ t.feedback or "failed" }}</pre>
{% set f = figures.get(uid) %}{% if f %}<figure>
<figcaption>{{ f.title }}</figcaption>
{{ f.html|safe }}
<p class="alt">{{ f.alt }}</p>
</figure>{% endif %}
</section>
{% endfor %}{% endif %}
</main></body></html>
""")


MAX_FIGURES = 6  # one screen: the first failures are what a student fixes first


def render(result: SubmissionResult, title: str, axes: dict | None = None) -> str:
    ids = [t.id for t in result.tests]
    unreadable = getattr(result, "status", "graded") == "unreadable"
    failed = [t for t in result.tests if not t.passed]
    figures = {}
    for test, uid in zip(result.tests, ids):
        if not test.passed and test.evidence and len(figures) < MAX_FIGURES:
            from . import plots
            figure = plots.evidence(test.evidence, axes)
            if figure:
                figures[uid] = figure
    return _TEMPLATE.render(r=result, title=title, figures=figures, style=STYLE,
                            ids=ids, names=display_names(result.tests),
                            anchor=anchors(result.tests), failed=failed,
                            failed_ids=[t.id for t in failed], unreadable=unreadable,
                            passed=sum(t.passed for t in result.tests))
