"""Held-out evaluation of a trained run: the exact mean loss over a whole split, and question answering.

Training reports validation loss on a fixed sample of random windows, which is cheap and good for
curves but noisy. `evaluate_run` instead walks the text once in consecutive, non-overlapping
windows of `seq_len` (the last, shorter window included), so every token after the first is
predicted exactly once and the result does not depend on a seed or on the batch size.

Sources:
- the run's own validation split (default): the token store is reopened from the run's data config;
- any other corpus file: tokenized with the run's own tokenizer and cleaning options, and evaluated
  whole (train and validation parts together), since none of a separate file was trained on.

`evaluate_qa` answers every row of a question,context[,answer] CSV greedily (`qa.answer`) and scores
the answers with exact match, token F1 and ROUGE-L (`scoring`; all in percent, 0-100). A file without
an answer column is answered, not scored.

Both save their result in the run folder, `eval/perplexity-<data>.json` and `eval/qa-<file>.json`
(one per data source; the latest evaluation replaces the previous one), which the Runs and Evaluate
pages read back with `Run.saved_evaluations()`.
"""

from __future__ import annotations

import csv
import io
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from genai_core.config import DataConfig, RunConfig, SampleConfig
from genai_core.data.corpus import open_corpus
from genai_core.data.tokenization import BPETokenizer, CharTokenizer
from genai_core.data.tokenstore import TokenStore, prepare, prepare_cached, windows_to_batch
from genai_core.devices import autocast, resolve_device, resolve_precision
from genai_core.errors import CheckpointError, CorpusError, GenAIError
from genai_core.evaluate.scoring import AnswerScore, mean_percent, score_answer
from genai_core.files import atomic_write_json, atomic_write_text
from genai_core.model import LanguageModel, build_model, load_state
from genai_core.runs.folder import Run, slugify

DEFAULT_MAX_TOKENS = 2_000_000
_LOGITS_BUDGET = 64 << 20  # logits elements per batch (x4 bytes): keeps big vocabularies in memory
_MAX_BATCH = 64

Progress = Callable[[float, str], None]


def evaluate_run(
    run: Run | Path | str,
    corpus: Path | str | None = None,
    max_tokens: int | None = None,
    device: str = "auto",
    *,
    text_column: str | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    save: bool = True,
) -> dict[str, Any]:
    """Mean next-token loss of the run's latest checkpoint.

    `corpus=None` evaluates the run's validation split; a path evaluates all of that file. At most
    `max_tokens` predicted tokens are counted (default `DEFAULT_MAX_TOKENS`), from the start.
    Returns a JSON-able dict: loss, perplexity, tokens, unknown_fraction (char tokenizers), ...
    With `save`, it is also written to eval/perplexity-<val or file name>.json (key `saved_to`).
    """
    t0 = time.perf_counter()
    run = run if isinstance(run, Run) else Run(run)
    if not run.exists():
        raise CheckpointError(f"{run.path} is not a run folder (no config.json)")
    limit = DEFAULT_MAX_TOKENS if max_tokens is None else int(max_tokens)
    if limit < 1:
        raise GenAIError(f"max_tokens must be at least 1 (got {limit})")
    if batch_size is not None and batch_size < 1:
        raise GenAIError(f"batch_size must be at least 1 (got {batch_size})")

    cfg = run.config()
    if cfg.task == "qa" and corpus is None:
        # Its own data is a question/answer table, not running text: there is no validation text to measure.
        raise GenAIError(f"run {run.name} is a question answering fine-tune: score it on a QA file "
                         "(eval --qa FILE.csv), or give a text corpus to measure its perplexity on")
    tok = run.tokenizer()
    if tok.vocab_size != cfg.model.vocab_size:
        raise CheckpointError(
            f"run {run.name}: tokenizer has {tok.vocab_size} tokens, model expects {cfg.model.vocab_size}"
        )
    ckpt = run.latest_checkpoint()
    if ckpt is None:
        raise CheckpointError(f"run {run.name} has no checkpoint yet")
    model = build_model(cfg.model)
    load_state(model, run.load_weights())
    dev = resolve_device(device)
    precision = resolve_precision("auto", dev)
    model = model.to(dev).eval()

    notes: list[str] = []
    if corpus is None:
        ids, available, source = _own_validation(run, cfg, tok, limit, notes, progress)
        split = "val"
    else:
        ids, available, source = _whole_corpus(cfg, tok, Path(corpus), text_column, limit, progress)
        split = "all"
    if available < 1:
        raise GenAIError(f"{source} holds {available + 1} token(s); at least 2 are needed to measure a loss")
    n = len(ids) - 1

    loss_sum = sum_loss(model, ids, dev, precision, batch_size, progress)
    loss = loss_sum / n
    unk = getattr(tok, "unk_id", None)
    unknown_fraction = None if unk is None else float(np.count_nonzero(ids[1:] == unk)) / n
    if unknown_fraction:
        notes.append(f"{unknown_fraction:.2%} of the tokens are characters the run never saw in training "
                     "(encoded as the unknown token); they count in the loss")
    if n < available:
        notes.append(f"evaluated the first {n:,} of {available:,} tokens (raise max_tokens to see more)")
    result = {
        "kind": "perplexity",
        "name": "val" if corpus is None else slugify(Path(corpus).stem),
        "run": run.name,
        "checkpoint_step": int(ckpt.name.removeprefix("step_")),
        "source": source,
        "split": split,
        "tokens": n,
        "available_tokens": available,
        "truncated": n < available,
        "loss": loss,
        "perplexity": math.exp(loss) if loss < 700 else math.inf,
        "bits_per_token": loss / math.log(2),
        "unknown_fraction": unknown_fraction,
        "seq_len": cfg.model.seq_len,
        "device": str(dev),
        "seconds": round(time.perf_counter() - t0, 3),
        "notes": notes,
        "timestamp": time.time(),
    }
    if save:
        result["saved_to"] = str(save_evaluation(run, result))
    return result


@torch.inference_mode()
def sum_loss(
    model: LanguageModel,
    ids: np.ndarray,
    device: torch.device,
    precision: str = "fp32",
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> float:
    """Summed cross-entropy of predicting ids[1:] from windows of seq_len starting at 0, T, 2T, ...

    Each window starts with an empty context, exactly like the windows training sees.
    """
    T = model.config.seq_len
    V = model.config.vocab_size
    n = len(ids) - 1
    full = n // T
    B = batch_size or max(1, min(_MAX_BATCH, _LOGITS_BUDGET // (T * V)))
    total = torch.zeros((), dtype=torch.float64, device=device)
    for first in range(0, full, B):
        starts = np.arange(first, min(first + B, full), dtype=np.int64) * T
        x, y = windows_to_batch(ids, starts, T, device)
        total += _window_loss(model, x, y, device, precision)
        if progress is not None:
            progress(min(1.0, (first + len(starts)) * T / n), f"evaluated {(first + len(starts)) * T:,} tokens")
    rest = n - full * T
    if rest:
        tail = torch.from_numpy(np.asarray(ids[full * T:], dtype=np.int64)).to(device)
        total += _window_loss(model, tail[None, :-1], tail[None, 1:], device, precision)
    return float(total)


def _window_loss(model: LanguageModel, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                 precision: str) -> torch.Tensor:
    with autocast(device, precision):
        logits, _ = model(x)
    # float32 cross-entropy even under autocast: bf16 logits lose digits that a summed loss keeps.
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").double()


def _own_validation(
    run: Run, cfg: RunConfig, tok: CharTokenizer | BPETokenizer, limit: int, notes: list[str],
    progress: Progress | None,
) -> tuple[np.ndarray, int, str]:

    corpus = Path(cfg.data.corpus)
    if not corpus.is_file():
        raise CorpusError(
            f"the corpus of run {run.name} ({corpus}) is not there any more; "
            "evaluate on a file instead (--corpus)"
        )
    store = prepare_cached(cfg.data, run.token_cache, progress)
    source = f"validation split of {corpus.name}"
    if _same_tokenizer(store.tokenizer, tok):
        return _head(store.val, limit), max(0, len(store.val) - 1), source
    # The store is keyed by the file's size and mtime: the corpus was edited after training, so a
    # fresh tokenizer was learned. The model only understands its own ids: re-tokenize with them.
    notes.append(f"{corpus.name} changed since the run was trained; its validation split was "
                 "re-tokenized with the run's tokenizer")
    with tempfile.TemporaryDirectory(prefix="genai-eval-", ignore_cleanup_errors=True) as tmp:
        fresh = prepare(cfg.data, Path(tmp) / "store", tokenizer=tok, progress=progress)
        return _head(fresh.val, limit), max(0, len(fresh.val) - 1), source


def _whole_corpus(
    cfg: RunConfig, tok: CharTokenizer | BPETokenizer, path: Path, text_column: str | None, limit: int,
    progress: Progress | None,
) -> tuple[np.ndarray, int, str]:
    column = text_column or _run_column_if_present(path, cfg.data.text_column)
    # The run's cleaning options, so the text reaches the model in the form it was trained on.
    data = DataConfig(corpus=path, text_column=column, tokenizer=cfg.data.tokenizer, vocab_size=cfg.data.vocab_size,
                      lowercase=cfg.data.lowercase, normalize_whitespace=cfg.data.normalize_whitespace)
    with tempfile.TemporaryDirectory(prefix="genai-eval-", ignore_cleanup_errors=True) as tmp:
        store: TokenStore = prepare(data, Path(tmp) / "store", tokenizer=tok, progress=progress)
        # Both splits, in order: a separate file was never trained on, so all of it is held out.
        ids = _head(store.train, limit)
        if len(ids) < limit + 1:
            ids = np.concatenate([ids, _head(store.val, limit - len(ids))])
        available = max(0, len(store.train) + len(store.val) - 1)
    return ids, available, path.name


def _run_column_if_present(path: Path, run_column: str | None) -> str | None:
    """The run's own text column when the new file has it; else the default (`text`)."""
    if run_column is None:
        return None
    try:
        open_corpus(path, run_column)
    except CorpusError:
        return None
    return run_column


def _head(arr: np.ndarray, limit: int) -> np.ndarray:
    """The first limit + 1 ids (limit predictions) as an in-memory int64 copy, free of the memmap."""
    return np.asarray(arr[: limit + 1], dtype=np.int64).copy()


def _same_tokenizer(a: CharTokenizer | BPETokenizer, b: CharTokenizer | BPETokenizer) -> bool:
    if a.kind != b.kind or a.vocab_size != b.vocab_size:
        return False
    ids = range(a.vocab_size)
    return a.token_strings(ids) == b.token_strings(ids)


# --------------------------------------------------------------------------- question answering
DEFAULT_WORST = 10


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
    path: Path
    rows: list[QARow]
    has_answers: bool


def read_qa_file(path: Path | str) -> QAFile:
    """The rows of a question,context[,answer] table (`qa.read_qa_table`: .csv, .tsv, .jsonl, .parquet),
    checked: a bad file, or a row with an empty cell, raises a GenAIError saying which."""
    from genai_core.generate.qa import read_qa_table

    path = Path(path)
    df = read_qa_table(path, need_answer=False)
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


@lru_cache(maxsize=1)
def _question_patterns() -> list[tuple[str, re.Pattern[str]]]:
    from genai_core.clinical.synthetic import QUESTIONS, question_pattern

    return [(kind, question_pattern(t)) for kind, templates in QUESTIONS.items() for t in templates]


def question_kind(question: str) -> str | None:
    """The kind of a question of a QA file without a `kind` column (age, dose, imaging, ...), or None when unsure.

    A question is given a kind only when it is exactly one phrasing of the generator (`synthetic.QUESTIONS`,
    the held-out phrasings included) and matches phrasings of that kind alone; anything else is None. Files
    with a `kind` column (the bundled splits, and any labelled set) are grouped by that column instead.
    """
    kinds = {kind for kind, pattern in _question_patterns() if pattern.match(question.strip())}
    return kinds.pop() if len(kinds) == 1 else None


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
) -> dict[str, Any]:
    """Answer every row of `qa_csv` with the run's latest checkpoint and score the answers.

    Decoding is `qa.answer`'s (greedy, up to the end marker) unless `sample` says otherwise. `limit`
    keeps the first N rows. Scores are percentages (0-100): `metrics` holds the means of exact_match,
    f1 and rougeL (None when the file has no answer column), `by_kind` the same per question kind when
    the questions are the bundled generator's, `worst` the `worst` answers of lowest F1 (exact matches
    left out), `predictions` every row. With `save`, the result is written to the run folder as
    eval/qa-<name>.json (`name` defaults to the file name without extension; key `saved_to`) with every
    row in eval/qa-<name>.predictions.csv; `predictions_path` writes that CSV elsewhere too.
    """
    t0 = time.perf_counter()
    run = run if isinstance(run, Run) else Run(run)
    if not run.exists():
        raise CheckpointError(f"{run.path} is not a run folder (no config.json)")
    if limit is not None and limit < 1:
        raise GenAIError(f"limit must be at least 1 (got {limit})")
    if worst < 0:
        raise GenAIError(f"worst must be 0 or more (got {worst})")
    if predictions_path is not None and Path(predictions_path).is_dir():
        raise GenAIError(f"{predictions_path} is a folder: give a file name for the predictions, "
                         f"e.g. {Path(predictions_path) / 'predictions.csv'}")
    data = read_qa_file(qa_csv)  # a bad file is reported before the model is loaded
    rows = data.rows[:limit] if limit is not None else data.rows
    ckpt = run.latest_checkpoint()
    if ckpt is None:
        raise CheckpointError(f"run {run.name} has no checkpoint yet")
    from genai_core.generate.qa import answer  # the QA prompt format; imported here so perplexity alone never needs it
    from genai_core.generate.sampling import Sampler

    sampler = Sampler.from_run(run, device=device)
    cfg = run.config()
    lowercase = cfg.data.lowercase  # prompts are cleaned the way the run's training text was
    predictions: list[dict[str, Any]] = []
    scores: list[AnswerScore] = []
    kinds: list[str | None] = []
    for i, row in enumerate(rows):
        got = answer(sampler, row.question, row.context, sample, lowercase=lowercase)
        kind = row.kind or question_kind(row.question)
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
        predictions.append(pred)
        kinds.append(kind)
        if progress is not None:
            progress((i + 1) / len(rows), f"answered {i + 1:,} of {len(rows):,} questions")

    n = len(rows)
    notes: list[str] = []
    if n < len(data.rows):
        notes.append(f"answered the first {n:,} of {len(data.rows):,} questions (raise the limit to see more)")
    cut = sum(p["context_selected"] for p in predictions)
    if cut:
        notes.append(f"{cut:,} context(s) did not fit the {sampler.model.config.seq_len}-token window: the model "
                     "saw the sentences selected for the question, not the whole context")
    if not data.has_answers:
        notes.append(f"{data.path.name} has no answer column: answers were predicted, not scored")
    result: dict[str, Any] = {
        "kind": "qa",
        "name": slugify(name or data.path.stem),
        "run": run.name,
        "task": cfg.task,
        "checkpoint_step": int(ckpt.name.removeprefix("step_")),
        "source": str(data.path.resolve()),
        "file": data.path.name,
        "rows": n,
        "available_rows": len(data.rows),
        "truncated": n < len(data.rows),
        "scored": data.has_answers,
        "scale": "percent (0-100)",
        "metrics": mean_percent(scores) if data.has_answers else None,
        "by_kind": _by_kind(scores, kinds) if data.has_answers else {},
        "abstention": _abstention(predictions) if data.has_answers else None,
        "in_context": 100 * sum(p["in_context"] for p in predictions) / n,
        "worst": _worst(predictions, worst) if data.has_answers else [],
        "predictions": predictions,
        "device": str(sampler.device),
        "seconds": round(time.perf_counter() - t0, 3),
        "notes": notes,
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


def _predictions_file(run: Run, result: dict[str, Any]) -> Path:
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
    from genai_core.clinical.synthetic import NOT_STATED

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
    return round(v, 2) if isinstance(v, float) else v


def write_predictions_csv(predictions: list[dict[str, Any]], path: Path | str) -> Path:
    path = Path(path)
    atomic_write_text(path, predictions_csv(predictions))
    return path


def save_evaluation(run: Run, result: dict[str, Any]) -> Path:
    """Write a result as eval/<kind>-<name>.json in the run folder (atomically; it replaces the previous one)."""
    path = run.eval_path / f"{result['kind']}-{result['name']}.json"
    atomic_write_json(path, _finite(result))
    return path


def _finite(obj: Any) -> Any:
    """Strict JSON: infinite or NaN floats (a diverged model's perplexity) become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
