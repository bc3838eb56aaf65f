"""The Data page through AppTest, with real small files, real uploads and a real token store.

Expected numbers are computed here from the engine's own `clean_text`, so a page that counts the wrong
thing (raw instead of cleaned text, a missing end-of-text token, a different column) fails.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import app_test, english_like

from genai_core.config import DataConfig
from genai_core.data.corpus import clean_text
from genai_core.data.tokenstore import TokenStore, store_key
from genai_core.runs.folder import token_cache_dir

PAGE = "pages/data.py"


def records(n: int, seed: int = 0) -> list[str]:
    return [" ".join(english_like(3, seed=seed * 10_000 + i)) for i in range(n)]


def csv_bytes(texts: list[str], text_column: str = "text") -> bytes:
    return pd.DataFrame({"case_id": range(len(texts)), text_column: texts}).to_csv(index=False).encode()


def errors(at: Any) -> str:
    return " | ".join(e.value for e in at.error)


def metric(at: Any, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def chips(at: Any) -> list[tuple[str, int, bool]]:
    """(label, id, unknown) of each token chip the page drew."""
    bodies = [h.proto.body for h in at.get("html") if "token-chips" in h.proto.body]
    assert len(bodies) == 1, "expected one row of token chips"
    found = re.findall(r'<span class="tok( unk)?" data-id="(\d+)".*?white-space:pre">(.*?)</span>', bodies[0])
    return [(label, int(tid), bool(unk)) for unk, tid, label in found]


def upload(at: Any, name: str, data: bytes, mime: str = "text/plain") -> Any:
    if at.radio(key="data_source").value != "upload":
        at.radio(key="data_source").set_value("upload").run()
    at.file_uploader(key="data_upload").set_value((name, data, mime))
    return at.run()


def saved_choice() -> DataConfig:
    from pages import ui

    path = ui.playground_dir() / "data.json"
    assert path.is_file(), "the Data page did not save its choice"
    return DataConfig.model_validate_json(path.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def corpora(app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty bundled-corpora folder: tests do not depend on (or spend time on) the real demo corpus."""
    from pages import ui

    folder = tmp_path / "assets" / "corpora"
    folder.mkdir(parents=True)
    monkeypatch.setattr(ui, "ASSETS", folder.parent)
    return folder


@pytest.fixture
def bundled(corpora: Path) -> Path:
    """One small clinical-style CSV among the bundled corpora."""
    path = corpora / "clinical_cases.csv"
    path.write_bytes(csv_bytes(records(80)))
    (corpora / "README.md.bak").write_text("not a corpus")  # other files in the folder are not offered
    return path


def test_bundled_corpus_shows_preview_stats_and_column_picker(bundled: Path) -> None:
    at = app_test(PAGE)
    assert not at.exception and not at.error, errors(at)
    assert at.radio(key="data_source").value == "bundled"
    picker = at.selectbox(key="data_bundled")
    assert picker.value == str(bundled) and [o.split(" (")[0] for o in picker.options] == ["clinical_cases.csv"]
    assert any("clinical_cases.csv: **synthetic**" in c.value for c in at.caption)

    frame = at.dataframe[0].value
    assert len(frame) == 20 and list(frame.columns) == ["case_id", "text"]
    col = at.selectbox(key="data_column")
    assert col.value == "text" and col.options == ["case_id", "text"]

    texts = [clean_text(t) for t in pd.read_csv(bundled, dtype=str)["text"]]
    chars = sum(len(t) for t in texts)
    assert number(metric(at, "Records")) == 80
    assert number(metric(at, "Characters")) == chars
    assert number(metric(at, "Distinct characters")) == len(set("".join(texts)))
    assert number(metric(at, "Tokens (char)")) == chars + 80  # one end-of-text token per record
    assert any(c.value == "Counted on the whole file." for c in at.caption)

    # A numeric column is no corpus: refused with the reason, no statistics of numbers.
    at.selectbox(key="data_column").set_value("case_id").run()
    assert not at.exception
    assert "holds numbers or symbols, not text" in errors(at)
    assert not at.metric


def test_upload_is_spilled_under_a_safe_name_and_its_column_guessed(app_env: Path) -> None:
    from pages import ui

    at = app_test(PAGE)
    assert not at.exception
    data = csv_bytes(records(30), text_column="body")
    upload(at, "../../evil name!.csv", data, "text/csv")
    assert not at.exception and not at.error, errors(at)

    uploads = ui.playground_dir() / "uploads"
    spilled = [p for p in uploads.rglob("*") if p.is_file()]
    assert len(spilled) == 1 and spilled[0].read_bytes() == data
    assert re.fullmatch(r"[0-9a-f]{12}/evil-name\.csv", spilled[0].relative_to(uploads).as_posix())
    assert not list(app_env.parent.glob("*.csv")), "an upload escaped the uploads folder"
    # No `text` column: the page proposes the column with the longest strings, and says so.
    assert at.selectbox(key="data_column").value == "body"
    assert any("no `text` column" in c.value for c in at.caption)
    assert number(metric(at, "Records")) == 30

    # A rerun (any widget) must not write the upload again: the mtime keys every cache of this file.
    mtime = spilled[0].stat().st_mtime_ns
    at.checkbox(key="data_lowercase").check().run()
    assert spilled[0].stat().st_mtime_ns == mtime
    # A column picked by hand is said to be so, no longer "guessed".
    at.selectbox(key="data_column").set_value("case_id").run()
    captions = " ".join(c.value for c in at.caption)
    assert "text column `case_id`, chosen here" in captions and "guessed" not in captions


def test_each_bundled_corpus_says_what_it_is(corpora: Path) -> None:
    (corpora / "shakespeare.txt").write_text("To be, or not to be, that is the question.\n" * 200)
    at = app_test(PAGE)
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "shakespeare.txt: **real text no one here wrote**" in captions and "synthetic" not in captions


def test_wrong_column_shows_the_engine_error(app_env: Path, tmp_path: Path) -> None:
    from pages import ui

    path = tmp_path / "notes.csv"
    path.write_bytes(csv_bytes(records(25)))
    ui.save_data_choice(DataConfig(corpus=path, text_column="nope"))  # e.g. the file changed since

    at = app_test(PAGE)  # a new session starts on the saved choice
    assert not at.exception
    assert at.radio(key="data_source").value == "recent"
    assert "no column 'nope'" in errors(at) and "'text'" in errors(at)
    assert not at.metric, "statistics shown for a column that does not exist"

    at.selectbox(key="data_column").set_value("text").run()
    assert not at.exception and not at.error, errors(at)
    assert number(metric(at, "Records")) == 25


def _empty_parquet() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), buf)
    return buf.getvalue()


def test_bad_files_give_clear_errors_and_no_traceback(app_env: Path) -> None:
    from streamlit import config

    at = app_test(PAGE)
    cases = [
        ("empty.txt", b"", "is empty"),
        ("empty.csv", b"", "is empty|holds no data"),
        ("blob.txt", bytes(range(256)) * 16, "looks binary"),
        # `corpus.preview` guesses the column before the engine's own checks run, so for tabular files
        # the parser's message can come first; either is clear (engine change proposed in the report).
        ("blob.csv", bytes(range(256)) * 16, "looks binary|cannot read as CSV"),
        ("latin1.txt", "Fièvre à 39 °C.\n".encode("latin-1") * 50, "not UTF-8"),
        ("report.docx", b"PK\x03\x04 not a corpus", "unsupported file type"),
        ("fake.parquet", b"hello", "not a Parquet file|cannot read as PARQUET"),
        ("no_text.csv", b"a,b\n,\n,\n", "holds no text"),
        ("no_rows.parquet", _empty_parquet(), r"holds no text in column 'text' \(no records\)"),
    ]
    for name, data, expected in cases:
        upload(at, name, data)
        assert not at.exception, f"{name}: {at.exception[0].message if at.exception else ''}"
        assert re.search(expected, errors(at)), f"{name}: {errors(at)!r}"
        assert not at.metric, f"{name}: statistics shown for a bad file"

    old = config.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 1)
    try:
        upload(at, "big.txt", b"word " * 250_000)
    finally:
        config.set_option("server.maxUploadSize", old)
    assert not at.exception
    assert "over the upload limit of 1 MB" in errors(at)


def test_tokenizer_preview_for_char_and_bpe(bundled: Path) -> None:
    at = app_test(PAGE)
    sentence = "The nurse saw a snowman ☃"
    at.text_input(key="data_sentence").input(sentence).run()
    assert not at.exception and not at.error, errors(at)
    char = chips(at)
    assert [label for label, _, _ in char] == list(sentence.replace(" ", "·"))
    unknown = [(label, tid) for label, tid, unk in char if unk]
    assert unknown == [("☃", 1)], "the snowman never occurs in the corpus: it must be flagged as unknown"
    assert all(tid >= 2 for _, tid, unk in char if not unk)
    assert any("☃" in w.value for w in at.warning)

    at.radio(key="data_tokenizer").set_value("bpe").run()
    at.number_input(key="data_vocab").set_value(320).run()
    at.text_input(key="data_sentence").input("the patient walked to the garden").run()
    assert not at.exception and not at.error, errors(at)
    bpe = chips(at)
    assert "".join(label for label, _, _ in bpe).replace("·", " ") == "the patient walked to the garden"
    assert len(bpe) < 20, "a BPE tokenizer trained on this text should merge its frequent words"
    assert not any(unk for _, _, unk in bpe) and not at.warning

    # The sentence is tokenized as the corpus will be: after cleaning.
    at.checkbox(key="data_lowercase").check()
    at.text_input(key="data_sentence").input("THE PATIENT").run()
    assert "".join(label for label, _, _ in chips(at)).replace("·", " ") == "the patient"


def test_cleaning_shows_before_and_after(app_env: Path) -> None:
    at = app_test(PAGE)
    messy = ["Fever  of\t39 °C   today.\r\nSeen by Dr. Adams.", *records(10)]
    upload(at, "messy.csv", csv_bytes(messy), "text/csv")
    assert not at.exception and not at.error, errors(at)
    before, after = (c.value for c in at.code)
    assert before == "Fever··of⇥39 °C···today.␍\nSeen by Dr. Adams."  # whitespace made visible
    assert after == "Fever of 39 °C today.\nSeen by Dr. Adams."

    at.checkbox(key="data_lowercase").check().run()
    assert at.code[1].value == "fever of 39 °c today.\nseen by dr. adams."
    at.checkbox(key="data_normalize").uncheck().run()
    assert at.code[1].value == "fever··of⇥39 °c···today.␍\nseen by dr. adams."


def test_prepare_writes_the_token_store_and_the_choice(bundled: Path, app_env: Path) -> None:
    at = app_test(PAGE)
    estimated = number(metric(at, "Tokens (char)"))
    at.button(key="data_prepare").click().run()
    assert not at.exception and not at.error, errors(at)

    cfg = saved_choice()
    assert Path(cfg.corpus) == bundled.resolve() and cfg.text_column == "text" and cfg.tokenizer == "char"
    store = TokenStore(token_cache_dir(app_env) / store_key(cfg))
    stats = store.stats
    assert stats.records == 80 and stats.train_tokens + stats.val_tokens == estimated
    assert number(metric(at, "Train tokens")) == stats.train_tokens
    assert number(metric(at, "Validation tokens")) == stats.val_tokens
    assert number(metric(at, "Vocabulary")) == stats.vocab_size
    assert any("Train page will train on this corpus" in s.value for s in at.success)
    links = at.get("page_link")
    assert links and "Train" in links[0].proto.label, "no link to the Train page"
    # The page redraws after preparing: the banner names the choice and there is nothing left to click.
    assert any("The Train page uses" in i.value and "clinical_cases.csv" in i.value for i in at.info)
    assert at.button(key="data_prepare").disabled

    # BPE with another vocabulary: a second store; for a corpus within the sample the estimate is exact.
    at.radio(key="data_tokenizer").set_value("bpe").run()
    at.number_input(key="data_vocab").set_value(300).run()
    estimated = number(metric(at, "Tokens (bpe)"))
    at.button(key="data_prepare").click().run()
    assert not at.exception and not at.error, errors(at)
    cfg = saved_choice()
    assert cfg.tokenizer == "bpe" and cfg.vocab_size == 300
    stats = TokenStore(token_cache_dir(app_env) / store_key(cfg)).stats
    assert stats.train_tokens + stats.val_tokens == estimated

    # A new session (another tab) finds the choice on disk and says the Train page uses it.
    again = app_test(PAGE)
    assert not again.exception
    assert any("The Train page uses" in i.value and "BPE" in i.value for i in again.info)
    assert again.radio(key="data_tokenizer").value == "bpe" and again.number_input(key="data_vocab").value == 300
    assert again.button(key="data_prepare").disabled  # nothing left to do for this choice


def test_big_file_statistics_are_labelled_estimates(app_env: Path) -> None:
    at = app_test(PAGE)
    texts = [t * 12 for t in records(9000)]  # ~1.1 KB per record, ~10M characters: beyond the 8M sample
    upload(at, "big.csv", csv_bytes(texts), "text/csv")
    assert not at.exception and not at.error, errors(at)
    shown = metric(at, "Records")
    assert shown.startswith("≈ ")
    value = float(shown.removeprefix("≈ ").removesuffix("k").rstrip()) * 1000  # units.format_count: "9.0k"
    assert abs(value - 9000) / 9000 < 0.05, shown
    assert any(c.value.startswith("Estimated: measured on the first") for c in at.caption)


@pytest.mark.parametrize("name", ["tiny.txt", "tiny.tsv", "tiny.jsonl", "tiny.parquet"])
def test_every_format_previews_and_counts(app_env: Path, corpus_dir: Path, name: str) -> None:
    at = app_test(PAGE)
    upload(at, name, (corpus_dir / name).read_bytes())
    assert not at.exception and not at.error, errors(at)
    assert len(at.dataframe[0].value) == 20
    if name.endswith(".txt"):
        text = clean_text((corpus_dir / name).read_text(encoding="utf-8"), strip=False)
        assert number(metric(at, "Lines")) == 1200
        assert number(metric(at, "Tokens (char)")) == len(text)  # one text: no end-of-text tokens
        assert "data_column" not in at.session_state  # no column picker for plain text
    else:
        assert at.selectbox(key="data_column").value == "text"
        assert number(metric(at, "Records")) == 300
