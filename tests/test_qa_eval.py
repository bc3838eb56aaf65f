"""evaluate_qa and the saved evaluations: real answers of a tiny fine-tuned run, exact scores from known
answers, files without answers, bad files, and held-out perplexity saved in the run folder."""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from genai_core.clinical.questions import question_kind
from genai_core.errors import CheckpointError, GenAIError
from genai_core.evaluate.answers import PREDICTION_COLUMNS, evaluate_qa, read_qa_file
from genai_core.evaluate.perplexity import evaluate_run
from genai_core.evaluate.results import save_evaluation
from genai_core.evaluate.scoring import score_answer
from genai_core.generate import qa
from genai_core.generate.sampling import Sampler
from genai_core.qa import prompt as qa_prompt
from genai_core.runs.folder import Run

pytestmark = pytest.mark.slow

ASSETS_QA = Path(__file__).resolve().parents[1] / "assets" / "qa"


@pytest.fixture
def qa_run(tiny_qa_runs: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the fine-tuned run: evaluations write into the run folder."""
    return Path(shutil.copytree(tiny_qa_runs["qa"], tmp_path / "runs" / "qa"))


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_a_real_run_is_scored_and_the_result_saved(qa_run: Path, qa_files: dict[str, Path], tmp_path: Path) -> None:
    t0 = time.time()
    out = tmp_path / "elsewhere" / "predictions.csv"
    res = evaluate_qa(qa_run, qa_files["test"], limit=12, predictions_path=out, device="cpu")
    run = Run(qa_run)

    # Saved in the run folder: the summary JSON (without the rows) and every row as CSV.
    saved = qa_run / "eval" / "qa-test.json"
    assert res["saved_to"] == str(saved)
    data = json.loads(saved.read_text())
    assert "predictions" not in data
    assert data["metrics"] == res["metrics"] and data["worst"] == res["worst"]
    assert (data["rows"], data["available_rows"], data["truncated"]) == (12, 40, True)
    assert data["source"] == str(qa_files["test"].resolve()) and data["file"] == "test.csv"
    assert data["checkpoint_step"] == int(run.latest_checkpoint().name.removeprefix("step_"))
    assert data["task"] == "qa" and data["scored"] is True
    assert t0 <= data["timestamp"] <= time.time()
    assert (qa_run / "eval" / "qa-test.predictions.csv").read_text() == out.read_text()

    # Every prediction is what qa.answer gives for that row, scored by the scoring module (percent).
    columns, rows = read_csv_rows(out)
    assert columns == list(PREDICTION_COLUMNS)
    expected = pd.read_csv(qa_files["test"], dtype=str).head(12)
    sampler = Sampler.from_run(run, device="cpu")
    for row, (_, ref) in zip(rows, expected.iterrows(), strict=True):
        assert row["question"] == ref["question"] and row["answer"] == ref["answer"]
        assert row["prediction"] == qa.answer(sampler, ref["question"], ref["context"]).text
        s = score_answer(row["prediction"], ref["answer"]).percent()
        assert [float(row["em"]), float(row["f1"]), float(row["rougeL"])] == pytest.approx(
            [s["exact_match"], s["f1"], s["rougeL"]], abs=0.01)
    f1s = [p["f1"] for p in res["predictions"]]
    assert res["metrics"]["f1"] == pytest.approx(sum(f1s) / 12) and res["metrics"]["count"] == 12
    assert res["metrics"]["f1"] > 0  # the fine-tune answers some questions: the pipeline is wired end to end

    # Worst answers: the wrong ones only (this run may get all 12 right), lowest F1 first.
    wrong = sorted((p for p in res["predictions"] if p["em"] < 100), key=lambda p: (p["f1"], p["rougeL"]))
    assert [(w["question"], w["expected"], w["predicted"]) for w in res["worst"]] == [
        (p["question"], p["answer"], p["prediction"]) for p in wrong[:10]]

    # The Runs table reads it back, next to the run's lineage.
    summary = run.summary()
    assert summary["qa_test_f1"] == res["metrics"]["f1"]
    assert summary["qa_test_exact_match"] == res["metrics"]["exact_match"]
    assert (summary["task"], summary["parent"]) == ("qa", "pretrain")
    assert Run(Path(run.config().parent)).summary()["parent"] is None


def _fake_answers(predictions: dict[str, str]) -> Any:
    """A stand-in for qa.answer that returns a chosen answer per question (the model is not consulted)."""
    def answer(sampler: Sampler, question: str, context: str, cfg: Any = None, *, lowercase: bool = False) -> Any:
        text = predictions[question]
        prompt = qa_prompt.QAPrompt([1], question, context, [(0, len(context))], False)
        return qa.QAAnswer(text, prompt, "end", qa_prompt.find_span(context, text))
    return answer


def test_scores_worst_answers_and_kinds_from_known_answers(
    qa_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [  # question (phrasings of the bundled generator, so they have kinds), expected, predicted
        ("What was the dose of Amfibactam?", "250 mg by mouth QDS for 7 days", "250 mg by mouth QDS for 7 days."),
        ("How old is the patient?", "80", "80 years"),
        ("What drug did the patient receive?", "Calrixaban", "Warfarin"),
        ("Sex?", "lady", "the lady"),
    ]
    path = tmp_path / "known.csv"
    pd.DataFrame([{"question": q, "context": f"Context of: {a}.", "answer": a} for q, a, _ in rows]).to_csv(
        path, index=False)
    monkeypatch.setattr(qa, "answer", _fake_answers({q: p for q, _, p in rows}))
    res = evaluate_qa(qa_run, path, device="cpu", kind_of=question_kind)  # the file has no kind column
    m = res["metrics"]
    # EM: rows 1 and 4 (punctuation and article removed). F1: 1, 2/3 ([80, years] vs [80]), 0, 1.
    # ROUGE-L keeps "the": row 4 is P 1/2, R 1, F 2/3.
    assert m["exact_match"] == pytest.approx(50.0)
    assert m["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0 + 1) / 4)
    assert m["rougeL"] == pytest.approx(100 * (1 + 2 / 3 + 0 + 2 / 3) / 4)
    assert [(w["question"], w["expected"], w["predicted"]) for w in res["worst"]] == [
        ("What drug did the patient receive?", "Calrixaban", "Warfarin"),
        ("How old is the patient?", "80", "80 years"),
    ]
    assert {k: (v["count"], round(v["f1"], 2)) for k, v in res["by_kind"].items()} == {
        "dose": (1, 100.0), "age": (1, 66.67), "drug": (1, 0.0), "sex": (1, 100.0)}
    assert res["in_context"] == pytest.approx(25.0)  # only the dose is copied: "the lady" is not in "...: lady."
    assert Run(qa_run).summary()["qa_known_f1"] == pytest.approx(m["f1"])


def test_a_file_without_answers_is_answered_not_scored(
    qa_run: Path, qa_files: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "unlabelled.csv"
    pd.read_csv(qa_files["test"], dtype=str).head(3)[["question", "context"]].to_csv(path, index=False)
    res = evaluate_qa(qa_run, path, predictions_path=tmp_path / "p.csv", device="cpu")
    assert res["scored"] is False and res["metrics"] is None
    assert res["worst"] == [] and res["by_kind"] == {}
    assert any("not scored" in n for n in res["notes"])
    columns, rows = read_csv_rows(tmp_path / "p.csv")
    assert columns == ["question", "prediction"] and len(rows) == 3
    sampler = Sampler.from_run(qa_run, device="cpu")
    first = pd.read_csv(path, dtype=str).iloc[0]
    assert rows[0]["prediction"] == qa.answer(sampler, first["question"], first["context"]).text
    assert json.loads((qa_run / "eval" / "qa-unlabelled.json").read_text())["metrics"] is None
    assert not any(k.startswith("qa_unlabelled_") for k in Run(qa_run).summary())  # nothing to show as a score


BAD_FILES: dict[str, tuple[str, bytes, str]] = {
    "no context column": ("a.csv", b"question,answer\nHow old?,80\n", "lacks column(s) 'context'"),
    "empty file": ("a.csv", b"", "a.csv is empty"),
    "binary file": ("a.csv", b"PK\x03\x04\x00\x00binary\x00" * 20, "binary"),
    "header only": ("a.csv", b"question,context,answer\n", "holds no QA records"),
    "empty question": ("a.csv", b"question,context,answer\n,Some context.,x\nQ?,C.,y\n",
                       "1 row(s) have an empty question (line 2)"),
    "empty answer": ("a.csv", b"question,context,answer\nQ?,C.,x\nQ?,C.,\n",
                     "empty answer (line 3) (leave the answer column out"),
    "not a table": ("notes.md", b"# notes\n", "unsupported QA file type '.md'"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_with_a_specific_message(qa_run: Path, tmp_path: Path, case: str) -> None:
    name, content, fragment = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(GenAIError) as err:
        evaluate_qa(qa_run, path, device="cpu")
    assert fragment in str(err.value)
    assert not (qa_run / "eval").exists()  # refused before anything was written


def test_bad_arguments(qa_run: Path, qa_files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(GenAIError, match="QA file not found"):
        read_qa_file(tmp_path / "nope.csv")
    with pytest.raises(GenAIError, match="limit must be at least 1"):
        evaluate_qa(qa_run, qa_files["test"], limit=0)
    with pytest.raises(GenAIError, match="is a folder"):
        evaluate_qa(qa_run, qa_files["test"], predictions_path=tmp_path)
    with pytest.raises(CheckpointError, match="not a run folder"):
        evaluate_qa(tmp_path / "no_run", qa_files["test"])
    assert not (qa_run / "eval").exists()


def test_perplexity_is_saved_and_a_qa_run_is_pointed_to_qa_scores(
    tiny_qa_runs: dict[str, Path], qa_run: Path, tmp_path: Path
) -> None:
    pre = Path(shutil.copytree(tiny_qa_runs["pretrain"], tmp_path / "runs" / "pretrain"))
    res = evaluate_run(pre, device="cpu")
    saved = json.loads((pre / "eval" / "perplexity-val.json").read_text())
    assert res["saved_to"] == str(pre / "eval" / "perplexity-val.json")
    assert saved["loss"] == res["loss"] and saved["kind"] == "perplexity" and saved["name"] == "val"
    assert saved["perplexity"] == pytest.approx(math.exp(saved["loss"]))
    assert Run(pre).saved_evaluations()[0]["perplexity"] == saved["perplexity"]
    assert evaluate_run(pre, device="cpu", max_tokens=5, save=False)["tokens"] == 5
    assert json.loads((pre / "eval" / "perplexity-val.json").read_text()) == saved  # save=False wrote nothing

    with pytest.raises(GenAIError, match="question answering fine-tune"):
        evaluate_run(qa_run, device="cpu")

    # A diverged model's infinite perplexity is saved as null (strict JSON), not refused.
    path = save_evaluation(Run(pre), {"kind": "perplexity", "name": "odd", "perplexity": math.inf, "loss": 800.0})
    assert json.loads(path.read_text())["perplexity"] is None


def test_question_kinds_of_the_bundled_files() -> None:
    for name in ("test.csv", "test_unseen_phrasing.csv"):
        questions = pd.read_csv(ASSETS_QA / name, dtype=str)["question"]
        assert all(question_kind(q) is not None for q in questions), name
    assert question_kind("What was the dose of Aspirin?") == "dose"
    assert question_kind("How old is she?") == "age"
    assert question_kind("Tell me a joke") is None
