"""Question answering evaluation of a trained run: answer every row of a QA file and score the answers.

`evaluate_qa` answers every row of a question,context[,answer] table greedily (`qa.answer`) and scores
the answers with exact match, token F1 and ROUGE-L (`scoring`; all in percent, 0-100). A file without
an answer column is answered, not scored. Scores are grouped by question kind when the file has a `kind`
column, or when the caller gives a `kind_of` function that recognises its questions (the bundled generator's
is `clinical.questions.question_kind`).

The result is saved in the run folder as `eval/qa-<file>.json` (`results.save_evaluation`), with every row in
`eval/qa-<file>.predictions.csv`.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from genai_core.config import AnswerMethod, SampleConfig
from genai_core.errors import GenAIError
from genai_core.evaluate.results import Progress, checkpoint_step, open_run, save_evaluation
from genai_core.evaluate.scoring import NOT_STATED, AnswerScore, mean_percent, score_answer
from genai_core.files import atomic_write_text
from genai_core.generate import qa
from genai_core.generate.extractive import SpanAnswer, has_span_head, read_answer
from genai_core.generate.sampling import Sampler
from genai_core.qa import store as qa_store
from genai_core.runs.folder import Run, slugify

DEFAULT_WORST = 10
ANSWER_METHODS: tuple[str, ...] = get_args(AnswerMethod)

KindOf = Callable[[str], str | None]
"""Guesses the kind of a question (age, dose, ...) from its wording, or None."""


@dataclass
class QARow:
    """One question of a QA file; `answer` is None when the file has no answer column."""

    question: str
    context: str
    answer: str | None
    kind: str | None = None
    """What the question asks (age, drug, ...), from the file's optional `kind` column."""


@dataclass
class QAFile:
    """The rows of a QA file, and whether it has an answer column (else its answers are predicted, not scored)."""

    path: Path
    rows: list[QARow]
    has_answers: bool


def read_qa_file(path: Path | str) -> QAFile:
    """The rows of a question,context[,answer] table (`qa_store.read_qa_table`: .csv, .tsv, .jsonl, .parquet),
    checked: a bad file, or a row with an empty cell, raises a GenAIError saying which."""
    path = Path(path)
    df = qa_store.read_qa_table(path, need_answer=False)
    has_answers = "answer" in df.columns
    for column in ("question", "context", "answer"):
        if column not in df.columns:
            continue
        empty = [i + 2 for i, v in enumerate(df[column]) if not v.strip()]  # + 2: line 1 is the header
        if empty:
            lines = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
            hint = " (leave the answer column out to get predictions only)" if column == "answer" else ""
            raise GenAIError(f"{path.name}: {len(empty)} row(s) have an empty {column} (line {lines}){hint}")
    answers = df["answer"].str.strip().tolist() if has_answers else [None] * len(df)
    kinds = [k.strip() or None for k in df["kind"]] if "kind" in df.columns else [None] * len(df)
    rows = [QARow(q.strip(), c, a, k)
            for q, c, a, k in zip(df["question"], df["context"], answers, kinds, strict=True)]
    return QAFile(path, rows, has_answers)


def evaluate_qa(
    run: Run | Path | str,
    qa_csv: Path | str,
    *,
    limit: int | None = None,
    predictions_path: Path | str | None = None,
    progress: Progress | None = None,
    device: str = "auto",
    sample: SampleConfig | None = None,
    name: str | None = None,
    worst: int = DEFAULT_WORST,
    save: bool = True,
    kind_of: KindOf | None = None,
    method: AnswerMethod = "auto",
) -> dict[str, Any]:
    """Answer every row of `qa_csv` with the run's latest checkpoint and score the answers.

    `method` says how answers are made: "span", the span head's best whole-word span or "not stated"
    (`extractive.read_answer`); "generate", decoding (`qa.answer`: greedy up to the end marker, unless `sample`
    says otherwise); "auto" (the default), the span head when the model has one and no `sample` is given. `limit`
    keeps the first N rows. Scores are percentages (0-100): `metrics` holds the means of exact_match,
    f1 and rougeL (None when the file has no answer column), `by_kind` the same per question kind (from the
    file's `kind` column, else from `kind_of(question)` when given), `worst` the `worst` answers of lowest F1
    (exact matches left out), `predictions` every row. With `save`, the result is written to the run folder as
    eval/qa-<name>.json (`name` defaults to the file name without extension; key `saved_to`) with every
    row in eval/qa-<name>.predictions.csv; `predictions_path` writes that CSV elsewhere too.
    """
    t0 = time.perf_counter()
    run = open_run(run)
    _check_arguments(limit, worst, predictions_path)
    data = read_qa_file(qa_csv)  # a bad file is reported before the model is loaded
    rows = data.rows[:limit] if limit is not None else data.rows
    step = checkpoint_step(run)
    sampler = Sampler.from_run(run, device=device)
    cfg = run.config()
    method = _resolve_method(method, sampler, sample)
    predictions, scores = _answer_rows(sampler, rows, sample, cfg.data.lowercase, kind_of, progress, method)
    n = len(rows)
    scored = data.has_answers
    result: dict[str, Any] = {
        "kind": "qa",
        "name": slugify(name or data.path.stem),
        "run": run.name,
        "task": cfg.task,
        "checkpoint_step": step,
        "method": method,
        "source": str(data.path.resolve()),
        "file": data.path.name,
        "rows": n,
        "available_rows": len(data.rows),
        "truncated": n < len(data.rows),
        "scored": scored,
        "scale": "percent (0-100)",
        "metrics": mean_percent(scores) if scored else None,
        "by_kind": _by_kind(scores, [p["kind"] for p in predictions]) if scored else {},
        "abstention": _abstention(predictions) if scored else None,
        "in_context": 100 * sum(p["in_context"] for p in predictions) / n,
        "worst": _worst(predictions, worst) if scored else [],
        "predictions": predictions,
        "device": str(sampler.device),
        "seconds": round(time.perf_counter() - t0, 3),
        "notes": _notes(data, predictions, sampler.model.config.seq_len),
        "timestamp": time.time(),
    }
    if predictions_path is not None:
        write_predictions_csv(predictions, predictions_path)
        result["predictions_csv"] = str(predictions_path)
    if save:
        # Every row goes next to the summary as CSV, so that reading the summaries (every run, every
        # time the Runs page draws) never parses thousands of predictions.
        result["predictions_file"] = str(write_predictions_csv(predictions, _predictions_file(run, result)))
        result["saved_to"] = str(save_evaluation(run, {k: v for k, v in result.items() if k != "predictions"}))
    return result


def _check_arguments(limit: int | None, worst: int, predictions_path: Path | str | None) -> None:
    """Refuse bad arguments before anything is read or loaded."""
    if limit is not None and limit < 1:
        raise GenAIError(f"limit must be at least 1 (got {limit})")
    if worst < 0:
        raise GenAIError(f"worst must be 0 or more (got {worst})")
    if predictions_path is not None and Path(predictions_path).is_dir():
        raise GenAIError(f"{predictions_path} is a folder: give a file name for the predictions, "
                         f"e.g. {Path(predictions_path) / 'predictions.csv'}")


def _resolve_method(method: str, sampler: Sampler, sample: SampleConfig | None) -> str:
    """"auto" made concrete; "span" refused for a model without a span head."""
    if method not in ANSWER_METHODS:
        raise GenAIError(f"unknown answer method {method!r}; use one of {', '.join(ANSWER_METHODS)}")
    if method == "auto":
        return "span" if has_span_head(sampler.model) and sample is None else "generate"
    if method == "span" and not has_span_head(sampler.model):
        raise GenAIError("this run has no span head: answer with --method generate, or fine-tune with --span-head")
    return method


def _answer_rows(
    sampler: Sampler, rows: list[QARow], sample: SampleConfig | None, lowercase: bool, kind_of: KindOf | None,
    progress: Progress | None, method: str = "generate",
) -> tuple[list[dict[str, Any]], list[AnswerScore]]:
    """Answer each row (prompts cleaned with the run's `lowercase`) and score it when it has an answer: one
    prediction dict per row, and the scores of the scored rows."""
    predictions: list[dict[str, Any]] = []
    scores: list[AnswerScore] = []
    for i, row in enumerate(rows):
        if method == "span":
            got: qa.QAAnswer = read_answer(sampler.model, sampler.tokenizer, row.question, row.context,
                                           lowercase=lowercase)
        else:
            got = qa.answer(sampler, row.question, row.context, sample, lowercase=lowercase)
        kind = row.kind or (kind_of(row.question) if kind_of is not None else None)
        pred: dict[str, Any] = {"question": row.question}
        if row.answer is None:
            pred["prediction"] = got.text
        else:
            score = score_answer(got.text, row.answer)
            scores.append(score)
            pred.update({"answer": row.answer, "prediction": got.text,
                         "em": 100 * score.exact_match, "f1": 100 * score.f1, "rougeL": 100 * score.rougeL})
        # Diagnostics: was the answer copied from the context, and did the context have to be cut to fit?
        pred.update({"kind": kind, "in_context": got.span is not None, "context_selected": bool(got.prompt.selected),
                     "finish_reason": got.finish_reason})
        if isinstance(got, SpanAnswer):
            pred.update({"confidence": got.confidence, "understood_as": got.kind,
                         "kind_confidence": got.kind_confidence, "not_stated_probability": got.not_stated_probability})
        predictions.append(pred)
        if progress is not None:
            progress((i + 1) / len(rows), f"answered {i + 1:,} of {len(rows):,} questions")
    return predictions, scores


def _notes(data: QAFile, predictions: list[dict[str, Any]], seq_len: int) -> list[str]:
    """What a reader of the scores should know: rows left out, contexts cut to fit, no answers to score."""
    n = len(predictions)
    notes: list[str] = []
    if n < len(data.rows):
        notes.append(f"answered the first {n:,} of {len(data.rows):,} questions (raise the limit to see more)")
    cut = sum(p["context_selected"] for p in predictions)
    if cut:
        notes.append(f"{cut:,} context(s) did not fit the {seq_len}-token window: the model "
                     "saw the sentences selected for the question, not the whole context")
    if not data.has_answers:
        notes.append(f"{data.path.name} has no answer column: answers were predicted, not scored")
    return notes


def _predictions_file(run: Run, result: dict[str, Any]) -> Path:
    """Where a saved QA result keeps its rows: next to its summary JSON."""
    return run.eval_path / f"{result['kind']}-{result['name']}.predictions.csv"


def _by_kind(scores: list[AnswerScore], kinds: list[str | None]) -> dict[str, dict[str, float | int]]:
    """Mean scores per question kind (`other` for questions of no known kind); empty when no kind is known."""
    if not any(kinds):
        return {}
    groups: dict[str, list[AnswerScore]] = {}
    for score, kind in zip(scores, kinds, strict=True):
        groups.setdefault(kind or "other", []).append(score)
    return {k: mean_percent(v) for k, v in sorted(groups.items())}


def _abstention(predictions: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """How the model treats questions its context does not answer (expected answer NOT_STATED): `abstained` is
    the percent of those it answered NOT_STATED, `false_abstention` the percent of answerable ones it answered
    NOT_STATED (None where a file has no rows of that sort)."""

    def said(p: dict[str, Any]) -> bool:
        return str(p["prediction"]).strip().lower() == NOT_STATED

    unanswerable = [p for p in predictions if str(p["answer"]).strip().lower() == NOT_STATED]
    answerable = [p for p in predictions if str(p["answer"]).strip().lower() != NOT_STATED]
    return {
        "unanswerable": len(unanswerable),
        "abstained": 100 * sum(map(said, unanswerable)) / len(unanswerable) if unanswerable else None,
        "answerable": len(answerable),
        "false_abstention": 100 * sum(map(said, answerable)) / len(answerable) if answerable else None,
    }


def _worst(predictions: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The k wrong answers of lowest F1 (then lowest ROUGE-L), in file order among equals."""
    wrong = [p for p in predictions if p["em"] < 100]
    wrong.sort(key=lambda p: (p["f1"], p["rougeL"]))  # stable: file order breaks ties
    return [{"question": p["question"], "expected": p["answer"], "predicted": p["prediction"],
             "f1": p["f1"], "rougeL": p["rougeL"], "kind": p["kind"]} for p in wrong[:k]]


PREDICTION_COLUMNS = ("question", "answer", "prediction", "em", "f1", "rougeL")


def predictions_csv(predictions: list[dict[str, Any]]) -> str:
    """Predictions as CSV text: question, answer, prediction, em, f1, rougeL (scores in percent);
    question and prediction only when the file was not scored."""
    columns = [c for c in PREDICTION_COLUMNS if not predictions or c in predictions[0]]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for p in predictions:
        writer.writerow([_cell(p.get(c)) for c in columns])
    return buf.getvalue()


def _cell(v: Any) -> Any:
    """A CSV cell: scores rounded to two decimals."""
    return round(v, 2) if isinstance(v, float) else v


def write_predictions_csv(predictions: list[dict[str, Any]], path: Path | str) -> Path:
    """Write `predictions_csv(predictions)` to `path` (atomically); returns the path."""
    path = Path(path)
    atomic_write_text(path, predictions_csv(predictions))
    return path
