"""feedback.html and summary.html in a real browser (headless Chromium through
playwright): every in-page link lands on its section, nothing is loaded from
the network, the console stays clean, every figure has a text alternative, and
the pages fit a phone's width.

The reports are written by the report writer from results built here (real
evidence from ``testing.compare``, a public and a hidden test with one name,
parametrised tests, an unreadable submission, ids a browser must escape), so
no grading runs. Needs Debian's chromium (``apt-get install -y chromium``) and
``pip install playwright`` (no browser download: the system's chromium is used).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE, DESKTOP = 390, 1280


def chromium() -> str | None:
    for candidate in (os.environ.get("AUTOGRADER_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _outcome(key, name, points, passed, feedback="", evidence=None, mistakes=()):
    from autograder.engine.scoring import TestOutcome
    return TestOutcome(key=key, name=name, visibility=key.split("/")[0], max_score=points,
                       passed=passed, feedback=feedback, description=f"checks {name}",
                       mistakes=list(mistakes), evidence=evidence)


def _evidence(what, expected, actual):
    """What ``assert_close`` records for feedback.html when ``actual`` is wrong."""
    from autograder.testing.compare import GradingFailure, assert_close
    try:
        assert_close(actual, expected, what=what)
    except GradingFailure as failure:
        return str(failure), failure.evidence
    raise AssertionError("the values were expected to differ")


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    import torch

    from autograder import assignment as assignments
    from autograder.engine.scoring import UNREADABLE, SubmissionResult
    from autograder.report import writer

    gen = torch.Generator().manual_seed(0)
    weights = torch.softmax(torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64), -1)
    unscaled = torch.softmax(4 * torch.log(weights), -1)
    with_nan = weights.clone()
    with_nan[0, 1, 2] = float("nan")
    norms = torch.logspace(0, -6, 20, dtype=torch.float64)
    message_w, evidence_w = _evidence("weights (B, h, L, S)", weights, unscaled)
    message_n, evidence_n = _evidence("weights", weights, with_nan)
    message_c, evidence_c = _evidence("hidden_grad_norms", norms, norms * 1.5)
    mask = torch.ones(4, 4, dtype=torch.bool).tril()
    message_m, evidence_m = _evidence("causal_mask(4)", mask, torch.ones(4, 4).bool().triu())

    def tests(wrong: bool):
        return [
            _outcome("public/test_public.py::test_mha_matches_torch", "test_mha_matches_torch",
                     3, not wrong, message_w, evidence_w, ["no_sqrt_scaling"]),
            _outcome("public/test_public.py::test_causal_mask", "test_causal_mask", 2, True),
            _outcome("hidden/test_mha.py::test_mha_matches_torch", "test_mha_matches_torch",
                     4, not wrong, message_w, evidence_w, ["no_sqrt_scaling"]),
            _outcome("hidden/test_mask.py::test_causal_mask_matches_tril",
                     "test_causal_mask_matches_tril", 4, not wrong, message_m, evidence_m),
            *[_outcome("hidden/test_heads.py::test_rejects_indivisible",
                       f"test_rejects_indivisible[{p}]", 2 / 3, not wrong or p != "6-4",
                       "ValueError was not raised") for p in ("5-2", "6-4", "7-3")],
            _outcome("hidden/test_sdpa.py::test_no_nan", "test_no_nan", 3, not wrong,
                     message_n, evidence_n),
            _outcome("hidden/test_grads.py::test_vanishing", "test_vanishing", 2, not wrong,
                     message_c, evidence_c),
        ]

    out = tmp_path_factory.mktemp("reports") / "out"
    assignment = assignments.load("multihead_attention")
    results = [SubmissionResult("correct_one", assignment.id, tests(False)),
               SubmissionResult("no sqrt <i>scaling & 100% #1", assignment.id, tests(True)),
               SubmissionResult("broken_zip", assignment.id,
                                [_outcome(t.key, t.name, t.max_score, False,
                                          "Your submission could not be read: the .zip file "
                                          "is damaged or not a zip.") for t in tests(True)],
                                messages=["Your submission could not be read: the .zip file is "
                                          "damaged or not a zip."], status=UNREADABLE)]
    for result in results:
        writer.write_submission(out, assignment, result)
    writer.write_batch(out, assignment, results)
    return out


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    if executable is None:
        pytest.skip("needs Chromium: apt-get install -y chromium (Debian's package; "
                    "or set AUTOGRADER_CHROMIUM to a Chromium binary)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs playwright: pip install playwright (or pip install -e '.[dev]'); "
                    "the system's Chromium is used, no browser download")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=ARGS)
        yield launched
        launched.close()


def open_page(browser, path: Path, width: int):
    """The page at ``width``, with everything it logged or requested."""
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  java_script_enabled=True)
    seen = {"requests": [], "errors": []}

    def request(route):
        url = route.request.url
        seen["requests"].append(url)
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            route.abort()  # never reach the network, even when a test fails
    context.route("**/*", request)
    page = context.new_page()
    page.on("console", lambda m: m.type in ("error", "warning") and
            seen["errors"].append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: seen["errors"].append(f"page error: {e}"))
    page.on("requestfailed", lambda r: seen["errors"].append(f"failed to load {r.url}"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return context, page, seen


PAGES = ["summary.html", "correct_one/feedback.html",
         "no sqrt <i>scaling & 100% #1/feedback.html", "broken_zip/feedback.html"]


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
@pytest.mark.parametrize("name", PAGES)
def test_page_in_a_browser(browser, reports, name, width):
    context, page, seen = open_page(browser, reports / name, width)
    try:
        assert seen["errors"] == []
        offline = [u for u in seen["requests"] if not u.startswith(("file:", "data:"))]
        assert offline == [], "nothing may be loaded from the network"

        # Every in-page link lands on an element; every other link is a report on disk.
        links = page.eval_on_selector_all("a[href]", "els => els.map(a => a.getAttribute('href'))")
        for href in links:
            if href.startswith("#"):
                assert page.evaluate("id => !!document.getElementById(id)", unquote(href[1:])), href
            else:
                assert not urlparse(href).scheme and not href.startswith("//"), href
                target = (reports / name).parent / unquote(href)
                assert target.is_file(), href

        # A text alternative for every picture.
        missing = page.evaluate("""() => [
            ...[...document.images].filter(i => !(i.getAttribute('alt') || '').trim())
                .map(i => 'img ' + i.src.slice(0, 40)),
            ...[...document.querySelectorAll('svg')].filter(s => {
                if (s.closest('[aria-hidden=true]')) return false;
                const title = s.querySelector(':scope > title');
                const label = (s.getAttribute('aria-label') || '').trim();
                return s.getAttribute('role') !== 'img' || !(label || (title && title.textContent.trim()));
            }).map(s => 'svg ' + s.outerHTML.slice(0, 60))]""")
        assert missing == []

        # Landmarks and tables a screen reader can navigate.
        assert page.locator("main").count() == 1
        assert page.evaluate("""() => [...document.querySelectorAll('table')].every(t =>
            t.tHead && t.tHead.rows[0].cells.length ===
            Math.max(...[...t.tBodies[0].rows].map(r => r.cells.length)) &&
            [...t.tHead.rows[0].cells].every(c => c.tagName === 'TH' && c.textContent.trim()))""")

        # A phone: the viewport is the device's, and nothing is wider than it.
        viewport = page.get_attribute("meta[name=viewport]", "content")
        assert viewport and "width=device-width" in viewport
        overflow = page.evaluate("""() => [document.documentElement.scrollWidth,
                                           document.body.scrollWidth]""")
        assert max(overflow) <= width, f"the page is {max(overflow)} px wide at {width} px"
    finally:
        context.close()


def test_each_failed_test_links_to_its_own_section(browser, reports):
    """The table's links go to the section of the same test (public and hidden
    tests that share a name have different sections)."""
    context, page, _ = open_page(browser, reports / PAGES[2], DESKTOP)
    try:
        pairs = page.evaluate("""() => [...document.querySelectorAll('tbody a[href^="#"]')].map(a =>
            [a.textContent.trim(), document.getElementById(a.getAttribute('href').slice(1)).textContent])""")
        assert len(pairs) == 6
        for text, heading in pairs:
            assert heading.startswith(text + " ("), (text, heading)
        assert {text for text, _ in pairs} >= {
            "public/test_public.py::test_mha_matches_torch",
            "hidden/test_mha.py::test_mha_matches_torch",
            "test_rejects_indivisible[6-4]"}
        # Points to 2 decimals.
        assert "0 / 0.67" in page.inner_text("table")
    finally:
        context.close()


def test_heatmaps_say_what_they_show(browser, reports):
    context, page, _ = open_page(browser, reports / PAGES[2], DESKTOP)
    try:
        captions = page.eval_on_selector_all("figcaption", "els => els.map(e => e.textContent)")
        assert "attention weights of head 0 for batch item 0: expected, yours, difference" \
            in captions
        figure = page.locator("figure", has_text="of head 0 for batch item 0").first
        panels = figure.locator("svg.panel")
        assert panels.count() == 3
        text = figure.inner_text()
        for word in ("expected", "yours", "difference", "query position", "key position"):
            assert word in text
        # A colour bar per panel (its scale's values), and the text alternative
        # names where the values differ most.
        assert figure.locator("svg.panel image").count() == 6
        assert "the largest difference is" in figure.locator(".alt").inner_text()
        curve = page.locator("svg.curve").first
        assert "log scale" in curve.get_attribute("aria-label")
    finally:
        context.close()


def test_summary_lists_every_student_with_a_link(browser, reports):
    context, page, _ = open_page(browser, reports / "summary.html", DESKTOP)
    try:
        headers = page.eval_on_selector_all("#students + table thead th",
                                            "els => els.map(e => e.textContent.trim())")
        assert headers == ["submission", "score", "status", "report"]
        rows = page.eval_on_selector_all(
            "#students + table tbody tr",
            "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))")
        assert [r[:3] for r in rows] == [
            ["broken_zip", "0 / 20", "unreadable"], ["correct_one", "20 / 20", "graded"],
            ["no sqrt <i>scaling & 100% #1", "3.33 / 20", "graded"]]
        page.click("text=feedback for no sqrt")
        assert page.title().endswith("no sqrt <i>scaling & 100% #1")
        # Pass rates count the readable submissions, by unique test id.
        page.goto((reports / "summary.html").as_uri())
        rates = page.inner_text("#pass-rates + table")
        assert "public/test_public.py::test_mha_matches_torch" in rates
        assert "test_rejects_indivisible[6-4]\thidden\t50%" in rates
    finally:
        context.close()
