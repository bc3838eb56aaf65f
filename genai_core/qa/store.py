"""QA fine-tuning data: QA tables read and checked, and `QAStore`, every example tokenized once.

`QAStore` is the fine-tuning counterpart of `tokenstore.TokenStore`: the examples in flat id files on disk
(memmaps) with offsets and prompt lengths, the span and kind targets beside them, served as padded batches of
`reader.QATargets`. Fine-tuning puts the loss on the answer and the end marker only (the question and context
are given, not predicted), so the model learns to answer and then stop, and generation ends by itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genai_core.config import DataConfig, QALayout
from genai_core.data.corpus import clean_text, reading_error
from genai_core.data.tokenization import load_tokenizer
from genai_core.data.tokenstore import Batch, Progress, token_dtype
from genai_core.errors import CheckpointError, CorpusError, GenAIError
from genai_core.files import atomic_write_json, read_json, staged_folder
from genai_core.model import IGNORE
from genai_core.qa.prompt import ANSWER_ROOM, QAPrompt, build_prompt, find_span, is_not_stated
from genai_core.qa.reader import QATargets, SpanTargets

QA_COLUMNS = ("question", "context", "answer")
QA_FILE_TYPES = ("csv", "tsv", "jsonl", "ndjson", "parquet")
"""The table formats `read_qa_table` reads (file extensions); the pages' uploaders offer these."""
_PAD_TO = 16  # batch lengths are rounded up to this, so a compiled model sees few distinct shapes


def span_target(prompt: QAPrompt, offsets: list[int] | None, answer: str) -> SpanTargets:
    """What the span head learns from one example (`reader.SpanTargets` of ints). An answer NOT_STATED points
    at the answer position itself; an answer that is not a whole-token span of the context the model was given
    gets IGNORE (no span loss), as does a cropped prompt."""
    query = len(prompt.ids) - 1
    ctx = prompt.context_tokens(offsets) if offsets is not None else None
    lo, hi = ctx if ctx is not None else (0, 0)
    if is_not_stated(answer):
        return SpanTargets(query, lo, hi, query, query)
    no_span = SpanTargets(query, lo, hi, IGNORE, IGNORE)
    if ctx is None or prompt.context_at is None:
        return no_span
    span = find_span(prompt.context, answer)
    if span is None:
        return no_span
    starts = offsets[:-1]
    a0, a1 = span[0] + prompt.context_at[0], span[1] + prompt.context_at[0]
    first = int(np.searchsorted(starts, a0, side="right")) - 1
    last = int(np.searchsorted(starts, a1 - 1, side="right")) - 1
    lead = prompt.text[offsets[first]:a0]
    if lead.strip() or offsets[last + 1] != a1 or not lo <= first <= last < hi:
        return no_span  # the answer starts or ends inside a token: no whole-token span to point at
    return SpanTargets(query, lo, hi, first, last)


def question_kinds(table: pd.DataFrame) -> list[str]:
    """The kinds a QA table's `kind` column names (sorted; empty without the column): the kind head's classes."""
    if "kind" not in table.columns:
        return []
    return sorted({k.strip() for k in table["kind"] if k.strip()})


# --------------------------------------------------------------------------- QA tables
def read_qa_table(path: Path | str, *, need_answer: bool = True, max_rows: int | None = None) -> pd.DataFrame:
    """A CSV/TSV/JSONL/Parquet file of QA records, validated, as strings (missing cells become "")."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"QA file not found: {path}")
    if path.stat().st_size == 0:
        raise CorpusError(f"{path.name} is empty")
    with open(path, "rb") as f:
        head = f.read(8192)
    suffix = path.suffix.lower()
    if suffix != ".parquet" and b"\x00" in head:
        raise CorpusError(f"{path.name} looks binary (it contains NUL bytes), not a QA table")
    try:
        if suffix in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                             nrows=max_rows, encoding="utf-8")
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True, dtype=False, nrows=max_rows)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raise CorpusError(f"{path.name}: unsupported QA file type {suffix or '(none)'!r}; use "
                              + ", ".join(f".{t}" for t in QA_FILE_TYPES))
    except Exception as e:
        raise reading_error(path, e, "a table") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    need = QA_COLUMNS if need_answer else QA_COLUMNS[:2]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise CorpusError(f"{path.name} lacks column(s) {', '.join(map(repr, missing))}; a QA file needs "
                          f"{', '.join(need)} (found: {', '.join(map(repr, df.columns))})")
    if max_rows is not None:
        df = df.head(max_rows)
    keep = [c for c in (*QA_COLUMNS, "kind") if c in df.columns]  # kind: optional, what a question asks
    df = df[keep].fillna("").astype(str)
    if df.empty:
        raise CorpusError(f"{path.name} holds no QA records")
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- fine-tuning store
PADDED_SHARE = 1.1
"""Batch width over the mean example length with length-bucketed batches (measured: 10% padding)."""


class QAStore:
    """Tokenized QA examples (prompt + answer + end marker) for fine-tuning, memory-mapped from disk."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not (self.path / "meta.json").is_file():
            raise CheckpointError(f"{self.path} is not a prepared QA store (no meta.json)")
        self.meta: dict[str, Any] = read_json(self.path / "meta.json")
        self.dtype = np.dtype(self.meta["dtype"])
        self.tokenizer = load_tokenizer(self.path / "tokenizer.json")
        self.splits = {name: self._load(name) for name in ("train", "val")}
        self.kinds: list[str] = list(self.meta.get("kinds", []))
        """The question kinds the kind targets index (`question_kinds` of the training file)."""
        self.qa_model = True
        """Serve `reader.QATargets`, what a `reader.QAGPT` trains on; off (a recurrent model), the next-token ids
        with IGNORE outside the answers, which any language model's forward takes."""
        self.reader = False
        """Serve the span head's and kind head's targets too (the trainer sets this when the model has them)."""
        # One row per example: the `SpanTargets` fields in order (the file format), and the kind index.
        self.readers = {name: (np.load(self.path / f"{name}.reader.npy"), np.load(self.path / f"{name}.kind.npy"))
                        for name in ("train", "val")}

    def _load(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids_path = self.path / f"{name}.bin"
        n = ids_path.stat().st_size // self.dtype.itemsize
        ids = np.memmap(ids_path, dtype=self.dtype, mode="r", shape=(n,)) if n else np.zeros(0, self.dtype)
        return ids, np.load(self.path / f"{name}.offsets.npy"), np.load(self.path / f"{name}.prompt_len.npy")

    def examples(self, split: str) -> int:
        return len(self.splits[split][2])

    def example(self, split: str, i: int) -> tuple[list[int], int]:
        """Token ids of example i and the length of its prompt."""
        ids, offsets, plen = self.splits[split]
        return np.asarray(ids[offsets[i]:offsets[i + 1]]).tolist(), int(plen[i])

    @property
    def train_tokens(self) -> int:
        return int(self.meta["stats"]["train_tokens"])

    @property
    def mean_example_tokens(self) -> float:
        return float(self.meta["stats"]["mean_example_tokens"])

    def steps_per_epoch(self, batch_size: int, seq_len: int, grad_accum: int = 1, world: int = 1) -> int:
        return max(1, math.ceil(self.examples("train") / (batch_size * grad_accum * world)))

    def mean_window_tokens(self) -> float:
        """Average width of a training batch: the mean example, plus the ~10% padding of length-bucketed
        batches (see `batch`). What the time of a step scales with, where a pretraining window is seq_len."""
        return min(float(self.meta["seq_len"]), PADDED_SHARE * self.mean_example_tokens)

    def tokens_per_step(self, batch_size: int, seq_len: int, grad_accum: int = 1, world: int = 1) -> int:
        """Average tokens an optimizer step reads (examples vary in length)."""
        return max(1, round(batch_size * grad_accum * world * self.mean_example_tokens))

    def batch(self, split: str, batch_size: int, seq_len: int, rng: np.random.Generator,
              device: torch.device | None = None) -> Batch:
        """Random examples of similar length, right-padded to the longest; weights select the answer and
        end marker.

        Lengths vary about threefold, so a batch of arbitrary examples is 30% padding. Drawing `POOL`
        batches' worth of candidates, sorting them by length and keeping one of the `POOL` groups of
        neighbours at random brings that to 10%, and every example stays exactly as likely as before.
        """
        pool = rng.integers(0, self.examples(split), size=batch_size * self.POOL)
        _, offsets, _ = self.splits[split]
        pool = pool[np.argsort(offsets[pool + 1] - offsets[pool], kind="stable")]
        group = int(rng.integers(0, self.POOL))
        return self.batch_of(split, pool[group * batch_size:(group + 1) * batch_size], device)

    POOL = 8

    def batch_of(self, split: str, idx: np.ndarray, device: torch.device | None = None, *,
                 reader: bool | None = None) -> Batch:
        """Examples `idx` of `split`, right-padded to the longest: the targets are the answer's tokens and the end
        marker, IGNORE elsewhere; with `reader` (default: `self.reader`) the span and kind targets too."""
        ids, offsets, plen = self.splits[split]
        lengths = offsets[idx + 1] - offsets[idx]
        T = int(min(self.meta["seq_len"], -(-int(lengths.max() - 1) // _PAD_TO) * _PAD_TO))
        x = np.full((len(idx), T), self.tokenizer.eot_id, dtype=np.int64)
        y = np.full((len(idx), T), IGNORE, dtype=np.int64)
        for row, (i, n) in enumerate(zip(idx, lengths, strict=True)):
            ex = ids[offsets[i]:offsets[i] + n]
            x[row, : n - 1] = ex[:-1]
            y[row, plen[i] - 1: n - 1] = ex[plen[i]:]  # from the answer's first token to the end marker
        arrays = [x, y]
        with_reader = self.reader if reader is None else reader
        if with_reader:
            spans, kinds = self.readers[split]
            arrays += [spans[idx].astype(np.int64), kinds[idx].astype(np.int64)]
        out = [torch.from_numpy(a) for a in arrays]
        if device is not None and device.type == "cuda":
            out = [t.pin_memory().to(device, non_blocking=True) for t in out]
        elif device is not None and device.type != "cpu":
            out = [t.to(device) for t in out]
        if not self.qa_model:
            return Batch(out[0], out[1])
        span = SpanTargets(*out[2].unbind(-1)) if with_reader else None
        return Batch(out[0], QATargets(out[1], span, out[3] if with_reader else None))

    def eval_specs(self, n_batches: int, batch_size: int, seq_len: int, rng: np.random.Generator) -> list[np.ndarray]:
        """The validation examples used for every evaluation: the first n_batches x batch_size, in order."""
        n = min(self.examples("val"), n_batches * batch_size)
        return [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]

    def eval_batch(self, spec: np.ndarray, seq_len: int, device: torch.device | None = None) -> Batch:
        """A validation batch: its loss is the answer's alone, the figure a QA run reports as val loss."""
        return self.batch_of("val", spec, device, reader=False)

    def sample_prompt(self) -> tuple[list[int], str | None]:
        """The first validation example's prompt ids and its expected answer (for live samples)."""
        ids, plen = self.example("val", 0)
        return ids[:plen], self.tokenizer.decode(ids[plen:-1]).strip()


def qa_store_key(cfg: DataConfig, tokenizer_path: Path, seq_len: int, layout: QALayout) -> str:
    """Cache key: the QA files' identities, the tokenizer's bytes, the window, the layout and every data option."""
    def ident(p: Path | None) -> Any:
        if p is None:
            return None
        st = Path(p).resolve().stat()
        return [str(Path(p).resolve()), st.st_size, st.st_mtime_ns]

    key = json.dumps({"v": 2, "train": ident(cfg.corpus), "val": ident(cfg.val_corpus), "seq_len": seq_len,
                      "layout": layout,
                      "room": ANSWER_ROOM, "tok": hashlib.sha256(Path(tokenizer_path).read_bytes()).hexdigest(),
                      "cfg": json.loads(cfg.model_dump_json(include={"lowercase", "normalize_whitespace",
                                                                    "val_fraction", "seed", "max_records"}))},
                     sort_keys=True)
    return "qa-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def prepare_qa(cfg: DataConfig, tokenizer_path: Path, seq_len: int, layout: QALayout, cache_root: Path,
               progress: Progress | None = None) -> QAStore:
    """Tokenize the QA file(s) of `cfg` with the parent run's tokenizer in `layout`, once per (files, tokenizer,
    window, layout)."""
    report = progress or (lambda f, m: None)
    train_df = read_qa_table(cfg.corpus, max_rows=cfg.max_records)
    out = Path(cache_root) / qa_store_key(cfg, tokenizer_path, seq_len, layout)
    if (out / "meta.json").is_file():
        try:
            return QAStore(out)
        except (CheckpointError, OSError, KeyError, ValueError):
            shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_path)
    train_df, val_df = _split(cfg, train_df)
    dtype = token_dtype(tokenizer.vocab_size)
    kinds = question_kinds(train_df)
    kind_index = {k: i for i, k in enumerate(kinds)}
    stats: dict[str, Any] = {"seq_len": seq_len, "layout": layout}
    with staged_folder(out) as tmp:
        total = len(train_df) + len(val_df)
        done = 0
        for name, df in (("train", train_df), ("val", val_df)):
            offsets, plens, chunks, readers, kind_ids = [0], [], [], [], []
            skipped = {"answer_not_in_window": 0, "empty": 0}
            selected = 0
            kind_col = df["kind"] if "kind" in df.columns else [""] * len(df)
            for q, c, a, k in zip(df["question"], df["context"], df["answer"], kind_col, strict=True):
                done += 1
                if done % 500 == 0:
                    report(done / total, f"tokenized {done:,} of {total:,} QA records")
                a = clean_text(a, lowercase=cfg.lowercase)
                if not q.strip() or not a:
                    skipped["empty"] += 1
                    continue
                answer_ids = [*tokenizer.encode(" " + a).ids, tokenizer.eot_id]
                room = max(ANSWER_ROOM, len(answer_ids))
                p = build_prompt(tokenizer, q, c, seq_len, room, layout=layout, lowercase=cfg.lowercase)
                if len(p.ids) + len(answer_ids) > seq_len or (p.selected and find_span(p.context, a) is None
                                                               and find_span(clean_text(c), a) is not None):
                    # The answer would be cut off, or selection dropped the sentence that holds it: such an
                    # example would teach the model to invent answers, so it is left out (and counted).
                    skipped["answer_not_in_window"] += 1
                    continue
                selected += p.selected
                readers.append(span_target(p, p.token_offsets(tokenizer), a))
                kind_ids.append(kind_index.get(k.strip(), IGNORE))
                chunks.append(np.asarray(p.ids + answer_ids, dtype=dtype))
                plens.append(len(p.ids))
                offsets.append(offsets[-1] + len(p.ids) + len(answer_ids))
            if not plens:
                raise CorpusError(f"no usable QA examples in the {name} split: every record was empty or its "
                                  f"answer did not fit a window of {seq_len} tokens")
            (np.concatenate(chunks) if chunks else np.zeros(0, dtype)).tofile(tmp / f"{name}.bin")
            np.save(tmp / f"{name}.offsets.npy", np.asarray(offsets, dtype=np.int64))
            np.save(tmp / f"{name}.prompt_len.npy", np.asarray(plens, dtype=np.int32))
            spans = np.asarray(readers, dtype=np.int32).reshape(-1, len(SpanTargets._fields))
            np.save(tmp / f"{name}.reader.npy", spans)
            np.save(tmp / f"{name}.kind.npy", np.asarray(kind_ids, dtype=np.int16))
            stats[name] = {"examples": len(plens), "tokens": offsets[-1], "skipped": skipped,
                           "context_selected": selected,
                           "answer_spans": int(sum(r.first != IGNORE for r in readers))}
        stats["train_tokens"] = stats["train"]["tokens"]
        stats["mean_example_tokens"] = stats["train"]["tokens"] / stats["train"]["examples"]
        stats["seconds"] = round(time.perf_counter() - t0, 3)
        shutil.copyfile(tokenizer_path, tmp / "tokenizer.json")
        atomic_write_json(tmp / "meta.json", {"format": "genai-qa-store/2", "dtype": dtype.name, "seq_len": seq_len,
                                              "kinds": kinds, "data": json.loads(cfg.model_dump_json()),
                                              "stats": stats})
    report(1.0, "done")
    return QAStore(out)


def _split(cfg: DataConfig, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) records: the validation file's when there is one, else `val_fraction` of `table`
    held out at random (at least one record on each side)."""
    if cfg.val_corpus is not None:
        return table, read_qa_table(cfg.val_corpus)
    if len(table) < 2:
        raise CorpusError(f"{Path(cfg.corpus).name} holds {len(table)} QA record(s); at least 2 are "
                          "needed to hold some out for validation (or give a validation file)")
    is_val = np.random.default_rng(cfg.seed).random(len(table)) < cfg.val_fraction
    if not is_val.any():
        is_val[-1] = True
    if is_val.all():
        is_val[0] = False
    return table[~is_val].reset_index(drop=True), table[is_val].reset_index(drop=True)


def check_parent(parent: Path | str) -> None:
    """A fine-tune's parent must be a run folder with weights."""
    from genai_core.runs.folder import Run

    run = Run(parent)
    if not run.exists():
        raise GenAIError(f"parent run {parent} not found (a qa fine-tune starts from a pretrained run folder)")
    if run.latest_checkpoint() is None:
        raise GenAIError(f"parent run {run.name} has no checkpoint yet: train it first")
