"""Answering a question over a context by decoding: the answer streams in token by token, as a span of the
context (`SpanConstraint`, the default) or free text. A model with a span head can also read its answer off in
one pass (`extractive`). The prompt format is `qa.prompt`'s."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genai_core.config import SampleConfig
from genai_core.data.corpus import clean_text
from genai_core.data.tokenization import Tokenizer
from genai_core.evaluate.scoring import NOT_STATED
from genai_core.generate.decoding import PromptInfo
from genai_core.generate.sampling import Generation, Sampler
from genai_core.qa.prompt import ANSWER_ROOM, QAPrompt, build_prompt, find_span


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
