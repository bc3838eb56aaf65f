"""Data: choose the text a model learns from, see it cleaned and tokenized, and prepare it for the Train page.

The page gathers choices and asks `genai_core`: the engine reads, validates and cleans the corpus, trains
tokenizers, estimates statistics from a bounded sample (`genai_core.data.preview`: a 400 MB upload answers
in seconds, and counts beyond the sample are labelled as estimates) and writes the token store. Uploads
arrive in memory and are spilled once to `<runs>/.playground/uploads/<content hash>/<sanitised name>`, so a
new tab (or a restart) finds them again under Recent files and a re-upload of the same bytes reuses its
prepared token store.
"""

from __future__ import annotations

import html
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.uploaded_file_manager import UploadedFile

from genai_core.config import DataConfig
from genai_core.data import preview as engine
from genai_core.data.corpus import (
    CORPUS_FILE_TYPES,
    bundled_corpus_note,
    clean_text,
    detect_format,
    list_corpus_files,
    preview,
)
from genai_core.data.preview import (
    TOKENIZER_CHARS,
    CorpusStats,
    Sample,
    Tokenizer,
    cleaning_example,
    example_sentence,
    guess_text_column,
    split_tokens,
    tokenizer_budget,
    tokenizer_saw_everything,
)
from genai_core.data.tokenstore import StoreStats, TokenStore, prepare_cached, store_key
from genai_core.units import format_bytes, format_count
from pages import ui

PREVIEW_ROWS = 20
MAX_SENTENCE = 500  # characters of the tokenizer playground: chips stay readable and fast
SOURCES = {"bundled": "Bundled corpus", "upload": "Upload a file", "recent": "Recent files"}
TOKENIZERS = {"char": "Characters (one token per character)", "bpe": "BPE (byte-level subwords)"}
CHIP_COLORS = ("#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa")
FALLBACK_SENTENCE = "The patient was admitted with a fever of 39.2 °C."
FileKey = tuple[str, int, int]  # (resolved path, mtime_ns, size): the cache key of a file's contents


def field_help(name: str) -> str | None:
    """The DataConfig field's docstring: the same words as the CLI's --help."""
    return DataConfig.model_fields[name].description


def bundled_dir() -> Path:
    return ui.ASSETS / "corpora"


def uploads_dir() -> Path:
    return ui.ensure_dir(ui.playground_dir() / "uploads")


def recent_label(path: Path, choice: DataConfig | None) -> str:
    """Name, size and time: two uploads of the same name (different contents) must be told apart."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    current = " · current choice" if choice is not None and path.resolve() == Path(choice.corpus).resolve() else ""
    return f"{path.name} · {format_bytes(path.stat().st_size)} · {when}{current}"


def file_key(path: Path) -> FileKey:
    st_ = path.stat()
    return str(path.resolve()), st_.st_mtime_ns, st_.st_size


# --------------------------------------------------------------------------- uploads
def forget_rejected_upload(path: Path) -> None:
    """An upload the engine refused as a file (empty, binary, not UTF-8, unparsable) leaves Recent files: it
    could never become a corpus. A refused column choice keeps the file (another column may be text)."""
    folder = uploads_dir().resolve()
    if path.resolve().parent.parent == folder:  # uploads live in uploads/<digest>/<name>
        shutil.rmtree(path.resolve().parent, ignore_errors=True)


def spill_upload(upload: UploadedFile) -> Path:
    """Write an upload to the uploads folder once (`ui.spill_upload`), where Recent files finds it again."""
    detect_format(Path(Path(upload.name).name))  # unsupported types are refused before anything is written
    return ui.spill_upload(upload, uploads_dir())


# --------------------------------------------------------------------------- cached engine calls
# Samples are resources, not data: cache_data would unpickle a fresh copy of megabytes of text on every
# rerun (each keystroke in the sentence box). Callers treat them as read-only.
@st.cache_resource(show_spinner="Reading a sample of the corpus…", max_entries=4)
def read_sample(file: FileKey, column: str | None) -> Sample:
    """The first `SAMPLE_CHARS` raw characters of the corpus (`engine.read_sample`); `file` keys the cache."""
    return engine.read_sample(file[0], column)


@st.cache_resource(show_spinner=False, max_entries=4)
def cleaned_sample(file: FileKey, column: str | None, lowercase: bool, normalize: bool) -> list[str]:
    """The sample as the engine's `prepare` sees it: cleaned, and empty records dropped."""
    return engine.clean_sample(read_sample(file, column), lowercase=lowercase, normalize_whitespace=normalize)


@st.cache_resource(show_spinner="Training a tokenizer on the sample…", max_entries=8)
def sample_tokenizer(file: FileKey, column: str | None, lowercase: bool, normalize: bool, kind: str,
                     vocab_size: int) -> Tokenizer:
    """A tokenizer trained on the sample, as `prepare` will train one on the whole corpus."""
    texts = cleaned_sample(file, column, lowercase, normalize)
    return engine.train_sample_tokenizer(read_sample(file, column), texts, kind, vocab_size)


@st.cache_data(show_spinner=False, max_entries=16)
def records_in_file(file: FileKey, fmt: str, newlines_per_record: float) -> float:
    """Records of a whole tabular file (`engine.count_records` reads all of a CSV's lines: cached)."""
    return engine.count_records(file[0], fmt, newlines_per_record)


@st.cache_data(show_spinner="Counting…", max_entries=32)
def corpus_stats(file: FileKey, column: str | None, lowercase: bool, normalize: bool, kind: str,
                 vocab_size: int) -> CorpusStats:
    """The corpus's statistics (`engine.estimate_stats`), exact or scaled up from the sample."""
    return engine.estimate_stats(
        read_sample(file, column), cleaned_sample(file, column, lowercase, normalize),
        sample_tokenizer(file, column, lowercase, normalize, kind, vocab_size), kind, size_bytes=file[2],
        records_counter=lambda _path, fmt, per_record: records_in_file(file, fmt, per_record))


@st.cache_data(show_spinner=False, max_entries=16)
def prepared_stats(store: str, mtime_ns: int) -> dict[str, Any]:
    """The statistics a prepared token store recorded (`mtime_ns` of its meta.json keys the cache)."""
    return TokenStore(store).stats.__dict__


# --------------------------------------------------------------------------- display helpers
def visible_whitespace(text: str) -> str:
    """Show what whitespace normalisation changes: tabs, carriage returns, odd spaces, runs of blanks."""
    for ch, mark in (("\r", "␍"), ("\t", "⇥"), ("\xa0", "⍽"), ("\u3000", "⍽")):
        text = text.replace(ch, mark)
    return re.sub(r" {2,}", lambda m: "·" * len(m.group()), text)


def chip_label(piece: str) -> str:
    return piece.replace(" ", "·").replace("\n", "↵").replace("\t", "⇥").replace("\r", "␍") or "∅"


def token_chips(pieces: list[tuple[str, int, bool]]) -> str:
    """Tokens as coloured chips with their ids underneath; unknown characters outlined in red."""
    chips = []
    for i, (piece, tid, unknown) in enumerate(pieces):
        bg = "#fecaca" if unknown else CHIP_COLORS[i % len(CHIP_COLORS)]
        border = "2px solid #b91c1c" if unknown else "1px solid rgba(0,0,0,0.08)"
        title = f"id {tid}" + (" · not in the vocabulary: becomes <|unk|>" if unknown else "")
        if "\ufffd" in piece:
            title += " · one byte of a multi-byte character (byte-level BPE)"
        chips.append(
            f'<span class="tok{" unk" if unknown else ""}" data-id="{tid}" title="{html.escape(title)}" '
            f'style="display:inline-flex;flex-direction:column;align-items:center;background:{bg};'
            f'border:{border};border-radius:6px;padding:2px 5px;margin:2px;line-height:1.25">'
            f'<span style="font-family:monospace;font-size:0.95em;white-space:pre">{html.escape(chip_label(piece))}'
            f'</span><span style="font-size:0.68em;color:#475569">{"unk" if unknown else tid}</span></span>'
        )
    return f'<div class="token-chips" style="display:flex;flex-wrap:wrap">{"".join(chips)}</div>'


def count_label(value: float, exact: bool) -> str:
    """A count as a metric shows it: every digit when exact, else `≈` and a short form."""
    return f"{value:,.0f}" if exact else "≈ " + format_count(value)


def same_choice(a: DataConfig | None, b: DataConfig | None) -> bool:
    if a is None or b is None:
        return False
    return (Path(a.corpus).resolve() == Path(b.corpus).resolve()
            and a.model_dump(exclude={"corpus"}) == b.model_dump(exclude={"corpus"}))


def describe(cfg: DataConfig) -> str:
    parts = [f"**{Path(cfg.corpus).name}**"]
    if cfg.text_column:
        parts.append(f"column `{cfg.text_column}`")
    parts.append("char tokenizer" if cfg.tokenizer == "char" else f"BPE tokenizer ({cfg.vocab_size:,} tokens)")
    if cfg.lowercase:
        parts.append("lowercased")
    if cfg.max_records:
        parts.append(f"first {cfg.max_records:,} records")
    return " · ".join(parts)


def show_prepared(stats: StoreStats | dict[str, Any], has_records: bool) -> None:
    s = stats if isinstance(stats, dict) else stats.__dict__
    cols = st.columns(3) + st.columns(2)  # five in a row cut values and labels on an 800 px screen
    cols[0].metric("Records" if has_records else "Text", f"{s['records']:,}" if has_records else "1 document",
                   help="Non-empty records after cleaning; each ends with an end-of-text token.")
    cols[1].metric("Train tokens", f"{s['train_tokens']:,}")
    cols[2].metric("Validation tokens", f"{s['val_tokens']:,}",
                   help="Held out whole records where possible (split by record), else the end of the text.")
    cols[3].metric("Vocabulary", f"{s['vocab_size']:,}")
    cols[4].metric("Prepared in", f"{s['seconds']:.2f} s" if s["seconds"] < 10 else f"{s['seconds']:.0f} s")
    st.caption(f"Split {'by record' if s['split'] == 'record' else 'by position'}; "
               f"{s['characters']:,} characters after cleaning.")


# --------------------------------------------------------------------------- page sections
def draw_header() -> DataConfig | None:
    """Title, and the corpus the Train page uses now (the saved choice)."""
    st.title("Data")
    st.caption("Choose the text the model learns from, check how it is cleaned and split into tokens, then "
               "prepare it for training. Everything here runs on a sample first, so big files answer quickly.")
    choice = ui.load_data_choice()
    if choice is not None:
        st.info(f"The Train page uses {describe(choice)}.", icon=":material/menu_book:")
    if flash := st.session_state.pop("data_flash", None):
        st.toast(flash, icon=":material/check_circle:")  # said after the rerun that follows preparing
    return choice


def keep_option(key: str, options: list[str], last: str | None) -> None:
    """Start a file picker on the last file looked at when it is offered, else its first option.

    Streamlit drops the state of widgets a run does not draw; re-assigning keeps it across page visits.
    """
    if st.session_state.get(key) not in options:
        st.session_state[key] = last if last in options else options[0]
    st.session_state[key] = st.session_state[key]


def choose_file(choice: DataConfig | None) -> tuple[Path, DeltaGenerator]:
    """Section 1: the corpus file (bundled, uploaded or recent), and the slot for errors about the file."""
    bundled = list_corpus_files(bundled_dir())
    recent = list_corpus_files(uploads_dir(), "*/*")
    if choice is not None and Path(choice.corpus).resolve() not in {p.resolve() for p in bundled + recent}:
        recent.insert(0, Path(choice.corpus))  # chosen elsewhere (the CLI, an older session): keep it reachable
    sources = [k for k in SOURCES if k != "recent" or recent]

    # Where to start: the file this session looked at last, else the saved choice, else a bundled corpus.
    last = st.session_state.get("data_path") or (str(choice.corpus) if choice else None)
    if st.session_state.get("data_source") not in sources:
        in_recent = last and any(str(p) == last for p in recent)
        st.session_state["data_source"] = "recent" if in_recent else ("bundled" if bundled else "upload")
    st.session_state["data_source"] = st.session_state["data_source"]  # kept across page visits

    st.subheader("1 · Corpus")
    source = st.radio("Source", sources, format_func=SOURCES.__getitem__, horizontal=True, key="data_source",
                      label_visibility="collapsed")
    file_slot = st.container()  # errors about the file itself appear right under the file's widget
    if source == "bundled":
        return pick_bundled(bundled, last, file_slot)
    if source == "upload":
        return pick_upload(file_slot)
    return pick_recent(recent, last, choice)


def pick_bundled(bundled: list[Path], last: str | None, file_slot: DeltaGenerator) -> tuple[Path, DeltaGenerator]:
    if not bundled:
        file_slot.info("No bundled corpora are installed (assets/corpora/ is empty). Upload a file instead.",
                       icon=":material/inventory_2:")
        st.stop()
    options = [str(p) for p in bundled]
    keep_option("data_bundled", options, last)
    picked = st.selectbox("Bundled corpus", options, key="data_bundled",
                          format_func=lambda p: f"{Path(p).name} ({format_bytes(Path(p).stat().st_size)})")
    file_slot = st.container()
    st.caption(f":material/science: {Path(picked).name}: {bundled_corpus_note(picked)}")
    return Path(picked), file_slot


def pick_upload(file_slot: DeltaGenerator) -> tuple[Path, DeltaGenerator]:
    limit = int(st.get_option("server.maxUploadSize"))
    # No `type=` filter: the engine refuses another type with a message that names the types it reads.
    upload = st.file_uploader(
        "Upload a corpus", key="data_upload", disabled=not ui.can_change(),
        help=f"{', '.join(CORPUS_FILE_TYPES)}: UTF-8 text, or tabular files with a text column. Up to {limit:,} MB.")
    file_slot = st.container()
    if upload is None:
        st.caption("Plain text (.txt) is one continuous text; .csv, .tsv, .jsonl and .parquet hold records, one "
                   "text per row. Uploads are kept on this server under Recent files.")
        st.stop()
    path: Path | None = None
    with ui.user_errors(file_slot):
        path = spill_upload(upload)
    if path is None:
        st.stop()
    assert path is not None
    return path, file_slot


def pick_recent(recent: list[Path], last: str | None, choice: DataConfig | None) -> tuple[Path, DeltaGenerator]:
    options = [str(p) for p in recent]
    keep_option("data_recent", options, last)
    picked = st.selectbox("Recent file", options, key="data_recent",
                          format_func=lambda p: recent_label(Path(p), choice))
    return Path(picked), st.container()


def start_file_widgets(path: Path, choice: DataConfig | None) -> DataConfig | None:
    """Per-file widgets start from the saved choice when it is this file, else from the defaults.

    Returns the saved choice when it is this file.
    """
    file_changed = st.session_state.get("data_path") != str(path)
    st.session_state["data_path"] = str(path)
    mine = choice if choice is not None and Path(choice.corpus).resolve() == path.resolve() else None
    base = mine or DataConfig(corpus=path)
    defaults: dict[str, Any] = {
        "data_lowercase": base.lowercase, "data_normalize": base.normalize_whitespace,
        "data_tokenizer": base.tokenizer, "data_vocab": base.vocab_size, "data_val_fraction": base.val_fraction,
        "data_seed": base.seed, "data_max_records": base.max_records or 0,
    }
    if file_changed:
        st.session_state.pop("data_column", None)
        st.session_state.pop("data_sentence", None)
        if mine is not None:
            st.session_state.update(defaults)
    for key, value in defaults.items():
        st.session_state[key] = st.session_state.get(key, value)
    return mine


def read_table(path: Path, file_slot: DeltaGenerator) -> tuple[str, pd.DataFrame]:
    """The file's format and first rows; a file the engine refuses stops the page (and leaves Recent files)."""
    df: pd.DataFrame | None = None
    fmt = ""
    with ui.user_errors(file_slot):
        fmt = detect_format(path)
        df = preview(path, PREVIEW_ROWS)  # the engine validates: missing, empty, binary, not UTF-8, unparsable
    if df is None:
        forget_rejected_upload(path)
        st.stop()
    assert df is not None
    return fmt, df


def pick_column(path: Path, fmt: str, df: pd.DataFrame, mine: DataConfig | None,
                file_slot: DeltaGenerator) -> tuple[str | None, DeltaGenerator]:
    """Section 2's header: the text column of a tabular file (none for .txt), and the slot for errors about
    the text: under the column picker, or under the file's widget for a .txt."""
    st.subheader("2 · Preview")
    size = path.stat().st_size
    column_slot = st.container()
    if fmt == "txt":
        st.caption(f"{path.name} · {format_bytes(size)} · plain text: one continuous text (the first lines below)")
        return None, file_slot
    columns = [str(c) for c in df.columns]
    if "data_column" not in st.session_state:
        st.session_state["data_column"] = mine.text_column if mine and mine.text_column else guess_text_column(df)
    st.session_state["data_column"] = st.session_state["data_column"]
    if st.session_state["data_column"] not in columns:
        columns.append(st.session_state["data_column"])  # a saved or typed name: the engine says if it exists
    left, right = column_slot.columns([1, 2], vertical_alignment="bottom")
    column = left.selectbox(
        "Text column", columns, key="data_column", accept_new_options=True,
        help="The column that holds the text. You can also type a name (JSON lines may have keys the first "
             "rows lack).")
    how = ("" if column == "text" else " · no `text` column: guessed the one with the longest text"
           if column == guess_text_column(df) else f" · text column `{column}`, chosen here")
    right.caption(f"{path.name} · {format_bytes(size)} · {fmt.upper()} · {len(df.columns)} columns{how}")
    return column, column_slot.container()


def read_checked_sample(path: Path, column: str | None, slot: DeltaGenerator) -> tuple[FileKey, Sample]:
    """The sample the statistics come from; a column that does not exist, or holds no language, stops the page."""
    checked: tuple[FileKey, Sample] | None = None
    with ui.user_errors(slot):
        # Reads further than the preview: a bad byte later is caught here. A column that does not exist, or
        # numbers or blanks instead of text: the engine says so.
        key = file_key(path)
        sample = read_sample(key, column)
        engine.check_sample(sample)
        checked = key, sample
    if checked is None:
        st.stop()
    assert checked is not None
    return checked


def draw_table(df: pd.DataFrame, column: str | None) -> DeltaGenerator:
    """Section 2's table, with the text column widened; returns the slot the statistics fill later."""
    config = {column: st.column_config.TextColumn(f"{column} (text)", width="large")} if column in df.columns else None
    ui.table(df, hide_index=True, width="stretch", height=min(38 + 35 * len(df), 400), column_config=config)
    return st.container()  # filled once cleaning and tokenizer are chosen below


def cleaning_section(sample: Sample) -> tuple[bool, bool]:
    """Section 3: the cleaning options (lowercase, normalise whitespace), shown on an excerpt before/after."""
    st.subheader("3 · Cleaning")
    c1, c2 = st.columns(2)
    lowercase = c1.checkbox("Lowercase", key="data_lowercase", help=field_help("lowercase"))
    normalize = c2.checkbox("Normalise whitespace", key="data_normalize", help=field_help("normalize_whitespace"))
    raw, cleaned = cleaning_example(sample.texts, lowercase, normalize, strip=sample.has_records)
    before, after = st.columns(2)
    with before:
        st.markdown("**Before**")
        st.code(visible_whitespace(raw) or " ", language=None, wrap_lines=True)
    with after:
        st.markdown("**After**")
        st.code(visible_whitespace(cleaned) or " ", language=None, wrap_lines=True)
    st.caption(f"An excerpt of the first {'record' if sample.has_records else 'passage'} that cleaning changes "
               f"({len(raw):,} → {len(cleaned):,} characters). "
               "Shown visibly: ⇥ tab, ␍ carriage return, ⍽ non-breaking space, ·· runs of spaces."
               if raw != cleaned else "Cleaning changes nothing in the first records with these options.")
    return lowercase, normalize


def tokenizer_section(key: FileKey, column: str | None, sample: Sample, lowercase: bool,
                      normalize: bool) -> tuple[str, int]:
    """Section 4: the tokenizer kind and vocabulary, tried on a sentence the person can edit."""
    st.subheader("4 · Tokenizer")
    t1, t2, _ = st.columns([2, 1, 1], vertical_alignment="bottom")
    kind = t1.radio("Tokenizer", list(TOKENIZERS), format_func=TOKENIZERS.__getitem__, key="data_tokenizer",
                    horizontal=True, help=field_help("tokenizer"))
    vocab = int(st.session_state["data_vocab"])
    if kind == "bpe":
        vocab = int(t2.number_input("Vocabulary size", min_value=64, max_value=65536, step=256, key="data_vocab",
                                    help=field_help("vocab_size")))
    texts = cleaned_sample(key, column, lowercase, normalize)
    if "data_sentence" not in st.session_state:
        st.session_state["data_sentence"] = example_sentence(texts, FALLBACK_SENTENCE)
    st.session_state["data_sentence"] = st.session_state["data_sentence"]
    sentence = st.text_input("Try a sentence", key="data_sentence", max_chars=MAX_SENTENCE,
                             help="Edit it to see how the tokenizer splits any text (after the cleaning above).")
    tok_slot = st.container()
    tok: Tokenizer | None = None
    with ui.user_errors(tok_slot):
        tok = sample_tokenizer(key, column, lowercase, normalize, kind, vocab if kind == "bpe" else 0)
    if tok is None:
        st.stop()
    assert tok is not None
    shown = clean_text(sentence, lowercase=lowercase, normalize_whitespace=normalize)
    if shown:
        where = ("corpus" if tokenizer_saw_everything(sample, texts, kind)
                 else f"first {tokenizer_budget(kind):,} characters")
        draw_tokens(split_tokens(tok, shown), tok, kind, vocab, where, changed=shown != sentence)
    else:
        st.caption("Type a sentence to see its tokens.")
    return kind, vocab


def draw_tokens(split: engine.TokenSplit, tok: Tokenizer, kind: str, vocab: int, where: str, changed: bool) -> None:
    """The sentence as token chips, what it costs in tokens, and the characters the vocabulary lacks."""
    st.html(token_chips(split.pieces))
    st.caption(f"{split.chars:,} characters → {len(split.pieces):,} tokens ({split.chars_per_token:.2f} characters "
               f"per token) with a {tok.vocab_size:,}-token vocabulary trained on the {where}."
               + (f" (You asked for {vocab:,}: this text supports no more merges.)"
                  if kind == "bpe" and tok.vocab_size < vocab else "")
               + (" The sentence is shown after cleaning." if changed else "")
               + (" � marks one byte of a character the vocabulary has no whole token for: byte-level BPE can "
                  "write any text, a byte at a time." if any("\ufffd" in p for p, _, _ in split.pieces) else ""))
    if split.unknown:
        st.warning(f"{len(split.unknown)} character(s) never occur in the {where}: "
                   f"{' '.join(repr(c) for c in split.unknown)}. The char tokenizer maps them to the unknown token "
                   "(outlined in red), so a model trained on this corpus can neither read nor write them.",
                   icon=":material/warning:")


def statistics_section(slot: DeltaGenerator, key: FileKey, column: str | None, lowercase: bool, normalize: bool,
                       kind: str, vocab: int) -> None:
    """Section 2's statistics (drawn in `slot`, under the table): exact, or labelled as estimates."""
    with slot, ui.user_errors():
        stats = corpus_stats(key, column, lowercase, normalize, kind, vocab if kind == "bpe" else 0)
        exact = stats.complete
        m = st.columns(2) + st.columns(2)  # four in a row cut "Distinct characters" on an 800 px screen
        if stats.has_records:
            m[0].metric("Records", count_label(stats.records, exact), help="Non-empty records after cleaning.")
        else:
            m[0].metric("Lines", count_label(stats.lines, exact),
                        help="A .txt file is one continuous text; its last part becomes the validation split.")
        m[1].metric("Characters", count_label(stats.characters, exact))
        m[2].metric("Distinct characters", f"{stats.distinct:,}",
                    help="The char tokenizer's vocabulary: these plus end-of-text and unknown"
                         + ("." if exact else ", counted on the sample."))
        m[3].metric(f"Tokens ({kind})", count_label(stats.tokens, stats.tokens_exact),
                    help="What preparing writes: the cleaned text's tokens plus an end-of-text token per record.")
        bpe_note = (f" BPE tokens: a tokenizer trained on the first {TOKENIZER_CHARS:,} characters, scaled up; "
                    "the one prepared below learns from more text." if kind == "bpe" and not stats.tokens_exact
                    else "")
        if exact:
            st.caption("Counted on the whole file." + bpe_note)
        else:
            measured = (f"{stats.sample_records:,} records ({stats.sample_chars:,} characters)" if stats.has_records
                        else f"{stats.sample_chars:,} characters")
            st.caption(f"Estimated: measured on the first {measured}, about {stats.share:.0%} of the file, and "
                       "scaled to the whole file." + bpe_note)


def prepare_section(path: Path, column: str | None, kind: str, vocab: int, lowercase: bool, normalize: bool,
                    choice: DataConfig | None, has_records: bool) -> None:
    """Section 5: the split options, then prepare (or reuse) the token store and make it the Train page's."""
    st.subheader("5 · Use this corpus")
    with st.expander("Validation split and size"):
        a1, a2, a3 = st.columns(3)
        val_fraction = a1.slider("Validation share", min_value=0.01, max_value=0.49, step=0.01,
                                 key="data_val_fraction", help=field_help("val_fraction"))
        seed = a2.number_input("Split seed", min_value=0, step=1, key="data_seed", help=field_help("seed"))
        max_records = a3.number_input("Use only the first N records (0 = all)", min_value=0, step=1000,
                                      key="data_max_records", help=field_help("max_records"),
                                      disabled=not has_records)
    prep_slot = st.container()
    cfg: DataConfig | None = None
    with ui.user_errors(prep_slot):
        cfg = DataConfig(corpus=path.resolve(), text_column=column, tokenizer=kind, vocab_size=vocab,
                         lowercase=lowercase, normalize_whitespace=normalize, val_fraction=val_fraction,
                         seed=int(seed), max_records=int(max_records) if has_records and max_records else None)
    if cfg is None:
        st.stop()
    assert cfg is not None
    cache = ui.token_cache()
    store = cache / store_key(cfg)
    was_prepared = (store / "meta.json").is_file()
    chosen = same_choice(choice, cfg)
    label = "Use this corpus" if was_prepared else "Prepare and use this corpus"
    if st.button(label, type="primary",
                 icon=":material/check_circle:", key="data_prepare",
                 disabled=(chosen and was_prepared) or not ui.can_change(),
                 help="Tokenize the whole corpus once (reused by every run with these options) and make it the "
                      "Train page's corpus.") and ui.presenter_only():
        prepare(cfg, cache, prep_slot, was_prepared)
    if chosen and (store / "meta.json").is_file():
        st.success("The Train page will train on this corpus.", icon=":material/check_circle:")
        show_prepared(prepared_stats(str(store), (store / "meta.json").stat().st_mtime_ns), has_records)
        st.page_link("pages/train.py", label="Go to the Train page", icon=":material/fitness_center:")
    elif was_prepared:
        st.caption("Prepared earlier with these options: using it is instant.")
    else:
        st.caption("Preparing reads the whole file and writes its token ids to disk; a large corpus takes a minute.")


def prepare(cfg: DataConfig, cache: Path, slot: DeltaGenerator, was_prepared: bool) -> None:
    """Prepare the token store (with a progress bar), save the choice, and redraw the page from the top."""
    prepared = False
    with ui.user_errors(slot):
        bar = st.progress(0.0, text="Preparing the corpus…")
        prepare_cached(cfg, cache, progress=ui.progress_to(bar))
        bar.empty()
        ui.save_data_choice(cfg)
        prepared = True
    if prepared:
        st.session_state["data_flash"] = ("Reused the corpus prepared earlier with these options." if was_prepared
                                          else "Corpus prepared: the Train page will use it.")
        st.rerun()  # redraw from the top: the banner and the button now reflect the new choice


# --------------------------------------------------------------------------- the page
choice = draw_header()
path, file_slot = choose_file(choice)
mine = start_file_widgets(path, choice)
fmt, df = read_table(path, file_slot)
column, error_slot = pick_column(path, fmt, df, mine, file_slot)
key, sample = read_checked_sample(path, column, error_slot)
stats_slot = draw_table(df, column)
lowercase, normalize = cleaning_section(sample)
kind, vocab = tokenizer_section(key, column, sample, lowercase, normalize)
statistics_section(stats_slot, key, column, lowercase, normalize, kind, vocab)
prepare_section(path, column, kind, vocab, lowercase, normalize, choice, sample.has_records)
