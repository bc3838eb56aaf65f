"""The values a synthetic case is made of: invented names, medications with doses, durations, vital signs and
lab results, and vocabulary items with their placeholders filled.

Every function draws from the `random.Random` it is given, in a fixed order: changing the order of the draws
changes every generated file.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from genai_core.clinical.pools import Pool, Register, accepts, is_reserved_drug
from genai_core.clinical.tables.conditions import LABS, PLURAL_LABS, Condition
from genai_core.clinical.tables.vocabulary import (
    DRUG_CLASSES,
    DURATION_FORMS,
    DURATION_RANGES,
    EPONYM_HEADS,
    EPONYM_TAILS,
    FREQS,
    INFUSIONS,
    NAME_HEADS,
    NAME_MIDS,
    NUMBER_WORDS,
    REQUIRES,
    ROUTES,
)


# =========================================================================== procedural names
def invent_drug(rng: random.Random, drug_class: str, pool: Pool) -> str:
    """A pronounceable invented drug name of `drug_class` from the train, reserved or whole pool."""
    suffixes = DRUG_CLASSES[drug_class].suffixes
    while True:  # about one draw in five is reserved, so this ends after a few tries
        name = rng.choice(NAME_HEADS) + rng.choice(NAME_MIDS) + rng.choice(suffixes)
        if accepts(pool, is_reserved_drug(name)):
            return name


def invent_eponym(rng: random.Random) -> str:
    """An invented surname for lesions, signs and facilities ("Varnett", "Hollisford")."""
    return rng.choice(EPONYM_HEADS) + rng.choice(EPONYM_TAILS)


# =========================================================================== vocabulary filling
# Vocabulary strings may hold small placeholders, filled per case: {int:LO-HI}, {int:LO-HI:STEP},
# {dec:LO-HI} (one decimal), {dec2:LO-HI} (two decimals), {side}, {eponym}, {day} (a day before
# discharge), {he}/{his}/... pronouns. Two levels of braces would be unreadable, so these use the
# same syntax as sentence templates but are filled first, by `fill_placeholders`.
_TOKEN = re.compile(r"\{(\w+)(?::([\d.]+)-([\d.]+)(?::([\d.]+))?)?\}")


def fill_placeholders(text: str, rng: random.Random, ctx: dict[str, str]) -> str:
    """Replace the placeholders of one vocabulary item."""

    def sub(m: re.Match[str]) -> str:
        kind, lo, hi, step = m.groups()
        if kind == "int":
            return str(rng.randrange(int(lo), int(hi) + 1, int(step or 1)))
        if kind == "dec":
            return f"{rng.uniform(float(lo), float(hi)):.1f}"
        if kind == "dec2":
            return f"{rng.uniform(float(lo), float(hi)):.2f}"
        if kind == "side":  # one side per case when the case fixed it, so findings agree
            return ctx.get("side") or rng.choice(("left", "right"))
        if kind == "Side":
            return (ctx.get("side") or rng.choice(("left", "right"))).capitalize()
        if kind == "other_side":
            return {"left": "right", "right": "left"}[ctx.get("side") or "left"]
        if kind == "eponym":
            return invent_eponym(rng)
        if kind in ctx:
            return ctx[kind]
        raise KeyError(f"unknown placeholder {m.group(0)!r} in {text!r}")

    return _TOKEN.sub(sub, text)


def register_form(item: str, register: Register) -> str:
    """`"breathlessness|SOB"` -> the narrative or the terse form (the same when there is no bar)."""
    narrative, _, terse = item.partition("|")
    return terse if register == "terse" and terse else narrative


def join_list(items: Sequence[str], register: Register, rng: random.Random) -> str:
    """A list as prose ("a, b and c") or as a note ("a, b, c" / "a + b")."""
    if len(items) == 1:
        return items[0]
    if register == "terse":
        return rng.choice((", ", ", ", " + ", "; ")).join(items)
    if any(" and " in i for i in items):  # "x, and y and z" reads badly: separate more clearly
        return ", ".join(items[:-1]) + rng.choice((", as well as ", "; and ")) + items[-1]
    return ", ".join(items[:-1]) + rng.choice((" and ", " and ", ", and ")) + items[-1]


def allowed_at(items: Sequence[str], level: str) -> list[str]:
    """The items usable at oxygen `level` (see `REQUIRES`), prefixes stripped."""
    out = []
    for item in items:
        tag, sep, rest = item.partition(":")
        if sep and tag in REQUIRES:
            if level in REQUIRES[tag]:
                out.append(rest)
        else:
            out.append(item)
    return out


# =========================================================================== medications
@dataclass(frozen=True)
class Medication:
    """One prescription: `text` is "name dose", `dose` everything after the name."""

    name: str
    dose: str
    invented: bool

    @property
    def text(self) -> str:
        return f"{self.name} {self.dose}"


def _dose(rng: random.Random, register: Register, amount: str, unit: str, route: str, freq: str, duration: str) -> str:
    """'6 mg IV once daily for 10 days' / '6mg IV OD x10d' from the coded parts."""
    space = "" if register == "terse" and rng.random() < 0.4 else " "
    routes = ROUTES[route][register == "terse"]
    freqs = FREQS[freq][register == "terse"]
    if freq == "INF":
        return f"{amount}{space}{unit} {rng.choice(INFUSIONS[route][register == 'terse'])}"
    parts = [f"{amount}{space}{unit}", rng.choice(routes)]
    if rng.random() < 0.1 and register == "narrative":  # "6 mg once daily intravenously" also occurs
        parts = [parts[0], rng.choice(freqs), parts[1]]
    else:
        parts.append(rng.choice(freqs))
    if duration:
        n, _, what = duration.partition(" ")
        if register == "terse":
            parts.append(rng.choice((f"x{n}{what[0]}", f"for {duration}", f"x {duration}")))
        else:
            parts.append(f"for {duration}")
    return " ".join(parts)


def real_medication(spec: str, rng: random.Random, register: Register) -> Medication:
    """A real generic medicine from `"name|amounts|units|routes|freqs|durations"`.

    Alternatives are separated by commas (units contain slashes); when there are as many units as
    amounts they pair up ("500,1|mg,g" gives 500 mg or 1 g).
    """
    name, amounts, units, routes, freqs, durations = (spec.split("|") + [""] * 6)[:6]
    amount_list, unit_list = amounts.split(","), units.split(",")
    i = rng.randrange(len(amount_list))
    unit = unit_list[i] if len(unit_list) == len(amount_list) else rng.choice(unit_list)
    duration = rng.choice(durations.split(",")) if durations else ""
    dose = _dose(
        rng, register, amount_list[i], unit, rng.choice(routes.split(",")), rng.choice(freqs.split(",")), duration
    )
    return Medication(name, dose, False)


def invented_medication(drug_class: str, rng: random.Random, register: Register, pool: Pool) -> Medication:
    """An invented medicine of `drug_class` with a dose shaped like that family's doses."""
    cls = DRUG_CLASSES[drug_class]
    name = invent_drug(rng, drug_class, pool)
    amount = rng.choice(cls.amounts)
    units = cls.unit.split("|")
    # A gram unit only makes sense for small numbers, a milligram one for the rest.
    unit = ("g" if float(amount) < 10 else "mg") if "g" in units and "mg" in units else rng.choice(units)
    if unit == "mg/kg" and float(amount) > 20:
        unit = "mg"
    dose = _dose(rng, register, amount, unit, rng.choice(cls.routes), rng.choice(cls.freqs), rng.choice(cls.durations))
    return Medication(name, dose, True)


# =========================================================================== durations, vitals and labs
def draw_duration(kind: str, rng: random.Random, register: Register) -> str:
    """How long symptoms lasted ("4 days", "four days", "4/7"), in `kind` units (days, hours or weeks)."""
    n = rng.randint(*DURATION_RANGES[kind])
    narrative, terse = rng.choice(DURATION_FORMS[kind])
    text = terse if register == "terse" else narrative
    number = NUMBER_WORDS[n] if register == "narrative" and n < len(NUMBER_WORDS) and rng.random() < 0.4 else str(n)
    return text.replace("{n}", number)


def draw_vitals(cond: Condition, rng: random.Random, register: Register, oxygen_level: str) -> dict[str, str]:
    """The first observations of a case (template fields spo2, hr, rr, bp, temp, o2ctx and state)."""
    spo2 = rng.randint(*cond.spo2)
    hr = rng.randint(*cond.hr)
    rr = rng.randint(*cond.rr)
    sbp = rng.randint(*cond.sbp)
    dbp = rng.randint(max(40, sbp // 2 - 5), min(110, sbp - 25))
    temp = rng.uniform(*cond.temp)
    if oxygen_level in ("none", "low") or rng.random() < 0.6:
        o2ctx = "RA" if register == "terse" else rng.choice(("room air", "room air", "air"))
    else:
        o2ctx = rng.choice(("{n} L/min", "15 L/min via non-rebreather", "{n}L NC")).replace(
            "{n}", str(rng.randint(2, 6))
        )
    # The described state follows the numbers: "comfortable" only when nothing is abnormal.
    states = [
        s
        for s, on in (
            ("tachypnoeic", rr > 24),
            ("febrile", temp >= 38.0),
            ("tachycardic", hr > 110),
            ("hypotensive", sbp < 95),
            ("hypoxic", spo2 < 90),
        )
        if on
    ]
    state = rng.choice(states) if states else rng.choice(("comfortable at rest", "alert", "settled"))
    return {
        "spo2": f"{spo2}%",
        "hr": str(hr),
        "rr": str(rr),
        "bp": f"{sbp}/{dbp}",
        "temp": f"{temp:.1f}",
        "o2ctx": o2ctx,
        "state": state,
    }


def draw_labs(cond: Condition, rng: random.Random, register: Register) -> str:
    """Two to four of the condition's blood results as one list ("a CRP of 120 mg/L and lactate 2.1 mmol/L")."""
    keys = rng.sample(cond.labs, k=min(len(cond.labs), rng.randint(2, 4)))
    parts = []
    for item in keys:
        key, _, override = item.partition(":")
        name, short, unit, lo, hi, decimals = LABS[key]
        if override:
            lo, hi = (float(x) for x in override.split("-"))
        value = f"{rng.uniform(lo, hi):.{decimals}f}"
        label = short if register == "terse" else name
        sep = " " if register == "narrative" or rng.random() < 0.7 else ": "
        if register == "narrative" and name not in PLURAL_LABS and rng.random() < 0.3:
            article = "an" if label[0] in "aeiouAEIOU" else "a"
            parts.append(f"{article} {label} of {value}{' ' + unit if unit else ''}")
        else:
            parts.append(
                f"{label}{sep}{value}{' ' + unit if unit and (register == 'narrative' or rng.random() < 0.5) else ''}"
            )
    return join_list(parts, register, rng)
