"""The Evaluate page through AppTest: evaluate a tiny fine-tuned run on a bundled split and on uploads
(scored, unscored, broken), measure a pretrained run's perplexity, and see what was saved.

The pretrained run and its QA fine-tune (conftest's `tiny_qa_runs`) are copied into each test's runs folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import app_test

PAGE = "pages/evaluate.py"
UPLOAD = "Upload a file…"

pytestmark = pytest.mark.slow


@pytest.fixture
def runs(tiny_qa_runs: dict[str, Path], app_env: Path) -> Path:
    for name in ("pretrain", "qa"):
        shutil.copytree(tiny_qa_runs[name], app_env / name)
    return app_env


def _button(at: Any, key: str) -> Any:
    return next(b for b in at.button if b.key == key)


def _errors(at: Any) -> list[str]:
    return [e.value for e in at.error]


def _metrics(at: Any) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _frame(at: Any, column: str) -> Any:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _shows(at: Any, saved: dict[str, Any]) -> None:
    m = saved["metrics"]
    got = _metrics(at)
    assert got["Exact match"] == f"{m['exact_match']:.1f} %"
    assert got["F1"] == f"{m['f1']:.1f} %"
    assert got["ROUGE-L"] == f"{m['rougeL']:.1f} %"


def test_evaluate_a_bundled_split_and_an_upload(runs: Path, qa_files: dict[str, Path]) -> None:
    at = app_test(PAGE)
    assert not at.exception and not _errors(at)
    assert "Evaluate" in [t.value for t in at.title]
    at.selectbox(key="eval_run").set_value("qa").run()
    assert any("No question answering result" in c.value for c in at.caption)

    # A bundled split, first 3 questions.
    at.selectbox(key="eval_file").set_value("test.csv").run()
    at.number_input(key="eval_limit").set_value(3).run()
    _button(at, "eval_qa").click().run()
    assert not at.exception and not _errors(at)
    saved = json.loads((runs / "qa" / "eval" / "qa-test.json").read_text())
    assert saved["rows"] == 3 and saved["file"] == "test.csv"
    _shows(at, saved)
    # This tiny model never saw the bundled cases' vocabulary: its answers there are wrong, and listed.
    worst = _frame(at, "expected")
    assert list(worst["predicted"]) == [w["predicted"] or "(empty answer)" for w in saved["worst"]]
    assert list(worst["expected"]) == [w["expected"] for w in saved["worst"]] and len(worst) == 3
    labels = {b.proto.label for b in at.get("download_button")}
    assert "Predictions (.csv)" in labels

    # An upload of all 40 questions the tiny model was fine-tuned for: it answers many of them right.
    at.selectbox(key="eval_file").set_value(UPLOAD).run()
    assert _button(at, "eval_qa").disabled  # nothing uploaded yet
    at.file_uploader[0].set_value(("my questions.csv", qa_files["test"].read_bytes(), "text/csv")).run()
    at.number_input(key="eval_limit").set_value(0).run()  # 0 = all
    _button(at, "eval_qa").click().run()
    assert not at.exception and not _errors(at)
    saved = json.loads((runs / "qa" / "eval" / "qa-upload-my-questions.json").read_text())
    assert saved["rows"] == 40 and saved["metrics"]["f1"] > 0
    _shows(at, saved)  # the fresh result is the one shown
    if saved["worst"]:
        worst = _frame(at, "expected")
        assert list(worst["predicted"]) == [w["predicted"] or "(empty answer)" for w in saved["worst"]]
    else:
        assert any("Every answer is an exact match" in s.value for s in at.success)
    # Both results are kept; the picker switches back to the bundled split's.
    shown = at.selectbox(key="eval_shown_qa")
    assert len(shown.options) == 2
    shown.set_value(str(runs / "qa" / "eval" / "qa-test.json")).run()
    _shows(at, json.loads((runs / "qa" / "eval" / "qa-test.json").read_text()))
    saved_table = _frame(at, "when")
    assert sorted(saved_table["data"]) == ["my-questions.csv", "test.csv"]


def test_bad_and_unlabelled_uploads(runs: Path, qa_files: dict[str, Path]) -> None:
    at = app_test(PAGE)
    at.selectbox(key="eval_run").set_value("qa").run()
    at.selectbox(key="eval_file").set_value(UPLOAD).run()
    at.file_uploader[0].set_value(("bad.csv", b"question,answer\nHow old?,80\n", "text/csv")).run()
    _button(at, "eval_qa").click().run()
    assert not at.exception
    assert any("lacks column(s) 'context'" in e for e in _errors(at))
    assert not (runs / "qa" / "eval").exists()

    unlabelled = b"question,context\nHow old was the patient?,A 61-year-old man was seen. Mirafen was given.\n"
    at.file_uploader[0].set_value(("questions.csv", unlabelled, "text/csv")).run()
    _button(at, "eval_qa").click().run()
    assert not at.exception and not _errors(at)
    assert any("answered, not scored" in i.value for i in at.info)
    assert "F1" not in _metrics(at)
    saved = json.loads((runs / "qa" / "eval" / "qa-upload-questions.json").read_text())
    assert saved["scored"] is False and saved["rows"] == 1


def test_perplexity_of_a_pretrained_run(runs: Path) -> None:
    at = app_test(PAGE)
    at.selectbox(key="eval_run").set_value("pretrain").run()
    assert any("language model was never taught to answer" in c.value for c in at.caption)
    _button(at, "eval_ppl").click().run()
    assert not at.exception and not _errors(at)
    saved = json.loads((runs / "pretrain" / "eval" / "perplexity-val.json").read_text())
    assert _metrics(at)["Perplexity"] == f"{saved['perplexity']:.2f}"
    assert _metrics(at)["Validation loss"] == f"{saved['loss']:.4f}"

    at.selectbox(key="eval_run").set_value("qa").run()  # a fine-tune has no running text to measure
    assert not any(b.key == "eval_ppl" for b in at.button)


def test_no_run_yet(app_env: Path) -> None:
    at = app_test(PAGE)
    assert not at.exception
    assert any("No run has a checkpoint yet" in i.value for i in at.info)
