"""End to end: scores and feedback of the bundled submissions (one batch)."""

import csv
import json

import pytest

from conftest import EXAMPLES, ROOT, failed, grade_batch


def test_reference_scores_full_marks(example_batch):
    outcome, results = example_batch
    assert not outcome.errors
    assert results["reference"].score == results["reference"].max_score == 100


@pytest.mark.parametrize("sid", ["correct_einsum", "zipped", "notebook"])
def test_correct_in_any_style_or_form_scores_full_marks(example_batch, sid):
    """einsum, fused projections, float64 inside, logsumexp, extra buffers and
    kwargs; a zip of a repository; a notebook with a broken demo cell."""
    assert example_batch[1][sid].score == 100, failed(example_batch[1][sid])


def test_untouched_template_scores_zero(example_batch):
    result = example_batch[1]["template"]
    assert result.score == 0
    assert all("NotImplementedError" in t.feedback for t in result.tests)


@pytest.mark.parametrize("sid, must_fail, message", [
    ("no_sqrt_scaling", {"test_sdpa_matches_torch_without_mask"}, "sqrt(d_k)"),
    ("causal_triu_leak", {"test_causal_mask_matches_tril", "test_sdpa_never_looks_ahead"},
     "causal mask"),
    ("heads_without_transpose", {"test_split_heads_layout"}, "transpose(1, 2)"),
    ("nan_on_masked_rows", {"test_sdpa_bool_mask_matches_torch",
                            "test_mha_fully_masked_keys_give_zeros"}, "NaN"),
    ("uses_torch_sdpa", {"test_sdpa_matches_torch_without_mask"},
     "torch.nn.functional.scaled_dot_product_attention"),
])
def test_wrong_submissions_lose_the_right_points(example_batch, sid, must_fail, message):
    result = example_batch[1][sid]
    assert 0 < result.score < 100
    assert must_fail <= failed(result)
    feedback = "\n".join(t.feedback for t in result.tests if not t.passed)
    assert message in feedback


def test_forbidden_call_found_at_run_time(example_batch):
    result = example_batch[1]["obfuscated_sdpa"]
    assert "test_sdpa_matches_torch_without_mask" in failed(result)
    assert "test_causal_mask_matches_tril" not in failed(result)
    feedback = "\n".join(t.feedback for t in result.tests if not t.passed)
    assert "used torch.nn.functional.scaled_dot_product_attention" in feedback


@pytest.mark.parametrize("sid, mistake", [
    ("no_sqrt_scaling", "no_sqrt_scaling"), ("causal_triu_leak", "causal_mask_triu"),
    ("heads_without_transpose", "split_heads_without_transpose"),
    ("nan_on_masked_rows", "nan_for_fully_masked_rows"),
])
def test_known_mistake_hint_comes_first(example_batch, sid, mistake):
    result = example_batch[1][sid]
    explained = [t for t in result.tests if mistake in t.mistakes]
    assert explained and all(t.feedback.startswith("Likely mistake: ") for t in explained)
    assert not any(t.mistakes for t in result.tests if t.passed)


def test_html_reports_show_heatmaps_and_the_class_summary(example_batch, tmp_path_factory):
    out = next(iter(tmp_path_factory.getbasetemp().glob("examples*"))) / "out"
    html = (out / "causal_triu_leak" / "feedback.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    assert html.index("Likely mistake") < html.index("differs at index")
    summary = (out / "summary.html").read_text()
    assert "causal_mask_triu" in summary and "<svg" in summary


def test_nan_mistake_keeps_points_where_no_row_is_masked(example_batch):
    result = example_batch[1]["nan_on_masked_rows"]
    assert "test_sdpa_matches_torch_without_mask" not in failed(result)


def test_failures_name_input_seed_and_element(example_batch):
    result = example_batch[1]["no_sqrt_scaling"]
    test = next(t for t in result.tests if t.name == "test_sdpa_matches_torch_without_mask")
    assert "seed" in test.feedback and "differs at index" in test.feedback
    assert "largest error" in test.feedback


def test_syntax_error_and_missing_function(example_batch):
    results = example_batch[1]
    assert results["syntax_error"].score == 0
    assert "syntax error at line 1" in results["syntax_error"].messages[0]
    missing = results["no_merge_heads"]
    assert "test_merge_heads_inverts_split" in failed(missing)
    assert "no attribute 'merge_heads'" in "\n".join(t.feedback for t in missing.tests)
    assert "test_mha_self_attention_matches_torch" not in failed(missing)


def test_written_files_follow_the_contract(example_batch, tmp_path_factory):
    outcome, results = example_batch
    out = next(iter(tmp_path_factory.getbasetemp().glob("examples*"))) / "out"
    data = json.loads((out / "no_sqrt_scaling" / "results.json").read_text())
    assert data["max_score"] == 100 and isinstance(data["score"], float)
    assert {"score", "execution_time", "output", "tests"} <= set(data)
    for test in data["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in ("visible", "after_published")
    hidden = [t for t in data["tests"] if t["visibility"] == "after_published"]
    assert hidden and not any("def test_" in t["output"] or "assert " in t["output"]
                              for t in hidden)
    rows = list(csv.reader((out / "grades.csv").open()))
    assert rows[0][:3] == ["submission", "score", "max_score"]
    assert {r[0] for r in rows[1:]} == set(results)
    assert (out / "no_sqrt_scaling" / "feedback.md").read_text().startswith("# Multi-head")
    assert "<html" in (out / "no_sqrt_scaling" / "feedback.html").read_text()


def test_grading_is_deterministic(example_batch, tmp_path, monkeypatch):
    """The same submission gets the same scores and messages in another batch,
    also when it is graded from examples replayed from an earlier chunk rather
    than generated by hypothesis again (one submission per chunk here)."""
    monkeypatch.setenv("AUTOGRADER_CHUNK", "1")
    names = ["no_sqrt_scaling", "nan_on_masked_rows"]
    again = grade_batch(tmp_path, [EXAMPLES / f"{n}.py" for n in names])[1]
    for name in names:
        first, second = example_batch[1][name], again[name]
        assert [(t.name, t.passed, t.feedback) for t in first.tests] == \
            [(t.name, t.passed, t.feedback) for t in second.tests]


def test_a_replayed_example_never_invents_a_draw():
    """Replaying recorded examples gives back exactly the recorded draws; one
    more makes the grader generate the examples with hypothesis again."""
    from autograder.engine.fanout import ReplayExhausted, _SharedDraws

    cursor = _SharedDraws(None, [3, 1]).cursor()
    assert [cursor.draw(None), cursor.draw(None)] == [3, 1]
    with pytest.raises(ReplayExhausted):
        cursor.draw(None)
