"""Questions about synthetic cases and the QA rows of each split.

A question is worded either by one of the fixed phrasings of its kind (`tables.phrasings.QUESTIONS`, a quarter of
each kind reserved for `test_unseen_phrasing`) or, for a share of the train and val rows, by a small
compositional grammar (`sample_question`) that never produces a reserved phrasing. About a quarter of the train
and val questions are unanswerable (`unanswerable_for_case`): their answer is NOT_STATED.

Every QA row is drawn from its own random source (`cases.case_rng`), so the streams are prefix-stable.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from genai_core.clinical.cases import DEFAULT_SEED, Case, case_rng, generate_cases, iter_cases, make_case
from genai_core.clinical.pools import Pool, Register, pick_pool
from genai_core.clinical.tables.phrasings import (
    ABSENT_QUESTIONS,
    COMMAND_FRAMES,
    HELD_OUT_SCOPE_FAMILIES,
    KIND_LABELS,
    OUT_OF_SCOPE_QUESTIONS,
    POLITE_FRAMES,
    QUESTIONS,
    RESERVED_VALUE_KINDS,
    SLOT_QUESTIONS,
    SLOT_WORDS,
    SUBJECTS,
    WH_FRAMES,
    WINDOWED_ABSENCE_KINDS,
)
from genai_core.clinical.tables.sentences import STYLES
from genai_core.clinical.tables.vocabulary import PRONOUNS
from genai_core.evaluate.scoring import NOT_STATED, OUT_OF_SCOPE_KIND

Split = Literal["train", "val", "test", "test_unseen_phrasing", "test_unanswerable", "test_note_style"]

SPLITS: tuple[Split, ...] = ("train", "val", "test", "test_unseen_phrasing", "test_unanswerable", "test_note_style")
# (value pool, phrasing pool) of each QA split.
SPLIT_POOLS: dict[Split, tuple[Pool, Pool]] = {
    "train": ("train", "train"),
    "val": ("train", "train"),
    "test": ("reserved", "train"),
    "test_unseen_phrasing": ("reserved", "reserved"),
    "test_unanswerable": ("reserved", "train"),
    "test_note_style": ("reserved", "train"),
}
SPLIT_REGISTER: dict[Split, Register] = {"test_note_style": "terse"}
"""Splits written in one register throughout: `test_note_style` is admission-note shorthand from the first word
to the last ("52M, PC: ...", "c/o", "PMHx", "Rx:", "D/c"), where every other split mixes registers within a case
and is mostly prose. Its score beside `test`'s says how much the model depends on prose."""
UNANSWERABLE_SHARE: dict[Split, float] = {"train": 0.25, "val": 0.25, "test": 0.0, "test_unseen_phrasing": 0.0,
                                          "test_unanswerable": 1.0, "test_note_style": 0.0}
"""Share of each split's questions whose context does not hold the answer (answered NOT_STATED). The two scored
test splits stay answerable, so their exact match compares with earlier releases; `test_unanswerable` measures
abstention alone."""
GRAMMAR_TEMPLATE = "(grammar)"
"""QARecord.template of a question sampled from the grammar."""
OUT_OF_SCOPE_SHARE: dict[Split, float] = {"train": 0.12, "val": 0.12}
"""Per case of the train and val splits: the chance of one more question, out of scope (kind `other`, answer
NOT_STATED; `out_of_scope_for_case`). An extra row, drawn from a random source of its own, so that every other
row of every split is the same as without it."""
STYLE_SHARE: dict[Split, float] = {"train": 0.2, "val": 0.2}
"""Per case of the train and val splits: the chance of one more case, written in a style of real case
descriptions (`sentences.STYLE_INTROS`: the sex given only by a pronoun, children), asked two questions that
favour sex and age. From a random source of its own, like OUT_OF_SCOPE_SHARE, so the other rows stay the same."""
STYLE_FAVOURS = ("sex", "age")
GRAMMAR_SHARE = 0.9
"""Share of the train and val questions sampled from the grammar; the rest use the fixed train phrasings. Measured
with the span head (one fine-tune each from the same pretrained run): 0.6 → 0.9 took unseen-wording exact match
from 54.4 to 56.4 and its false "not stated" from 6.0 % to 2.6 %, for 92.8 → 91.6 on the drilled wording."""


# =========================================================================== fixed phrasings
def questions(kind: str, pool: Pool) -> list[str]:
    """The question phrasings of `kind` in the train, reserved or whole pool (a quarter reserved)."""
    return pick_pool(QUESTIONS[kind] if kind in QUESTIONS else ABSENT_QUESTIONS[kind], pool, 0.25)


_PLACEHOLDER_PATTERNS = {
    "he": "(?:he|she)",
    "He": "(?:He|She)",
    "his": "(?:his|her)",
    "His": "(?:His|Her)",
    "him": "(?:him|her)",
    "drug": ".+?",
}


def question_pattern(template: str) -> re.Pattern[str]:
    """A regex matching exactly the questions rendered from `template` (a pronoun slot matches a pronoun)."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if name is not None:
            out.append(_PLACEHOLDER_PATTERNS[name])
    return re.compile("".join(out) + r"\Z")


@lru_cache(maxsize=1)
def _question_patterns() -> list[tuple[str, re.Pattern[str]]]:
    return [(kind, question_pattern(t)) for kind, templates in QUESTIONS.items() for t in templates]


def question_kind(question: str) -> str | None:
    """The kind of a question (age, dose, imaging, ...) when it is one of the generator's phrasings, else None.

    A question is given a kind only when it is exactly one phrasing of `QUESTIONS` (the held-out phrasings
    included) and matches phrasings of that kind alone; anything else is None. For QA files without a `kind`
    column: pass it to `evaluate_qa(..., kind_of=question_kind)` to group their scores by kind.
    """
    kinds = {kind for kind, pattern in _question_patterns() if pattern.match(question.strip())}
    return kinds.pop() if len(kinds) == 1 else None


# =========================================================================== a question grammar
def _typo(text: str, rng: random.Random) -> str:
    """One swap of neighbouring letters inside a longer word (never the slot-word's drug name)."""
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long:
        return text
    i = rng.choice(long)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def subject_nouns(sex: str, age: int) -> tuple[str, ...]:
    """What a person may call the patient in a question ("How old is the boy?")."""
    if age < 13:
        return ("child", "boy" if sex == "male" else "girl", "kid")
    if age < 18:
        return ("teenager", "boy" if sex == "male" else "girl")
    return ("man", "gentleman") if sex == "male" else ("woman", "lady")


def sample_question(kind: str, rng: random.Random, *, drug: str, sex: str, age: int) -> str:
    """A question asking for `kind`, drawn from the grammar (never a reserved phrasing; see SLOT_WORDS); the
    patient is named as the case's `sex` and `age` allow ("the patient", "she", "the woman")."""
    pronouns = PRONOUNS[sex]
    for _ in range(10):
        subj, poss = rng.choice(SUBJECTS)
        who = rng.random()
        if who < 0.25:
            subj_text, subj_poss = pronouns["he"], pronouns["his"]
        elif who < 0.4:
            subj = "the " + rng.choice(subject_nouns(sex, age))
            subj_text, subj_poss = subj, f"{subj}'s"
        else:
            subj_text, subj_poss = subj, f"{subj}'s"
        if kind in SLOT_QUESTIONS and rng.random() < 0.4:
            text, end = rng.choice(SLOT_QUESTIONS[kind]), "?"
        else:
            frames = rng.choice((WH_FRAMES, WH_FRAMES, COMMAND_FRAMES, POLITE_FRAMES))
            text = rng.choice(frames)
            end = "." if frames is COMMAND_FRAMES else "?"
            text = text.replace("{slot}", rng.choice(SLOT_WORDS[kind]))
        text = text.replace("{subj_poss}", subj_poss).replace("{subj}", subj_text).replace("{poss}", poss)
        text = text.replace("{drug}", drug)
        text = text[0].upper() + text[1:] if rng.random() < 0.75 else text.lower().replace(drug.lower(), drug)
        if rng.random() < 0.8:
            text += end
        if rng.random() < 0.05:
            text = _typo(text, rng)
        if not _is_reserved_phrasing(text):
            return text
    return rng.choice(questions(kind, "train")).format(drug=drug, **pronouns)


@lru_cache(maxsize=1)
def _reserved_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(question_pattern(t).pattern, re.IGNORECASE)
                 for k in (*QUESTIONS, *ABSENT_QUESTIONS) for t in questions(k, "reserved"))


def _is_reserved_phrasing(text: str) -> bool:
    """Whether `text` is one of the held-out phrasings (ignoring case and a missing question mark)."""
    stripped = text.rstrip("?.")
    return any(p.match(text) or p.match(stripped + "?") or p.match(stripped + ".") for p in _reserved_patterns())


# =========================================================================== QA rows
@dataclass(frozen=True)
class QARecord:
    """One extractive QA row; `answer` is an exact substring of `context`."""

    question: str
    context: str
    answer: str
    kind: str
    case_id: str
    template: str


def _context(case: Case, kind: str, rng: random.Random) -> str:
    """The whole case or a window of consecutive sentences that holds the answer.

    Windows keep the QA files small and teach locating an answer in short and long contexts alike.
    """
    if rng.random() < 0.5:
        return case.text
    start, end = case.spans[kind]
    idx = next(i for i, (a, b) in enumerate(case.sentences) if a <= start and end <= b)
    lo = hi = idx
    size = rng.randint(2, 6)
    while hi - lo + 1 < size and (lo > 0 or hi < len(case.sentences) - 1):
        if lo > 0 and (hi == len(case.sentences) - 1 or rng.random() < 0.5):
            lo -= 1
        else:
            hi += 1
    return case.text[case.sentences[lo][0] : case.sentences[hi][1]]


def _window_without(case: Case, kind: str, rng: random.Random) -> str | None:
    """A window of 2-6 consecutive sentences of `case` that does not hold the answer of `kind` anywhere (compared
    without case), or None when every window does."""
    answer = case.answer(kind).lower()
    sentences = case.sentences
    for _ in range(8):
        size = rng.randint(2, 6)
        if size > len(sentences):
            return None
        lo = rng.randrange(0, len(sentences) - size + 1)
        text = case.text[sentences[lo][0] : sentences[lo + size - 1][1]]
        if answer not in text.lower():
            return text
    return None


def unanswerable_for_case(case: Case, rng: random.Random, phrasings: Pool) -> QARecord:
    """A question `case` (or the window given of it) does not answer, with the answer NOT_STATED: half of the
    time a kind no case report holds (blood type, insurance, ...), else a kind it holds, asked of a window of
    sentences that leaves the answer out (so the model must read the context, not guess what cases say)."""
    present = [k for k in WINDOWED_ABSENCE_KINDS if k in case.spans]
    if present and rng.random() < 0.5:
        kind = rng.choice(present)
        context = _window_without(case, kind, rng)
        if context is not None:
            template = rng.choice(questions(kind, phrasings))
            question = template.format(drug=case.primary_drug, **PRONOUNS[case.sex])
            return QARecord(question, context, NOT_STATED, kind, case.id, template)
    kind = rng.choice(list(ABSENT_QUESTIONS))
    template = rng.choice(questions(kind, phrasings))
    context = case.text if rng.random() < 0.5 else (_window_without(case, "age", rng) or case.text)
    return QARecord(template.format(**PRONOUNS[case.sex]), context, NOT_STATED, kind, case.id, template)


def out_of_scope_for_case(case: Case, rng: random.Random, *, held_out: bool = False) -> QARecord:
    """A question about none of the things the QA kinds cover (`OUT_OF_SCOPE_QUESTIONS`), asked of `case` or of a
    window of it: kind OUT_OF_SCOPE_KIND, answer NOT_STATED. From the trained families, or with `held_out` from
    the ones training never sees. People type such questions loosely: a fifth lose their capital letter, a
    fifth their question mark."""
    families = [f for f in OUT_OF_SCOPE_QUESTIONS if (f in HELD_OUT_SCOPE_FAMILIES) == held_out]
    family = rng.choice(families)
    template = rng.choice(OUT_OF_SCOPE_QUESTIONS[family])
    question = template.format(**PRONOUNS[case.sex])
    if rng.random() < 0.2:
        question = question.lower()
    if rng.random() < 0.2:
        question = question.rstrip("?.!")
    context = case.text if rng.random() < 0.5 else (_window_without(case, "age", rng) or case.text)
    return QARecord(question, context, NOT_STATED, OUT_OF_SCOPE_KIND, case.id, f"({family})")


def qa_for_case(
    case: Case, rng: random.Random, n: int, phrasings: Pool, *, favour: Sequence[str] = (),
    unanswerable: float = 0.0, grammar: float = 0.0,
) -> list[QARecord]:
    """`n` questions of different kinds about `case`; kinds in `favour` are drawn more often, each question is
    one its context does not answer with probability `unanswerable`, and is worded by the grammar
    (`sample_question`) rather than a fixed phrasing with probability `grammar`."""
    kinds = [k for k in QUESTIONS if k in case.spans]
    # "64M": a one-letter sex is a poor answer span (an "M" can sit anywhere), so it is not asked.
    kinds = [k for k in kinds if k != "sex" or len(case.answer("sex")) > 1]
    weights = [4.0 if k in favour else 1.0 for k in kinds]
    chosen: list[str] = []
    while len(chosen) < min(n, len(kinds)):
        k = rng.choices(kinds, weights)[0]
        if k not in chosen:
            chosen.append(k)
    out = []
    for kind in chosen:
        if unanswerable and rng.random() < unanswerable:
            rec = unanswerable_for_case(case, rng, phrasings)
            if grammar and rng.random() < grammar:
                question = sample_question(rec.kind, rng, drug=case.primary_drug, sex=case.sex, age=case.age)
                rec = QARecord(question, rec.context, rec.answer, rec.kind, rec.case_id, GRAMMAR_TEMPLATE)
            out.append(rec)
            continue
        if grammar and rng.random() < grammar:
            question = sample_question(kind, rng, drug=case.primary_drug, sex=case.sex, age=case.age)
            template = GRAMMAR_TEMPLATE
        else:
            template = rng.choice(questions(kind, phrasings))
            question = template.format(drug=case.primary_drug, **PRONOUNS[case.sex])
        out.append(QARecord(question, _context(case, kind, rng), case.answer(kind), kind, case.id, template))
    return out


def answered_kinds(kinds: Sequence[str]) -> list[str]:
    """Of a QA model's question kinds, those it was trained to answer (not OUT_OF_SCOPE_KIND, nor the kinds no
    case report holds: `ABSENT_QUESTIONS`, always NOT_STATED), named as a person would (`KIND_LABELS`). What the
    Chat lists when it abstains on a question it reads as out of scope."""
    return [KIND_LABELS.get(k, k) for k in kinds if k != OUT_OF_SCOPE_KIND and k not in ABSENT_QUESTIONS]


# =========================================================================== QA splits
def iter_qa(split: Split, seed: int = DEFAULT_SEED) -> Iterator[QARecord]:
    """An endless, prefix-stable stream of QA rows for `split`.

    Train and val ask two questions per case, the test splits one (favouring the kinds that carry
    reserved values), so every test context is a different case.
    """
    values, phrasings = SPLIT_POOLS[split]
    per_case = 2 if split in ("train", "val") else 1
    favour = RESERVED_VALUE_KINDS if values == "reserved" else ()
    cases = iter_cases(seed, values=values, phrasings=phrasings, stream=f"qa-{split}",
                       register=SPLIT_REGISTER.get(split))
    for i, case in enumerate(cases):
        yield from qa_for_case(case, case_rng(seed, f"qa-{split}-q", i), per_case, phrasings, favour=favour,
                               unanswerable=UNANSWERABLE_SHARE[split],
                               grammar=GRAMMAR_SHARE if split in ("train", "val") else 0.0)
        if split in OUT_OF_SCOPE_SHARE:
            rng = case_rng(seed, f"qa-{split}-other", i)
            if rng.random() < OUT_OF_SCOPE_SHARE[split]:
                yield out_of_scope_for_case(case, rng)
        if split in STYLE_SHARE:
            rng = case_rng(seed, f"qa-{split}-style", i)
            if rng.random() < STYLE_SHARE[split]:
                styled = make_case(rng, case_id=f"qa-{split}-style-{i:05d}", values=values, phrasings=phrasings,
                                   style=rng.choice(STYLES[1:]))
                yield from qa_for_case(styled, rng, 2, phrasings, favour=STYLE_FAVOURS, grammar=GRAMMAR_SHARE)


def qa_cases(split: Split, n: int, seed: int = DEFAULT_SEED) -> list[Case]:
    """The first `n` cases behind `iter_qa(split, seed)` (QARecord.case_id names them)."""
    values, phrasings = SPLIT_POOLS[split]
    return generate_cases(n, seed, values=values, phrasings=phrasings, stream=f"qa-{split}",
                          register=SPLIT_REGISTER.get(split))


def generate_qa(split: Split, n: int, seed: int = DEFAULT_SEED) -> list[QARecord]:
    """The first `n` rows of `iter_qa(split, seed)`."""
    out: list[QARecord] = []
    for rec in iter_qa(split, seed):
        if len(out) >= n:
            break
        out.append(rec)
    return out
