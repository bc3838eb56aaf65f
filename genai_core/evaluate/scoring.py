"""Answer scoring for extractive question answering: exact match, token F1 and ROUGE-L.

Exact match and F1 follow the SQuAD v1.1 evaluation script (Rajpurkar et al. 2016): both answers are
normalised (lowercase, punctuation removed, the articles a/an/the removed, whitespace collapsed),
EM asks for equal strings, F1 is the harmonic mean of precision and recall over the bag of tokens.
Two deliberate departures: a decimal point between two digits is kept, because SQuAD's rule turns
"2.5 mg" into "25 mg" and a dose ten times too large must not count as an exact match; and a lone pronoun
answer ("she") reads as the sex it gives ("female"), the answer where a text gives the sex by pronouns alone.

ROUGE-L (Lin 2004) is the F-measure of the longest common subsequence of tokens, from Google's
`rouge-score` package with its own tokenizer (lowercase, runs of letters and digits) and no stemming:
unlike F1 it rewards words in the right order.

Scales: the per-answer functions return fractions in [0, 1]; `aggregate` returns means in percent
(0-100), as the SQuAD script reports them. Everything the evaluation saves or shows is in percent.

Abstention: the answer to a question its context does not answer is the fixed string NOT_STATED (SQuAD 2.0's
"no answer"); the QA data, the model's decoding and the evaluation all use this one string.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Punctuation, except a '.' that sits between two digits (a decimal point).
_PUNCTUATION = re.compile(rf"(?!(?<=\d)\.(?=\d))[{re.escape(string.punctuation)}]")

NOT_STATED = "not stated"
"""The answer to a question its context does not answer: one fixed string, trained like any answer, which the Chat
shows as "not stated in the context" and the evaluation counts as an abstention."""

OUT_OF_SCOPE_KIND = "other"
"""The question kind of a question that is about none of the things a QA model was trained to answer (a name,
a job, the weather, a joke): a model whose kind head reads a question so answers NOT_STATED, whatever its span
head would pick, and the Chat says what the model does answer."""

SEX_OF_PRONOUN = {"he": "male", "him": "male", "his": "male", "she": "female", "her": "female", "hers": "female"}
"""A lone pronoun is an answer only where the text gives the patient's sex by pronouns alone ("...; she had been
well until then"): the span head points at it, the reader answers its sex (`pronoun_sex`), and the scoring counts
the pronoun and the sex word as one answer."""


def pronoun_sex(text: str) -> str | None:
    """`male` or `female` when `text` is one lone pronoun, else None."""
    return SEX_OF_PRONOUN.get(text.strip().lower().strip(string.punctuation))


SEX_WORDS = {"female": frozenset({"woman", "female", "lady", "girl", "f", "she", "her", "hers"}),
             "male": frozenset({"man", "male", "gentleman", "boy", "m", "he", "him", "his"})}
"""Words that say the patient's sex, whatever else a span holds ("58-year-old woman", "42F" excepted)."""


def sex_in(text: str, lexicon: dict[str, frozenset[str]] = SEX_WORDS) -> str | None:
    """`male` or `female` when the words of `text` name one sex (and not the other) in `lexicon`, else None."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    found = [sex for sex, said in lexicon.items() if words & said]
    return found[0] if len(found) == 1 else None


ANSWER_SHAPES: dict[str, Callable[[str], bool]] = {
    "sex": lambda text: sex_in(text) is not None and len(text.split()) <= 3,
    "age": lambda text: any(ch.isdigit() for ch in text),
}
"""What an answer of a kind looks like: a sex word for `sex` ("woman", "she", "58-year-old man"), a number for
`age`. The span head answers a question its kind head reads as one of these with the best span of that shape, or
"not stated": never "63" for the sex or "IV" for the age (`generate.extractive.read_answer`)."""
AGE_PHRASE = re.compile(r"\d+\s*-?\s*(?:years?|yrs?|months?|weeks?|days?)[\s-]*old|\baged?\s+\d+"
                        r"|\b\d+\s*(?:yo|y/o|years?|yrs?)\b|\b\d+\s*[mf]\b", re.IGNORECASE)
"""How a text gives an age: "58-year-old", "3 months old", "aged 62", "62 years", "45 yo", "70M"."""
_ARTICLE = frozenset({"a", "an", "the"})


def _states_age(text: str) -> bool:
    """An age phrase alone, after an article: "a 3-month-old", "aged 62", "45 yo" (not "3-month-old was seen")."""
    words = text.strip(string.punctuation + " ").split()
    return AGE_PHRASE.fullmatch(" ".join(w for w in words if w.lower() not in _ARTICLE) or "-") is not None


_ANY_SEX_WORD = SEX_WORDS["female"] | SEX_WORDS["male"]


def _states_sex(text: str) -> bool:
    """A sex word or pronoun, after an article or an age phrase: "she", "the woman", "58-year-old man", "70M"."""
    words = text.lower().strip(string.punctuation + " ").split()
    if not words:
        return False
    last = words[-1].strip(string.punctuation)
    return (last in _ANY_SEX_WORD or re.fullmatch(r"\d+[mf]", last) is not None) and all(
        w in _ARTICLE or AGE_PHRASE.fullmatch(w) for w in words[:-1])


STATED_SHAPES: dict[str, Callable[[str], bool]] = {"sex": _states_sex, "age": _states_age}
"""Shapes specific enough that a span of them in the context states the answer: a sex word or a pronoun about the
patient says the sex, "3-month-old" or "aged 62" says the age (where any number would not: doses, vitals). A
question read as such a kind is answered with the best span of this shape even where the span head's null answer
scores higher; "not stated" only where the context holds none."""


SUBJECT_WORDS: dict[str, frozenset[str]] = {
    "sex": frozenset({"sex", "gender", "male", "female", "man", "men", "woman", "women", "boy", "girl", "gentleman",
                      "gent", "lady", "ladies", "m", "f"}),
}
"""Words a question of a kind names its subject with. Every sex question the generator writes, in every wording and
split, names one (a test checks); "Which school does she attend?" or "Who performed the endoscopy?" names none, yet a
kind head that learned "a question about her" may read it as sex."""


def names_subject(question: str, kind: str | None) -> bool:
    """Whether `question` names the subject of `kind` (`SUBJECT_WORDS`; kinds without a list always do): a word of
    the list, a plural of one ("males", "sexes"), or a slip of the keys of a longer one ("gedner", "femle")."""
    subject = SUBJECT_WORDS.get(kind or "")
    if subject is None:
        return True
    for word in re.findall(r"[a-z]+", question.lower()):
        if word in subject or (len(word) > 3 and any(word.startswith(w) for w in subject if len(w) >= 3 and
                                                     w not in ("man", "men"))):
            return True
        if len(word) >= 5 and any(len(w) >= 5 and SequenceMatcher(None, word, w).ratio() >= 0.8 for w in subject):
            return True
    return False


METRICS = ("exact_match", "f1", "rougeL")
"""Keys of the aggregated metrics, in the order they are shown."""


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation (not decimal points), articles and extra whitespace; a
    lone pronoun reads as its sex (`pronoun_sex`)."""
    text = pronoun_sex(text) or text.lower()
    text = _PUNCTUATION.sub("", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both answers are equal after normalisation, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (a bag of tokens: order ignored).

    As in SQuAD, when either side has no tokens the score is 1.0 if both have none, else 0.0.
    """
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    # Imported on first use: rouge-score pulls in nltk (about a second), which `--help` must not wait for.
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure from `rouge-score`; 1.0 when both answers are empty (as token_f1), 0.0 when one is."""
    if not prediction.strip() or not reference.strip():
        return float(prediction.strip() == reference.strip())
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


@dataclass(frozen=True)
class AnswerScore:
    """The three scores of one answer, each in [0, 1]."""

    exact_match: float
    f1: float
    rougeL: float  # the name every ROUGE report uses

    def percent(self) -> dict[str, float]:
        """The scores in percent (0-100), keyed by `METRICS`."""
        return {"exact_match": 100 * self.exact_match, "f1": 100 * self.f1, "rougeL": 100 * self.rougeL}


def score_answer(prediction: str, reference: str) -> AnswerScore:
    return AnswerScore(exact_match(prediction, reference), token_f1(prediction, reference),
                       rouge_l(prediction, reference))


def aggregate(pairs: Iterable[tuple[str, str]]) -> dict[str, float | int]:
    """Mean EM, F1 and ROUGE-L in percent (0-100) over (prediction, reference) pairs, and their `count`.

    An empty list has no mean: its metrics are 0.0 with count 0 (callers show the count).
    """
    scores = [score_answer(p, r) for p, r in pairs]
    return mean_percent(scores)


def mean_percent(scores: list[AnswerScore]) -> dict[str, float | int]:
    """Means of already computed scores, in percent, and their `count`."""
    n = len(scores)
    out: dict[str, float | int] = {
        "exact_match": 100 * sum(s.exact_match for s in scores) / n if n else 0.0,
        "f1": 100 * sum(s.f1 for s in scores) / n if n else 0.0,
        "rougeL": 100 * sum(s.rougeL for s in scores) / n if n else 0.0,
    }
    out["count"] = n
    return out
