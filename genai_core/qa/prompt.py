"""The QA prompt: a question and its context laid out as the model reads them, in training and in answering.

A QA example is `Context: {context}\\nQ: {question}\\nA: {answer}<end>` (`ModelConfig.qa_layout`; runs
fine-tuned before it put the question first), where `<end>` is the tokenizer's end-of-text token. Prompts that
do not fit the window keep the context sentences most relevant to the question (`retrieval.select_context`),
in training exactly as in answering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from genai_core.config import QALayout
from genai_core.data.corpus import clean_text
from genai_core.data.retrieval import select_context
from genai_core.data.tokenization import Tokenizer
from genai_core.errors import GenAIError
from genai_core.evaluate.scoring import NOT_STATED
from genai_core.generate.inspection import QA_TEMPLATE, QA_TEMPLATES

ANSWER_ROOM = 48
"""Tokens kept free for the answer when the context has to be shortened to fit the window."""


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


def check_question(question: str, context: str) -> None:
    """Refuse what no model can answer from: an empty context, or a question without a word in it."""
    if not context.strip():
        raise GenAIError("the context is empty: paste the clinical paragraph the question is about")
    if not any(ch.isalnum() for ch in question):
        raise GenAIError(f"{question.strip()!r} has no words: ask a question, e.g. “How old is the patient?”")


def is_not_stated(text: str) -> bool:
    """The answer says the context does not hold one (NOT_STATED, however cased or spaced)."""
    return " ".join(text.split()).lower() == NOT_STATED
