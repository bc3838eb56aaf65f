"""Held-out evaluation of a trained run: the exact mean loss over a whole split.

Training reports validation loss on a fixed sample of random windows, which is cheap and good for
curves but noisy. `evaluate_run` instead walks the text once in consecutive, non-overlapping
windows of `seq_len` (the last, shorter window included), so every token after the first is
predicted exactly once and the result does not depend on a seed or on the batch size.

Sources:
- the run's own validation split (default): the token store is reopened from the run's data config;
- any other corpus file: tokenized with the run's own tokenizer and cleaning options, and evaluated
  whole (train and validation parts together), since none of a separate file was trained on.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .config import DataConfig, RunConfig
from .corpus import open_corpus
from .devices import autocast, resolve_device, resolve_precision
from .errors import CheckpointError, CorpusError, GenAIError
from .model import LanguageModel, build_model, load_state
from .runs import Run
from .tokenization import BPETokenizer, CharTokenizer
from .tokenstore import TokenStore, prepare, prepare_cached, windows_to_batch

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
) -> dict[str, Any]:
    """Mean next-token loss of the run's latest checkpoint.

    `corpus=None` evaluates the run's validation split; a path evaluates all of that file. At most
    `max_tokens` predicted tokens are counted (default `DEFAULT_MAX_TOKENS`), from the start.
    Returns a JSON-able dict: loss, perplexity, tokens, unknown_fraction (char tokenizers), ...
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
    return {
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
    }


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
    from .training import token_cache_dir

    corpus = Path(cfg.data.corpus)
    if not corpus.is_file():
        raise CorpusError(
            f"the corpus of run {run.name} ({corpus}) is not there any more; "
            "evaluate on a file instead (--corpus)"
        )
    store = prepare_cached(cfg.data, token_cache_dir(run.path), progress)
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
