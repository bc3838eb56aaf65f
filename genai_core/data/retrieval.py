"""Fitting a long context into the window: keep the sentences most relevant to the question.

A question-answering prompt is `Q + Context + A:` and must leave room for the answer. When it is
longer than the model's window, cutting blindly from the left loses whatever came first (often the
patient's age and sex). Instead the context is split into sentences, each scored against the
question with BM25 (the `bm25s` library), and the best ones are kept, in their original order,
until the token budget is spent. Ties (a question sharing no word with any sentence) go to earlier
sentences, since case reports open with who the patient is.

Questions and the sentences that answer them often share no word ("Which drug was given?" against
"Started Zanricitinib 2 mg PO weekly"), so the query is expanded with the words clinical prose uses
for what the question asks about (`CLINICAL_EXPANSIONS`): general clinical usage, not the wording of
any one corpus.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import bm25s
import numpy as np

# bm25s logs every index it builds at DEBUG; an app or CLI that logs at DEBUG would drown in it.
logging.getLogger("bm25s").setLevel(logging.WARNING)

# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before whitespace and an
# uppercase letter, digit or opening bracket, or at a line break. Abbreviations such as "mg." are rare
# before a capital in clinical prose, and a wrong split only makes two smaller units to rank.
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"')\]]?)\s+(?=[A-Z0-9(\[\"'])|\n+")


# A question word -> terms that sentences answering it tend to contain.
_MEDICATION = ("mg", "mcg", "dose", "given", "started", "commenced", "prescribed", "treated", "therapy",
               "iv", "po", "oral", "orally", "daily", "bd", "tds", "qds", "od", "sc", "inhaled", "nebulised")
CLINICAL_EXPANSIONS: dict[str, tuple[str, ...]] = {
    **{w: _MEDICATION for w in ("drug", "drugs", "medication", "medications", "medicine", "medicines", "treatment",
                                "treatments", "treated", "rx", "therapy", "dose", "dosage", "prescribed",
                                "antibiotic", "antibiotics", "commenced", "started", "regimen")},
    **{w: ("year", "old", "aged", "yo", "age") for w in ("age", "old", "aged", "years")},
    **{w: ("man", "woman", "male", "female", "boy", "girl", "gentleman", "lady", "he", "she", "mr", "mrs", "ms")
       for w in ("sex", "gender", "male", "female", "man", "woman")},
    **{w: ("presented", "presenting", "complaint", "complaining", "reported", "symptoms", "history", "onset")
       for w in ("symptom", "symptoms", "complaint", "complain", "presented", "presenting", "present")},
    **{w: ("discharged", "home", "day", "days", "stay", "admission", "los", "transferred")
       for w in ("discharge", "discharged", "los", "stay", "admission", "admitted", "long", "where")},
    **{w: ("oxygen", "o2", "spo2", "saturation", "saturations", "litres", "nasal", "cannula", "mask", "ventilation")
       for w in ("oxygen", "o2", "saturation", "saturations", "spo2", "ventilation", "respiratory")},
    **{w: ("outcome", "recovered", "improved", "resolved", "progress", "discharged", "died", "follow")
       for w in ("outcome", "result", "response", "progress", "recovery", "course")},
    **{w: ("diagnosis", "diagnosed", "dx", "confirmed", "consistent", "impression")
       for w in ("diagnosis", "diagnosed", "dx", "condition", "disease")},
}


def expand_query(terms: list[str]) -> list[str]:
    """The question's terms plus the clinical terms they call for (each once, the question's first)."""
    out = list(dict.fromkeys(terms))
    for t in terms:
        out += [x for x in CLINICAL_EXPANSIONS.get(t, ()) if x not in out]
    return out


@dataclass
class ContextSelection:
    """Which sentences of a context were kept, and the text they make."""

    text: str
    """The kept sentences joined by single spaces, in their original order."""
    spans: list[tuple[int, int]]
    """(start, end) character offsets of each kept sentence in the original context."""
    sentences: list[tuple[int, int]]
    """(start, end) of every sentence of the original context."""
    scores: list[float]
    """BM25 score of every sentence against the question."""

    @property
    def complete(self) -> bool:
        """Every sentence was kept."""
        return len(self.spans) == len(self.sentences)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text`, whitespace excluded; empty text gives []."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in [*_SENTENCE_END.finditer(text), None]:
        end = len(text) if m is None else m.start() + len(m.group(1) or "")  # a closing quote stays in
        piece = text[pos:end]
        stripped = piece.strip()
        if stripped:
            start = pos + (len(piece) - len(piece.lstrip()))
            spans.append((start, start + len(stripped)))
        if m is not None:
            pos = m.end()
    return spans


def sentence_scores(question: str, sentences: list[str]) -> np.ndarray:
    """BM25 relevance of each sentence to the question (0 for sentences sharing no term with it)."""
    if not sentences:
        return np.zeros(0)
    corpus = bm25s.tokenize(sentences, stopwords="en", show_progress=False)
    if not corpus.vocab:
        return np.zeros(len(sentences))
    index = bm25s.BM25()
    index.index(corpus, show_progress=False)
    query = bm25s.tokenize([question], stopwords="en", show_progress=False, return_ids=False)[0]
    query = [t for t in expand_query(query) if t in corpus.vocab]
    if not query:
        return np.zeros(len(sentences))
    return np.asarray(index.get_scores(query), dtype=np.float64)


def select_context(question: str, context: str, budget: int, count: Callable[[str], int]) -> ContextSelection:
    """The most relevant sentences of `context` whose joined text costs at most `budget` (by `count`,
    e.g. tokens). Sentences are taken best first (earlier first on equal scores) and each one that still
    fits is kept, so a long irrelevant sentence does not block shorter relevant ones.
    """
    spans = split_sentences(context)
    texts = [context[a:b] for a, b in spans]
    scores = sentence_scores(question, texts)
    order = sorted(range(len(spans)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    used = 0
    for i in order:
        cost = count(texts[i]) + (1 if kept else 0)  # +1: the space that joins it to the others
        if used + cost <= budget:
            kept.append(i)
            used += cost
    kept.sort()
    # Joined pieces can tokenize a little differently from the sum of their parts: trim until it fits.
    while kept and count(" ".join(texts[i] for i in kept)) > budget:
        kept.remove(min(kept, key=lambda i: (scores[i], -i)))
    return ContextSelection(text=" ".join(texts[i] for i in kept), spans=[spans[i] for i in kept],
                            sentences=spans, scores=[float(s) for s in scores])
