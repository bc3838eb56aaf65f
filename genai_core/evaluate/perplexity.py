"""Held-out loss and perplexity of a trained run: the exact mean loss over a whole split.

Training reports validation loss on a fixed sample of random windows, which is cheap and good for
curves but noisy. `evaluate_run` instead walks the text once in consecutive, non-overlapping
windows of `seq_len` (the last, shorter window included), so every token after the first is
predicted exactly once and the result does not depend on a seed or on the batch size.

Sources:
- the run's own validation split (default): the token store is reopened from the run's data config;
- any other corpus file: tokenized with the run's own tokenizer and cleaning options, and evaluated
  whole (train and validation parts together), since none of a separate file was trained on.

The result is saved in the run folder as `eval/perplexity-<data>.json` (`results.save_evaluation`).
Question answering is scored by `evaluate.answers.evaluate_qa`.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from genai_core.config import DataConfig, RunConfig
from genai_core.data.corpus import check_corpus
from genai_core.data.tokenization import BPETokenizer, CharTokenizer
from genai_core.data.tokenstore import TokenStore, prepare, prepare_cached, windows_to_batch
from genai_core.devices import autocast, resolve_device, resolve_precision
from genai_core.errors import CheckpointError, CorpusError, GenAIError
from genai_core.evaluate.results import Progress, checkpoint_step, open_run, save_evaluation
from genai_core.model import LanguageModel, load_state
from genai_core.models import build_model
from genai_core.runs.folder import Run, slugify

DEFAULT_MAX_TOKENS = 2_000_000
_LOGITS_BUDGET = 64 << 20  # logits elements per batch (x4 bytes): keeps big vocabularies in memory
_MAX_BATCH = 64


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
    run = open_run(run)
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
    model, step, dev, precision = _load_model(run, cfg, tok, device)

    notes: list[str] = []
    if corpus is None:
        ids, available, source = _own_validation(run, cfg, tok, limit, notes, progress)
    else:
        ids, available, source = _whole_corpus(cfg, tok, Path(corpus), text_column, limit, progress)
    if available < 1:
        raise GenAIError(f"{source} holds {available + 1} token(s); at least 2 are needed to measure a loss")
    n = len(ids) - 1
    loss = sum_loss(model, ids, dev, precision, batch_size, progress) / n
    unknown_fraction = _unknown_fraction(tok, ids, notes)
    if n < available:
        notes.append(f"evaluated the first {n:,} of {available:,} tokens (raise max_tokens to see more)")
    result = {
        "kind": "perplexity",
        "name": "val" if corpus is None else slugify(Path(corpus).stem),
        "run": run.name,
        "checkpoint_step": step,
        "source": source,
        "split": "val" if corpus is None else "all",
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


def _load_model(
    run: Run, cfg: RunConfig, tok: CharTokenizer | BPETokenizer, device: str
) -> tuple[LanguageModel, int, torch.device, str]:
    """The run's latest checkpoint in eval mode on `device`, with its step, the device and the precision to use."""
    if tok.vocab_size != cfg.model.vocab_size:
        raise CheckpointError(
            f"run {run.name}: tokenizer has {tok.vocab_size} tokens, model expects {cfg.model.vocab_size}"
        )
    step = checkpoint_step(run)
    model = build_model(cfg.model)
    load_state(model, run.load_weights())
    dev = resolve_device(device)
    precision = resolve_precision("auto", dev, cfg.model.d_model)
    return model.to(dev).eval(), step, dev, precision


def _unknown_fraction(tok: CharTokenizer | BPETokenizer, ids: np.ndarray, notes: list[str]) -> float | None:
    """The share of predicted tokens that are the unknown token (None for tokenizers without one), noted when
    there are some."""
    unk = getattr(tok, "unk_id", None)
    n = len(ids) - 1
    unknown_fraction = None if unk is None else float(np.count_nonzero(ids[1:] == unk)) / n
    if unknown_fraction:
        notes.append(f"{unknown_fraction:.2%} of the tokens are characters the run never saw in training "
                     "(encoded as the unknown token); they count in the loss")
    return unknown_fraction


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
    """Summed cross-entropy of one batch of windows, as a float64 scalar."""
    with autocast(device, precision):
        logits, _ = model(x)
    # float32 cross-entropy even under autocast: bf16 logits lose digits that a summed loss keeps.
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").double()


def _own_validation(
    run: Run, cfg: RunConfig, tok: CharTokenizer | BPETokenizer, limit: int, notes: list[str],
    progress: Progress | None,
) -> tuple[np.ndarray, int, str]:
    """The ids of the run's own validation split (re-tokenized with the run's tokenizer when the corpus changed
    since training), how many predictions it holds, and a name for it."""
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
    """The ids of all of `path` (train and validation parts, in order), tokenized the way the run's own text was,
    how many predictions it holds, and its name."""
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
        check_corpus(path, run_column)
    except CorpusError:
        return None
    return run_column


def _head(arr: np.ndarray, limit: int) -> np.ndarray:
    """The first limit + 1 ids (limit predictions) as an in-memory int64 copy, free of the memmap."""
    return np.asarray(arr[: limit + 1], dtype=np.int64).copy()


def _same_tokenizer(a: CharTokenizer | BPETokenizer, b: CharTokenizer | BPETokenizer) -> bool:
    """Whether both tokenizers map every id to the same token."""
    if a.kind != b.kind or a.vocab_size != b.vocab_size:
        return False
    ids = range(a.vocab_size)
    return a.token_strings(ids) == b.token_strings(ids)
