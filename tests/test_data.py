"""Corpus reading, cleaning, tokenizers and the memmap token store, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genai_core.config import DataConfig
from genai_core.data.corpus import (
    _MANY_NL,
    _NL_SPACES,
    _WS_RUN,
    CORPUS_FILE_TYPES,
    check_corpus,
    clean_text,
    list_corpus_files,
    open_corpus,
    preview,
)
from genai_core.data.preview import clean_sample, estimate_stats, read_sample, train_sample_tokenizer
from genai_core.data.tokenization import (
    EOT,
    UNK,
    BPETokenizer,
    CharTokenizer,
    StreamDecoder,
    load_tokenizer,
    train_tokenizer,
)
from genai_core.data.tokenstore import TokenStore, prepare, prepare_cached, token_dtype
from genai_core.errors import CheckpointError, CorpusError


@pytest.mark.parametrize("name", ["tiny.csv", "tiny.tsv", "tiny.jsonl", "tiny.parquet"])
def test_every_tabular_format_reads_the_same_records(corpus_dir: Path, name: str) -> None:
    corpus = open_corpus(corpus_dir / name)
    assert corpus.text_column == "text"
    records = [r for chunk in corpus.chunks() for r in chunk]
    assert len(records) == 300
    assert records == pd.read_csv(corpus_dir / "tiny.csv")["text"].tolist()


def test_text_column_by_name_and_limit(tiny_csv: Path) -> None:
    corpus = open_corpus(tiny_csv, "body")
    chunk = next(corpus.chunks(max_records=7))
    assert len(chunk) == 7
    assert preview(tiny_csv, n=3).shape[0] == 3


def test_txt_is_one_continuous_text(tiny_txt: Path) -> None:
    pieces = [p for c in open_corpus(tiny_txt).chunks() for p in c]
    assert "".join(pieces) == tiny_txt.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "suffix", "column", "message"),
    [
        (b"", ".txt", None, "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ".txt", None, "looks binary"),
        (b"caf\xe9 au lait\n", ".txt", None, "not UTF-8"),
        (b"id,body\n1,hello\n", ".csv", None, "no 'text' column; choose the text column from: 'id', 'body'"),
        (b"id,body\n1,hello\n", ".csv", "txt", "has no column 'txt'; its columns are: 'id', 'body'"),
        (b'{"a": 1}\nnot json\n', ".jsonl", "a", "line 2 is not valid JSON"),
        (b"hello", ".docx", None, "unsupported file type"),
        (b"not parquet at all", ".parquet", None, "not a Parquet file"),
    ],
)
def test_bad_corpus_files_get_specific_messages(tmp_path: Path, content: bytes, suffix: str, column: str | None,
                                                message: str) -> None:
    p = tmp_path / f"bad{suffix}"
    p.write_bytes(content)
    with pytest.raises(CorpusError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg = DataConfig(corpus=p, text_column=column)
        prepare(cfg, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_missing_file_and_text_free_column(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        open_corpus(tmp_path / "nope.csv")
    p = tmp_path / "blank.csv"
    p.write_text("text,id\n,1\n  ,2\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no text in column 'text'"):
        prepare(DataConfig(corpus=p), tmp_path / "s")


def test_cleaning() -> None:
    raw = "  Hello\t\tWorld \r\n\r\n\r\n\r\nNext   line  \n"
    assert clean_text(raw) == "Hello World\n\nNext line"
    assert clean_text(raw, lowercase=True, normalize_whitespace=False) == raw.lower()


def test_cleaning_skips_a_regex_only_where_it_could_not_have_matched() -> None:
    # The definition clean_text must keep while it skips regexes by substring tests: all three, always.
    def by_regex_alone(s: str) -> str:
        s = _MANY_NL.sub("\n\n", _NL_SPACES.sub("\n", _WS_RUN.sub(" ", s.replace("\r\n", "\n").replace("\r", "\n"))))
        return s.strip()

    alphabet = [*"ab .,\n\n\n  \t\x0b\x0c\r\x1c\x1d\x1e\x1f\xa0\u2003\u3000\x85é", "\r\n"]
    rng = np.random.default_rng(0)
    for _ in range(20_000):
        s = "".join(rng.choice(alphabet, size=int(rng.integers(0, 30))))
        assert clean_text(s) == by_regex_alone(s), repr(s)


def test_char_tokenizer_roundtrip_and_unknown(tmp_path: Path) -> None:
    tok = train_tokenizer("char", ["hello world"])
    assert isinstance(tok, CharTokenizer)
    enc = tok.encode("hello wörld!")
    assert enc.unknown == ["!", "ö"]
    assert enc.ids.count(tok.unk_id) == 2 and len(enc.ids) == len("hello wörld!")  # nothing dropped
    assert tok.decode(tok.encode("hello").ids) == "hello"
    assert tok.token_strings(enc.ids) == ["h", "e", "l", "l", "o", " ", "w", UNK, "r", "l", "d", UNK]
    tok.save(tmp_path / "t.json")
    again = load_tokenizer(tmp_path / "t.json")
    assert again.encode("low").ids == tok.encode("low").ids and again.vocab_size == tok.vocab_size


def test_bpe_tokenizer_roundtrip_any_text(tmp_path: Path, tiny_txt: Path) -> None:
    lines = tiny_txt.read_text(encoding="utf-8").splitlines()
    tok = train_tokenizer("bpe", lines, vocab_size=300)
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 300
    text = "The nurse walked — naïvely — to 東京 🙂"
    assert tok.decode(tok.encode(text).ids) == text  # byte-level: nothing is unknown
    assert len(tok.encode("the garden").ids) < len("the garden")  # merges learned
    tok.save(tmp_path / "b.json")
    assert load_tokenizer(tmp_path / "b.json").encode(text).ids == tok.encode(text).ids
    assert tok.decode([tok.eot_id]) == EOT
    ids = tok.encode(text).ids
    pieces = tok.token_strings(ids)  # a token's own text ("\ufffd" where it holds part of a character)
    assert pieces == [tok.decode([i]) for i in ids] and tok.token_strings(ids) == pieces  # the table, then again
    assert "".join(pieces[:3]) == tok.decode(ids[:3]) and EOT in tok.token_strings([tok.eot_id])


def test_stream_decoder_never_splits_characters(tiny_txt: Path) -> None:
    tok = train_tokenizer("bpe", tiny_txt.read_text(encoding="utf-8").splitlines(), vocab_size=280)
    text = "garden 東京🙂 river"
    dec = StreamDecoder(tok)
    pieces = [dec.push(i) for i in tok.encode(text).ids] + [dec.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_malformed_tokenizer_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "b.json").write_text('{"format": "genai-char-tokenizer/1", "chars": 5}', encoding="utf-8")
    (tmp_path / "c.json").write_text('{"model": "nonsense"}', encoding="utf-8")
    for name in ("a.json", "b.json", "c.json", "missing.json"):
        with pytest.raises(CheckpointError):
            load_tokenizer(tmp_path / name)


def test_token_dtype_by_vocab() -> None:
    assert token_dtype(256) == np.uint8 and token_dtype(257) == np.uint16
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


def test_store_splits_by_record_and_batches(tmp_path: Path, tiny_csv: Path) -> None:
    store = prepare(DataConfig(corpus=tiny_csv, val_fraction=0.2, seed=3), tmp_path / "s")
    st = store.stats
    assert st.split == "record" and st.records == 300
    assert isinstance(store.train, np.memmap) and store.train.dtype == np.uint8
    eot = store.tokenizer.eot_id
    # Every record ends with the end-of-text token, so the count of EOTs is the count of records.
    assert int((store.train == eot).sum() + (store.val == eot).sum()) == 300
    assert 0.1 < st.val_tokens / st.tokens < 0.3
    # Validation records never appear in training.
    val_records = set(store.tokenizer.decode(store.val.tolist()).split(EOT))
    train_records = set(store.tokenizer.decode(store.train.tolist()).split(EOT))
    assert val_records & train_records <= {""}
    x, y = store.get_batch("train", 5, 16, np.random.default_rng(0))
    assert x.shape == y.shape == (5, 16)
    assert (x[:, 1:] == y[:, :-1]).all()
    again = TokenStore(tmp_path / "s")
    np.testing.assert_array_equal(again.val, store.val)


def test_txt_splits_by_position(tmp_path: Path, tiny_txt: Path) -> None:
    store = prepare(DataConfig(corpus=tiny_txt), tmp_path / "s")
    text = clean_text(tiny_txt.read_text(encoding="utf-8"))
    assert store.stats.split == "position"
    decoded = store.tokenizer.decode(store.train.tolist()) + store.tokenizer.decode(store.val.tolist())
    assert decoded.strip() == text
    assert abs(store.stats.val_tokens / store.stats.tokens - 0.1) < 0.01


def test_bpe_store_and_cache(tmp_path: Path, tiny_csv: Path) -> None:
    cfg = DataConfig(corpus=tiny_csv, tokenizer="bpe", vocab_size=400)
    a = prepare_cached(cfg, tmp_path / "cache")
    b = prepare_cached(cfg, tmp_path / "cache")
    assert a.path == b.path and a.dtype == np.uint16 and a.tokenizer.vocab_size == 400
    c = prepare_cached(cfg.model_copy(update={"lowercase": True}), tmp_path / "cache")
    assert c.path != a.path


def test_prepare_reports_progress(tmp_path: Path, tiny_csv: Path) -> None:
    seen: list[float] = []
    prepare(DataConfig(corpus=tiny_csv), tmp_path / "s", progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


# --------------------------------------------------------------------------- statistics from a bounded sample
def _sample_stats(path: Path, max_chars: int, kind: str = "char") -> tuple:
    sample = read_sample(path, max_chars=max_chars)
    texts = clean_sample(sample, lowercase=False, normalize_whitespace=True)
    tok = train_sample_tokenizer(sample, texts, kind, 300)
    return sample, estimate_stats(sample, texts, tok, kind, size_bytes=path.stat().st_size)


def test_sample_statistics_scale_to_the_whole_csv(tmp_path: Path) -> None:
    # 1,000 records of equal length, each with a line break inside its quoted text: the file has 2,001
    # lines, so the record count must come from lines / (1 + line breaks per record), not from lines.
    texts = [f"Record {i:04d}: the nurse walked to the garden.\nShe came back at dusk." for i in range(1000)]
    path = tmp_path / "notes.csv"
    pd.DataFrame({"id": range(1000), "text": texts}).to_csv(path, index=False)
    sample, stats = _sample_stats(path, max_chars=250 * len(texts[0]) + 10)
    assert not sample.complete and len(sample.texts) == 250
    assert not stats.complete and not stats.tokens_exact
    assert stats.share == pytest.approx(0.25)
    assert stats.records == pytest.approx(1000)
    chars = sum(len(clean_text(t)) for t in texts)
    assert stats.characters == pytest.approx(chars)
    assert stats.tokens == pytest.approx(chars + 1000)  # an end-of-text token per record

    # The whole file in the sample: exact, and what preparing writes.
    _, full = _sample_stats(path, max_chars=10**7)
    store = prepare(DataConfig(corpus=path), tmp_path / "s")
    assert full.complete and full.tokens_exact and full.share == 1.0
    assert full.records == store.stats.records == 1000
    assert full.tokens == store.stats.train_tokens + store.stats.val_tokens
    assert full.characters == chars and full.distinct == len(set("".join(clean_text(t) for t in texts)))


def test_sample_statistics_scale_a_text_file_by_bytes(tmp_path: Path) -> None:
    line = "The patient walked to the garden before noon, café au lait in hand."  # é: bytes != characters
    path = tmp_path / "story.txt"
    path.write_text((line + "\n") * 400, encoding="utf-8")
    sample, stats = _sample_stats(path, max_chars=100 * (len(line) + 1) + 5)
    assert "".join(sample.texts) == (line + "\n") * 100  # cut at a line end inside the budget
    assert not stats.complete and not stats.has_records
    assert stats.share == pytest.approx(0.25)
    assert stats.lines == pytest.approx(400)
    assert stats.characters == pytest.approx(400 * (len(line) + 1))
    assert stats.tokens == pytest.approx(400 * (len(line) + 1))  # one text: no end-of-text tokens


def test_one_validation_and_one_list_of_file_types(tmp_path: Path, tiny_csv: Path) -> None:
    assert ".csv" in CORPUS_FILE_TYPES and ".parquet" in CORPUS_FILE_TYPES and list(CORPUS_FILE_TYPES) == sorted(
        CORPUS_FILE_TYPES)
    check_corpus(tiny_csv, "body")
    with pytest.raises(CorpusError, match="has no column 'nope'"):
        check_corpus(tiny_csv, "nope")
    for name in ("a.csv", "b.docx", ".tmp.csv", "c.txt"):
        (tmp_path / name).write_text("text\nhello\n", encoding="utf-8")
    assert sorted(p.name for p in list_corpus_files(tmp_path)) == ["a.csv", "c.txt"]


def _long_text(n_chars: int) -> str:
    """Irregular whitespace (runs, tabs, line ends, a long stretch without any) to cut across."""
    words = ["alpha", "beta  gamma", "delta\t\tepsilon", "zeta\n\n\n\neta", "  theta ", "x" * 3000]
    out, size, i = [], 0, 0
    while size < n_chars:
        w = words[i % len(words)] + (" " * (1 + i % 4))
        out.append(w)
        size += len(w)
        i += 1
    return "".join(out)


def test_a_record_longer_than_a_piece_is_cut_at_whitespace_and_prepared_as_a_whole(tmp_path: Path) -> None:
    from genai_core.data.corpus import PIECE_CHARS, pieces

    long = _long_text(int(2.5 * PIECE_CHARS))
    cut = list(pieces(long))
    assert len(cut) == 3 and "".join(cut) == long and all(len(p) <= PIECE_CHARS for p in cut)
    assert all(p[0].isspace() for p in cut[1:])  # each cut where a whitespace run starts
    records = [long] + [f"short record number {i}, with words." for i in range(30)]
    path = tmp_path / "long.jsonl"
    pd.DataFrame({"text": records}).to_json(path, orient="records", lines=True)
    store = prepare(DataConfig(corpus=path, val_fraction=0.1, seed=1), tmp_path / "store")
    tok = store.tokenizer
    decoded = tok.decode(np.concatenate([store.train, store.val]).tolist())
    whole = clean_text(long)  # cleaned in one piece, as a record short enough always was
    assert whole in decoded and decoded.count(whole) == 1
    assert len(store.train) + len(store.val) == sum(len(clean_text(r)) + 1 for r in records)


def test_a_text_file_of_one_long_line_and_few_records_still_split_by_position(tmp_path: Path) -> None:
    from genai_core.data.corpus import TXT_BLOCK_BYTES

    line = _long_text(TXT_BLOCK_BYTES + 300_000).replace("\n", " ")
    txt = tmp_path / "one_line.txt"
    txt.write_text(line, encoding="utf-8")
    chunks = [t for c in open_corpus(txt).chunks() for t in c]
    assert len(chunks) == 2 and "".join(chunks) == line  # cut at whitespace, not read as one 8 MB+ line
    store = prepare(DataConfig(corpus=txt), tmp_path / "txt-store")
    assert store.tokenizer.decode(np.concatenate([store.train, store.val]).tolist()) == clean_text(line, strip=False)
    # Two records, fewer than a record split needs: the one crossing the cut is cut there, so val is not empty.
    two = tmp_path / "two.jsonl"
    pd.DataFrame({"text": [line[:400_000], line[400_000:800_000]]}).to_json(two, orient="records", lines=True)
    split = prepare(DataConfig(corpus=two, val_fraction=0.2), tmp_path / "two-store")
    assert split.stats.split == "position" and 0.15 < len(split.val) / (len(split.train) + len(split.val)) < 0.25


def test_preview_of_a_one_line_text_file_reads_only_its_start(tmp_path: Path) -> None:
    from genai_core.data.corpus import PREVIEW_CHARS

    txt = tmp_path / "one_line.txt"
    txt.write_text("word " * (PREVIEW_CHARS // 2), encoding="utf-8")
    shown = preview(txt)
    assert len(shown) == 1 and len(shown["text"][0]) == PREVIEW_CHARS
