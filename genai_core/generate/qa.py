"""Question answering over a context: the prompt format, the fine-tuning examples and answering.

A QA example is `Context: {context}\\nQ: {question}\\nA: {answer}<end>` (`ModelConfig.qa_layout`; runs
fine-tuned before it put the question first), where `<end>` is the tokenizer's end-of-text token.
Fine-tuning puts the loss on the answer and the end marker only (the question and context are given, not
predicted), so the model learns to answer and then stop, and generation ends by itself. Prompts that do not
fit the window keep the context sentences most relevant to the question (`retrieval.select_context`), in
training exactly as in answering.

`QAStore` is the fine-tuning counterpart of `tokenstore.TokenStore`: every example tokenized once
into flat id files on disk (memmaps) with offsets and prompt lengths, served as padded batches with
per-token loss weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genai_core.config import DataConfig, QALayout, SampleConfig
from genai_core.data.corpus import clean_text, reading_error
from genai_core.data.retrieval import select_context
from genai_core.data.tokenization import Tokenizer, load_tokenizer
from genai_core.data.tokenstore import Batch, Progress, token_dtype
from genai_core.errors import CheckpointError, CorpusError, GenAIError
from genai_core.evaluate.scoring import NOT_STATED
from genai_core.files import atomic_write_json, read_json, staged_folder
from genai_core.generate.decoding import PromptInfo
from genai_core.generate.inspection import QA_TEMPLATE, QA_TEMPLATES
from genai_core.generate.sampling import Generation, Sampler

ANSWER_ROOM = 48
"""Tokens kept free for the answer when the context has to be shortened to fit the window."""

QA_COLUMNS = ("question", "context", "answer")
QA_FILE_TYPES = ("csv", "tsv", "jsonl", "ndjson", "parquet")
"""The table formats `read_qa_table` reads (file extensions); the pages' uploaders offer these."""
_PAD_TO = 16  # batch lengths are rounded up to this, so a compiled model sees few distinct shapes


# --------------------------------------------------------------------------- prompts
@dataclass
class QAPrompt:
    """A question and its context as the model sees them."""

    ids: list[int]
    """Prompt token ids."""
    text: str
    """Prompt text."""
    context: str
    """The context given to the model: the whole context, or the sentences kept when it did not fit."""
    sentences: list[tuple[int, int]]
    """(start, end) character offsets, in the original context, of the sentences given to the model."""
    selected: bool
    """Some sentences were left out to fit the window."""
    cropped_tokens: int = 0
    """Tokens cut from the left when even the question alone did not fit (rare: a very long question)."""
    context_at: tuple[int, int] | None = None
    """(start, end) character offsets of `context` inside `text` (None when the prompt was cropped)."""

    def token_offsets(self, tokenizer: Tokenizer) -> list[int] | None:
        """Character offset in `text` where each token starts, plus the end (len(ids) + 1 values), or None when
        the tokens' text does not add up to the prompt (a character split over tokens). A token whose text is
        not the prompt's at that point (a char tokenizer's unknown token) stands for one character."""
        offsets, pos = [0], 0
        for piece in tokenizer.token_strings(self.ids):
            pos += len(piece) if piece and self.text.startswith(piece, pos) else 1
            offsets.append(pos)
        return offsets if pos == len(self.text) else None

    def context_tokens(self, offsets: list[int]) -> tuple[int, int] | None:
        """The token range [lo, hi) holding the context (from its leading space), given `token_offsets`."""
        if self.context_at is None or not self.context:
            return None
        c0, c1 = self.context_at
        starts = offsets[:-1]
        lo = int(np.searchsorted(starts, c0 - 1))  # the first context word's token carries the space before it
        hi = int(np.searchsorted(starts, c1))
        return (lo, hi) if lo < hi else None


def prompt_text(question: str, context: str, template: str = QA_TEMPLATE) -> str:
    """The prompt in the format of `template` (one of `inspection.QA_TEMPLATES`); the answer follows `A:` after
    one space, then the end marker."""
    return template.format(question=question, context=context)


def template_for(tokenizer: Tokenizer, layout: QALayout) -> str:
    """The QA template of `layout` in characters the tokenizer knows: its line breaks become spaces for a
    tokenizer that never saw a line break (a char tokenizer of one-line records), so the model reads every
    character of the prompt instead of an unknown token. Training (`prepare_qa`) and answering both build
    prompts through this."""
    template = QA_TEMPLATES[layout]
    if tokenizer.encode("\n").unknown:
        return template.replace("\n", " ")
    return template


def build_prompt(tokenizer: Tokenizer, question: str, context: str, seq_len: int,
                 answer_room: int = ANSWER_ROOM, *, layout: QALayout, lowercase: bool = False) -> QAPrompt:
    """The prompt for `question` about `context` in `layout` (the run's `ModelConfig.qa_layout`), leaving
    `answer_room` tokens of the window free.

    Text is cleaned as corpora are (whitespace normalised; lowercased when the model was trained so).
    Sentence offsets refer to the context after that cleaning, which only changes whitespace and case.
    """
    question = clean_text(question, lowercase=lowercase)
    context = clean_text(context, lowercase=lowercase)
    limit = max(1, seq_len - min(answer_room, seq_len // 2))

    def count(text: str) -> int:
        return len(tokenizer.encode(text).ids)

    template = template_for(tokenizer, layout)
    text = prompt_text(question, context, template)
    ids = tokenizer.encode(text).ids
    if len(ids) <= limit:
        return QAPrompt(ids, text, context, [(0, len(context))] if context else [], False,
                        context_at=_context_at(text, context, template))
    budget = limit - count(prompt_text(question, "", template))
    sel = select_context(question, context, max(0, budget), count)
    text = prompt_text(question, sel.text, template)
    ids = tokenizer.encode(text).ids
    cropped = max(0, len(ids) - limit)
    if cropped:
        ids = ids[cropped:]
        text = tokenizer.decode(ids)
    return QAPrompt(ids, text, sel.text, sel.spans, True, cropped,
                    context_at=None if cropped else _context_at(text, sel.text, template))


def _context_at(text: str, context: str, template: str) -> tuple[int, int] | None:
    """Where `context` sits in the prompt `text` built from `template`: right after the template's head when the
    head holds no field (context first), else right before its tail (question first)."""
    if "{context}" not in template:
        return None
    head, tail = template.split("{context}", 1)
    if "{question}" not in head:
        return len(head), len(head) + len(context)
    if "{question}" in tail:
        return None
    end = len(text) - len(tail)
    return end - len(context), end


def find_span(context: str, answer: str) -> tuple[int, int] | None:
    """Where `answer` first occurs in `context` as whole words (exactly, else ignoring case), else anywhere (a
    span head's answer is whole words; a generated one need not be), or None when it is not a span. Whole words
    first: "he" is the pronoun, not the end of "the"."""
    answer = answer.strip()
    if not answer:
        return None
    word = re.escape(answer)
    for pattern, flags in ((rf"(?<!\w){word}(?!\w)", 0), (rf"(?<!\w){word}(?!\w)", re.IGNORECASE),
                           (word, 0), (word, re.IGNORECASE)):
        m = re.search(pattern, context, flags)
        if m:
            return m.start(), m.end()
    return None


class SpanConstraint:
    """Extractive decoding: every answer is a whole-word span of the context, or NOT_STATED.

    Tracks where the tokens generated so far occur as a contiguous run of the context's tokens; the
    next token may only extend one of those runs, or be the end marker once something was generated.
    Runs start and end on word boundaries only (given the tokens' text), so an answer never stops inside a
    word ("Colorad", "infiltrat") nor starts in one. Beside the spans, the fixed answer NOT_STATED is always
    open, so the model can say the context does not answer. A model that has learned to copy rarely needs
    any of this, but on text unlike its training data (a real case report) it turns "almost the drug name"
    into the drug name, and never invents one.
    """

    def __init__(self, context_ids: list[int], vocab_size: int, end_id: int, *,
                 pieces: list[str] | None = None, alternative: list[int] = ()) -> None:
        n = len(context_ids)
        self.context = torch.tensor(context_ids, dtype=torch.long)
        self.vocab_size = vocab_size
        self.end_id = end_id
        self.may_start, self.may_end = _word_boundaries(pieces, n)
        self.ends = torch.nonzero(self.may_start).flatten()  # the next position of each live run: any start
        self.alternative = list(alternative)
        self.alt_pos: int | None = 0 if self.alternative else None
        self.generated = 0

    @classmethod
    def for_context(cls, tokenizer: Tokenizer, context: str) -> SpanConstraint:
        # " " + context: in the prompt the context follows "Context:" and a space, and byte-level BPE
        # gives a word its leading space, so answers (which follow "A: ") share the context's tokens.
        ids = tokenizer.encode(" " + context).ids
        pieces = tokenizer.token_strings(ids)
        if "".join(pieces) != tokenizer.decode(ids):  # a character split over tokens: no reliable offsets
            pieces = None
        return cls(ids, tokenizer.vocab_size, tokenizer.eot_id, pieces=pieces,
                   alternative=tokenizer.encode(" " + NOT_STATED).ids)

    def allowed(self) -> torch.Tensor:
        """(vocab,) bool: the tokens that keep the answer a whole-word span of the context or NOT_STATED."""
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        ends = self.ends[self.ends < len(self.context)]
        mask[self.context[ends]] = True
        if self.generated and bool(self.may_end[self.ends].any()):
            mask[self.end_id] = True
        if self.alt_pos is not None:
            if self.alt_pos < len(self.alternative):
                mask[self.alternative[self.alt_pos]] = True
            else:
                mask[self.end_id] = True
        return mask

    def update(self, token: int) -> None:
        ends = self.ends[self.ends < len(self.context)]
        self.ends = ends[self.context[ends] == token] + 1
        if self.alt_pos is not None:
            on_track = self.alt_pos < len(self.alternative) and self.alternative[self.alt_pos] == token
            self.alt_pos = self.alt_pos + 1 if on_track else None
        self.generated += 1


def _word_boundaries(pieces: list[str] | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(may_start, may_end) over token positions 0..n: an answer may start at token i when a word starts there
    (the previous token ends, or token i starts, with a character that is not a letter or digit, or a letter
    meets a digit), and end before token e (e = n: the end of the context) under the same rule. Without the
    tokens' text, anywhere."""
    if pieces is None:
        return torch.ones(n + 1, dtype=torch.bool), torch.ones(n + 1, dtype=torch.bool)

    def boundary(left: str, right: str) -> bool:
        a, b = left[-1:], right[:1]
        # Letters meeting digits count as a boundary: ward notes glue them ("52M", "40mg"), and the age is "52".
        return not (a.isalnum() and b.isalnum()) or a.isdigit() != b.isdigit()

    cut = [True] + [boundary(pieces[i - 1], pieces[i]) for i in range(1, n)] + [True]
    may_start = torch.tensor(cut, dtype=torch.bool)
    may_start[n] = False  # nothing starts at the end
    return may_start, torch.tensor(cut, dtype=torch.bool)


LOW_CONFIDENCE = 0.5
"""An answer whose tokens' geometric-mean probability is below this is shown as a low-confidence answer."""


def check_question(question: str, context: str) -> None:
    """Refuse what no model can answer from: an empty context, or a question without a word in it."""
    if not context.strip():
        raise GenAIError("the context is empty: paste the clinical paragraph the question is about")
    if not any(ch.isalnum() for ch in question):
        raise GenAIError(f"{question.strip()!r} has no words: ask a question, e.g. “How old is the patient?”")


def is_not_stated(text: str) -> bool:
    """The answer says the context does not hold one (NOT_STATED, however cased or spaced)."""
    return " ".join(text.split()).lower() == NOT_STATED


def answer_confidence(probs: list[float]) -> float | None:
    """The geometric mean of the answer tokens' probabilities (how sure the model was, per token), or None."""
    if not probs:
        return None
    return math.exp(sum(math.log(max(p, 1e-12)) for p in probs) / len(probs))


def answer_config(cfg: SampleConfig | None = None) -> SampleConfig:
    """Decoding for answers: greedy, at most ANSWER_ROOM tokens, ending at the end marker or a new line."""
    if cfg is not None:
        return cfg
    return SampleConfig(temperature=0.0, max_new_tokens=ANSWER_ROOM, stop=["\n"], stop_at_end=True)


def answer_stream(sampler: Sampler, question: str, context: str, cfg: SampleConfig | None = None,
                  *, lowercase: bool = False, extractive: bool = True,
                  with_probs: bool = False) -> tuple[QAPrompt, Generation]:
    """Start answering: the prompt as the model sees it, and the streaming generation of the answer.

    `extractive` (the default) constrains the answer to a span of the context the model was given
    (`SpanConstraint`); off, the model may write anything.
    """
    cfg = answer_config(cfg)
    tok = sampler.tokenizer
    prompt = build_prompt(tok, question, context, sampler.model.config.seq_len,
                          min(cfg.max_new_tokens, ANSWER_ROOM), layout=sampler.model.config.qa_layout,
                          lowercase=lowercase)
    unknown = tok.encode(prompt.text).unknown
    info = PromptInfo(tokens=len(prompt.ids), cropped_tokens=prompt.cropped_tokens, unknown_chars=unknown,
                      text=prompt.text)
    constraint = SpanConstraint.for_context(tok, prompt.context) if extractive and prompt.context else None
    return prompt, Generation(sampler, prompt.ids, info, cfg, with_probs=with_probs, constraint=constraint)


@dataclass
class QAAnswer:
    """A generated answer and where it came from."""

    text: str
    prompt: QAPrompt
    finish_reason: str | None
    span: tuple[int, int] | None
    """Where the answer occurs in the (cleaned) original context, when it is a span of it."""


def answer(sampler: Sampler, question: str, context: str, cfg: SampleConfig | None = None,
           *, lowercase: bool = False, extractive: bool = True) -> QAAnswer:
    """Answer `question` from `context` (greedy unless `cfg` says otherwise; a span of the context
    unless `extractive` is off)."""
    prompt, gen = answer_stream(sampler, question, context, cfg, lowercase=lowercase, extractive=extractive)
    for _ in gen:
        pass
    text = gen.text.strip()
    return QAAnswer(text, prompt, gen.finish_reason, find_span(clean_text(context, lowercase=lowercase), text))


def reader_targets(prompt: QAPrompt, offsets: list[int] | None, answer: str) -> tuple[int, int, int, int, int]:
    """What the span head learns from one example: (answer position, context token range lo, hi, the answer's
    first and last token). An answer NOT_STATED points at the answer position itself; an answer that is not a
    whole-token span of the context the model was given gets -1 (no span loss), as does a cropped prompt."""
    query = len(prompt.ids) - 1
    ctx = prompt.context_tokens(offsets) if offsets is not None else None
    lo, hi = ctx if ctx is not None else (0, 0)
    if is_not_stated(answer):
        return query, lo, hi, query, query
    if ctx is None or prompt.context_at is None:
        return query, lo, hi, -1, -1
    span = find_span(prompt.context, answer)
    if span is None:
        return query, lo, hi, -1, -1
    starts = offsets[:-1]
    a0, a1 = span[0] + prompt.context_at[0], span[1] + prompt.context_at[0]
    first = int(np.searchsorted(starts, a0, side="right")) - 1
    last = int(np.searchsorted(starts, a1 - 1, side="right")) - 1
    lead = prompt.text[offsets[first]:a0]
    if lead.strip() or offsets[last + 1] != a1 or not lo <= first <= last < hi:
        return query, lo, hi, -1, -1  # the answer starts or ends inside a token: no whole-token span to point at
    return query, lo, hi, first, last


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
        self.reader = False
        """Serve the span head's and kind head's targets with each batch (the trainer sets this when the model
        has those heads)."""
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

    def batch_of(self, split: str, idx: np.ndarray, device: torch.device | None = None) -> Batch:
        ids, offsets, plen = self.splits[split]
        lengths = offsets[idx + 1] - offsets[idx]
        T = int(min(self.meta["seq_len"], -(-int(lengths.max() - 1) // _PAD_TO) * _PAD_TO))
        eot = self.tokenizer.eot_id
        x = np.full((len(idx), T), eot, dtype=np.int64)
        y = np.full((len(idx), T), eot, dtype=np.int64)
        w = np.zeros((len(idx), T), dtype=np.float32)
        for row, (i, n) in enumerate(zip(idx, lengths, strict=True)):
            ex = ids[offsets[i]:offsets[i] + n]
            x[row, : n - 1] = ex[:-1]
            y[row, : n - 1] = ex[1:]
            w[row, plen[i] - 1: n - 1] = 1.0  # targets from the answer's first token to the end marker
        arrays = [x, y, w]
        if self.reader:
            reader, kind = self.readers[split]
            arrays += [reader[idx].astype(np.int64), kind[idx].astype(np.int64)]
        out = [torch.from_numpy(a) for a in arrays]
        if device is not None and device.type == "cuda":
            out = [t.pin_memory().to(device, non_blocking=True) for t in out]
        elif device is not None and device.type != "cpu":
            out = [t.to(device) for t in out]
        return Batch(*out)

    def eval_specs(self, n_batches: int, batch_size: int, seq_len: int, rng: np.random.Generator) -> list[np.ndarray]:
        """The validation examples used for every evaluation: the first n_batches x batch_size, in order."""
        n = min(self.examples("val"), n_batches * batch_size)
        return [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]

    def eval_batch(self, spec: np.ndarray, seq_len: int, device: torch.device | None = None) -> Batch:
        return self.batch_of("val", spec, device)

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
    if cfg.val_corpus is not None:
        val_df = read_qa_table(cfg.val_corpus)
    else:
        if len(train_df) < 2:
            raise CorpusError(f"{Path(cfg.corpus).name} holds {len(train_df)} QA record(s); at least 2 are "
                              "needed to hold some out for validation (or give a validation file)")
        is_val = np.random.default_rng(cfg.seed).random(len(train_df)) < cfg.val_fraction
        if not is_val.any():
            is_val[-1] = True
        if is_val.all():
            is_val[0] = False
        val_df, train_df = train_df[is_val].reset_index(drop=True), train_df[~is_val].reset_index(drop=True)
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
                readers.append(reader_targets(p, p.token_offsets(tokenizer), a))
                kind_ids.append(kind_index.get(k.strip(), -1))
                chunks.append(np.asarray(p.ids + answer_ids, dtype=dtype))
                plens.append(len(p.ids))
                offsets.append(offsets[-1] + len(p.ids) + len(answer_ids))
            if not plens:
                raise CorpusError(f"no usable QA examples in the {name} split: every record was empty or its "
                                  f"answer did not fit a window of {seq_len} tokens")
            (np.concatenate(chunks) if chunks else np.zeros(0, dtype)).tofile(tmp / f"{name}.bin")
            np.save(tmp / f"{name}.offsets.npy", np.asarray(offsets, dtype=np.int64))
            np.save(tmp / f"{name}.prompt_len.npy", np.asarray(plens, dtype=np.int32))
            np.save(tmp / f"{name}.reader.npy", np.asarray(readers, dtype=np.int32).reshape(-1, 5))
            np.save(tmp / f"{name}.kind.npy", np.asarray(kind_ids, dtype=np.int16))
            stats[name] = {"examples": len(plens), "tokens": offsets[-1], "skipped": skipped,
                           "context_selected": selected,
                           "answer_spans": int(sum(r[3] >= 0 for r in readers))}
        stats["train_tokens"] = stats["train"]["tokens"]
        stats["mean_example_tokens"] = stats["train"]["tokens"] / stats["train"]["examples"]
        stats["seconds"] = round(time.perf_counter() - t0, 3)
        shutil.copyfile(tokenizer_path, tmp / "tokenizer.json")
        atomic_write_json(tmp / "meta.json", {"format": "genai-qa-store/2", "dtype": dtype.name, "seq_len": seq_len,
                                              "kinds": kinds, "data": json.loads(cfg.model_dump_json()),
                                              "stats": stats})
    report(1.0, "done")
    return QAStore(out)


def check_parent(parent: Path | str) -> None:
    """A fine-tune's parent must be a run folder with weights."""
    from genai_core.runs.folder import Run

    run = Run(parent)
    if not run.exists():
        raise GenAIError(f"parent run {parent} not found (a qa fine-tune starts from a pretrained run folder)")
    if run.latest_checkpoint() is None:
        raise GenAIError(f"parent run {run.name} has no checkpoint yet: train it first")
