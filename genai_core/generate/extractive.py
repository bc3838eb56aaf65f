"""Extractive answers from the span head: the best whole-word span of the context, or "not stated".

A model fine-tuned with `ModelConfig.span_head` reads a question in one forward pass: from the prompt's last
position (where the generated answer would begin) it scores every context token as the answer's first and
last token, and the position itself as "the context does not say" (SQuAD 2.0's null answer). The answer is
the span of highest start + end log-probability among spans that start and end on word boundaries, at most
`ANSWER_ROOM` tokens long; it is "not stated" when the null answer scores higher. Every answer is therefore a
whole-word span of the context or NOT_STATED, with a probability a reader can be shown; where the text gives the
patient's sex only by a pronoun and the span head points at it, the answer is that sex (`SpanAnswer.read_from`).

With `ModelConfig.kind_head`, the same pass also says what the question asks (age, drug, dose, ...), and a kind
with an answer shape (`scoring.ANSWER_SHAPES`: a sex word for sex, a number for age) is answered with the best span
of that shape, or "not stated" (where the context says it in a specific shape, "her" or "3-month-old", that
span even where the null answer scores higher: `scoring.STATED_SHAPES`). A question read as a kind whose subject
it never names (`scoring.names_subject`: "Which school does she attend?" read as sex) is out of scope.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from genai_core.data.corpus import clean_text
from genai_core.data.tokenization import Tokenizer
from genai_core.evaluate.scoring import (
    ANSWER_SHAPES,
    NOT_STATED,
    OUT_OF_SCOPE_KIND,
    STATED_SHAPES,
    names_subject,
    pronoun_sex,
)
from genai_core.generate.qa import QAAnswer, _word_boundaries
from genai_core.model import unwrap
from genai_core.qa.prompt import ANSWER_ROOM, QAPrompt, build_prompt, find_span
from genai_core.qa.reader import QAGPT


@dataclass
class SpanChoice:
    """One candidate answer of the span head."""

    text: str
    probability: float
    """P(start) x P(end) under the span head: how sure it is of exactly this span."""
    span: tuple[int, int] | None
    """Where the text occurs in the (cleaned) context."""


@dataclass
class SpanAnswer(QAAnswer):
    """The span head's answer (`text`: the best span or NOT_STATED) and what else it considered."""

    confidence: float = 0.0
    """Probability of the answer given: the span's, or the null answer's when `text` is NOT_STATED."""
    not_stated_probability: float = 0.0
    """Probability the span head gives to "the context does not say"."""
    choices: list[SpanChoice] = field(default_factory=list)
    """The best spans, most probable first (the answer among them unless it is NOT_STATED)."""
    kind: str | None = None
    """What the question asks, when the model has a kind head."""
    kind_confidence: float | None = None
    out_of_scope: bool = False
    """The kind head read the question as OUT_OF_SCOPE_KIND (about none of the kinds the model was trained on):
    the answer is NOT_STATED whatever span the span head would pick; `choices` still says what it weighed."""
    overruled: str | None = None
    """The kind the kind head read, where the question does not name that kind's subject
    (`scoring.names_subject`: "Which school does she attend?" read as sex): then `kind` is OUT_OF_SCOPE_KIND."""
    read_from: str | None = None
    """The pronoun the answer (`male` or `female`) was read from, where the text gives the sex only so; `span` is
    the pronoun's. The one answer besides NOT_STATED that is not a span of the context."""


def has_span_head(model: torch.nn.Module) -> bool:
    raw = unwrap(model)
    return isinstance(raw, QAGPT) and raw.config.span_head


@dataclass
class _Reading:
    """One forward pass over a question's prompt: what the span and kind heads read from."""

    prompt: QAPrompt
    hidden: torch.Tensor
    """(1, T, C) final hidden states."""
    query: int
    """The answer position (the prompt's last token)."""


@torch.no_grad()
def _read(raw: QAGPT, tokenizer: Tokenizer, question: str, context: str, lowercase: bool,
          prompt: QAPrompt | None) -> _Reading:
    if prompt is None:
        prompt = build_prompt(tokenizer, question, context, raw.config.seq_len, ANSWER_ROOM,
                              layout=raw.config.qa_layout, lowercase=lowercase)
    device = next(raw.parameters()).device
    was_training = raw.training
    raw.eval()
    try:
        hidden = raw.hidden(torch.tensor([prompt.ids], dtype=torch.long, device=device))
    finally:
        raw.train(was_training)
    return _Reading(prompt, hidden, len(prompt.ids) - 1)


@torch.no_grad()
def _kind(raw: QAGPT, reading: _Reading) -> tuple[str, float] | None:
    """The kind head's reading of the question and its probability (None without a kind head)."""
    query = torch.tensor([reading.query], device=reading.hidden.device)
    logits = raw.kind_logits(reading.hidden, query)
    if logits is None:
        return None
    p, i = logits[0].softmax(-1).max(-1)
    return raw.config.question_kinds[int(i)], float(p)


SHAPE_CONFIDENCE = 0.5
"""The kind head's probability above which its kind's answer shape (`scoring.ANSWER_SHAPES`) binds the span."""
SHAPED_CANDIDATES = 50
"""Spans weighed, most probable first, for the best one of the kind's shape."""
ALL_SPANS = 1 << 30
"""Every valid span (searched for a stated shape: `scoring.STATED_SHAPES`)."""


@torch.no_grad()
def read_answer(model: torch.nn.Module, tokenizer: Tokenizer, question: str, context: str, *,
                lowercase: bool = False, top: int = 3, prompt: QAPrompt | None = None) -> SpanAnswer:
    """Answer `question` from `context` with the model's span head (see the module docstring); `top` spans are
    kept as choices. `prompt`: the question's `qa.build_prompt`, when the caller has built it already."""
    raw = unwrap(model)
    if not has_span_head(raw):
        raise ValueError("this model has no span head (fine-tune it with span_head on)")
    reading = _read(raw, tokenizer, question, context, lowercase, prompt)
    prompt, q = reading.prompt, reading.query
    offsets = prompt.token_offsets(tokenizer)
    ctx = prompt.context_tokens(offsets) if offsets is not None else None
    lo, hi = ctx if ctx is not None else (0, 0)
    device = reading.hidden.device
    start, end = raw.span_logits(reading.hidden, torch.tensor([q], device=device), torch.tensor([lo], device=device),
                                 torch.tensor([hi], device=device))
    log_start, log_end = start[0].log_softmax(-1).cpu(), end[0].log_softmax(-1).cpu()
    kind, kind_p = _kind(raw, reading) or (None, None)
    overruled = None
    if not names_subject(question, kind):  # read as a kind whose subject the question never names
        overruled, kind = kind, OUT_OF_SCOPE_KIND
    shape = ANSWER_SHAPES.get(kind or "") if (kind_p or 0.0) >= SHAPE_CONFIDENCE else None
    p_null = math.exp(float(log_start[q] + log_end[q]))
    choices: list[SpanChoice] = []
    said = False  # the answer is a span of a stated shape, whatever the null answer scores
    if ctx is not None and offsets is not None:
        clean_context = clean_text(context, lowercase=lowercase)
        pieces = tokenizer.token_strings(prompt.ids[lo:hi])

        def spans(pool: int, fits: Callable[[str], bool] | None, want: int) -> list[SpanChoice]:
            """The `want` most probable spans of the `pool` most probable that `fits` (every one when None)."""
            out = []
            for s, e, logp in best_spans(log_start[lo:hi], log_end[lo:hi], pieces, pool):
                text = prompt.text[offsets[lo + s]:offsets[lo + e + 1]].strip()
                if fits is None or fits(text):
                    out.append(SpanChoice(text, math.exp(logp), find_span(clean_context, text)))
                    if len(out) == want:
                        break
            return out

        choices = spans(top if shape is None else SHAPED_CANDIDATES, shape, top)
        if shape is not None and kind in STATED_SHAPES and (not choices or p_null >= choices[0].probability):
            # The span head leans to "not stated", yet the context says it ("her", "3-month-old"): weigh every
            # span, since the head that leans so may rank the pronoun low.
            stated = spans(ALL_SPANS, STATED_SHAPES[kind], 1)
            if stated:
                choices = [stated[0], *(c for c in choices if c.text != stated[0].text)][:top]
                said = True
    if kind == OUT_OF_SCOPE_KIND:
        return SpanAnswer(NOT_STATED, prompt, "span", None, confidence=kind_p or 0.0, not_stated_probability=p_null,
                          choices=choices, kind=kind, kind_confidence=kind_p, out_of_scope=True,
                          overruled=overruled)
    if not choices or (p_null >= choices[0].probability and not said):
        return SpanAnswer(NOT_STATED, prompt, "span", None, confidence=p_null, not_stated_probability=p_null,
                          choices=choices, kind=kind, kind_confidence=kind_p)
    best = choices[0]
    sex = pronoun_sex(best.text)
    return SpanAnswer(sex or best.text, prompt, "span", best.span, confidence=best.probability,
                      not_stated_probability=p_null, choices=choices, kind=kind, kind_confidence=kind_p,
                      read_from=best.text if sex else None)


def understood_as(model: torch.nn.Module, tokenizer: Tokenizer, question: str, context: str, *,
                  lowercase: bool = False, prompt: QAPrompt | None = None) -> tuple[str, float] | None:
    """What the kind head reads `question` (about `context`) as asking, and its probability; None without one.
    For answers that are generated rather than read off by the span head. `prompt` as in `read_answer`."""
    raw = unwrap(model)
    if not isinstance(raw, QAGPT) or not hasattr(raw, "kind_head"):
        return None
    return _kind(raw, _read(raw, tokenizer, question, context, lowercase, prompt))


_OPENING = "([<>~+-£$#"
_CLOSING = ")]%"


def best_spans(log_start: torch.Tensor, log_end: torch.Tensor, pieces: list[str] | None, top: int,
               max_tokens: int = ANSWER_ROOM) -> list[tuple[int, int, float]]:
    """The `top` spans (first, last token, log-probability) of highest log_start[first] + log_end[last], over
    spans of at most `max_tokens` tokens that start and end on word boundaries (given the tokens' text)."""
    n = len(log_start)
    if n == 0:
        return []
    may_start, may_end = _word_boundaries(pieces, n)
    may_start, may_end = may_start[:n].clone(), may_end[1:n + 1].clone()  # per token: first / last of a span
    if pieces is not None:  # nor does an answer begin or end on punctuation (": sepsis", "Calfiformin.")
        may_start &= torch.tensor([p.strip()[:1].isalnum() or p.strip()[:1] in _OPENING for p in pieces])
        may_end &= torch.tensor([p.strip()[-1:].isalnum() or p.strip()[-1:] in _CLOSING for p in pieces])
    first = torch.arange(n)[:, None]
    last = torch.arange(n)[None, :]
    valid = (last >= first) & (last - first < max_tokens) & may_start[:, None] & may_end[None, :]
    scores = (log_start[:, None] + log_end[None, :]).masked_fill(~valid, float("-inf"))
    k = min(top, int(valid.sum()))
    if k == 0:
        return []
    values, flat = scores.flatten().topk(k)
    return [(int(i) // n, int(i) % n, float(v)) for v, i in zip(values, flat, strict=True) if math.isfinite(v)]
