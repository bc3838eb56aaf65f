"""A corpus at a glance: its statistics from a bounded sample, and how cleaning and tokenizing treat it.

Before anything is prepared, the Data page shows how many records, lines, characters and tokens a corpus
holds. Reading a 400 MB file for that would take minutes, so only its first `SAMPLE_CHARS` characters are
read (`read_sample`). When that sample is the whole file every count is exact; otherwise each count is
measured on the sample and scaled by the share of the file the sample covers (`estimate_stats`):

- records: a tabular file's records are counted without parsing it (Parquet metadata, or its lines, with
  the line breaks quoted inside a CSV record measured on the sample), and the sample's counts are scaled
  by records in the file / records in the sample;
- a .txt file is one text: its counts are scaled by file bytes / sample bytes.

Counts scaled this way are estimates (`CorpusStats.complete` is False) and are shown as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genai_core.data.corpus import Corpus, check_text, clean_text, open_corpus
from genai_core.data.tokenization import BPETokenizer, CharTokenizer, train_tokenizer
from genai_core.errors import CorpusError

SAMPLE_CHARS = 8_000_000
"""Statistics read at most this much text: about a second, whatever the file size."""
TOKENIZER_CHARS = 1_000_000
"""The preview BPE learns from this much of the sample (training and counting take ~1 s each)."""
EXAMPLE_CHARS = 400
"""Length of the before/after cleaning excerpt."""

Tokenizer = CharTokenizer | BPETokenizer


# --------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class Sample:
    """The first characters of a corpus, raw (as records, or pieces of one .txt text)."""

    corpus: Corpus
    texts: list[str]
    complete: bool  # the sample is the whole file
    raw_bytes: int  # UTF-8 bytes of a .txt sample: a .txt scales by bytes (0 for records, which scale by records)
    raw_newlines: int  # line breaks in the raw sample: a CSV record spans 1 + its own line breaks

    @property
    def has_records(self) -> bool:
        return self.corpus.has_records


def read_sample(path: Path | str, text_column: str | None = None, max_chars: int = SAMPLE_CHARS) -> Sample:
    """The first `max_chars` raw characters of a corpus: whole records, or a .txt cut at a line end.

    Opening validates the file and its text column (`open_corpus`'s messages); a record longer than the
    whole budget is cut, so even a one-record file gives something to look at.
    """
    corpus = open_corpus(path, text_column)
    texts: list[str] = []
    chars = 0
    complete = True
    for chunk in corpus.chunks():
        for text in chunk:
            room = max_chars - chars
            if len(text) > room:
                complete = False
                if not texts or not corpus.has_records:
                    # A text file comes in 8 MB blocks; cut the block at a line end inside the budget.
                    cut = text.rfind("\n", 0, room) + 1 if not corpus.has_records else 0
                    texts.append(text[: cut or room])
                break
            texts.append(text)
            chars += len(text)
        if not complete:
            break
    return Sample(
        corpus=corpus, texts=texts, complete=complete,
        raw_bytes=sum(len(t.encode("utf-8")) for t in texts) if not corpus.has_records else 0,
        raw_newlines=sum(t.count("\n") for t in texts),
    )


def check_sample(sample: Sample) -> None:
    """Refuse a sample that is not language (only blanks, or numbers): `check_text`'s message."""
    check_text(sample.texts, sample.corpus)


def clean_sample(sample: Sample, *, lowercase: bool, normalize_whitespace: bool) -> list[str]:
    """The sample as `prepare` sees it: cleaned, and (for records) empty records dropped."""
    out = [clean_text(t, lowercase=lowercase, normalize_whitespace=normalize_whitespace, strip=sample.has_records)
           for t in sample.texts]
    return [t for t in out if t] if sample.has_records else out


# --------------------------------------------------------------------------- the preview tokenizer
def tokenizer_texts(texts: list[str], max_chars: int = TOKENIZER_CHARS) -> list[str]:
    """The first `max_chars` of the cleaned sample (whole records; a .txt piece cut at a line end)."""
    out: list[str] = []
    chars = 0
    for t in texts:
        if chars + len(t) > max_chars:
            if not out:
                cut = t.rfind("\n", 0, max_chars) + 1
                out.append(t[: cut or max_chars])
            break
        out.append(t)
        chars += len(t)
    return out


def tokenizer_budget(kind: str) -> int:
    """How many characters of the corpus the preview tokenizer of this kind learns from, at most."""
    return SAMPLE_CHARS if kind == "char" else TOKENIZER_CHARS


def train_sample_tokenizer(sample: Sample, texts: list[str], kind: str, vocab_size: int) -> Tokenizer:
    """A tokenizer trained on the cleaned sample `texts`, as `prepare` will train one on the whole corpus."""
    if not any(texts):
        column = sample.corpus.text_column
        raise CorpusError(f"{sample.corpus.path.name} holds no text" + (f" in column {column!r}" if column else ""))
    if kind == "char":
        # Every character of the sample, so no character of it is flagged unknown. One joined text: the
        # engine histograms all 1.1M code points once per text it is given.
        return train_tokenizer("char", ["".join(texts)])
    return train_tokenizer(kind, tokenizer_texts(texts), vocab_size)


def tokenizer_saw_everything(sample: Sample, texts: list[str], kind: str) -> bool:
    """Whether the preview tokenizer learned from the whole corpus, so `prepare` would train the same one
    (and its token count is exact): the sample is the whole file and, for BPE, fits `TOKENIZER_CHARS`."""
    if not sample.complete:
        return False
    return kind == "char" or sum(len(t) for t in tokenizer_texts(texts)) == sum(len(t) for t in texts)


@dataclass(frozen=True)
class TokenSplit:
    """How a tokenizer splits one text, token by token, for drawing."""

    pieces: list[tuple[str, int, bool]]  # (text of the token, id, unknown to the vocabulary)
    unknown: list[str]  # distinct characters the tokenizer cannot represent
    chars: int  # characters of the text

    @property
    def chars_per_token(self) -> float:
        return self.chars / max(len(self.pieces), 1)


def split_tokens(tok: Tokenizer, text: str) -> TokenSplit:
    """(piece, id, unknown) per token of `text`, and the characters the tokenizer cannot represent."""
    enc = tok.encode(text)
    if isinstance(tok, CharTokenizer):
        # One id per code point: show the character itself, not "<|unk|>", so the person sees what is missing.
        pieces = [(ch, tid, tid == tok.unk_id) for ch, tid in zip(text, enc.ids, strict=True)]
        return TokenSplit(pieces, enc.unknown, len(text))
    return TokenSplit([(p, tid, False) for p, tid in zip(tok.token_strings(enc.ids), enc.ids, strict=True)], [],
                      len(text))


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class CorpusStats:
    """What a corpus holds after cleaning: exact when `complete`, else scaled up from the sample."""

    complete: bool  # counted on the whole file
    tokens_exact: bool  # `tokens` is what `prepare` will write (BPE also needs the whole corpus in its budget)
    has_records: bool
    sample_records: int  # raw records (or .txt pieces) the sample holds
    sample_chars: int  # characters of the cleaned sample
    records: float  # non-empty records after cleaning
    lines: float  # lines of a .txt (line breaks, plus a last line without one)
    characters: float
    distinct: int  # distinct characters of the cleaned sample
    tokens: float  # the cleaned text's tokens plus an end-of-text token per record
    vocab_size: int
    share: float  # the share of the file the sample covers (1.0 when complete)


def count_records(path: Path | str, fmt: str, newlines_per_record: float) -> float:
    """Records of a whole tabular file, without parsing it: Parquet metadata, or line counts.

    A CSV/TSV record spans `1 + newlines_per_record` lines on average (line breaks quoted inside its text),
    measured on the sample; a JSON-lines record is one line.
    """
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return float(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    last = b"\n"
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    if fmt == "jsonl":
        return float(lines)
    return max(lines - 1, 0) / (1.0 + newlines_per_record)  # a header line, then the records


def sample_scale(sample: Sample, size_bytes: int,
                 records_counter: Callable[[Path, str, float], float] = count_records) -> float:
    """How many times the whole file holds the sample: records in the file / records in the sample (tabular),
    or file bytes / sample bytes (.txt). `records_counter` lets a caller cache the count of a big file."""
    if sample.complete:
        return 1.0
    corpus = sample.corpus
    if corpus.has_records:
        per_record = sample.raw_newlines / max(len(sample.texts), 1)
        return max(records_counter(corpus.path, corpus.format, per_record) / max(len(sample.texts), 1), 1.0)
    return max(size_bytes / max(sample.raw_bytes, 1), 1.0)


def estimate_stats(sample: Sample, texts: list[str], tok: Tokenizer, kind: str, *, size_bytes: int,
                   records_counter: Callable[[Path, str, float], float] = count_records) -> CorpusStats:
    """Records, lines, characters, distinct characters and tokens of the whole corpus.

    `texts` is the cleaned sample (`clean_sample`) and `tok` the tokenizer trained on it. Exact when the
    sample is the whole file, else measured on the sample and scaled by `sample_scale`. BPE tokens are
    counted on the tokenizer's own (smaller) sample and scaled by characters.
    """
    chars = sum(len(t) for t in texts)
    eots = len(texts) if sample.has_records else 0  # prepare ends every record with an end-of-text token
    body: float = chars
    if kind == "bpe":
        head = tokenizer_texts(texts)
        head_chars = sum(len(t) for t in head)
        body = sum(len(ids) for ids in tok.encode_batch(head)) * chars / max(head_chars, 1)
    scale = sample_scale(sample, size_bytes, records_counter)
    lines = sum(t.count("\n") for t in texts) + (bool(texts) and not texts[-1].endswith("\n"))
    return CorpusStats(
        complete=sample.complete, tokens_exact=tokenizer_saw_everything(sample, texts, kind),
        has_records=sample.has_records, sample_records=len(sample.texts), sample_chars=chars,
        records=len(texts) * scale, lines=lines * scale, characters=chars * scale,
        distinct=len(set("".join(texts))), tokens=(body + eots) * scale, vocab_size=tok.vocab_size,
        share=1.0 / scale,
    )


# --------------------------------------------------------------------------- choosing and showing text
def guess_text_column(df: pd.DataFrame) -> str:
    """`text` when present, else the column with the longest strings in the preview rows."""
    cols = [str(c) for c in df.columns]
    if "text" in cols:
        return "text"
    lengths = {c: df[c].astype(str).str.len().mean() for c in cols}
    return max(cols, key=lambda c: (lengths[c] if pd.notna(lengths[c]) else 0.0))


def example_sentence(texts: list[str], fallback: str, max_chars: int = 120) -> str:
    """The first line of the first non-blank text, cut at a word end within `max_chars`: a sentence to
    tokenize that looks like the corpus."""
    first = next((t for t in texts if t.strip()), fallback).strip().split("\n")[0]
    return first[:max_chars].rsplit(" ", 1)[0] if len(first) > max_chars else first


def cleaning_example(texts: list[str], lowercase: bool, normalize: bool, strip: bool,
                     max_chars: int = EXAMPLE_CHARS) -> tuple[str, str]:
    """An excerpt of the first record that cleaning changes (around the first change) and its cleaned form.

    The excerpt is cleaned without stripping unless it reaches the record's start or end, so cutting it
    out of a longer record does not show a change that cleaning the whole record would not make.
    """
    def clean(t: str, strip_: bool) -> str:
        return clean_text(t, lowercase=lowercase, normalize_whitespace=normalize, strip=strip_)

    candidates = [t for t in texts[:200] if t.strip()] or [""]
    raw = next((t for t in candidates if clean(t, strip) != t), candidates[0])
    done = clean(raw, strip)
    first_change = next((i for i, (a, b) in enumerate(zip(raw, done, strict=False)) if a != b),
                        min(len(raw), len(done)))
    unchanged = done == raw
    start = 0 if unchanged else max(0, min(first_change - max_chars // 4, len(raw) - max_chars))
    excerpt = raw[start:start + max_chars]
    out = clean(excerpt, False)
    if strip and start == 0:
        out = out.lstrip()
    if strip and start + max_chars >= len(raw):
        out = out.rstrip()
    return excerpt, out
