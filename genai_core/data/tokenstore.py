"""Token store: a corpus tokenized once into flat id files on disk, read back as numpy memmaps.

`prepare` streams the corpus twice (pass 1 builds the tokenizer and counts records; pass 2 encodes
and routes each record to train.bin or val.bin), so memory stays bounded by one chunk whatever the
corpus size. Batches are random windows, as in nanoGPT's `get_batch`: one vectorised gather from
the memmap, never a materialised list of windows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genai_core.config import DataConfig, steps_per_epoch
from genai_core.data.corpus import PIECE_CHARS, Corpus, check_corpus, check_text, clean_text, open_corpus, pieces
from genai_core.data.tokenization import BPETokenizer, CharTokenizer, char_tokenizer_from_counts, load_tokenizer
from genai_core.errors import CheckpointError, CorpusError, GenAIError
from genai_core.files import atomic_write_json, check_runs_cap, read_json, staged_folder

Progress = Callable[[float, str], None]
MIN_RECORDS_FOR_RECORD_SPLIT = 20
BPE_TRAIN_MAX_CHARS = 64_000_000  # BPE merges settle long before this; keeps training time bounded
_MAX_CP = 0x110000


def token_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype that holds every id."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


@dataclass
class StoreStats:
    records: int
    characters: int
    train_tokens: int
    val_tokens: int
    vocab_size: int
    split: str
    seconds: float

    @property
    def tokens(self) -> int:
        return self.train_tokens + self.val_tokens


@dataclass
class Batch:
    """Inputs (batch, T) and what the model's forward takes as targets: the next-token ids (batch, T) of a
    pretraining window, or a QA fine-tune's `qa.reader.QATargets` (`qa.store.QAStore`)."""

    x: torch.Tensor
    targets: Any


def seq_len_problem(seq_len: int, max_seq_len: int, knob: str = "seq_len") -> str | None:
    """Why a window of `seq_len` tokens cannot be trained on a store whose splits serve `max_seq_len`, or None."""
    if seq_len <= max_seq_len:
        return None
    if max_seq_len < 1:  # no window length would do: say so rather than suggest "0 or less"
        return (f"this corpus is too small to train on: the smaller split holds only {max_seq_len + 1:,} "
                "token(s), and a training window needs at least 2; use a larger corpus (or, for records, "
                "more of them)")
    return (f"{knob} {seq_len} is too long for this corpus: the smaller split holds only {max_seq_len + 1:,} "
            f"tokens; use {knob} {max_seq_len:,} or less, or a larger corpus")


class TokenStore:
    """A prepared corpus: `train` and `val` id arrays (memmaps), the tokenizer and stats.

    With `qa.QAStore` it shares what the trainer uses: `train_tokens`, `steps_per_epoch`,
    `tokens_per_step`, `batch`, `eval_specs`/`eval_batch` and `sample_prompt`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise CheckpointError(f"{self.path} is not a prepared token store (no meta.json)")
        self.meta: dict[str, Any] = read_json(meta_path)
        self.dtype = np.dtype(self.meta["dtype"])
        self.tokenizer = load_tokenizer(self.path / "tokenizer.json")
        self.train = self._map("train.bin")
        self.val = self._map("val.bin")

    def _map(self, name: str) -> np.ndarray:
        p = self.path / name
        n = p.stat().st_size // self.dtype.itemsize
        if n == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(p, dtype=self.dtype, mode="r", shape=(n,))

    @property
    def stats(self) -> StoreStats:
        return StoreStats(**self.meta["stats"])

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val"):
            raise ValueError(f"unknown split {name!r}")
        return self.train if name == "train" else self.val

    def max_seq_len(self) -> int:
        """Longest window both splits can serve (a window needs seq_len + 1 tokens)."""
        return max(0, min(len(self.train), len(self.val)) - 1)

    def check_seq_len(self, seq_len: int, knob: str = "seq_len") -> None:
        """Raise the one message that says a window is too long for this store (`knob`: the CLI's flag name)."""
        if (problem := seq_len_problem(seq_len, self.max_seq_len(), knob)) is not None:
            raise GenAIError(problem)

    def get_batch(
        self, split: str, batch_size: int, seq_len: int, rng: np.random.Generator, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows `x` and their next-token targets `y`, each (batch_size, seq_len) int64."""
        data = self.split(split)
        starts = rng.integers(0, len(data) - seq_len, size=batch_size)
        return windows_to_batch(data, starts, seq_len, device)

    # -- what the trainer uses (shared with qa.QAStore)
    @property
    def train_tokens(self) -> int:
        return len(self.train)

    def steps_per_epoch(self, batch_size: int, seq_len: int, grad_accum: int = 1, world: int = 1) -> int:
        return steps_per_epoch(len(self.train), batch_size, seq_len, grad_accum, world)

    def tokens_per_step(self, batch_size: int, seq_len: int, grad_accum: int = 1, world: int = 1) -> int:
        return batch_size * seq_len * grad_accum * world

    def batch(self, split: str, batch_size: int, seq_len: int, rng: np.random.Generator,
              device: torch.device | None = None) -> Batch:
        return Batch(*self.get_batch(split, batch_size, seq_len, rng, device))

    def eval_specs(self, n_batches: int, batch_size: int, seq_len: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Window starts of the validation batches used for every evaluation (fixed, so curves compare)."""
        return list(rng.integers(0, len(self.val) - seq_len, size=(n_batches, batch_size)))

    def eval_batch(self, spec: np.ndarray, seq_len: int, device: torch.device | None = None) -> Batch:
        return Batch(*windows_to_batch(self.val, spec, seq_len, device))

    def sample_prompt(self) -> tuple[list[int], str | None]:
        """Where live samples start: a new record, or the validation text's first tokens (no records)."""
        if self.meta["stats"]["split"] == "record":
            return [], None
        return np.asarray(self.val[:16]).tolist(), None


def windows_to_batch(
    data: np.ndarray, starts: np.ndarray, seq_len: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    idx = starts[:, None] + np.arange(seq_len + 1)
    chunk = torch.from_numpy(data[idx].astype(np.int64))
    if device is not None and device.type == "cuda":
        chunk = chunk.pin_memory().to(device, non_blocking=True)
    elif device is not None and device.type != "cpu":
        chunk = chunk.to(device)
    return chunk[:, :-1], chunk[:, 1:]


# --------------------------------------------------------------------------- preparation
def _clean_chunks(corpus: Corpus, cfg: DataConfig) -> Iterator[list[list[str]]]:
    """The corpus as chunks of records, each record its cleaned `pieces` (a .txt block is one record without
    an end). Empty pieces are dropped, so an empty record is an empty list. Cleaning each piece gives what
    cleaning the whole record would (pieces are cut where a whitespace run starts); a record is stripped at
    its two ends."""
    for chunk in corpus.chunks(cfg.max_records):
        records = []
        for i, text in enumerate(chunk):
            chunk[i] = ""  # the raw text goes once cleaned: a record of hundreds of MB is not held twice
            parts = [clean_text(p, lowercase=cfg.lowercase, normalize_whitespace=cfg.normalize_whitespace,
                                strip=False) for p in pieces(text)]
            del text
            if corpus.has_records and cfg.normalize_whitespace:
                parts[0], parts[-1] = parts[0].lstrip(), parts[-1].rstrip()
            records.append([p for p in parts if p])
        yield records


def _batches(texts: Iterable[str], limit: int = PIECE_CHARS) -> Iterator[list[str]]:
    """`texts` grouped into lists of about `limit` characters: many short records go to the tokenizer
    together (fast), a long record's pieces one at a time (bounded memory)."""
    batch: list[str] = []
    size = 0
    for t in texts:
        if batch and size + len(t) > limit:
            yield batch
            batch, size = [], 0
        batch.append(t)
        size += len(t)
    if batch:
        yield batch


def _write_ids(tokenizer: CharTokenizer | BPETokenizer, records: list[list[str]], f: Any, dtype: np.dtype,
               *, eot: bool) -> int:
    """Encode `records` (lists of pieces) into the open file `f`, each followed by end-of-text when `eot`;
    returns the tokens written. Tokenized in `_batches`, so a record of any length takes bounded memory."""
    flat = [(p, eot and i == len(r) - 1) for r in records for i, p in enumerate(r)]
    written = 0
    end = np.array([tokenizer.eot_id], dtype=np.int64)
    at = 0
    for batch in _batches(p for p, _ in flat):
        ids = tokenizer.encode_batch(batch)
        parts = [x for k, i in enumerate(ids) for x in ((i, end) if flat[at + k][1] else (i,))]
        at += len(batch)
        if parts:
            arr = np.concatenate(parts).astype(dtype)
            arr.tofile(f)
            written += len(arr)
    return written


def prepare(
    cfg: DataConfig,
    out_dir: Path | str,
    *,
    tokenizer: CharTokenizer | BPETokenizer | None = None,
    progress: Progress | None = None,
) -> TokenStore:
    """Tokenize `cfg.corpus` into `out_dir` (written to a temp folder, then renamed into place)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "meta.json").is_file():
        raise CorpusError(f"{out_dir} exists and is not a token store; refusing to overwrite it")
    corpus = open_corpus(cfg.corpus, cfg.text_column)
    report = progress or (lambda f, m: None)
    n_records, n_chars, tokenizer = _count_and_learn(corpus, cfg, tokenizer, report)
    dtype = token_dtype(tokenizer.vocab_size)
    by_record = corpus.has_records and n_records >= MIN_RECORDS_FOR_RECORD_SPLIT

    with staged_folder(out_dir) as tmp:
        n_train, n_val = _encode_splits(corpus, cfg, tokenizer, dtype, tmp, by_record=by_record, n_chars=n_chars,
                                        report=report)
        if by_record and (n_val == 0 or n_train == 0):
            _resplit_by_position(tmp, dtype, cfg.val_fraction)
            n_train = (tmp / "train.bin").stat().st_size // dtype.itemsize
            n_val = (tmp / "val.bin").stat().st_size // dtype.itemsize
            by_record = False
        tokenizer.save(tmp / "tokenizer.json")
        stats = StoreStats(
            records=n_records if corpus.has_records else 1,
            characters=n_chars,
            train_tokens=n_train,
            val_tokens=n_val,
            vocab_size=tokenizer.vocab_size,
            split="record" if by_record else "position",
            seconds=round(time.perf_counter() - t0, 3),
        )
        atomic_write_json(tmp / "meta.json", {
            "format": "genai-token-store/1",
            "dtype": dtype.name,
            "tokenizer": tokenizer.kind,
            "data": json.loads(cfg.model_dump_json()),
            "stats": stats.__dict__,
            "unknown_id": getattr(tokenizer, "unk_id", None),
        })
    report(1.0, "done")
    return TokenStore(out_dir)


def _count_and_learn(
    corpus: Corpus, cfg: DataConfig, tokenizer: CharTokenizer | BPETokenizer | None, report: Progress
) -> tuple[int, int, CharTokenizer | BPETokenizer]:
    """Pass 1 (progress 0-40%): count records and characters and learn the tokenizer, unless one is given.

    Returns (records, characters, tokenizer). The char tokenizer needs only code point counts; BPE
    trains on the first BPE_TRAIN_MAX_CHARS characters, so memory stays bounded either way.
    """
    n_records = 0
    n_chars = 0
    counts = np.zeros(_MAX_CP, dtype=np.int64) if tokenizer is None and cfg.tokenizer == "char" else None
    bpe_texts: list[str] = []
    bpe_chars = 0
    report(0.0, "reading corpus")
    for i, chunk in enumerate(_clean_chunks(corpus, cfg)):
        if i == 0:
            check_text([r[0] if r else "" for r in chunk], corpus)
        if corpus.has_records:
            chunk = [r for r in chunk if r]
            n_records += len(chunk)
        texts = [p for r in chunk for p in r]
        n_chars += sum(len(t) for t in texts)
        if counts is not None:
            for batch in _batches(texts):
                joined = "".join(batch)
                counts += np.bincount(np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32),
                                      minlength=_MAX_CP)
        elif tokenizer is None and bpe_chars < BPE_TRAIN_MAX_CHARS:
            bpe_texts.extend(texts)
            bpe_chars += sum(len(t) for t in texts)
        report(0.4 * min(1.0, n_chars / max(corpus.size_bytes, 1)), f"read {n_records:,} records")
    if n_chars == 0:
        raise CorpusError(
            f"{corpus.path.name} holds no text"
            + (f" in column {corpus.text_column!r}" if corpus.text_column else "")
        )
    if tokenizer is None:
        report(0.4, "building tokenizer")
        if counts is not None:
            tokenizer = char_tokenizer_from_counts(counts)
        else:
            tokenizer = BPETokenizer.train(bpe_texts, cfg.vocab_size)
    return n_records, n_chars, tokenizer


def _encode_splits(
    corpus: Corpus,
    cfg: DataConfig,
    tokenizer: CharTokenizer | BPETokenizer,
    dtype: np.dtype,
    folder: Path,
    *,
    by_record: bool,
    n_chars: int,
    report: Progress,
) -> tuple[int, int]:
    """Pass 2 (progress 45-100%): encode the corpus into `folder`'s train.bin and val.bin; (train, val) tokens.

    `by_record`: each record goes to val with probability val_fraction (seeded per chunk); otherwise
    the split is by position, the last val_fraction of the characters being val. Records end with
    the end-of-text token; a text without records is cut at the split point.
    """
    val_char_start = int(n_chars * (1.0 - cfg.val_fraction))
    n_train = n_val = 0
    done_records = 0
    chars_seen = 0
    with open(folder / "train.bin", "wb") as ftrain, open(folder / "val.bin", "wb") as fval:
        for ci, chunk in enumerate(_clean_chunks(corpus, cfg)):
            if corpus.has_records:
                chunk = [r for r in chunk if r]
                if not chunk:
                    continue
            if by_record:
                is_val = np.random.default_rng([cfg.seed, ci]).random(len(chunk)) < cfg.val_fraction
                n_train += _write_ids(tokenizer, [r for r, v in zip(chunk, is_val, strict=True) if not v], ftrain,
                                      dtype, eot=True)
                n_val += _write_ids(tokenizer, [r for r, v in zip(chunk, is_val, strict=True) if v], fval, dtype,
                                    eot=True)
                chars_seen += sum(len(p) for r in chunk for p in r)
            else:  # by position: the record (or the .txt block) that crosses the cut is cut there
                for record in chunk:
                    size = sum(len(p) for p in record)
                    cut = min(max(val_char_start - chars_seen, 0), size)
                    head, tail = _split_pieces(record, cut)
                    eot = corpus.has_records
                    n_train += _write_ids(tokenizer, [head], ftrain, dtype, eot=eot and not tail) if head else 0
                    n_val += _write_ids(tokenizer, [tail], fval, dtype, eot=eot) if tail else 0
                    chars_seen += size
            done_records += len(chunk)
            report(0.45 + 0.55 * min(1.0, chars_seen / max(n_chars, 1)), f"tokenized {done_records:,} records")
    return n_train, n_val


def _split_pieces(record: list[str], cut: int) -> tuple[list[str], list[str]]:
    """A record's pieces before and after character `cut` (a piece that holds the cut is cut in two)."""
    head: list[str] = []
    for i, p in enumerate(record):
        if cut <= 0:
            return head, record[i:]
        if len(p) > cut:
            return [*head, p[:cut]], [p[cut:], *record[i + 1:]]
        head.append(p)
        cut -= len(p)
    return head, []


def _resplit_by_position(folder: Path, dtype: np.dtype, val_fraction: float) -> None:
    """Too few records landed in one split: put everything together and cut the end off as val."""
    both = np.concatenate([np.fromfile(folder / "train.bin", dtype=dtype),
                           np.fromfile(folder / "val.bin", dtype=dtype)])
    cut = int(len(both) * (1.0 - val_fraction))
    both[:cut].tofile(folder / "train.bin")
    both[cut:].tofile(folder / "val.bin")


def store_key(cfg: DataConfig) -> str:
    """Cache key of a prepared store: the corpus file's identity plus every data option."""
    p = Path(cfg.corpus).resolve()
    st = p.stat()
    ident = json.dumps({"path": str(p), "size": st.st_size, "mtime": st.st_mtime_ns,
                        "cfg": json.loads(cfg.model_dump_json(exclude={"corpus"}))}, sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def prepare_cached(cfg: DataConfig, cache_root: Path, progress: Progress | None = None) -> TokenStore:
    """Prepare once per (corpus file, data options) and reuse: runs exploring hyperparameters share it.

    The cache lives in a runs folder (`<runs>/.tokens`), so a new store counts against that folder's disk cap:
    at most one token per byte of the file, each as wide as the vocabulary needs (char vocabularies are taken
    to fit 16 bits, as nearly all do)."""
    check_corpus(cfg.corpus, cfg.text_column)  # validate first, so errors name the corpus
    path = Path(cache_root) / store_key(cfg)
    if (path / "meta.json").is_file():
        try:
            return TokenStore(path)
        except (CheckpointError, OSError, KeyError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
    width = token_dtype(cfg.vocab_size if cfg.tokenizer == "bpe" else 1 << 16).itemsize
    check_runs_cap(Path(cache_root).parent, Path(cfg.corpus).stat().st_size * width)
    return prepare(cfg, path, progress=progress)
