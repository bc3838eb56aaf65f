"""One synthetic case: its facts drawn from a `Condition`, written sentence by sentence from templates, with the
exact span of every answerable fact in the text.

A case is drawn in steps, always in the same order (the random draws must not move, or every generated file
changes): the patient (condition, register, sex, age, symptoms), the course (length of stay, death, a day and a
side every sentence agrees on), the medications, then the sentences of each slot (`_admission`, `_findings`,
`_treatment`, `_course`), their order with local swaps (`_sentence_order`), filler sentences (`_with_fillers`),
and finally the text with its spans (`_write`).
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from genai_core.clinical.pools import Pool, Register, accepts, crc, is_reserved_age, is_reserved_combo, pick_pool
from genai_core.clinical.tables.conditions import CONDITIONS, CONDITIONS_BY_KEY, OXYGEN, Condition
from genai_core.clinical.tables.sentences import (
    SENTENCE_GRAMMARS,
    SPAN_FIELDS,
    STYLE_INTROS,
    TEMPLATES,
    SentenceGrammar,
)
from genai_core.clinical.tables.vocabulary import (
    CARERS,
    CHILD_AGES,
    CHILD_CONDITIONS,
    CHILD_HISTORY,
    CHILD_SEX_WORDS,
    HOBBIES,
    JOBS,
    LESIONS,
    LOCATIONS,
    PARTNERS,
    PRONOUNS,
    SEX_WORDS,
)
from genai_core.clinical.values import (
    Medication,
    allowed_at,
    draw_duration,
    draw_labs,
    draw_vitals,
    fill_placeholders,
    invent_eponym,
    invented_medication,
    join_list,
    real_medication,
    register_form,
)

DEFAULT_SEED = 0


# =========================================================================== templates
def template_id(slot: str, register: Register, template: str) -> str:
    """A short stable name for a template (slot/register/crc) used to compare skeletons and splits."""
    return f"{slot}/{register}/{crc(template):08x}"


def templates(slot: str, register: Register, pool: Pool) -> list[str]:
    """The templates of one slot and register in the train, reserved or whole pool."""
    return pick_pool(TEMPLATES[slot][register], pool, 0.2)


def compositions(grammar: SentenceGrammar) -> Iterator[str]:
    """Every sentence template `grammar` can compose (what `compose` draws from)."""
    for frame in grammar.frames:
        yield _sentence(frame)
        for opening in grammar.openings:
            yield _sentence(opening + frame)
        for tail in grammar.tails:
            yield _sentence(frame + tail)


def _sentence(clause: str) -> str:
    # A frame may open the sentence with a pronoun field: "{he} was..." -> "{He} was...". Other first letters
    # are capitalised by `render`, after filling (a value such as a drug name may open the sentence).
    return ("{He}" + clause[4:] if clause.startswith("{he}") else clause) + "."


def compose(grammar: SentenceGrammar, rng: random.Random) -> str:
    """One sentence template of `grammar`: a frame, with an opening (30 %) or a tail (30 %)."""
    frame = rng.choice(grammar.frames)
    u = rng.random()
    if u < 0.3:
        return _sentence(rng.choice(grammar.openings) + frame)
    if u < 0.6:
        return _sentence(frame + rng.choice(grammar.tails))
    return _sentence(frame)


def draw_template(slot: str, register: Register, pool: Pool, rng: random.Random) -> str:
    """A sentence template of `slot` in `register` from the train, reserved or whole pool.

    Slots with a grammar (SENTENCE_GRAMMARS) compose their train sentences from it; their reserved sentences
    are TEMPLATES' reserved part, drawn with one choice as for every other slot, so a held-out split reads the
    same sentences with or without the grammar. The whole pool ("all", the unlabeled corpus) mixes the two in
    the shares TEMPLATES has."""
    grammar = SENTENCE_GRAMMARS.get(slot, {}).get(register)
    if grammar is None:
        return rng.choice(templates(slot, register, pool))
    reserved = templates(slot, register, "reserved")
    if pool == "reserved" or (pool == "all" and rng.random() < len(reserved) / len(TEMPLATES[slot][register])):
        return rng.choice(reserved)
    return compose(grammar, rng)


def reserved_template_ids() -> set[str]:
    """Ids (as in Case.template_ids) of every reserved sentence template."""
    return {
        template_id(slot, reg, t)
        for slot, regs in TEMPLATES.items()
        for reg in regs
        for t in templates(slot, reg, "reserved")
    }


_FORMATTER = string.Formatter()


def render(template: str, values: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Fill `template` and return the text with the (start, end) of every SPAN_FIELDS field.

    The first letter is capitalised (a template may start with a value such as a diagnosis); spans
    are measured on the final text so they stay exact substrings.
    """
    out: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    pos = 0
    for literal, name, _, _ in _FORMATTER.parse(template):
        out.append(literal)
        pos += len(literal)
        if name is None:
            continue
        value = values[name]
        kind = SPAN_FIELDS.get(name)
        if kind is not None and kind not in spans:
            spans[kind] = (pos, pos + len(value))
        out.append(value)
        pos += len(value)
    text = "".join(out)
    if text[:1].islower():
        text = text[0].upper() + text[1:]
    return text, spans


# =========================================================================== cases
@dataclass
class Case:
    """One synthetic case: its text, where each answerable fact sits in it, and how it was built."""

    id: str
    condition: str
    register: Register
    text: str
    spans: dict[str, tuple[int, int]]
    sentences: list[tuple[int, int]]
    template_ids: tuple[str, ...]
    age: int
    sex: str
    symptom_keys: tuple[str, ...]
    drugs: tuple[str, ...]  # invented drug names, in order of appearance
    primary_drug: str
    primary_dose: str

    def answer(self, kind: str) -> str:
        """The exact substring of `text` that answers a question of `kind`."""
        start, end = self.spans[kind]
        return self.text[start:end]


def case_rng(seed: int, stream: str, index: int) -> random.Random:
    """The random source of case (or QA row) `index` of `stream`: independent of every other row."""
    # String seeds are hashed with SHA-512 by random.seed: stable across processes and platforms.
    return random.Random(f"{seed}/{stream}/{index}")


class _Sentence(NamedTuple):
    """One sentence to write: its slot, template, register and the values of its fields."""

    slot: str
    template: str
    register: Register
    values: dict[str, str]


class _Prescriptions(NamedTuple):
    """The medications of a case: the primary one (the answer to drug and dose questions) and others."""

    primary: Medication
    primary_register: Register
    others: list[Medication]
    others_register: Register


@dataclass
class _Draft:
    """A case being drawn: its random source and fixed facts, and the sentences chosen so far (slot -> sentence)."""

    rng: random.Random
    cond: Condition
    register: Register
    phrasings: Pool
    ctx: dict[str, str]
    """Placeholder values every sentence agrees on: the day of an event, the side of a finding, pronouns."""
    sentences: dict[str, _Sentence] = field(default_factory=dict)
    keep_register: float = 0.85
    """Share of sentences written in the case's register (the rest in the other)."""

    def reg(self) -> Register:
        # Real notes mix registers: most sentences follow the case's register, some do not.
        if self.rng.random() < self.keep_register:
            return self.register
        return "narrative" if self.register == "terse" else "terse"

    def item(self, text: str, r: Register) -> str:
        """A vocabulary item in register `r`, its placeholders filled."""
        return fill_placeholders(register_form(text, r), self.rng, self.ctx)

    def choose(self, slot: str) -> tuple[str, Register]:
        """A template of `slot` in a register drawn by `reg`."""
        r = self.reg()
        return draw_template(slot, r, self.phrasings, self.rng), r

    def add(self, slot: str, template: str, r: Register, values: dict[str, str]) -> None:
        self.sentences[slot] = _Sentence(slot, template, r, values)


def make_case(
    rng: random.Random,
    *,
    case_id: str = "",
    values: Pool = "all",
    phrasings: Pool = "all",
    condition: str | None = None,
    register: Register | None = None,
    style: str = "standard",
) -> Case:
    """Draw one case.

    `values` restricts reserved values (ages, invented drug names, symptom combinations) and
    `phrasings` restricts sentence templates to the train part, the reserved part or neither. `register`
    writes every sentence in that register (an admission note throughout, with "terse"); by default a case
    draws its register and mixes in some sentences of the other. `style` (sentences.STYLES) writes the intro
    as real case descriptions also do: the sex given only by a pronoun, or a child (aged CHILD_AGES, with one
    of CHILD_CONDITIONS, no social-history fillers). A standard case draws exactly what it always drew.
    """
    if style == "child" and not condition:
        condition = rng.choice(CHILD_CONDITIONS)
    cond = CONDITIONS_BY_KEY[condition] if condition else rng.choice(CONDITIONS)
    drawn: Register = "terse" if rng.random() < 0.3 else "narrative"  # drawn always, so the stream never moves
    sex = "female" if rng.random() < cond.p_female else "male"
    ages = CHILD_AGES if style == "child" else cond.ages
    age, symptom_items, symptom_keys = _draw_age_and_symptoms(cond, rng, values, ages)

    los = rng.randint(*cond.los)
    died = rng.random() < cond.p_death
    death_day = rng.randint(max(2, los // 3), los)
    day = str(rng.randint(2, max(2, (death_day if died else los) - 1)))
    draft = _Draft(rng, cond, register or drawn, phrasings,
                   {"day": day, "side": rng.choice(("left", "right")), **PRONOUNS[sex]},
                   keep_register=1.0 if register else 0.85)

    meds = _draw_prescriptions(draft, values)
    oxygen_level = rng.choice(cond.oxygen)
    _admission(draft, age, sex, symptom_items, oxygen_level, style)
    _findings(draft)
    oxygen_slot = _treatment(draft, meds, oxygen_level)
    _course(draft, died, los, oxygen_level)
    order = _sentence_order(rng, draft.sentences, oxygen_slot)
    # A child has no job, partner or pack-years.
    plan = [draft.sentences[s] for s in order] if style == "child" else _with_fillers(draft, order, sex)
    text, spans, bounds, ids = _write(plan, sex)

    # Drug and dose spans sit inside the treatment span: name first, one space, then the dose.
    primary = meds.primary
    t0, t1 = spans["treatment"]
    spans["drug"] = (t0, t0 + len(primary.name))
    spans["dose"] = (t0 + len(primary.name) + 1, t1)
    return Case(
        id=case_id,
        condition=cond.key,
        register=register or drawn,
        text=text,
        spans=spans,
        sentences=bounds,
        template_ids=ids,
        age=age,
        sex=sex,
        symptom_keys=tuple(sorted(symptom_keys)),
        drugs=tuple(m.name for m in (primary, *meds.others) if m.invented),
        primary_drug=primary.name,
        primary_dose=primary.dose,
    )


def _draw_age_and_symptoms(
    cond: Condition, rng: random.Random, values: Pool, ages: tuple[int, int]
) -> tuple[int, list[str], tuple[str, ...]]:
    """Age (in `ages`), symptom items and their keys (narrative forms), resampled until the draw is on the
    `values` side of the reserved split."""
    while True:
        age = rng.randint(*ages)
        if accepts(values, is_reserved_age(age)):
            break
    while True:
        k = rng.choice((2, 2, 3, 3, 3, 4))
        symptom_items = rng.sample(cond.symptoms, k=min(k, len(cond.symptoms)))
        symptom_keys = tuple(register_form(s, "narrative") for s in symptom_items)
        if accepts(values, is_reserved_combo(cond.key, symptom_keys)):
            break
    return age, symptom_items, symptom_keys


def _child_word(age: int) -> str:
    """A sex-neutral word for a child of `age`."""
    return "toddler" if age <= 3 else "teenager" if age >= 13 else "child"


def _draw_prescriptions(draft: _Draft, values: Pool) -> _Prescriptions:
    """The primary treatment (invented in most cases, always when values are reserved) and 0-2 other drugs."""
    rng, cond = draft.rng, draft.cond
    r_treat = draft.reg()
    if values == "reserved" or rng.random() < 0.65:
        primary = invented_medication(rng.choice(cond.drug_classes), rng, r_treat, values)
    else:
        primary = real_medication(rng.choice(cond.meds), rng, r_treat)
    others: list[Medication] = []
    r_other = draft.reg()
    for _ in range(rng.choice((0, 1, 1, 2))):
        if rng.random() < 0.35:
            med = invented_medication(rng.choice(cond.drug_classes), rng, r_other, values)
        else:
            med = real_medication(rng.choice(cond.meds), rng, r_other)
        if med.name != primary.name and all(med.name != o.name for o in others):
            others.append(med)
    return _Prescriptions(primary, r_treat, others, r_other)


def _admission(draft: _Draft, age: int, sex: str, symptom_items: list[str], oxygen_level: str,
               style: str = "standard") -> None:
    """The intro (age, sex, symptoms, duration) in `style`, history and vital-sign sentences."""
    rng, cond = draft.rng, draft.cond
    r = draft.reg()
    intro_pool = list(STYLE_INTROS[style][r]) if style != "standard" else templates("intro", r, draft.phrasings)
    if cond.durations == ("hours",):
        # Event-like presentations (a fall, a stroke) read badly as "4 hours of a fall at home".
        intro_pool = [x for x in intro_pool if "{duration}" not in x] or intro_pool
    t = rng.choice(intro_pool)
    sex_words = CHILD_SEX_WORDS[sex] if style == "child" else SEX_WORDS[sex][r == "terse"]
    pronouns = PRONOUNS[sex]
    values = {
        # "an 81-year-old" but "a 64-year-old"
        "a": "an" if str(age).startswith(("8", "11", "18")) else "a",
        "A": "An" if str(age).startswith(("8", "11", "18")) else "A",
        "age": str(age),
        "sex": rng.choice(sex_words),
        "sexl": sex_words[-1] if r == "terse" else sex[0].upper(),
        "symptoms": join_list([draft.item(s, r) for s in symptom_items], r, rng),
        "duration": draw_duration(rng.choice(cond.durations), rng, r),
    }
    if style != "standard":  # drawn only here, so a standard case's stream never moves
        values.update(sex_he=pronouns["he"], sex_He=pronouns["He"], sex_his=pronouns["his"],
                      child=_child_word(age), carer=rng.choice(CARERS))
    draft.add("intro", t, r, values)

    t, r = draft.choose("history")
    if style == "child":
        none, *some = CHILD_HISTORY
        picked = rng.sample(some, k=rng.randint(1, 2)) if rng.random() < 0.7 else [none]
        hist = [draft.item(h, r) for h in picked]
    else:
        hist = [draft.item(h, r) for h in cond.core_history[:1] and [rng.choice(cond.core_history)]]
        hist += [draft.item(h, r) for h in rng.sample(cond.history, k=rng.randint(1, min(3, len(cond.history))))]
    draft.add("history", t, r, {"history": join_list(hist, r, rng)})

    t, r = draft.choose("vitals")
    draft.add("vitals", t, r, draw_vitals(cond, rng, r, oxygen_level))


def _findings(draft: _Draft) -> None:
    """The imaging, labs, (sometimes) incidental finding and diagnosis sentences."""
    rng, cond = draft.rng, draft.cond
    t, r = draft.choose("imaging")
    dx_index = rng.randrange(len(cond.diagnoses))
    image = cond.imaging[dx_index] if cond.pair_imaging else rng.choice(cond.imaging)
    modality_n, modality_t, finding = image.split("|")
    modality = modality_t if r == "terse" else modality_n
    draft.add("imaging", t, r, {
        "modality": modality,
        "Modality": modality[0].upper() + modality[1:],
        "imaging": fill_placeholders(finding, rng, draft.ctx),
    })

    t, r = draft.choose("labs")
    draft.add("labs", t, r, {"labs": draw_labs(cond, rng, r)})

    # An incidental finding (an invented eponymous lesion): a value that must be copied.
    if rng.random() < 0.25:
        t, r = draft.choose("incidental")
        lesion = f"{rng.randint(4, 22)} mm {invent_eponym(rng)} {rng.choice(LESIONS)}"
        draft.add("incidental", t, r, {"incidental": lesion, "location": rng.choice(LOCATIONS)})

    t, r = draft.choose("diagnosis")
    draft.add("diagnosis", t, r, {"diagnosis": draft.item(cond.diagnoses[dx_index], r)})


def _treatment(draft: _Draft, meds: _Prescriptions, oxygen_level: str) -> str:
    """The treatment, other medication, oxygen and physiotherapy sentences; returns the oxygen sentence's slot."""
    rng, cond = draft.rng, draft.cond
    r_treat, r_other = meds.primary_register, meds.others_register
    draft.add("treatment", draw_template("treatment", r_treat, draft.phrasings, rng), r_treat,
              {"treatment": meds.primary.text})
    if meds.others:
        t = draw_template("other_meds", r_other, draft.phrasings, rng)
        draft.add("other_meds", t, r_other, {
            "meds": join_list([m.text for m in meds.others], r_other, rng),
            "were": "were" if len(meds.others) > 1 else "was",
        })

    slot = "oxygen_none" if oxygen_level == "none" else "oxygen"
    t, r = draft.choose(slot)
    draft.add(slot, t, r, {"oxygen": draft.item(rng.choice(OXYGEN[oxygen_level]), r)})

    t, r = draft.choose("physio")
    physio_pool = allowed_at(cond.physio, oxygen_level)
    physio = [draft.item(p, r) for p in rng.sample(physio_pool, k=rng.randint(1, min(3, len(physio_pool))))]
    draft.add("physio", t, r, {"physio": join_list(physio, r, rng)})
    return slot


def _course(draft: _Draft, died: bool, los: int, oxygen_level: str) -> None:
    """The outcome sentence, and the discharge sentence (length of stay, destination) when the patient lived."""
    rng, cond = draft.rng, draft.cond
    t, r = draft.choose("outcome")
    draft.add("outcome", t, r, {
        "outcome": draft.item(rng.choice(allowed_at(cond.deaths if died else cond.outcomes, oxygen_level)), r)
    })
    if not died:
        t, r = draft.choose("discharge")
        draft.add("discharge", t, r, {
            "los": f"{los} days",
            "los_day": f"day {los}",
            "Los_day": f"Day {los}",
            "discharge": draft.item(rng.choice(cond.destinations), r),
        })


def _sentence_order(rng: random.Random, present: dict[str, _Sentence], oxygen_slot: str) -> list[str]:
    """The slots of `present` in a case-report skeleton order with local swaps."""
    order = [
        "intro",
        "history",
        "vitals",
        "imaging",
        "labs",
        "incidental",
        "diagnosis",
        "treatment",
        "other_meds",
        oxygen_slot,
        "physio",
        "outcome",
        "discharge",
    ]
    if rng.random() < 0.3:  # history after the examination findings
        order.remove("history")
        order.insert(order.index("labs") + 1, "history")
    if rng.random() < 0.4:
        i, j = order.index("imaging"), order.index("labs")
        order[i], order[j] = order[j], order[i]
    if rng.random() < 0.3:  # diagnosis stated before the findings that support it
        order.remove("diagnosis")
        order.insert(order.index("vitals"), "diagnosis")
    if rng.random() < 0.35:  # respiratory support before drugs
        order.remove(oxygen_slot)
        order.insert(order.index("treatment"), oxygen_slot)
    if rng.random() < 0.2:
        i, j = order.index("physio"), order.index("outcome")
        order[i], order[j] = order[j], order[i]
    return [s for s in order if s in present]


def _with_fillers(draft: _Draft, order: list[str], sex: str) -> list[_Sentence]:
    """The sentences in `order`, with 0-3 filler sentences (social history, ...) at random places after the
    first."""
    rng = draft.rng
    fillers: list[_Sentence] = []
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        r = draft.reg()
        t = rng.choice(templates("filler", r, draft.phrasings))
        job = rng.choice(JOBS)
        fvals = {
            "partner": rng.choice(PARTNERS[sex]),
            "job": job,
            "hobby": rng.choice(HOBBIES),
            "steps": str(rng.randint(2, 14)),
            "poc": str(rng.randint(1, 4)),
            "packs": str(rng.randrange(5, 80, 5)),
            "a_job": ("an " if job[0] in "aeiou" else "a ") + job,
            "units": str(rng.randint(2, 30)),
            "cfs": str(rng.randint(2, 7)),
            "bmi": f"{rng.uniform(17.5, 41):.1f}",
        }
        if all(t != f.template for f in fillers):
            fillers.append(_Sentence("filler", t, r, fvals))
    plan = [draft.sentences[s] for s in order]
    for filler in fillers:
        plan.insert(rng.randint(1, len(plan)), filler)
    return plan


def _write(
    plan: list[_Sentence], sex: str
) -> tuple[str, dict[str, tuple[int, int]], list[tuple[int, int]], tuple[str, ...]]:
    """The case text, the span of every answerable fact, each sentence's (start, end) and template id."""
    parts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    bounds: list[tuple[int, int]] = []
    ids: list[str] = []
    pos = 0
    pronouns = PRONOUNS[sex]
    for sentence in plan:
        text, local = render(sentence.template, {**pronouns, **sentence.values})
        if parts:
            pos += 1  # the joining space
        for kind, (a, b) in local.items():
            spans.setdefault(kind, (pos + a, pos + b))
        bounds.append((pos, pos + len(text)))
        parts.append(text)
        pos += len(text)
        ids.append(template_id(sentence.slot, sentence.register, sentence.template))
    return " ".join(parts), spans, bounds, tuple(ids)


# =========================================================================== streams of cases
def generate_cases(
    n: int,
    seed: int = DEFAULT_SEED,
    *,
    values: Pool = "all",
    phrasings: Pool = "all",
    stream: str = "corpus",
    start: int = 0,
    register: Register | None = None,
) -> list[Case]:
    """`n` cases of one stream; case i depends only on (seed, stream, i), so prefixes are stable."""
    return [
        make_case(case_rng(seed, stream, i), case_id=f"{stream}-{i:05d}", values=values, phrasings=phrasings,
                  register=register)
        for i in range(start, start + n)
    ]


def iter_cases(
    seed: int = DEFAULT_SEED, *, values: Pool = "all", phrasings: Pool = "all", stream: str = "corpus",
    register: Register | None = None,
) -> Iterator[Case]:
    """An endless stream of cases (see generate_cases)."""
    i = 0
    while True:
        yield make_case(case_rng(seed, stream, i), case_id=f"{stream}-{i:05d}", values=values, phrasings=phrasings,
                        register=register)
        i += 1
