"""``similarity.csv`` and ``similarity.html``.

Everything shown comes from students (their code, their file names) and is
hostile: the HTML is rendered by jinja2 with autoescaping on, code is only ever
text inside ``<pre>``, characters that hide or reorder text (bidi overrides,
zero-width and control characters) are shown as visible escapes, and a
Content-Security-Policy forbids every script, so nothing a student writes can
run in the instructor's browser. CSV cells that a spreadsheet would run as a
formula are neutralised (``report/gradebook.py``).
"""

from __future__ import annotations

import csv
import io
import unicodedata

import jinja2

from ..report.gradebook import neutralise

SHOWN_PAIRS = 50    # side-by-side views in the HTML (the CSV lists every pair)
LISTED_PAIRS = 500  # rows of the ranked table in the HTML
SHOWN_CHARS = 100_000  # of each submission in a view (a submission may be 2 MB)


def render_csv(rows: list[tuple[str, str, float]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["a", "b", "score"])
    for a, b, score in rows:
        writer.writerow([neutralise(a), neutralise(b), f"{score:.4f}"])
    return out.getvalue()


def segments(source: str, spans: list[tuple[int, int]],
             limit: int = SHOWN_CHARS) -> list[tuple[str, bool]]:
    """``source`` cut into (text, matched) pieces; ``spans`` may overlap. At most
    ``limit`` characters are shown."""
    cut = len(source) > limit
    source = source[:limit]
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if start >= limit:
            break
        end = min(end, limit)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces, position = [], 0
    for start, end in merged:
        if start > position:
            pieces.append((source[position:start], False))
        pieces.append((source[start:end], True))
        position = end
    if position < len(source):
        pieces.append((source[position:], False))
    if cut:
        pieces.append((f"\n... (only the first {limit:,} characters are shown)", False))
    return pieces


def visible(text: str) -> str:
    """``text`` with every invisible or reordering character written as an
    escape (Trojan Source: a bidi override makes shown code differ from run code)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c in "\n\r\t" or unicodedata.category(c)[0] not in "CZ" or c == " "
                   else f"\\u{ord(c):04x}" for c in text)


_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_ENV.filters["visible"] = visible

_TEMPLATE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{{ title }}: code similarity</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
 table { border-collapse: collapse; } td, th { padding: .2rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }
 .pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
 pre { background: #f7f7f7; padding: .5rem; overflow-x: auto; font-size: 12px; white-space: pre; }
 mark { background: #ffd54f; }
 .note { color: #666; }
</style></head><body>
<h1>{{ title }}: code similarity</h1>
<p>{{ n }} submissions compared; {{ total }} pairs share code outside the template
(the template's own code is excluded: every student starts from it). Score: the mean
of the share of each submission's fingerprints found in the other, after comments,
docstrings and layout are dropped and identifiers normalised; 1 is the same code.
A high score is a reason to read both, not proof of copying.</p>
{% if skipped %}<h2>Not compared</h2><ul>
{% for sid, why in skipped %}<li>{{ sid|visible }}: {{ why|visible }}</li>{% endfor %}
</ul>{% endif %}
<h2>Ranked pairs</h2>
{% if rows %}<table><tr><th>#</th><th>a</th><th>b</th><th>score</th></tr>
{% for a, b, score, anchor in rows %}<tr><td>{{ loop.index }}</td><td>{{ a|visible }}</td><td>{{ b|visible }}</td>
<td>{% if anchor %}<a href="#{{ anchor }}">{{ "%.3f"|format(score) }}</a>{% else %}{{ "%.3f"|format(score) }}{% endif %}</td></tr>
{% endfor %}</table>
{% if total > rows|length %}<p class="note">{{ total - rows|length }} more pairs in similarity.csv.</p>{% endif %}
{% else %}<p>No two submissions share code outside the template.</p>{% endif %}
{% for view in views %}
<h2 id="{{ view.anchor }}">{{ view.a|visible }} and {{ view.b|visible }}: {{ "%.3f"|format(view.score) }}</h2>
<p class="note">Highlighted: code found in both (after normalisation).</p>
<div class="pair">
<div><h3>{{ view.a|visible }}</h3><pre>{% for text, hit in view.left %}{% if hit %}<mark>{{ text|visible }}</mark>{% else %}{{ text|visible }}{% endif %}{% endfor %}</pre></div>
<div><h3>{{ view.b|visible }}</h3><pre>{% for text, hit in view.right %}{% if hit %}<mark>{{ text|visible }}</mark>{% else %}{{ text|visible }}{% endif %}{% endfor %}</pre></div>
</div>
{% endfor %}
</body></html>
""")


def render_html(title: str, n: int, rows: list[tuple[str, str, float]], views: list[dict],
                skipped: list[tuple[str, str]]) -> str:
    """``views``: dicts with a, b, score, left and right (:func:`segments`)."""
    anchors = {(v["a"], v["b"]): f"pair-{i}" for i, v in enumerate(views, 1)}
    for view in views:
        view["anchor"] = anchors[(view["a"], view["b"])]
    listed = [(a, b, score, anchors.get((a, b))) for a, b, score in rows[:LISTED_PAIRS]]
    return _TEMPLATE.render(title=title, n=n, total=len(rows), rows=listed, views=views,
                            skipped=skipped)
