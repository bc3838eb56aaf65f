"""Extractive answers from the span head: the best whole-word span of the context, or "not stated".

A model fine-tuned with `ModelConfig.span_head` reads a question in one forward pass: from the prompt's last
position (where the generated answer would begin) it scores every context token as the answer's first and
last token, and the position itself as "the context does not say" (SQuAD 2.0's null answer). The answer is
the span of highest start + end log-probability among spans that start and end on word boundaries, at most
`ANSWER_ROOM` tokens long; it is "not stated" when the null answer scores higher. Every answer is therefore a
whole-word span of the context or NOT_STATED, with a probability a reader can be shown.

With `ModelConfig.kind_head`, the same pass also says what the question asks (age, drug, dose, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from genai_core.data.corpus import clean_text
from genai_core.data.tokenization import Tokenizer
from genai_core.evaluate.scoring import NOT_STATED
from genai_core.generate.qa import ANSWER_ROOM, QAAnswer, _word_boundaries, build_prompt, find_span
from genai_core.model import GPT, unwrap


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


def has_span_head(model: torch.nn.Module) -> bool:
    raw = unwrap(model)
    return isinstance(raw, GPT) and raw.config.span_head


@torch.no_grad()
def read_answer(model: torch.nn.Module, tokenizer: Tokenizer, question: str, context: str, *,
                lowercase: bool = False, top: int = 3) -> SpanAnswer:
    """Answer `question` from `context` with the model's span head (see the module docstring); `top` spans are
    kept as choices."""
    raw = unwrap(model)
    if not has_span_head(raw):
        raise ValueError("this model has no span head (fine-tune it with span_head on)")
    prompt = build_prompt(tokenizer, question, context, raw.config.seq_len, ANSWER_ROOM, lowercase=lowercase)
    device = next(raw.parameters()).device
    was_training = raw.training
    raw.eval()
    try:
        idx = torch.tensor([prompt.ids], dtype=torch.long, device=device)
        h = raw.hidden(idx)
        query = torch.tensor([len(prompt.ids) - 1], device=device)
        offsets = prompt.token_offsets(tokenizer)
        ctx = prompt.context_tokens(offsets) if offsets is not None else None
        lo, hi = ctx if ctx is not None else (0, 0)
        kind_logits = raw.kind_logits(h, query)
        start, end = raw.span_logits(h, query, torch.tensor([lo], device=device), torch.tensor([hi], device=device))
    finally:
        raw.train(was_training)
    log_start, log_end = start[0].log_softmax(-1).cpu(), end[0].log_softmax(-1).cpu()
    null = float(log_start[query] + log_end[query])
    choices: list[SpanChoice] = []
    if ctx is not None and offsets is not None:
        clean_context = clean_text(context, lowercase=lowercase)
        pieces = tokenizer.token_strings(prompt.ids[lo:hi])
        for s, e, logp in best_spans(log_start[lo:hi], log_end[lo:hi], pieces, top):
            text = prompt.text[offsets[lo + s]:offsets[lo + e + 1]].strip()
            choices.append(SpanChoice(text, math.exp(logp), find_span(clean_context, text)))
    kind, kind_p = None, None
    if kind_logits is not None:
        probs = kind_logits[0].softmax(-1)
        kind_p, i = (float(v) for v in probs.max(-1))
        kind = raw.config.question_kinds[int(i)]
    p_null = math.exp(null)
    if not choices or p_null >= choices[0].probability:
        return SpanAnswer(NOT_STATED, prompt, "span", None, confidence=p_null, not_stated_probability=p_null,
                          choices=choices, kind=kind, kind_confidence=kind_p)
    best = choices[0]
    return SpanAnswer(best.text, prompt, "span", best.span, confidence=best.probability,
                      not_stated_probability=p_null, choices=choices, kind=kind, kind_confidence=kind_p)


_OPENING = "([<>~+-£$#"
_CLOSING = ")]%"


@torch.no_grad()
def understood_as(model: torch.nn.Module, tokenizer: Tokenizer, question: str, context: str, *,
                  lowercase: bool = False) -> tuple[str, float] | None:
    """What the kind head reads `question` (about `context`) as asking, and its probability; None without one.
    For answers that are generated rather than read off by the span head."""
    raw = unwrap(model)
    if not isinstance(raw, GPT) or not raw.config.question_kinds or not hasattr(raw, "kind_head"):
        return None
    prompt = build_prompt(tokenizer, question, context, raw.config.seq_len, ANSWER_ROOM, lowercase=lowercase)
    device = next(raw.parameters()).device
    was_training = raw.training
    raw.eval()
    try:
        h = raw.hidden(torch.tensor([prompt.ids], dtype=torch.long, device=device))
        logits = raw.kind_logits(h, torch.tensor([len(prompt.ids) - 1], device=device))
    finally:
        raw.train(was_training)
    assert logits is not None
    p, i = logits[0].softmax(-1).max(-1)
    return raw.config.question_kinds[int(i)], float(p)


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
