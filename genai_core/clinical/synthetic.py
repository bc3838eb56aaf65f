"""Synthetic clinical case reports and extractive QA sets: the generator behind the bundled demo data.

Everything here is invented. No record describes a real patient; the numbers are plausible
illustrations, not clinical guidance. The point is a corpus that *reads* like case reports (so a
small character-level model trained for two minutes produces case-report-like text) and QA sets
that test copying from the context rather than recall of a memorised list.

How the text varies:

- A case is drawn from a `Condition` (COVID-19 ARDS, pneumonia, COPD, stroke, hip fracture, ...)
  with its own symptoms, history, vitals ranges, findings, treatments, respiratory support,
  physiotherapy, outcomes and discharge destinations.
- Each sentence slot (intro, history, vitals, ...) has a pool of templates in two registers
  (narrative case report, terse ward note), sentence order is perturbed, and filler sentences are
  inserted, so thousands of distinct surface forms arise.
- Many values are procedural: invented drug names built from syllables ("Zoravimab"), invented
  eponymous lesions and facilities, numbers, doses with units. A model has to copy them.

Held-out values and phrasings (for the QA splits):

- Values: ages with ``age % 7 == 3``, invented drug names whose CRC32 is divisible by 5, and a
  CRC32-chosen quarter of each condition's symptom combinations are *reserved*.
- Phrasings: for every sentence slot and register a fifth, and for every question kind a quarter,
  of the templates (those with the smallest CRC32, never the first, canonical one) are reserved.
- QA train/val use only non-reserved values and phrasings; `test` uses reserved values with train
  phrasings; `test_unseen_phrasing` uses reserved values and reserved phrasings. The unlabeled
  corpus uses everything, like a real case-report corpus would.

Determinism: every case and every QA row is drawn from its own `random.Random` seeded with a string
(``"{seed}/{stream}/{index}"``), which Python hashes with SHA-512, so output is byte-identical across
runs and processes, and the first N rows of a stream do not depend on how many rows follow
(a prefix can be regenerated without generating the whole file).

Command line: ``python -m genai_core.clinical.synthetic --out assets`` (or, once wired into cli.py,
``python -m genai_core generate-corpus --out assets``).
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import string
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

Pool = Literal["train", "reserved", "all"]
"""Which part of a value or phrasing pool to draw from."""
Register = Literal["narrative", "terse"]
Split = Literal["train", "val", "test", "test_unseen_phrasing", "test_unanswerable"]

SPLITS: tuple[Split, ...] = ("train", "val", "test", "test_unseen_phrasing", "test_unanswerable")
# (value pool, phrasing pool) of each QA split.
SPLIT_POOLS: dict[Split, tuple[Pool, Pool]] = {
    "train": ("train", "train"),
    "val": ("train", "train"),
    "test": ("reserved", "train"),
    "test_unseen_phrasing": ("reserved", "reserved"),
    "test_unanswerable": ("reserved", "train"),
}
UNANSWERABLE_SHARE: dict[Split, float] = {"train": 0.25, "val": 0.25, "test": 0.0, "test_unseen_phrasing": 0.0,
                                          "test_unanswerable": 1.0}
"""Share of each split's questions whose context does not hold the answer (answered NOT_STATED). The two scored
test splits stay answerable, so their exact match compares with earlier releases; `test_unanswerable` measures
abstention alone."""
DEFAULT_CASES = 4000
DEFAULT_QA = {"train": 7000, "val": 500, "test": 500, "test_unseen_phrasing": 500, "test_unanswerable": 300}
NOT_STATED = "not stated"
"""The answer to a question its context does not answer (SQuAD 2.0's "no answer"): one fixed string, trained
like any answer, which the Chat shows as "not stated in the context" and the evaluation counts as an abstention."""
QA_HEADER = ("question", "context", "answer", "kind")
DEFAULT_SEED = 0
CORPUS_FILE = Path("corpora") / "clinical_cases.csv"
QA_DIR = Path("qa")


def _crc(text: str) -> int:
    """A hash that is the same in every process (str.__hash__ is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def _pick_pool(items: Sequence[str], pool: Pool, fraction: float) -> list[str]:
    """The train or reserved part of a phrasing pool.

    The reserved part is about `fraction` of the items, those with the smallest CRC32: a choice that
    depends only on the items themselves, so adding a template elsewhere never reshuffles a pool,
    and every pool of two or more keeps at least one item on each side. The first item (the
    canonical phrasing, e.g. "How old is the patient?") is never reserved, so the obvious question
    a person types in the app is one the train split has seen.
    """
    if pool == "all" or len(items) < 2:
        return list(items)
    k = min(len(items) - 1, max(1, round(len(items) * fraction)))
    reserved = set(sorted(items[1:], key=_crc)[:k])
    return [t for t in items if (t in reserved) == (pool == "reserved")]


# =========================================================================== reserved values
def is_reserved_age(age: int) -> bool:
    """Ages held out of QA train/val: one in seven, spread over every decade (17, 24, 31, ...)."""
    return age % 7 == 3


def is_reserved_drug(name: str) -> bool:
    """Invented drug names held out of QA train/val: a fifth, chosen by a stable hash."""
    return _crc(name) % 5 == 0


def is_reserved_combo(condition: str, symptom_keys: Iterable[str]) -> bool:
    """Symptom combinations (as sets, order ignored) held out of QA train/val: a quarter per condition."""
    return _crc(condition + ":" + "|".join(sorted(symptom_keys))) % 4 == 0


def _accept(reserved: bool, pool: Pool) -> bool:
    return pool == "all" or reserved == (pool == "reserved")


# =========================================================================== procedural names
_NAME_HEADS = (
    "Ab",
    "Al",
    "Am",
    "Ar",
    "Bel",
    "Bra",
    "Cal",
    "Cor",
    "Dal",
    "Dex",
    "El",
    "Fen",
    "Gal",
    "Hal",
    "Ix",
    "Jor",
    "Kel",
    "Lor",
    "Mal",
    "Nar",
    "Ob",
    "Pel",
    "Quel",
    "Ral",
    "Sel",
    "Tel",
    "Ul",
    "Var",
    "Vel",
    "Xan",
    "Yor",
    "Zor",
    "Zan",
    "Tro",
    "Pra",
    "Cle",
    "Fro",
    "Gro",
    "Nev",
    "Ost",
    "Sav",
    "Ter",
    "Mir",
    "Lev",
    "Kor",
    "Den",
)
_NAME_MIDS = (
    "",
    "a",
    "e",
    "i",
    "o",
    "u",
    "ra",
    "ri",
    "lo",
    "ne",
    "ta",
    "qui",
    "mo",
    "de",
    "sa",
    "fi",
    "ro",
    "lu",
    "ze",
    "va",
    "ti",
    "no",
    "ba",
    "xi",
    "pe",
    "ca",
)


@dataclass(frozen=True)
class DrugClass:
    """An invented drug family: name suffixes and the dose shapes a drug of that family gets."""

    suffixes: tuple[str, ...]
    amounts: tuple[str, ...]
    unit: str
    routes: tuple[str, ...]
    freqs: tuple[str, ...]
    durations: tuple[str, ...] = ("",)


DRUG_CLASSES: dict[str, DrugClass] = {
    "antiviral": DrugClass(
        ("vir", "navir", "previr", "buvir", "cavir"),
        ("100", "150", "200", "300", "400", "600"),
        "mg",
        ("PO", "IV"),
        ("OD", "BD"),
        ("", "5 days", "7 days", "10 days"),
    ),
    "antibiotic": DrugClass(
        ("penem", "cycline", "mycin", "floxacin", "bactam", "cillin"),
        ("250", "500", "750", "1", "2"),
        "mg|g",
        ("IV", "PO"),
        ("BD", "TDS", "QDS", "Q8H"),
        ("", "5 days", "7 days", "14 days"),
    ),
    "biologic": DrugClass(
        ("vimab", "zumab", "limab", "kimab", "cimab", "tumab"),
        ("8", "100", "200", "400", "420", "600", "800"),
        "mg|mg/kg",
        ("IV", "SC"),
        ("STAT", "WEEKLY", "Q4W"),
    ),
    "enzyme": DrugClass(
        ("nase", "teplase", "kinase", "dase"), ("2.5", "5", "10", "25", "50"), "mg", ("NEB", "IV"), ("BD", "OD", "STAT")
    ),
    "anticoagulant": DrugClass(
        ("xaban", "parin", "gatran"),
        ("2.5", "5", "10", "15", "20", "40", "110"),
        "mg",
        ("PO", "SC"),
        ("OD", "BD"),
        ("", "3 months", "6 months"),
    ),
    "bronchodilator": DrugClass(
        ("terol", "tropium", "phylline"),
        ("2.5", "5", "10", "200", "500"),
        "mg|mcg",
        ("NEB", "INH"),
        ("QDS", "Q4H", "OD", "BD"),
    ),
    "steroid": DrugClass(
        ("sone", "olone", "cortide"),
        ("4", "6", "8", "20", "30", "40", "100", "200"),
        "mg",
        ("PO", "IV"),
        ("OD", "BD", "QDS"),
        ("", "5 days", "7 days", "10 days"),
    ),
    "diuretic": DrugClass(
        ("semide", "tazide", "lactone"), ("20", "40", "50", "80", "120"), "mg", ("IV", "PO"), ("OD", "BD")
    ),
    "immunomodulator": DrugClass(
        ("kinra", "cept", "citinib", "limus"),
        ("2", "4", "8", "100", "162"),
        "mg",
        ("PO", "SC"),
        ("OD", "BD", "WEEKLY"),
        ("", "14 days"),
    ),
    "antiplatelet": DrugClass(
        ("grel", "farin", "plirin"), ("75", "90", "150", "300"), "mg", ("PO",), ("OD", "BD", "STAT")
    ),
    "analgesic": DrugClass(
        ("dol", "fenac", "profen", "codone"),
        ("5", "10", "50", "400", "500", "1"),
        "mg|g",
        ("PO", "IV"),
        ("QDS", "TDS", "Q4H"),
    ),
    "metabolic": DrugClass(
        ("glutide", "gliptin", "formin"), ("0.5", "1", "5", "50", "500"), "mg", ("SC", "PO"), ("OD", "BD", "WEEKLY")
    ),
}


def invent_drug(rng: random.Random, drug_class: str, pool: Pool) -> str:
    """A pronounceable invented drug name of `drug_class` from the train, reserved or whole pool."""
    suffixes = DRUG_CLASSES[drug_class].suffixes
    while True:  # about one draw in five is reserved, so this ends after a few tries
        name = rng.choice(_NAME_HEADS) + rng.choice(_NAME_MIDS) + rng.choice(suffixes)
        if _accept(is_reserved_drug(name), pool):
            return name


_EPONYM_HEADS = (
    "Brask",
    "Varn",
    "Dremont",
    "Halv",
    "Kessel",
    "Morr",
    "Tand",
    "Ostr",
    "Pell",
    "Quill",
    "Rund",
    "Sarn",
    "Thorn",
    "Wex",
    "Yarl",
    "Ell",
    "Fenn",
    "Gask",
    "Hollis",
    "Jarv",
    "Lind",
    "Marl",
    "Nob",
    "Corr",
    "Bex",
    "Aldr",
    "Penr",
    "Strath",
    "Kilm",
    "Tav",
)
_EPONYM_TAILS = ("", "ett", "er", "ing", "ow", "ley", "by", "ham", "wick", "ford", "ton", "el", "mere", "combe")


def invent_eponym(rng: random.Random) -> str:
    """An invented surname for lesions, signs and facilities ("Varnett", "Hollisford")."""
    return rng.choice(_EPONYM_HEADS) + rng.choice(_EPONYM_TAILS)


# =========================================================================== vocabulary filling
# Vocabulary strings may hold small placeholders, filled per case: {int:LO-HI}, {int:LO-HI:STEP},
# {dec:LO-HI} (one decimal), {dec2:LO-HI} (two decimals), {side}, {eponym}, {day} (a day before
# discharge), {he}/{his}/... pronouns. Two levels of braces would be unreadable, so these use the
# same syntax as sentence templates but are filled first, by `_fill`.
_TOKEN = re.compile(r"\{(\w+)(?::([\d.]+)-([\d.]+)(?::([\d.]+))?)?\}")


def _fill(text: str, rng: random.Random, ctx: dict[str, str]) -> str:
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


def _alt(item: str, register: Register) -> str:
    """`"breathlessness|SOB"` -> the narrative or the terse form (the same when there is no bar)."""
    narrative, _, terse = item.partition("|")
    return terse if register == "terse" and terse else narrative


def _join(items: Sequence[str], register: Register, rng: random.Random) -> str:
    """A list as prose ("a, b and c") or as a note ("a, b, c" / "a + b")."""
    if len(items) == 1:
        return items[0]
    if register == "terse":
        return rng.choice((", ", ", ", " + ", "; ")).join(items)
    if any(" and " in i for i in items):  # "x, and y and z" reads badly: separate more clearly
        return ", ".join(items[:-1]) + rng.choice((", as well as ", "; and ")) + items[-1]
    return ", ".join(items[:-1]) + rng.choice((" and ", " and ", ", and ")) + items[-1]


# Items may be restricted to a respiratory support level: "imv:" (ventilated), "niv:", "o2:" (any
# oxygen), "icu:" (HFNC or more), "noimv:" (not ventilated). Keeps "extubated" out of ward cases.
_REQUIRES: dict[str, tuple[str, ...]] = {
    "imv": ("imv",),
    "niv": ("niv",),
    "o2": ("low", "mask", "hfnc", "cpap", "niv", "imv"),
    "icu": ("hfnc", "cpap", "niv", "imv"),
    "noimv": ("none", "low", "mask", "hfnc", "cpap", "niv"),
}


def _allowed(items: Sequence[str], level: str) -> list[str]:
    """The items usable at oxygen `level`, prefixes stripped."""
    out = []
    for item in items:
        tag, sep, rest = item.partition(":")
        if sep and tag in _REQUIRES:
            if level in _REQUIRES[tag]:
                out.append(rest)
        else:
            out.append(item)
    return out


# =========================================================================== medications
_ROUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # code -> (narrative forms, terse forms)
    "IV": (("IV", "intravenously", "IV"), ("IV",)),
    "PO": (("orally", "PO", "by mouth"), ("PO", "po")),
    "SC": (("subcutaneously", "SC"), ("SC", "s/c")),
    "NEB": (("nebulised", "via nebuliser"), ("neb", "NEB")),
    "INH": (("inhaled", "by inhaler"), ("inh",)),
    "IM": (("intramuscularly", "IM"), ("IM",)),
    "TOP": (("topically",), ("top",)),
    "EPI": (("via the epidural",), ("epidural",)),
    "FIB": (("via a fascia iliaca block",), ("FIB",)),
    "SAB": (("via a serratus anterior plane block",), ("SAPB",)),
}
# How an infusion reads, by route (a frequency makes no sense for a continuous infusion).
_INFUSIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "IV": (("by IV infusion", "as an intravenous infusion", "IV infusion"), ("IVI", "IV infusion")),
    "EPI": (("by epidural infusion",), ("epidural infusion",)),
}
_FREQS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "OD": (("once daily", "daily", "OD"), ("OD", "od", "daily")),
    "BD": (("twice daily", "BD", "12-hourly"), ("BD", "bd")),
    "TDS": (("three times daily", "TDS", "8-hourly"), ("TDS", "tds")),
    "QDS": (("four times daily", "QDS", "6-hourly"), ("QDS", "qds")),
    "Q8H": (("every 8 hours", "8-hourly"), ("q8h",)),
    "Q4H": (("every 4 hours", "4-hourly"), ("q4h", "4-hrly")),
    "STAT": (("as a single dose", "once", "stat"), ("stat", "STAT", "x1")),
    "WEEKLY": (("once weekly", "weekly"), ("weekly", "1x/wk")),
    "Q4W": (("every 4 weeks", "four-weekly"), ("q4w",)),
    "INF": (("as an infusion", "by continuous infusion"), ("infusion",)),
    "PRN": (("as required", "PRN"), ("PRN", "prn")),
}


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
    routes = _ROUTES[route][register == "terse"]
    freqs = _FREQS[freq][register == "terse"]
    if freq == "INF":
        return f"{amount}{space}{unit} {rng.choice(_INFUSIONS[route][register == 'terse'])}"
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


# =========================================================================== conditions
@dataclass(frozen=True)
class Condition:
    """Everything that makes a case of one condition: vocabulary pools and numeric ranges.

    Items of the form "narrative|terse" give a note-style alternative. `oxygen` lists support levels
    (repeats weight them). Numbers in items are placeholders filled per case (see `_fill`).
    """

    key: str
    label: str
    ages: tuple[int, int]
    p_female: float
    diagnoses: tuple[str, ...]
    symptoms: tuple[str, ...]
    durations: tuple[str, ...]
    core_history: tuple[str, ...]
    history: tuple[str, ...]
    spo2: tuple[int, int]
    hr: tuple[int, int]
    rr: tuple[int, int]
    sbp: tuple[int, int]
    temp: tuple[float, float]
    imaging: tuple[str, ...]  # "modality|terse modality|finding"
    labs: tuple[str, ...]  # keys of LABS with an optional range override "crp:50-300"
    meds: tuple[str, ...]  # real medication specs, see real_medication
    drug_classes: tuple[str, ...]
    oxygen: tuple[str, ...]
    physio: tuple[str, ...]
    outcomes: tuple[str, ...]
    los: tuple[int, int]
    destinations: tuple[str, ...]
    deaths: tuple[str, ...] = ()
    p_death: float = 0.0
    pair_imaging: bool = False  # imaging[i] is the finding of diagnoses[i] (keeps fracture types consistent)

    def __post_init__(self) -> None:
        if self.pair_imaging and len(self.imaging) != len(self.diagnoses):
            raise ValueError(f"{self.key}: paired imaging needs one finding per diagnosis")


# Lab name forms and default ranges: key -> (narrative name, terse name, unit, lo, hi, decimals)
LABS: dict[str, tuple[str, str, str, float, float, int]] = {
    "crp": ("CRP", "CRP", "mg/L", 5, 300, 0),
    "wcc": ("white cell count", "WCC", "x10^9/L", 3.5, 25, 1),
    "neut": ("neutrophils", "neut", "x10^9/L", 2, 20, 1),
    "lymph": ("lymphocytes", "lymph", "x10^9/L", 0.3, 1.5, 1),
    "lactate": ("lactate", "lac", "mmol/L", 0.8, 6, 1),
    "ddimer": ("D-dimer", "D-dimer", "mg/L", 0.5, 8, 1),
    "ferritin": ("ferritin", "ferritin", "mcg/L", 300, 3000, 0),
    "trop": ("troponin", "trop", "ng/L", 8, 250, 0),
    "bnp": ("NT-proBNP", "NT-proBNP", "pg/mL", 400, 12000, 0),
    "ph": ("pH", "pH", "", 7.15, 7.35, 2),
    "paco2": ("PaCO2", "PaCO2", "kPa", 6.5, 11, 1),
    "pao2": ("PaO2", "PaO2", "kPa", 6, 9.5, 1),
    "pf": ("PaO2/FiO2 ratio", "P/F", "mmHg", 70, 200, 0),
    "glucose": ("glucose", "BM", "mmol/L", 14, 38, 1),
    "ketones": ("ketones", "ketones", "mmol/L", 3, 7.5, 1),
    "bicarb": ("bicarbonate", "HCO3", "mmol/L", 5, 17, 0),
    "hb": ("haemoglobin", "Hb", "g/L", 80, 150, 0),
    "sodium": ("sodium", "Na", "mmol/L", 126, 146, 0),
    "potassium": ("potassium", "K", "mmol/L", 3.0, 6.1, 1),
    "creat": ("creatinine", "creat", "umol/L", 60, 320, 0),
    "egfr": ("eGFR", "eGFR", "mL/min", 15, 90, 0),
    "urea": ("urea", "urea", "mmol/L", 4, 22, 1),
    "pct": ("procalcitonin", "PCT", "ng/mL", 0.1, 12, 1),
    "eos": ("eosinophils", "eos", "x10^9/L", 0.1, 1.2, 1),
    "inr": ("INR", "INR", "", 0.9, 1.6, 1),
    "albumin": ("albumin", "alb", "g/L", 22, 42, 0),
    "vitd": ("vitamin D", "vit D", "nmol/L", 12, 60, 0),
    "hba1c": ("HbA1c", "HbA1c", "mmol/mol", 48, 110, 0),
    "amylase": ("amylase", "amylase", "U/L", 300, 2500, 0),
    "ck": ("creatine kinase", "CK", "U/L", 200, 9000, 0),
}

_PLURAL_LABS = frozenset({"lymphocytes", "neutrophils", "eosinophils", "ketones"})

_OXYGEN: dict[str, tuple[str, ...]] = {  # support level -> "narrative|terse" forms with placeholders
    "none": ("no supplemental oxygen|nil O2", "no oxygen therapy|RA throughout", "no supplemental oxygen|no O2 req"),
    "low": (
        "{int:1-4} L/min via nasal cannulae|{int:1-4}L NC",
        "{int:1-4} L/min of oxygen via nasal cannulae|NC {int:1-4} L/min",
        "controlled oxygen via a {int:24-40:4}% Venturi mask|{int:24-40:4}% Venturi",
        "low-flow oxygen at {int:1-3} L/min|LFO2 {int:1-3}L",
    ),
    "mask": (
        "{int:10-15} L/min via a non-rebreather mask|NRB {int:10-15}L",
        "{int:6-10} L/min via a simple face mask|FM {int:6-10}L",
    ),
    "hfnc": (
        "HFNC {int:30-60:5} L/min FiO2 0.{int:35-90:5}|HFNC {int:30-60:5}L FiO2 0.{int:35-90:5}",
        "high-flow nasal oxygen at {int:30-60:5} L/min with FiO2 0.{int:35-90:5}|HFNO {int:30-60:5}/0.{int:35-90:5}",
        "high-flow nasal cannula oxygen ({int:30-60:5} L/min, FiO2 {int:35-90:5}%)|"
        "HFNC {int:30-60:5} L/min FiO2 {int:35-90:5}%",
    ),
    "cpap": (
        "CPAP {int:8-14:2} cmH2O with FiO2 0.{int:40-80:5}|CPAP {int:8-14:2} FiO2 0.{int:40-80:5}",
        "continuous positive airway pressure at {int:8-14:2} cmH2O|CPAP {int:8-14:2}cmH2O",
    ),
    "niv": (
        "NIV|NIV",
        "NIV (IPAP {int:14-24:2}, EPAP {int:4-8} cmH2O)|NIV IPAP {int:14-24:2}/EPAP {int:4-8}",
        "bilevel non-invasive ventilation with IPAP {int:14-24:2} and EPAP {int:4-8} cmH2O|"
        "BiPAP {int:14-24:2}/{int:4-8}",
        "non-invasive ventilation overnight|NIV overnight",
    ),
    "imv": (
        "intubation and prone positioning|intubated + proned",
        "invasive mechanical ventilation (PEEP {int:8-16:2} cmH2O, FiO2 0.{int:50-90:5})|"
        "IMV PEEP {int:8-16:2} FiO2 0.{int:50-90:5}",
        "intubation, lung-protective ventilation at 6 mL/kg and prone positioning|ETT, LPV 6 mL/kg, proned",
        "intubation and mechanical ventilation|intubated + ventilated",
    ),
}

_DESTINATIONS_COMMON = ("home", "home with a package of care|home + POC", "home with family support|home w/ family")
_REHAB_PLACES = (
    "{eponym} Community Hospital",
    "{eponym} Rehabilitation Unit",
    "{eponym} House",
    "{eponym} Lodge care home",
)

CONDITIONS: tuple[Condition, ...] = (
    Condition(
        key="covid_ards",
        label="COVID-19 ARDS",
        ages=(34, 84),
        p_female=0.38,
        diagnoses=(
            "COVID-19 ARDS",
            "severe COVID-19 pneumonia with ARDS",
            "SARS-CoV-2 pneumonitis complicated by ARDS",
            "moderate ARDS secondary to COVID-19",
            "COVID-19 pneumonitis with type 1 respiratory failure",
        ),
        symptoms=(
            "fever|fever",
            "dry cough|dry cough",
            "breathlessness|SOB",
            "myalgia|myalgia",
            "fatigue|fatigue",
            "loss of smell|anosmia",
            "headache|headache",
            "diarrhoea|D&V",
            "chest tightness|chest tightness",
            "rigors|rigors",
        ),
        durations=("days",),
        core_history=(),
        history=(
            "type 2 diabetes|T2DM",
            "hypertension|HTN",
            "obesity (BMI {int:31-44})|obesity BMI {int:31-44}",
            "asthma|asthma",
            "ischaemic heart disease|IHD",
            "chronic kidney disease stage 3|CKD3",
            "hypothyroidism|hypothyroid",
            "obstructive sleep apnoea|OSA",
        ),
        spo2=(78, 91),
        hr=(92, 130),
        rr=(24, 40),
        sbp=(95, 150),
        temp=(37.6, 39.8),
        imaging=(
            "chest X-ray|CXR|bilateral patchy opacities",
            "CT chest|CT chest|bilateral ground-glass opacities",
            "CT chest|CTPA|peripheral ground-glass change with no pulmonary embolus",
            "chest radiograph|CXR|bilateral lower-zone consolidation",
        ),
        labs=("crp:60-280", "lymph", "ddimer", "ferritin", "pf", "lactate:0.9-3"),
        meds=(
            "dexamethasone|6|mg|IV,PO|OD|10 days",
            "tocilizumab|8|mg/kg|IV|STAT",
            "enoxaparin|40,60|mg|SC|OD",
            "remdesivir|100|mg|IV|OD|5 days",
            "baricitinib|4|mg|PO|OD|14 days",
        ),
        drug_classes=("antiviral", "biologic", "immunomodulator", "steroid"),
        oxygen=("hfnc", "hfnc", "cpap", "imv", "imv", "mask"),
        physio=(
            "prone positioning for {int:12-18} hours per day|proning {int:12-18}h/day",
            "imv:manual hyperinflation and closed suctioning|MHI + closed suction",
            "in-bed cycle ergometry for {int:10-30:5} minutes|bed cycle {int:10-30:5} min",
            "inspiratory muscle training at {int:30-50:5}% of MIP|IMT {int:30-50:5}% MIP",
            "early mobilisation, sitting out of bed on day {day}|sat out day {day}",
            "tilt-table standing|tilt table",
            "active cycle of breathing technique|ACBT",
            "positioning and secretion management|positioning + secretion mx",
            "sit-to-stand practice and marching on the spot|STS practice",
        ),
        outcomes=(
            "imv:was extubated on day {day} and stepped down to the ward|extubated D{day}, stepped down",
            "o2:was weaned to room air by day {day}|weaned to RA D{day}",
            "improved gradually and walked {int:20-120:10} m with a frame before discharge|"
            "walking {int:20-120:10} m with frame",
            "imv:needed a tracheostomy but was decannulated on day {day}|trache, decannulated D{day}",
            "developed ICU-acquired weakness but regained independent transfers|ICUAW, indep transfers",
        ),
        los=(10, 45),
        destinations=(*_DESTINATIONS_COMMON, *_REHAB_PLACES, "inpatient rehabilitation|inpt rehab"),
        deaths=("deteriorated despite maximal support and died on day {day}|died D{day}",),
        p_death=0.08,
    ),
    Condition(
        key="cap",
        label="community-acquired pneumonia",
        ages=(22, 95),
        p_female=0.48,
        diagnoses=(
            "community-acquired pneumonia|CAP",
            "{side} lower lobe pneumonia|{side} LL pneumonia",
            "community-acquired pneumonia (CURB-65 score {int:1-4})|CAP, CURB-65 {int:1-4}",
            "pneumococcal pneumonia|pneumococcal pneumonia",
            "{side}-sided community-acquired pneumonia|{side} CAP",
        ),
        symptoms=(
            "productive cough|productive cough",
            "fever|fever",
            "pleuritic chest pain|pleuritic CP",
            "breathlessness|SOB",
            "rigors|rigors",
            "confusion|confusion",
            "green sputum|green sputum",
            "reduced appetite|poor appetite",
            "lethargy|lethargy",
        ),
        durations=("days",),
        core_history=(),
        history=(
            "type 2 diabetes|T2DM",
            "hypertension|HTN",
            "atrial fibrillation|AF",
            "COPD|COPD",
            "chronic kidney disease stage 3|CKD3",
            "previous stroke|prev CVA",
            "dementia|dementia",
            "heart failure|HF",
            "alcohol excess|EtOH excess",
        ),
        spo2=(85, 95),
        hr=(88, 125),
        rr=(20, 32),
        sbp=(90, 150),
        temp=(37.8, 39.9),
        imaging=(
            "chest X-ray|CXR|{side} lower lobe consolidation",
            "chest X-ray|CXR|{side} middle and lower zone consolidation",
            "chest radiograph|CXR|consolidation with a small {side} parapneumonic effusion",
            "CT chest|CT|dense {side} lower lobe consolidation with air bronchograms",
        ),
        labs=("crp:80-320", "wcc:11-24", "urea", "pct", "sodium"),
        meds=(
            "amoxicillin|500,1|mg,g|PO,IV|TDS|5 days",
            "co-amoxiclav|1.2|g|IV|TDS",
            "clarithromycin|500|mg|PO,IV|BD|5 days",
            "doxycycline|100|mg|PO|OD|5 days",
            "paracetamol|1|g|PO|QDS",
        ),
        drug_classes=("antibiotic", "antibiotic", "analgesic"),
        oxygen=("low", "low", "low", "none", "mask", "hfnc"),
        physio=(
            "active cycle of breathing technique|ACBT",
            "positioning to optimise ventilation|positioning",
            "early mobilisation to the chair on day 1|sat out D1",
            "walking {int:20-80:10} m with supervision|mobilised {int:20-80:10} m",
            "incentive spirometry|IS",
            "thoracic expansion exercises|TEE",
            "huffing and supported coughing|huff + cough",
        ),
        outcomes=(
            "improved with defervescence by day {day}|apyrexial D{day}",
            "o2:was weaned to room air by day {day}|RA by D{day}",
            "made a full recovery|full recovery",
            "was mobilising independently by day {day}|indep mobile D{day}",
        ),
        los=(3, 14),
        destinations=(*_DESTINATIONS_COMMON, "a nursing home|NH", "{eponym} House"),
        deaths=("died on day {day} after a ceiling of care was agreed|died D{day}, ceiling of care",),
        p_death=0.04,
    ),
    Condition(
        key="copd",
        label="COPD exacerbation",
        ages=(48, 90),
        p_female=0.5,
        diagnoses=(
            "infective exacerbation of COPD|IECOPD",
            "acute exacerbation of COPD|AECOPD",
            "COPD exacerbation with type 2 respiratory failure|AECOPD, T2RF",
            "hypercapnic respiratory failure due to a COPD exacerbation|T2RF, AECOPD",
        ),
        symptoms=(
            "worsening breathlessness|incr SOB",
            "increased sputum volume|incr sputum",
            "purulent sputum|purulent sputum",
            "wheeze|wheeze",
            "cough|cough",
            "chest tightness|chest tightness",
            "drowsiness|drowsy",
            "reduced exercise tolerance|reduced ET",
        ),
        durations=("days",),
        core_history=(
            "COPD (FEV1 {int:25-60}% predicted)|COPD FEV1 {int:25-60}%",
            "severe COPD on home oxygen|COPD on LTOT",
        ),
        history=(
            "ex-smoker of {int:20-80:5} pack-years|ex-smoker {int:20-80:5} PY",
            "hypertension|HTN",
            "cor pulmonale|cor pulmonale",
            "osteoporosis|osteoporosis",
            "anxiety|anxiety",
            "type 2 diabetes|T2DM",
        ),
        spo2=(78, 90),
        hr=(90, 125),
        rr=(22, 34),
        sbp=(105, 165),
        temp=(36.6, 38.6),
        imaging=(
            "chest X-ray|CXR|hyperinflation without consolidation",
            "chest X-ray|CXR|hyperexpanded lungs with bullae",
            "chest radiograph|CXR|hyperinflation and a small {side} basal opacity",
        ),
        labs=("ph", "paco2", "crp:10-120", "eos", "wcc"),
        meds=(
            "prednisolone|30,40|mg|PO|OD|5 days",
            "salbutamol|5|mg|NEB|Q4H",
            "ipratropium|500|mcg|NEB|QDS",
            "amoxicillin|500|mg|PO|TDS|5 days",
            "doxycycline|200|mg|PO|STAT",
        ),
        drug_classes=("bronchodilator", "steroid", "antibiotic"),
        oxygen=("low", "low", "niv", "niv", "niv"),
        physio=(
            "active cycle of breathing technique|ACBT",
            "a positive expiratory pressure device|PEP device",
            "breathing control and pacing|BC + pacing",
            "walking {int:10-60:10} m on {int:1-3} L/min of oxygen with a rollator|mob {int:10-60:10} m with rollator",
            "energy conservation advice|energy conservation",
            "referral to pulmonary rehabilitation|PR referral",
            "forward-lean positioning for breathlessness|fwd lean positioning",
        ),
        outcomes=(
            "niv:was off NIV by day {day}|off NIV D{day}",
            "reported breathlessness of {int:3-6}/10 on the Borg scale at discharge|Borg {int:3-6}/10 at d/c",
            "returned to baseline oxygen requirements|back to baseline O2",
            "o2:improved and was weaned to room air by day {day}|RA by D{day}",
        ),
        los=(3, 12),
        destinations=(*_DESTINATIONS_COMMON, "home with early supported discharge|home + ESD"),
        deaths=(
            "niv:died on day {day} after NIV was withdrawn|died D{day} after NIV withdrawn",
            "died on day {day} after a ceiling of ward-based care was agreed|died D{day}, ward ceiling",
        ),
        p_death=0.04,
    ),
    Condition(
        key="heart_failure",
        label="acute heart failure",
        ages=(52, 95),
        p_female=0.45,
        diagnoses=(
            "acute decompensated heart failure|ADHF",
            "acute heart failure with reduced ejection fraction|HFrEF, decompensated",
            "decompensated heart failure with pulmonary oedema|decomp HF + APO",
            "acute heart failure with fluid overload|AHF, fluid overloaded",
            "acute pulmonary oedema secondary to left ventricular failure|APO/LVF",
        ),
        symptoms=(
            "worsening breathlessness|incr SOB",
            "orthopnoea|orthopnoea",
            "paroxysmal nocturnal dyspnoea|PND",
            "ankle swelling|ankle oedema",
            "weight gain of {int:3-8} kg|wt gain {int:3-8}kg",
            "fatigue|fatigue",
            "reduced exercise tolerance|reduced ET",
            "nocturnal cough|nocturnal cough",
            "palpitations|palps",
        ),
        durations=("days", "weeks"),
        core_history=(
            "ischaemic cardiomyopathy (EF {int:20-40}%)|ICM EF {int:20-40}%",
            "heart failure (LVEF {int:25-55}%)|HF LVEF {int:25-55}%",
        ),
        history=(
            "atrial fibrillation|AF",
            "hypertension|HTN",
            "type 2 diabetes|T2DM",
            "chronic kidney disease stage 3|CKD3",
            "previous myocardial infarction|prev MI",
            "aortic stenosis|AS",
            "gout|gout",
            "COPD|COPD",
        ),
        spo2=(84, 95),
        hr=(85, 135),
        rr=(20, 32),
        sbp=(100, 185),
        temp=(36.2, 37.6),
        imaging=(
            "chest X-ray|CXR|cardiomegaly with bilateral pleural effusions",
            "chest X-ray|CXR|upper lobe diversion and Kerley B lines",
            "echocardiogram|echo|a dilated left ventricle with an ejection fraction of {int:15-40}%",
            "echocardiogram|TTE|severe functional mitral regurgitation and an EF of {int:20-45}%",
            "chest radiograph|CXR|bilateral alveolar oedema with a {side} pleural effusion",
        ),
        labs=("bnp", "trop:10-60", "creat", "potassium", "sodium:126-140", "hb"),
        meds=(
            "furosemide|40,80|mg|IV|BD",
            "bisoprolol|1.25,2.5|mg|PO|OD",
            "ramipril|1.25,2.5|mg|PO|OD",
            "spironolactone|25|mg|PO|OD",
            "dapagliflozin|10|mg|PO|OD",
            "apixaban|5|mg|PO|BD",
            "glyceryl trinitrate|1,2|mg/h|IV|INF",
        ),
        drug_classes=("diuretic", "diuretic", "anticoagulant", "metabolic"),
        oxygen=("low", "low", "none", "cpap", "cpap", "mask"),
        physio=(
            "graded walking programme|graded walking",
            "pacing and energy conservation advice|pacing advice",
            "sit-to-stand practice|STS practice",
            "walking {int:20-100:10} m with a frame|mob {int:20-100:10} m with frame",
            "referral to cardiac rehabilitation|cardiac rehab referral",
            "breathing control|BC",
            "stair assessment|stairs assessed",
            "lower limb strengthening exercises|LL strengthening",
        ),
        outcomes=(
            "lost {int:3-10} kg with diuresis and was euvolaemic by day {day}|diuresed {int:3-10}kg, euvolaemic D{day}",
            "o2:improved and was weaned to room air by day {day}|RA by D{day}",
            "walked {int:30-150:10} m independently before discharge|indep {int:30-150:10} m at d/c",
            "had resolution of peripheral oedema|oedema resolved",
            "was back to NYHA class II by discharge|NYHA II at d/c",
        ),
        los=(4, 18),
        destinations=(*_DESTINATIONS_COMMON, "a nursing home|NH", "{eponym} House", "intermediate care|IC bed"),
        deaths=(
            "died on day {day} with refractory cardiogenic shock|died D{day}, cardiogenic shock",
            "was transitioned to palliative care and died on day {day}|palliated, died D{day}",
        ),
        p_death=0.05,
    ),
    Condition(
        key="stroke",
        pair_imaging=True,
        label="stroke rehabilitation",
        ages=(45, 94),
        p_female=0.47,
        diagnoses=(
            "{side} middle cerebral artery infarct|{side} MCA infarct",
            "acute ischaemic stroke|AIS",
            "{side} total anterior circulation infarct|{side} TACI",
            "{side} partial anterior circulation stroke|{side} PACS",
            "{side} lacunar infarct|{side} LACS",
            "{side} basal ganglia haemorrhage|{side} BG ICH",
            "posterior circulation stroke|POCS",
        ),
        symptoms=(
            "sudden {other_side}-sided weakness|sudden {other_side} weakness",
            "slurred speech|dysarthria",
            "facial droop|facial droop",
            "expressive dysphasia|exp dysphasia",
            "{other_side} arm numbness|{other_side} arm numbness",
            "unsteadiness|ataxia",
            "visual field loss|VF loss",
            "difficulty swallowing|dysphagia",
            "confusion|confusion",
            "a fall at home|fall at home",
        ),
        durations=("hours",),
        core_history=(),
        history=(
            "atrial fibrillation|AF",
            "hypertension|HTN",
            "hypercholesterolaemia|high chol",
            "type 2 diabetes|T2DM",
            "previous TIA|prev TIA",
            "tobacco dependence|smoker",
            "peripheral vascular disease|PVD",
            "migraine|migraine",
        ),
        spo2=(93, 99),
        hr=(60, 110),
        rr=(14, 22),
        sbp=(140, 210),
        temp=(36.1, 37.6),
        imaging=(
            "CT head|CT head|a {side} MCA territory infarct",
            "CT head|CTH|early ischaemic change in the {side} insula",
            "CT angiogram|CTA|occlusion of the {side} M1 segment",
            "MRI brain|MRI|a {side} frontal cortical infarct",
            "MRI brain|MRI|restricted diffusion in the {side} internal capsule",
            "CT head|CT head|a {int:10-35} mL {side} basal ganglia haematoma",
            "MRI brain|MRI|an acute infarct in the {side} cerebellar hemisphere",
        ),
        labs=("glucose:5-12", "hba1c", "inr", "creat:60-140", "hb"),
        meds=(
            "alteplase|0.9|mg/kg|IV|INF",
            "aspirin|300|mg|PO|OD|14 days",
            "clopidogrel|75|mg|PO|OD",
            "atorvastatin|20,80|mg|PO|OD",
            "apixaban|5|mg|PO|BD",
            "amlodipine|5|mg|PO|OD",
        ),
        drug_classes=("antiplatelet", "anticoagulant", "enzyme"),
        oxygen=("none", "none", "none", "low"),
        physio=(
            "task-specific upper limb training|UL task practice",
            "gait re-education|gait re-ed",
            "balance training|balance tx",
            "constraint-induced movement therapy|CIMT",
            "functional electrical stimulation to the ankle dorsiflexors|FES to ankle DF",
            "mirror therapy|mirror therapy",
            "sit-to-stand practice|STS practice",
            "early mobilisation within 24 hours|mobilised <24h",
            "treadmill training with partial body-weight support|BWS treadmill",
            "standing frame practice|standing frame",
            "positioning and tone management|positioning + tone mx",
            "stair practice|stairs",
        ),
        outcomes=(
            "regained independent walking with a stick|indep with stick",
            "walked {int:10-50:5} m with a quad stick|{int:10-50:5} m with quad stick",
            "improved from an NIHSS of {int:8-20} to {int:1-7}|NIHSS {int:8-20} -> {int:1-7}",
            "had a modified Rankin score of {int:1-4} at discharge|mRS {int:1-4} at d/c",
            "remained dependent for transfers with one carer|transfers with 1 carer",
            "recovered functional use of the {other_side} hand|{other_side} hand function back",
        ),
        los=(7, 60),
        destinations=(
            "home|home",
            "home with early supported discharge|home + ESD",
            "inpatient stroke rehabilitation|inpt stroke rehab",
            *_REHAB_PLACES,
            "a nursing home|NH",
        ),
        deaths=("died on day {day} from aspiration pneumonia|died D{day}, asp pneumonia",),
        p_death=0.05,
    ),
    Condition(
        key="hip_fracture",
        pair_imaging=True,
        label="hip fracture in an older adult",
        ages=(66, 101),
        p_female=0.7,
        diagnoses=(
            "{side} intracapsular neck of femur fracture|{side} #NOF (intracapsular)",
            "{side} intertrochanteric hip fracture|{side} IT #NOF",
            "displaced {side} subcapital fracture|displaced {side} subcapital #",
            "{side} extracapsular hip fracture|{side} extracapsular #NOF",
            "{side} periprosthetic femoral fracture|{side} periprosthetic #",
        ),
        symptoms=(
            "a fall at home|fall at home",
            "{side} hip pain|{side} hip pain",
            "inability to weight-bear|unable to WB",
            "a shortened, externally rotated {side} leg|{side} leg short + ext rot",
            "a long lie on the floor|long lie",
            "groin pain|groin pain",
            "bruising over the {side} hip|{side} hip bruising",
        ),
        durations=("hours",),
        core_history=(),
        history=(
            "osteoporosis|OP",
            "dementia|dementia",
            "atrial fibrillation|AF",
            "hypertension|HTN",
            "previous falls|prev falls",
            "Parkinson's disease|PD",
            "chronic kidney disease stage 3|CKD3",
            "macular degeneration|macular degen",
            "hypothyroidism|hypothyroid",
            "depression|depression",
        ),
        spo2=(92, 99),
        hr=(64, 110),
        rr=(14, 22),
        sbp=(105, 175),
        temp=(35.8, 37.5),
        imaging=(
            "hip radiograph|XR hip|a displaced {side} intracapsular fracture",
            "pelvic X-ray|XR pelvis|an intertrochanteric fracture of the {side} femur",
            "hip X-ray|XR hip|a {side} subcapital fracture with varus angulation",
            "CT hip|CT hip|a {side} extracapsular fracture with a lesser trochanter fragment",
            "hip radiograph|XR hip|a {side} periprosthetic fracture around a cemented stem",
        ),
        labs=("hb:85-130", "creat:60-180", "sodium", "vitd", "albumin", "ck"),
        meds=(
            "paracetamol|1|g|PO|QDS",
            "morphine|2.5,5|mg|PO|Q4H",
            "enoxaparin|40|mg|SC|OD|28 days",
            "alendronic acid|70|mg|PO|WEEKLY",
            "colecalciferol|800|units|PO|OD",
            "levobupivacaine 0.25%|30|mL|FIB|STAT",
        ),
        drug_classes=("analgesic", "anticoagulant", "metabolic"),
        oxygen=("none", "none", "none", "low"),
        physio=(
            "full weight-bearing with a frame on day 1|FWB with frame D1",
            "quadriceps and gluteal strengthening|quads + glutes",
            "bed mobility and transfer practice|bed mob + transfers",
            "stair practice|stairs",
            "falls-prevention education|falls education",
            "sit-to-stand practice|STS practice",
            "walking {int:5-40:5} m with a frame|mob {int:5-40:5} m with frame",
            "deep breathing exercises|DBE",
            "a home exercise programme|HEP",
        ),
        outcomes=(
            "was walking {int:10-40:5} m with a frame by day {day}|{int:10-40:5} m with frame D{day}",
            "regained independent transfers|indep transfers",
            "needed the help of one person to walk|mob with 1 assist",
            "developed post-operative delirium that settled by day {day}|delirium, settled D{day}",
            "returned to walking with a stick|back to stick",
            "underwent hemiarthroplasty on day {int:1-2} and mobilised the next day|"
            "hemi D{int:1-2}, mobilised next day",
            "underwent a dynamic hip screw fixation and mobilised on day {int:1-3}|DHS, mobilised D{int:1-3}",
        ),
        los=(6, 40),
        destinations=(
            "home|home",
            "home with a package of care|home + POC",
            "a nursing home|NH",
            "residential care|res care",
            *_REHAB_PLACES,
            "intermediate care|IC bed",
        ),
        deaths=("died on day {day} from a hospital-acquired pneumonia|died D{day}, HAP",),
        p_death=0.06,
    ),
    Condition(
        key="sepsis",
        label="sepsis",
        ages=(25, 95),
        p_female=0.5,
        diagnoses=(
            "urosepsis|urosepsis",
            "sepsis secondary to pyelonephritis|sepsis ?pyelo",
            "septic shock from a biliary source|septic shock, biliary",
            "sepsis of unknown source|sepsis ?source",
            "sepsis secondary to {side} leg cellulitis|sepsis, {side} leg cellulitis",
            "septic shock secondary to a perforated appendix|septic shock, perf appendix",
        ),
        symptoms=(
            "fever|fever",
            "rigors|rigors",
            "confusion|confusion",
            "dysuria|dysuria",
            "abdominal pain|abdo pain",
            "vomiting|vomiting",
            "reduced urine output|oliguria",
            "lethargy|lethargy",
            "{side} flank pain|{side} loin pain",
            "a red, swollen {side} leg|{side} leg erythema",
        ),
        durations=("days", "hours"),
        core_history=(),
        history=(
            "type 2 diabetes|T2DM",
            "recurrent urinary tract infections|recurrent UTIs",
            "gallstones|gallstones",
            "chronic kidney disease stage 3|CKD3",
            "hypertension|HTN",
            "immunosuppression after renal transplant|renal tx, immunosuppressed",
            "alcohol excess|EtOH excess",
            "obesity|obesity",
        ),
        spo2=(88, 97),
        hr=(105, 145),
        rr=(22, 34),
        sbp=(70, 105),
        temp=(35.2, 40.2),
        imaging=(
            "CT abdomen|CT AP|a {side} obstructed kidney with perinephric stranding",
            "ultrasound|USS|a thick-walled gallbladder with gallstones",
            "chest X-ray|CXR|clear lung fields",
            "CT abdomen|CT AP|a perforated appendix with a {int:3-8} cm collection",
            "ultrasound|USS|{side} hydronephrosis",
        ),
        labs=("lactate:2.5-8", "crp:100-400", "wcc:14-30", "creat:110-420", "pct", "urea"),
        meds=(
            "piperacillin-tazobactam|4.5|g|IV|TDS",
            "gentamicin|5|mg/kg|IV|OD",
            "meropenem|1|g|IV|TDS",
            "noradrenaline|0.1,0.2,0.3|mcg/kg/min|IV|INF",
            "Hartmann's solution|500|mL|IV|STAT",
            "hydrocortisone|50|mg|IV|QDS",
        ),
        drug_classes=("antibiotic", "antibiotic", "steroid"),
        oxygen=("low", "low", "none", "mask", "hfnc", "imv"),
        physio=(
            "early mobilisation from day {int:1-3}|mob from D{int:1-3}",
            "in-bed exercises|bed exercises",
            "imv:respiratory physiotherapy while ventilated|resp physio on vent",
            "sit-to-stand practice|STS practice",
            "walking {int:20-80:10} m with a frame|mob {int:20-80:10} m with frame",
            "deep breathing exercises|DBE",
            "a graded exercise programme|graded exercise",
        ),
        outcomes=(
            "improved after source control and was stepped down from ICU on day {day}|"
            "source control, stepped down D{day}",
            "had a falling lactate and was off vasopressors by day {day}|off pressors D{day}",
            "recovered with renal function back to baseline|renal fn back to baseline",
            "made a full recovery|full recovery",
            "imv:was extubated on day {day}|extubated D{day}",
        ),
        los=(5, 35),
        destinations=(*_DESTINATIONS_COMMON, "intermediate care|IC bed", *_REHAB_PLACES[:2]),
        deaths=("developed multi-organ failure and died on day {day}|MOF, died D{day}",),
        p_death=0.1,
    ),
    Condition(
        key="asthma",
        label="acute asthma",
        ages=(16, 70),
        p_female=0.6,
        diagnoses=(
            "acute severe asthma|acute severe asthma",
            "life-threatening asthma|life-threatening asthma",
            "moderate asthma exacerbation|mod asthma exac",
            "acute asthma triggered by a viral infection|viral-induced asthma exac",
        ),
        symptoms=(
            "wheeze|wheeze",
            "breathlessness|SOB",
            "chest tightness|chest tightness",
            "cough|cough",
            "inability to complete sentences|unable to complete sentences",
            "night-time waking|nocturnal sx",
            "reduced peak flow|reduced PEF",
            "runny nose|coryza",
        ),
        durations=("days", "hours"),
        core_history=("asthma since childhood|asthma", "brittle asthma|brittle asthma"),
        history=(
            "previous ICU admission for asthma|prev ICU for asthma",
            "eczema|eczema",
            "allergic rhinitis|hay fever",
            "anxiety|anxiety",
            "gastro-oesophageal reflux|GORD",
            "tobacco dependence|smoker",
            "nasal polyps|nasal polyps",
        ),
        spo2=(86, 95),
        hr=(105, 140),
        rr=(24, 36),
        sbp=(105, 150),
        temp=(36.4, 37.9),
        imaging=(
            "chest X-ray|CXR|hyperinflation without pneumothorax",
            "chest X-ray|CXR|no focal consolidation",
            "chest radiograph|CXR|clear lungs with no pneumothorax",
        ),
        labs=("ph:7.3-7.45", "paco2:4-6.5", "eos", "potassium:3-4", "wcc"),
        meds=(
            "salbutamol|5|mg|NEB|Q4H",
            "ipratropium|500|mcg|NEB|QDS",
            "prednisolone|40|mg|PO|OD|5 days",
            "magnesium sulfate|2|g|IV|STAT",
            "hydrocortisone|100|mg|IV|QDS",
            "aminophylline|5|mg/kg|IV|STAT",
        ),
        drug_classes=("bronchodilator", "bronchodilator", "steroid", "biologic"),
        oxygen=("low", "low", "mask", "hfnc", "imv"),
        physio=(
            "breathing control|BC",
            "inhaler technique review|inhaler technique",
            "breathing pattern retraining|BPD retraining",
            "a personalised asthma action plan|asthma action plan",
            "early mobilisation|early mob",
            "peak flow education|PEF education",
        ),
        outcomes=(
            "had a peak flow of {int:60-90}% of best by day {day}|PEF {int:60-90}% best D{day}",
            "o2:was weaned to room air by day {day}|RA by D{day}",
            "improved within 48 hours|improved <48h",
            "imv:was extubated on day {day}|extubated D{day}",
            "made a full recovery|full recovery",
        ),
        los=(2, 9),
        destinations=(
            "home|home",
            "home with respiratory nurse follow-up|home, resp nurse f/u",
            "home with family support|home w/ family",
        ),
    ),
    Condition(
        key="dka",
        label="diabetic ketoacidosis",
        ages=(16, 70),
        p_female=0.52,
        diagnoses=(
            "diabetic ketoacidosis|DKA",
            "severe diabetic ketoacidosis|severe DKA",
            "DKA precipitated by a urinary tract infection|DKA, UTI trigger",
            "new-onset type 1 diabetes presenting with DKA|new T1DM, DKA",
            "DKA after missed insulin doses|DKA, missed insulin",
        ),
        symptoms=(
            "polyuria|polyuria",
            "polydipsia|polydipsia",
            "vomiting|vomiting",
            "abdominal pain|abdo pain",
            "weight loss|wt loss",
            "drowsiness|drowsy",
            "rapid deep breathing|Kussmaul breathing",
            "fatigue|fatigue",
        ),
        durations=("days",),
        core_history=(),
        history=(
            "type 1 diabetes|T1DM",
            "coeliac disease|coeliac",
            "depression|depression",
            "hypothyroidism|hypothyroid",
            "previous DKA|prev DKA",
            "eating disorder|ED",
            "tobacco dependence|smoker",
        ),
        spo2=(95, 100),
        hr=(100, 140),
        rr=(22, 34),
        sbp=(90, 130),
        temp=(36.0, 38.2),
        imaging=("chest X-ray|CXR|clear lung fields", "abdominal X-ray|AXR|no obstruction"),
        labs=("glucose", "ketones", "ph:7.0-7.25", "bicarb", "potassium", "creat:70-200"),
        meds=(
            "soluble insulin|0.1|units/kg/h|IV|INF",
            "sodium chloride 0.9%|1|L|IV|STAT",
            "potassium chloride|40|mmol/L|IV|INF",
            "insulin glargine|20|units|SC|OD",
            "ondansetron|4|mg|IV|TDS",
        ),
        drug_classes=("metabolic", "analgesic", "antibiotic"),
        oxygen=("none",),
        physio=(
            "early mobilisation|early mob",
            "deconditioning assessment|deconditioning ax",
            "walking {int:50-200:10} m independently|mob {int:50-200:10} m indep",
        ),
        outcomes=(
            "had ketoacidosis resolved within {int:12-36} hours|DKA resolved {int:12-36}h",
            "was converted to subcutaneous insulin on day {day}|SC insulin D{day}",
            "made a full recovery|full recovery",
            "was seen by the diabetes specialist nurse before discharge|DSN review before d/c",
        ),
        los=(2, 8),
        destinations=(
            "home|home",
            "home with diabetes team follow-up|home, diabetes f/u",
            "home with family support|home w/ family",
        ),
    ),
    Condition(
        key="pe",
        pair_imaging=True,
        label="pulmonary embolism",
        ages=(22, 90),
        p_female=0.52,
        diagnoses=(
            "acute pulmonary embolism|PE",
            "bilateral pulmonary emboli|bilateral PEs",
            "submassive pulmonary embolism|submassive PE",
            "massive pulmonary embolism|massive PE",
            "{side} segmental pulmonary embolism|{side} segmental PE",
        ),
        symptoms=(
            "sudden breathlessness|sudden SOB",
            "pleuritic chest pain|pleuritic CP",
            "haemoptysis|haemoptysis",
            "{side} calf swelling|{side} calf swelling",
            "syncope|syncope",
            "palpitations|palps",
            "light-headedness|presyncope",
        ),
        durations=("hours", "days"),
        core_history=(),
        history=(
            "recent knee surgery|recent knee surgery",
            "active cancer|active malignancy",
            "combined oral contraceptive use|COCP",
            "previous DVT|prev DVT",
            "obesity|obesity",
            "varicose veins|varicose veins",
            "factor V Leiden|FVL",
            "immobility after a fracture|immobile post #",
        ),
        spo2=(84, 95),
        hr=(100, 140),
        rr=(20, 34),
        sbp=(80, 140),
        temp=(36.5, 38.0),
        imaging=(
            "CTPA|CTPA|a filling defect in the {side} main pulmonary artery",
            "CTPA|CTPA|filling defects in both main pulmonary arteries",
            "CT pulmonary angiogram|CTPA|bilateral emboli with right ventricular dilatation",
            "CTPA|CTPA|a saddle embolus with right ventricular strain",
            "CT pulmonary angiogram|CTPA|{side} lower lobe segmental emboli",
        ),
        labs=("ddimer", "trop:20-120", "bnp:300-3000", "creat:60-130", "lactate:1-4"),
        meds=(
            "apixaban|10|mg|PO|BD|7 days",
            "rivaroxaban|15|mg|PO|BD|21 days",
            "enoxaparin|1.5|mg/kg|SC|OD",
            "alteplase|50|mg|IV|STAT",
            "unfractionated heparin|1000|units/h|IV|INF",
        ),
        drug_classes=("anticoagulant", "anticoagulant", "enzyme"),
        oxygen=("low", "low", "none", "mask", "hfnc"),
        physio=(
            "early mobilisation once anticoagulated|early mob once anticoag",
            "breathing control|BC",
            "walking {int:50-200:10} m with saturation monitoring|mob {int:50-200:10} m with sats",
            "stair assessment|stairs",
            "a graded return-to-activity plan|graded return to activity",
        ),
        outcomes=(
            "o2:was weaned to room air by day {day}|RA by D{day}",
            "had improved right ventricular function on repeat echo|RV fn improved on echo",
            "made a full recovery|full recovery",
            "mobilised independently on day {day}|indep mob D{day}",
        ),
        los=(2, 12),
        destinations=(
            "home|home",
            "home with anticoagulation clinic follow-up|home, anticoag f/u",
            "home with family support|home w/ family",
        ),
        deaths=("deteriorated with obstructive shock and died on day {day}|died D{day}, obstructive shock",),
        p_death=0.03,
    ),
    Condition(
        key="postop",
        label="post-operative pulmonary complication",
        ages=(35, 88),
        p_female=0.45,
        diagnoses=(
            "post-operative pneumonia|post-op pneumonia",
            "{side} basal atelectasis after laparotomy|{side} basal atelectasis post-lap",
            "post-operative pulmonary complication|PPC",
            "hospital-acquired pneumonia after an oesophagectomy|HAP post-oesophagectomy",
            "sputum retention after a Whipple procedure|sputum retention post-Whipple",
        ),
        symptoms=(
            "breathlessness|SOB",
            "fever|fever",
            "a weak cough|weak cough",
            "retained secretions|retained secretions",
            "wound pain limiting deep breathing|wound pain limiting DB",
            "rising oxygen requirements|incr O2 req",
            "confusion|confusion",
            "productive cough|productive cough",
        ),
        durations=("days",),
        core_history=(
            "a laparotomy {int:2-5} days earlier|laparotomy D-{int:2-5}",
            "an upper gastrointestinal resection {int:2-6} days earlier|upper GI resection D-{int:2-6}",
        ),
        history=(
            "COPD|COPD",
            "obesity|obesity",
            "tobacco dependence|smoker",
            "colorectal cancer|colorectal ca",
            "type 2 diabetes|T2DM",
            "hypertension|HTN",
            "oesophageal cancer|oesophageal ca",
            "pancreatic cancer|pancreatic ca",
        ),
        spo2=(86, 94),
        hr=(90, 125),
        rr=(20, 32),
        sbp=(95, 150),
        temp=(37.4, 39.2),
        imaging=(
            "chest X-ray|CXR|{side} basal atelectasis",
            "chest X-ray|CXR|{side} lower lobe collapse with volume loss",
            "CT chest|CT|bibasal consolidation and small effusions",
        ),
        labs=("crp:80-300", "wcc:10-22", "hb:85-120", "albumin", "lactate:1-3"),
        meds=(
            "piperacillin-tazobactam|4.5|g|IV|TDS",
            "paracetamol|1|g|IV|QDS",
            "sodium chloride 0.9%|5|mL|NEB|QDS",
            "carbocisteine|750|mg|PO|TDS",
            "bupivacaine 0.1%|8,10|mL/h|EPI|INF",
        ),
        drug_classes=("antibiotic", "analgesic", "enzyme"),
        oxygen=("low", "low", "mask", "hfnc", "cpap"),
        physio=(
            "deep breathing exercises with supported coughing|DBE + supported cough",
            "incentive spirometry|IS",
            "early mobilisation on day {int:1-2}|mob D{int:1-2}",
            "saline nebulisers before airway clearance|saline nebs pre-ACT",
            "active cycle of breathing technique|ACBT",
            "nasopharyngeal suctioning|NP suction",
            "positioning in high side-lying|high side-lying",
            "walking {int:20-100:10} m with a drip stand|mob {int:20-100:10} m with drip stand",
        ),
        outcomes=(
            "cleared secretions and was weaned to room air by day {day}|secretions cleared, RA D{day}",
            "had re-expansion of the collapsed lobe on repeat X-ray|lobe re-expanded on CXR",
            "made a full recovery|full recovery",
            "was mobilising independently by day {day}|indep mob D{day}",
        ),
        los=(6, 25),
        destinations=("home|home", "home with a package of care|home + POC", *_REHAB_PLACES[:2]),
        deaths=("died on day {day} from an anastomotic leak|died D{day}, anastomotic leak",),
        p_death=0.03,
    ),
    Condition(
        key="bronchiectasis",
        label="bronchiectasis exacerbation",
        ages=(25, 85),
        p_female=0.62,
        diagnoses=(
            "infective exacerbation of bronchiectasis|IE bronchiectasis",
            "Pseudomonas exacerbation of bronchiectasis|Pseudomonas exac bronchiectasis",
            "bronchiectasis exacerbation|bronchiectasis exac",
        ),
        symptoms=(
            "increased sputum volume|incr sputum",
            "purulent sputum|purulent sputum",
            "breathlessness|SOB",
            "haemoptysis|haemoptysis",
            "fatigue|fatigue",
            "fever|fever",
            "pleuritic chest pain|pleuritic CP",
            "cough|cough",
        ),
        durations=("days", "weeks"),
        core_history=(
            "bronchiectasis|bronchiectasis",
            "bronchiectasis after childhood pneumonia|bronchiectasis post childhood pneumonia",
        ),
        history=(
            "Pseudomonas colonisation|PsA colonised",
            "rheumatoid arthritis|RA",
            "asthma|asthma",
            "chronic rhinosinusitis|CRS",
            "primary ciliary dyskinesia|PCD",
            "osteoporosis|osteoporosis",
        ),
        spo2=(88, 96),
        hr=(85, 115),
        rr=(18, 28),
        sbp=(100, 150),
        temp=(36.8, 38.9),
        imaging=(
            "chest X-ray|CXR|tramlines and ring shadows at the {side} base",
            "CT chest|HRCT|cylindrical bronchiectasis with mucus plugging",
        ),
        labs=("crp:20-150", "wcc", "neut", "albumin"),
        meds=(
            "ceftazidime|2|g|IV|TDS|14 days",
            "tobramycin|300|mg|NEB|BD",
            "hypertonic saline 7%|4|mL|NEB|BD",
            "azithromycin|250|mg|PO|OD",
            "carbocisteine|750|mg|PO|TDS",
        ),
        drug_classes=("antibiotic", "enzyme", "antibiotic"),
        oxygen=("none", "low", "low"),
        physio=(
            "active cycle of breathing technique|ACBT",
            "an oscillating positive expiratory pressure device|oscillating PEP",
            "autogenic drainage|AD",
            "postural drainage|postural drainage",
            "hypertonic saline before airway clearance|HTS pre-ACT",
            "huffing from mid to low lung volumes|huffing",
            "exercise as airway clearance|exercise for ACT",
        ),
        outcomes=(
            "had sputum volume fall from {int:60-150:10} mL to {int:10-40:5} mL per day|"
            "sputum {int:60-150:10} -> {int:10-40:5} mL/day",
            "improved and completed 14 days of antibiotics at home|completed abx at home",
            "made a full recovery|full recovery",
            "o2:was weaned to room air by day {day}|RA by D{day}",
        ),
        los=(3, 14),
        destinations=(
            "home|home",
            "home with IV antibiotics via the OPAT service|home + OPAT",
            "home with family support|home w/ family",
        ),
    ),
    Condition(
        key="ild",
        label="interstitial lung disease",
        ages=(50, 88),
        p_female=0.35,
        diagnoses=(
            "acute exacerbation of idiopathic pulmonary fibrosis|AE-IPF",
            "progressive fibrotic interstitial lung disease|progressive fibrotic ILD",
            "hypersensitivity pneumonitis|HP",
            "acute exacerbation of fibrotic ILD|AE-ILD",
        ),
        symptoms=(
            "progressive breathlessness|progressive SOB",
            "dry cough|dry cough",
            "fatigue|fatigue",
            "weight loss|wt loss",
            "exertional desaturation|exertional desat",
            "reduced exercise tolerance|reduced ET",
        ),
        durations=("weeks", "days"),
        core_history=("idiopathic pulmonary fibrosis|IPF", "fibrotic interstitial lung disease|fibrotic ILD"),
        history=(
            "gastro-oesophageal reflux|GORD",
            "pulmonary hypertension|PH",
            "ex-smoker|ex-smoker",
            "ischaemic heart disease|IHD",
            "type 2 diabetes|T2DM",
            "exposure to birds|bird exposure",
        ),
        spo2=(80, 93),
        hr=(85, 120),
        rr=(22, 34),
        sbp=(100, 150),
        temp=(36.5, 37.9),
        imaging=(
            "CT chest|HRCT|basal subpleural reticulation with honeycombing",
            "CT chest|HRCT|new ground-glass change on a background of fibrosis",
            "chest X-ray|CXR|bilateral reticular shadowing with small lung volumes",
        ),
        labs=("crp:10-90", "lymph", "pao2", "bnp:100-900"),
        meds=(
            "methylprednisolone|500|mg|IV|OD|3 days",
            "nintedanib|150|mg|PO|BD",
            "pirfenidone|801|mg|PO|TDS",
            "morphine|1|mg|PO|Q4H",
        ),
        drug_classes=("immunomodulator", "steroid", "biologic"),
        oxygen=("low", "hfnc", "hfnc", "mask"),
        physio=(
            "breathing control and pacing|BC + pacing",
            "ambulatory oxygen assessment|ambulatory O2 ax",
            "a six-minute walk test with {int:150-400:10} m covered|6MWT {int:150-400:10} m",
            "fan therapy for breathlessness|handheld fan",
            "lower limb strengthening|LL strengthening",
            "referral to pulmonary rehabilitation|PR referral",
        ),
        outcomes=(
            "was discharged on ambulatory oxygen at {int:2-6} L/min|ambulatory O2 {int:2-6}L",
            "stabilised on HFNC and was weaned by day {day}|weaned from HFNC D{day}",
            "had an improvement in breathlessness to {int:2-5}/10|Borg {int:2-5}/10",
            "returned to baseline function|back to baseline",
        ),
        los=(5, 21),
        destinations=(
            "home|home",
            "home with community palliative care support|home + community palliative care",
            "a hospice|hospice",
            "{eponym} House",
        ),
        deaths=("died on day {day} with refractory hypoxaemia|died D{day}, refractory hypoxaemia",),
        p_death=0.12,
    ),
    Condition(
        key="gbs",
        label="Guillain-Barre syndrome",
        ages=(20, 80),
        p_female=0.4,
        diagnoses=(
            "Guillain-Barre syndrome|GBS",
            "acute inflammatory demyelinating polyneuropathy|AIDP",
            "Guillain-Barre syndrome with respiratory involvement|GBS + resp involvement",
        ),
        symptoms=(
            "ascending leg weakness|ascending LL weakness",
            "tingling in the feet|paraesthesia feet",
            "back pain|back pain",
            "difficulty walking|difficulty walking",
            "facial weakness|facial weakness",
            "breathlessness lying flat|orthopnoea",
            "difficulty swallowing|dysphagia",
        ),
        durations=("days", "weeks"),
        core_history=(),
        history=(
            "a diarrhoeal illness two weeks earlier|D&V 2/52 ago",
            "a recent upper respiratory tract infection|recent URTI",
            "hypertension|HTN",
            "asthma|asthma",
        ),
        spo2=(92, 99),
        hr=(60, 115),
        rr=(16, 28),
        sbp=(100, 170),
        temp=(36.2, 37.4),
        imaging=(
            "MRI spine|MRI spine|enhancement of the cauda equina nerve roots",
            "chest X-ray|CXR|clear lung fields",
            "nerve conduction studies|NCS|a demyelinating polyneuropathy",
        ),
        labs=("crp:1-20", "sodium", "potassium", "ck:100-600"),
        meds=(
            "intravenous immunoglobulin|0.4|g/kg|IV|OD|5 days",
            "enoxaparin|40|mg|SC|OD",
            "gabapentin|300|mg|PO|TDS",
            "amitriptyline|10|mg|PO|OD",
        ),
        drug_classes=("biologic", "immunomodulator", "analgesic"),
        oxygen=("none", "none", "low", "imv"),
        physio=(
            "serial forced vital capacity monitoring|serial FVC",
            "passive range of movement exercises|PROM",
            "positioning to prevent contractures|positioning for contractures",
            "imv:assisted coughing and manual hyperinflation|assisted cough + MHI",
            "tilt-table standing|tilt table",
            "gait re-education with ankle-foot orthoses|gait re-ed with AFOs",
            "progressive strengthening|progressive strengthening",
            "hydrotherapy|hydro",
        ),
        outcomes=(
            "regained independent walking with a frame|indep with frame",
            "imv:was weaned from ventilation via tracheostomy by day {day}|trache wean D{day}",
            "had an MRC sum score that rose from {int:20-40} to {int:41-55}|MRC sum {int:20-40} -> {int:41-55}",
            "walked {int:10-40:5} m with two sticks by discharge|{int:10-40:5} m with 2 sticks",
        ),
        los=(10, 70),
        destinations=(
            "inpatient neurorehabilitation|inpt neurorehab",
            *_REHAB_PLACES,
            "home with outpatient physiotherapy|home + OP physio",
        ),
    ),
    Condition(
        key="rib_fractures",
        label="rib fractures after chest trauma",
        ages=(30, 95),
        p_female=0.4,
        diagnoses=(
            "multiple {side} rib fractures|multiple {side} rib #",
            "{side} rib fractures {int:3-6} to {int:7-10}|{side} ribs {int:3-6}-{int:7-10} #",
            "flail chest|flail chest",
            "{side} rib fractures with a small haemopneumothorax|{side} rib # + small haemoPTX",
        ),
        symptoms=(
            "{side} chest wall pain|{side} chest wall pain",
            "pain on deep breathing|pain on DB",
            "breathlessness|SOB",
            "a fall down the stairs|fall down stairs",
            "a road traffic collision|RTC",
            "a weak cough|weak cough",
            "bruising over the {side} chest|{side} chest bruising",
        ),
        durations=("hours",),
        core_history=(),
        history=(
            "osteoporosis|OP",
            "COPD|COPD",
            "anticoagulation for atrial fibrillation|AF on anticoag",
            "alcohol excess|EtOH excess",
            "hypertension|HTN",
            "dementia|dementia",
        ),
        spo2=(88, 97),
        hr=(80, 120),
        rr=(18, 30),
        sbp=(100, 170),
        temp=(36.0, 37.6),
        imaging=(
            "CT chest|CT|{int:3-7} displaced {side} rib fractures",
            "chest X-ray|CXR|{side} rib fractures and a small pleural effusion",
            "CT chest|CT|{side} rib fractures with pulmonary contusion",
        ),
        labs=("hb:90-140", "crp:5-80", "lactate:0.8-2.5", "creat:60-140"),
        meds=(
            "paracetamol|1|g|PO|QDS",
            "oxycodone|5|mg|PO|Q4H",
            "levobupivacaine 0.25%|20|mL|SAB|STAT",
            "lidocaine 5% plaster|1,2|plaster|TOP|OD",
        ),
        drug_classes=("analgesic", "analgesic", "anticoagulant"),
        oxygen=("low", "low", "none", "hfnc", "imv"),
        physio=(
            "deep breathing exercises|DBE",
            "incentive spirometry|IS",
            "supported coughing with a pillow|supported cough",
            "early mobilisation|early mob",
            "thoracic expansion exercises|TEE",
            "walking {int:20-100:10} m|mob {int:20-100:10} m",
        ),
        outcomes=(
            "had pain controlled well enough to cough effectively by day {day}|effective cough D{day}",
            "o2:was weaned to room air by day {day}|RA by D{day}",
            "imv:underwent surgical rib fixation and was extubated on day {day}|SSRF, extubated D{day}",
            "developed a {side} lower lobe pneumonia that was treated|{side} LL pneumonia, treated",
            "made a good recovery|good recovery",
        ),
        los=(3, 21),
        destinations=("home|home", "home with a package of care|home + POC", *_REHAB_PLACES[:2]),
        deaths=("died on day {day} from respiratory failure|died D{day}, resp failure",),
        p_death=0.03,
    ),
)
CONDITIONS_BY_KEY: dict[str, Condition] = {c.key: c for c in CONDITIONS}

_DURATION_FORMS: dict[str, tuple[tuple[str, str], ...]] = {
    # kind -> (narrative, terse) pairs with a {n} placeholder
    "days": (("{n} days", "{n}/7"), ("{n} days", "{n}d")),
    "hours": (("{n} hours", "{n}h"), ("{n} hours", "{n} hrs")),
    "weeks": (("{n} weeks", "{n}/52"), ("{n} weeks", "{n} wks")),
}
_DURATION_RANGES = {"days": (2, 9), "hours": (1, 12), "weeks": (2, 6)}
_NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)


def _duration(kind: str, rng: random.Random, register: Register) -> str:
    n = rng.randint(*_DURATION_RANGES[kind])
    narrative, terse = rng.choice(_DURATION_FORMS[kind])
    text = terse if register == "terse" else narrative
    number = _NUMBER_WORDS[n] if register == "narrative" and n < len(_NUMBER_WORDS) and rng.random() < 0.4 else str(n)
    return text.replace("{n}", number)


# =========================================================================== sentence templates
# slot -> register -> templates. Fields in braces are filled from the case; fields named in
# SPAN_FIELDS become answer spans. Pronoun fields: {He} {he} {His} {his} {him}.
TEMPLATES: dict[str, dict[Register, tuple[str, ...]]] = {
    "intro": {
        "narrative": (
            "{A} {age}-year-old {sex} presented with {duration} of {symptoms}.",
            "The patient, {a} {age} year old {sex}, was admitted after {duration} of {symptoms}.",
            "We report {a} {age}-year-old {sex} who presented with {symptoms}.",
            "A {sex} aged {age} attended the emergency department with {symptoms}.",
            "This {age}-year-old {sex} was referred by {his} GP with {duration} of {symptoms}.",
            "{A} {age}-year-old {sex} was brought in by ambulance with {symptoms}.",
            "The case concerns {a} {age}-year-old {sex} with {duration} of {symptoms}.",
            "We describe {a} {age}-year-old {sex} admitted with {symptoms} that had developed over {duration}.",
            "A previously independent {age}-year-old {sex} presented with {symptoms}.",
            "{He} is {a} {age}-year-old {sex} who was admitted with {symptoms}.",
            "{A} {age}-year-old {sex} presented to our hospital with {symptoms} for {duration}.",
            "{A} {age}-year-old {sex} was seen in the emergency department with {symptoms}.",
            "At the age of {age}, this {sex} presented with {symptoms} after {duration} of feeling unwell.",
            "{A} {age}-year-old {sex} was admitted to the medical ward with {symptoms}.",
            "Our patient was {a} {age}-year-old {sex} who developed {symptoms} over {duration}.",
            "{A} {age}-year-old {sex} was referred to the acute medical unit with {symptoms}.",
            "{A} {age}-year-old {sex} called an ambulance after {duration} of {symptoms}.",
            "This report describes {a} {age}-year-old {sex} admitted with {symptoms}.",
        ),
        "terse": (
            "{age}{sexl}, PC: {symptoms} x {duration}.",
            "{age} y/o {sex}, c/o {symptoms} for {duration}.",
            "Pt {age}{sexl} presenting with {symptoms} ({duration}).",
            "{age}{sexl}. PC {symptoms}.",
            "{age}yo {sex}; {duration} of {symptoms}.",
            "Age {age}, {sex}. Presented: {symptoms}.",
            "{age}{sexl} admitted via ED with {symptoms}.",
            "{sexl}/{age}. c/o {symptoms}, {duration}.",
            "{age} {sex}. HPC: {duration} {symptoms}.",
            "Pt: {age}{sexl}. Sx: {symptoms}.",
            "{age}{sexl} BIBA, {symptoms}.",
        ),
    },
    "history": {
        "narrative": (
            "{His} past medical history included {history}.",
            "{He} had a history of {history}.",
            "Comorbidities were {history}.",
            "{He} was known to have {history}.",
            "Relevant background included {history}.",
            "{His} background was notable for {history}.",
            "Past history: {history}.",
            "Medical history comprised {history}.",
            "{His} medical history was significant for {history}.",
            "Co-morbidities included {history}.",
            "{He} had previously been diagnosed with {history}.",
        ),
        "terse": (
            "PMH: {history}.",
            "Bg: {history}.",
            "Known {history}.",
            "PMHx {history}.",
            "Hx: {history}.",
            "Background - {history}.",
            "Co-morbs: {history}.",
        ),
    },
    "vitals": {
        "narrative": (
            "On arrival {his} oxygen saturation was {spo2} on {o2ctx}, heart rate {hr} bpm, respiratory rate {rr} "
            "breaths/min, blood pressure {bp} mmHg and temperature {temp} C.",
            "{He} was {state}, with SpO2 {spo2} on {o2ctx}, a heart rate of {hr}/min and a respiratory rate of "
            "{rr}/min; blood pressure was {bp} mmHg and temperature {temp} C.",
            "Observations on admission: SpO2 {spo2} on {o2ctx}, HR {hr}, RR {rr}, BP {bp}, temperature {temp} C.",
            "Initial observations showed a temperature of {temp} C, pulse {hr}, respiratory rate {rr}, blood "
            "pressure {bp} and saturations of {spo2} on {o2ctx}.",
            "{He} was {state} on examination; saturations were {spo2} on {o2ctx} with a respiratory rate of {rr}, "
            "heart rate {hr}, blood pressure {bp} mmHg and temperature {temp} C.",
            "Vital signs: SpO2 {spo2} ({o2ctx}), HR {hr} bpm, RR {rr}/min, BP {bp} mmHg, T {temp} C.",
            "At triage {he} had a temperature of {temp} C, heart rate {hr}, respiratory rate {rr}, blood pressure "
            "{bp} mmHg and oxygen saturations of {spo2} on {o2ctx}.",
            "{His} saturations were {spo2} on {o2ctx}; heart rate was {hr} bpm, respiratory rate {rr}/min, blood "
            "pressure {bp} mmHg and temperature {temp} C.",
        ),
        "terse": (
            "Obs: SpO2 {spo2} on {o2ctx}, HR {hr}, RR {rr}, BP {bp}, T {temp}.",
            "O/E: {state}, SpO2 {spo2} {o2ctx}, HR {hr}, RR {rr}, BP {bp}, T {temp}.",
            "SpO2 {spo2} on {o2ctx}. HR {hr}. RR {rr}. BP {bp}. T {temp}.",
            "NEWS obs - T {temp}, HR {hr}, RR {rr}, BP {bp}, sats {spo2} {o2ctx}.",
            "Sats {spo2} {o2ctx}, HR {hr}, BP {bp}, RR {rr}, T {temp}.",
        ),
    },
    "imaging": {
        "narrative": (
            "A {modality} showed {imaging}.",
            "{Modality} demonstrated {imaging}.",
            "Imaging revealed {imaging} on {modality}.",
            "The {modality} showed {imaging}.",
            "{Modality} findings were {imaging}.",
            "Findings on {modality} included {imaging}.",
            "Radiology showed {imaging} on the {modality}.",
            "{Modality} was reported as showing {imaging}.",
        ),
        "terse": (
            "{modality}: {imaging}.",
            "{modality} - {imaging}.",
            "{modality} showed {imaging}.",
            "Imaging: {imaging}.",
            "{modality} = {imaging}.",
        ),
    },
    "labs": {
        "narrative": (
            "Blood tests showed {labs}.",
            "Laboratory results included {labs}.",
            "Initial investigations revealed {labs}.",
            "Bloods were notable for {labs}.",
            "Admission bloods: {labs}.",
            "Results included {labs}.",
            "Notable results were {labs}.",
        ),
        "terse": ("Bloods: {labs}.", "Labs {labs}.", "Bloods - {labs}.", "{labs}.", "Ix: {labs}."),
    },
    "incidental": {
        "narrative": (
            "An incidental {incidental} was noted in the {location}.",
            "Imaging also showed an incidental {incidental} in the {location}.",
            "Of note, a {incidental} was reported in the {location}.",
            "An unrelated {incidental} in the {location} was flagged for follow-up.",
        ),
        "terse": (
            "Incidental {incidental} {location}.",
            "Incidentaloma: {incidental}, {location}.",
            "NB incidental {incidental} in {location}.",
        ),
    },
    "diagnosis": {
        "narrative": (
            "A diagnosis of {diagnosis} was made.",
            "{He} was diagnosed with {diagnosis}.",
            "The working diagnosis was {diagnosis}.",
            "These findings were consistent with {diagnosis}.",
            "The final diagnosis was {diagnosis}.",
            "{He} was treated for {diagnosis}.",
            "The clinical picture was in keeping with {diagnosis}.",
            "A clinical diagnosis of {diagnosis} was reached.",
            "Overall the picture was of {diagnosis}.",
        ),
        "terse": (
            "Dx: {diagnosis}.",
            "Impression: {diagnosis}.",
            "Imp - {diagnosis}.",
            "Working dx {diagnosis}.",
            "Diagnosis: {diagnosis}.",
            "Dx {diagnosis} confirmed.",
        ),
    },
    "treatment": {
        "narrative": (
            "{He} was started on {treatment}.",
            "Treatment was commenced with {treatment}.",
            "{He} received {treatment}.",
            "Management included {treatment}.",
            "{He} was treated with {treatment}.",
            "{treatment} was started on admission.",
            "The team prescribed {treatment}.",
            "Initial therapy consisted of {treatment}.",
            "{He} was commenced on {treatment}.",
            "First-line treatment was {treatment}.",
            "The medical team started {treatment}.",
        ),
        "terse": (
            "Rx: {treatment}.",
            "Commenced {treatment}.",
            "Started {treatment}.",
            "Tx - {treatment}.",
            "Plan: {treatment}.",
            "Given {treatment}.",
            "Meds: {treatment}.",
        ),
    },
    "other_meds": {
        "narrative": (
            "{He} also received {meds}.",
            "Other medications included {meds}.",
            "Additional treatment comprised {meds}.",
            "{meds} {were} also given.",
            "Supportive medication included {meds}.",
            "{He} was additionally given {meds}.",
            "Concurrent therapy included {meds}.",
        ),
        "terse": ("Also: {meds}.", "+ {meds}.", "Other meds: {meds}.", "Adjuncts: {meds}.", "Adj: {meds}."),
    },
    "oxygen": {
        "narrative": (
            "{He} required {oxygen}.",
            "Respiratory support consisted of {oxygen}.",
            "Oxygen therapy was delivered as {oxygen}.",
            "{He} was managed with {oxygen}.",
            "Respiratory support was escalated to {oxygen}.",
            "{He} needed {oxygen} to maintain target saturations.",
            "Respiratory management involved {oxygen}.",
            "{He} was supported with {oxygen}.",
        ),
        "terse": (
            "O2: {oxygen}.",
            "Resp support: {oxygen}.",
            "Escalated to {oxygen}.",
            "Needed {oxygen}.",
            "Resp: {oxygen}.",
            "Vent: {oxygen}.",
        ),
    },
    "oxygen_none": {
        "narrative": (
            "{He} required {oxygen}.",
            "{He} needed {oxygen} throughout.",
            "There was no hypoxia and {he} received {oxygen}.",
        ),
        "terse": ("O2: {oxygen}.", "Resp: {oxygen}."),
    },
    "physio": {
        "narrative": (
            "Physiotherapy included {physio}.",
            "The physiotherapist provided {physio}.",
            "Rehabilitation focused on {physio}.",
            "{He} received physiotherapy comprising {physio}.",
            "Physiotherapy input consisted of {physio}.",
            "The physiotherapy plan included {physio}.",
            "{His} physiotherapy programme comprised {physio}.",
            "Physiotherapy comprised {physio}.",
            "The physiotherapy team delivered {physio}.",
            "{He} was seen daily by physiotherapy for {physio}.",
        ),
        "terse": (
            "Physio: {physio}.",
            "PT: {physio}.",
            "Physio input - {physio}.",
            "Rehab: {physio}.",
            "Physio tx: {physio}.",
            "PT input: {physio}.",
        ),
    },
    "outcome": {
        "narrative": (
            "{He} {outcome}.",
            "Subsequently {he} {outcome}.",
            "Over the following days {he} {outcome}.",
            "With treatment {he} {outcome}.",
            "In terms of outcome, {he} {outcome}.",
            "By the end of the admission {he} {outcome}.",
            "Following this {he} {outcome}.",
        ),
        "terse": (
            "Progress: {outcome}.",
            "Outcome: {outcome}.",
            "Course: {outcome}.",
            "{outcome}.",
            "Prog: {outcome}.",
            "Outcome - {outcome}.",
        ),
    },
    "discharge": {
        "narrative": (
            "{He} was discharged to {discharge} after {los}.",
            "{He} was discharged to {discharge} on {los_day}.",
            "After {los} in hospital, {he} was discharged to {discharge}.",
            "Length of stay was {los}, and {he} was discharged to {discharge}.",
            "{He} left hospital on {los_day} for {discharge}.",
            "Total length of stay was {los}; discharge destination was {discharge}.",
            "Discharge to {discharge} followed on {los_day}.",
            "Discharge was to {discharge} after a stay of {los}.",
            "The total stay was {los}, with discharge to {discharge}.",
        ),
        "terse": (
            "LOS {los}, d/c to {discharge}.",
            "D/c {discharge} on {los_day}.",
            "Discharged to {discharge} ({los}).",
            "LOS {los}. Dest: {discharge}.",
            "D/c dest: {discharge}, LOS {los}.",
            "Dc'd to {discharge}, LOS {los}.",
            "{Los_day}: d/c {discharge}.",
        ),
    },
    "filler": {
        "narrative": (
            "Family history was unremarkable.",
            "{He} lives alone and was independent before admission.",
            "{He} lives with {his} {partner} and was independent with all activities of daily living.",
            "{He} is a retired {job}.",
            "{He} works as {a_job}.",
            "{He} has never smoked.",
            "{He} drinks about {units} units of alcohol per week.",
            "No drug allergies were recorded.",
            "Written consent for publication was obtained.",
            "The case was discussed at the multidisciplinary team meeting.",
            "{His} Clinical Frailty Scale score was {cfs}.",
            "{His} body mass index was {bmi} kg/m2.",
            "There was no recent foreign travel.",
            "{He} mobilised independently without aids at baseline.",
            "{He} used a walking stick outdoors.",
            "{His} regular medications were reviewed on admission.",
            "{He} had been well until the week before admission.",
            "There were no known sick contacts.",
            "{He} is a keen {hobby}.",
            "{He} cares for {his} {partner} at home.",
            "{He} lives in a house with {steps} steps to the front door.",
            "{He} had a package of care {poc} times a day.",
            "{He} had been vaccinated against influenza this season.",
            "There was no history of recent surgery.",
            "Collateral history was obtained from {his} {partner}.",
            "{He} is an ex-smoker of {packs} pack-years.",
        ),
        "terse": (
            "NKDA.",
            "FHx nil.",
            "SH: lives alone, indep ADLs.",
            "SH: lives with {partner}, mobile with stick.",
            "Never smoker.",
            "Alcohol {units} u/wk.",
            "CFS {cfs}.",
            "BMI {bmi}.",
            "Retired {job}.",
            "MDT discussed.",
            "Indep at baseline.",
            "Meds reviewed.",
            "No travel hx.",
            "SH: lives with {partner}, {steps} steps to front door.",
            "POC {poc}x/day.",
            "Collateral from {partner}.",
            "Flu vaccinated.",
            "Keen {hobby}.",
            "Allergies: nil known.",
            "Ex-smoker {packs} PY.",
        ),
    },
}

# Fields whose value becomes an answer span (with the QA kind it answers). Aliases map several
# template fields to one span.
SPAN_FIELDS: dict[str, str] = {
    "age": "age",
    "sex": "sex",
    "symptoms": "symptoms",
    "history": "history",
    "spo2": "spo2",
    "hr": "hr",
    "temp": "temp",
    "imaging": "imaging",
    "incidental": "incidental",
    "diagnosis": "diagnosis",
    "treatment": "treatment",
    "oxygen": "oxygen",
    "physio": "physio",
    "outcome": "outcome",
    "los": "los",
    "los_day": "los",
    "Los_day": "los",
    "discharge": "discharge",
}

_JOBS = (
    "teacher",
    "electrician",
    "nurse",
    "farmer",
    "accountant",
    "bus driver",
    "chef",
    "engineer",
    "shop assistant",
    "postal worker",
    "carpenter",
    "librarian",
    "plumber",
    "solicitor",
    "cleaner",
    "hairdresser",
    "taxi driver",
    "factory worker",
    "civil servant",
    "software developer",
    "builder",
    "pharmacist",
    "lorry driver",
    "cook",
)
_PARTNERS = {
    "male": ("wife", "partner", "daughter", "son", "brother"),
    "female": ("husband", "partner", "daughter", "son", "sister"),
}
_HOBBIES = ("gardener", "walker", "cyclist", "golfer", "swimmer", "birdwatcher", "bowls player", "dancer", "angler")
_SEX_WORDS = {
    "male": (("man", "male", "gentleman"), ("male", "M")),
    "female": (("woman", "female", "lady"), ("female", "F")),
}
_PRONOUNS = {
    "male": {"He": "He", "he": "he", "His": "His", "his": "his", "him": "him"},
    "female": {"He": "She", "he": "she", "His": "Her", "his": "her", "him": "her"},
}
_LOCATIONS = (
    "right upper lobe",
    "left upper lobe",
    "right lower lobe",
    "left lower lobe",
    "liver",
    "left kidney",
    "right kidney",
    "thyroid",
    "left adrenal gland",
    "right adrenal gland",
    "pancreatic tail",
    "spleen",
    "right breast",
    "lingula",
    "middle lobe",
)
_LESIONS = ("nodule", "cyst", "lesion", "calcification", "opacity", "hamartoma", "adenoma")


def _template_id(slot: str, register: Register, template: str) -> str:
    """A short stable name for a template (slot/register/crc) used to compare skeletons and splits."""
    return f"{slot}/{register}/{_crc(template):08x}"


def templates(slot: str, register: Register, pool: Pool) -> list[str]:
    """The templates of one slot and register in the train, reserved or whole pool."""
    return _pick_pool(TEMPLATES[slot][register], pool, 0.2)


def reserved_template_ids() -> set[str]:
    """Ids (as in Case.template_ids) of every reserved sentence template."""
    return {
        _template_id(slot, reg, t)
        for slot, regs in TEMPLATES.items()
        for reg in regs
        for t in templates(slot, reg, "reserved")
    }


# =========================================================================== rendering with spans
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


def _case_rng(seed: int, stream: str, index: int) -> random.Random:
    # String seeds are hashed with SHA-512 by random.seed: stable across processes and platforms.
    return random.Random(f"{seed}/{stream}/{index}")


def _vitals(cond: Condition, rng: random.Random, register: Register, oxygen_level: str) -> dict[str, str]:
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


def _labs(cond: Condition, rng: random.Random, register: Register) -> str:
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
        if register == "narrative" and name not in _PLURAL_LABS and rng.random() < 0.3:
            article = "an" if label[0] in "aeiouAEIOU" else "a"
            parts.append(f"{article} {label} of {value}{' ' + unit if unit else ''}")
        else:
            parts.append(
                f"{label}{sep}{value}{' ' + unit if unit and (register == 'narrative' or rng.random() < 0.5) else ''}"
            )
    return _join(parts, register, rng)


def make_case(
    rng: random.Random,
    *,
    case_id: str = "",
    values: Pool = "all",
    phrasings: Pool = "all",
    condition: str | None = None,
) -> Case:
    """Draw one case.

    `values` restricts reserved values (ages, invented drug names, symptom combinations) and
    `phrasings` restricts sentence templates to the train part, the reserved part or neither.
    """
    cond = CONDITIONS_BY_KEY[condition] if condition else rng.choice(CONDITIONS)
    register: Register = "terse" if rng.random() < 0.3 else "narrative"
    sex = "female" if rng.random() < cond.p_female else "male"

    # Reserved values: resample until the draw is on the requested side of the split.
    while True:
        age = rng.randint(*cond.ages)
        if _accept(is_reserved_age(age), values):
            break
    while True:
        k = rng.choice((2, 2, 3, 3, 3, 4))
        symptom_items = rng.sample(cond.symptoms, k=min(k, len(cond.symptoms)))
        symptom_keys = tuple(_alt(s, "narrative") for s in symptom_items)
        if _accept(is_reserved_combo(cond.key, symptom_keys), values):
            break

    los = rng.randint(*cond.los)
    died = rng.random() < cond.p_death
    death_day = rng.randint(max(2, los // 3), los)
    day = str(rng.randint(2, max(2, (death_day if died else los) - 1)))
    ctx = {"day": day, "side": rng.choice(("left", "right")), **_PRONOUNS[sex]}

    def reg() -> Register:
        # Real notes mix registers: most sentences follow the case's register, some do not.
        if rng.random() < 0.85:
            return register
        return "narrative" if register == "terse" else "terse"

    def item(text: str, r: Register) -> str:
        return _fill(_alt(text, r), rng, ctx)

    # ---- treatments: the primary one is invented in most cases, always when values are reserved
    r_treat = reg()
    if values == "reserved" or rng.random() < 0.65:
        primary = invented_medication(rng.choice(cond.drug_classes), rng, r_treat, values)
    else:
        primary = real_medication(rng.choice(cond.meds), rng, r_treat)
    others: list[Medication] = []
    r_other = reg()
    for _ in range(rng.choice((0, 1, 1, 2))):
        if rng.random() < 0.35:
            med = invented_medication(rng.choice(cond.drug_classes), rng, r_other, values)
        else:
            med = real_medication(rng.choice(cond.meds), rng, r_other)
        if med.name != primary.name and all(med.name != o.name for o in others):
            others.append(med)

    oxygen_level = rng.choice(cond.oxygen)
    sentences: dict[str, tuple[str, Register]] = {}  # slot -> (template, register), filled below

    def choose(slot: str) -> tuple[str, Register]:
        r = reg()
        return rng.choice(templates(slot, r, phrasings)), r

    values_by_slot: dict[str, dict[str, str]] = {}

    # intro
    r = reg()
    intro_pool = templates("intro", r, phrasings)
    if cond.durations == ("hours",):
        # Event-like presentations (a fall, a stroke) read badly as "4 hours of a fall at home".
        intro_pool = [x for x in intro_pool if "{duration}" not in x] or intro_pool
    t = rng.choice(intro_pool)
    sex_words = _SEX_WORDS[sex][r == "terse"]
    values_by_slot["intro"] = {
        # "an 81-year-old" but "a 64-year-old"
        "a": "an" if str(age).startswith(("8", "11", "18")) else "a",
        "A": "An" if str(age).startswith(("8", "11", "18")) else "A",
        "age": str(age),
        "sex": rng.choice(sex_words),
        "sexl": sex_words[-1] if r == "terse" else sex[0].upper(),
        "symptoms": _join([item(s, r) for s in symptom_items], r, rng),
        "duration": _duration(rng.choice(cond.durations), rng, r),
    }
    sentences["intro"] = (t, r)

    # history
    t, r = choose("history")
    hist = [item(h, r) for h in cond.core_history[:1] and [rng.choice(cond.core_history)]]
    hist += [item(h, r) for h in rng.sample(cond.history, k=rng.randint(1, min(3, len(cond.history))))]
    values_by_slot["history"] = {"history": _join(hist, r, rng)}
    sentences["history"] = (t, r)

    # vitals
    t, r = choose("vitals")
    values_by_slot["vitals"] = _vitals(cond, rng, r, oxygen_level)
    sentences["vitals"] = (t, r)

    # imaging
    t, r = choose("imaging")
    dx_index = rng.randrange(len(cond.diagnoses))
    image = cond.imaging[dx_index] if cond.pair_imaging else rng.choice(cond.imaging)
    modality_n, modality_t, finding = image.split("|")
    modality = modality_t if r == "terse" else modality_n
    values_by_slot["imaging"] = {
        "modality": modality,
        "Modality": modality[0].upper() + modality[1:],
        "imaging": _fill(finding, rng, ctx),
    }
    sentences["imaging"] = (t, r)

    # labs
    t, r = choose("labs")
    values_by_slot["labs"] = {"labs": _labs(cond, rng, r)}
    sentences["labs"] = (t, r)

    # incidental finding (invented eponymous lesion): a value that must be copied
    if rng.random() < 0.25:
        t, r = choose("incidental")
        lesion = f"{rng.randint(4, 22)} mm {invent_eponym(rng)} {rng.choice(_LESIONS)}"
        values_by_slot["incidental"] = {"incidental": lesion, "location": rng.choice(_LOCATIONS)}
        sentences["incidental"] = (t, r)

    # diagnosis
    t, r = choose("diagnosis")
    values_by_slot["diagnosis"] = {"diagnosis": item(cond.diagnoses[dx_index], r)}
    sentences["diagnosis"] = (t, r)

    # treatment and other medication
    sentences["treatment"] = (rng.choice(templates("treatment", r_treat, phrasings)), r_treat)
    values_by_slot["treatment"] = {"treatment": primary.text}
    if others:
        sentences["other_meds"] = (rng.choice(templates("other_meds", r_other, phrasings)), r_other)
        values_by_slot["other_meds"] = {
            "meds": _join([m.text for m in others], r_other, rng),
            "were": "were" if len(others) > 1 else "was",
        }

    # oxygen
    slot = "oxygen_none" if oxygen_level == "none" else "oxygen"
    t, r = choose(slot)
    values_by_slot[slot] = {"oxygen": item(rng.choice(_OXYGEN[oxygen_level]), r)}
    sentences[slot] = (t, r)

    # physiotherapy
    t, r = choose("physio")
    physio_pool = _allowed(cond.physio, oxygen_level)
    physio = [item(p, r) for p in rng.sample(physio_pool, k=rng.randint(1, min(3, len(physio_pool))))]
    values_by_slot["physio"] = {"physio": _join(physio, r, rng)}
    sentences["physio"] = (t, r)

    # outcome and discharge
    t, r = choose("outcome")
    values_by_slot["outcome"] = {
        "outcome": item(rng.choice(_allowed(cond.deaths if died else cond.outcomes, oxygen_level)), r)
    }
    sentences["outcome"] = (t, r)
    if not died:
        t, r = choose("discharge")
        values_by_slot["discharge"] = {
            "los": f"{los} days",
            "los_day": f"day {los}",
            "Los_day": f"Day {los}",
            "discharge": item(rng.choice(cond.destinations), r),
        }
        sentences["discharge"] = (t, r)

    # ---- order: a case-report skeleton with local swaps
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
        slot,
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
        order.remove(slot)
        order.insert(order.index("treatment"), slot)
    if rng.random() < 0.2:
        i, j = order.index("physio"), order.index("outcome")
        order[i], order[j] = order[j], order[i]
    order = [s for s in order if s in sentences]

    # fillers at random places after the first sentence
    fillers: list[tuple[str, Register, dict[str, str]]] = []
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        r = reg()
        t = rng.choice(templates("filler", r, phrasings))
        job = rng.choice(_JOBS)
        fvals = {
            "partner": rng.choice(_PARTNERS[sex]),
            "job": job,
            "hobby": rng.choice(_HOBBIES),
            "steps": str(rng.randint(2, 14)),
            "poc": str(rng.randint(1, 4)),
            "packs": str(rng.randrange(5, 80, 5)),
            "a_job": ("an " if job[0] in "aeiou" else "a ") + job,
            "units": str(rng.randint(2, 30)),
            "cfs": str(rng.randint(2, 7)),
            "bmi": f"{rng.uniform(17.5, 41):.1f}",
        }
        if all(t != f[0] for f in fillers):
            fillers.append((t, r, fvals))
    plan: list[tuple[str, str, Register, dict[str, str]]] = [(s, *sentences[s], values_by_slot[s]) for s in order]
    for t, r, fvals in fillers:
        plan.insert(rng.randint(1, len(plan)), ("filler", t, r, fvals))

    # ---- render
    parts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    sentence_bounds: list[tuple[int, int]] = []
    ids: list[str] = []
    pos = 0
    pronouns = _PRONOUNS[sex]
    for slot_name, template, r, vals in plan:
        text, local = render(template, {**pronouns, **vals})
        if parts:
            pos += 1  # the joining space
        for kind, (a, b) in local.items():
            spans.setdefault(kind, (pos + a, pos + b))
        sentence_bounds.append((pos, pos + len(text)))
        parts.append(text)
        pos += len(text)
        ids.append(_template_id(slot_name, r, template))
    text = " ".join(parts)
    # Drug and dose spans sit inside the treatment span: name first, one space, then the dose.
    t0, t1 = spans["treatment"]
    spans["drug"] = (t0, t0 + len(primary.name))
    spans["dose"] = (t0 + len(primary.name) + 1, t1)
    drugs = tuple(m.name for m in (primary, *others) if m.invented)
    return Case(
        id=case_id,
        condition=cond.key,
        register=register,
        text=text,
        spans=spans,
        sentences=sentence_bounds,
        template_ids=tuple(ids),
        age=age,
        sex=sex,
        symptom_keys=tuple(sorted(symptom_keys)),
        drugs=drugs,
        primary_drug=primary.name,
        primary_dose=primary.dose,
    )


def generate_cases(
    n: int,
    seed: int = DEFAULT_SEED,
    *,
    values: Pool = "all",
    phrasings: Pool = "all",
    stream: str = "corpus",
    start: int = 0,
) -> list[Case]:
    """`n` cases of one stream; case i depends only on (seed, stream, i), so prefixes are stable."""
    return [
        make_case(_case_rng(seed, stream, i), case_id=f"{stream}-{i:05d}", values=values, phrasings=phrasings)
        for i in range(start, start + n)
    ]


def iter_cases(
    seed: int = DEFAULT_SEED, *, values: Pool = "all", phrasings: Pool = "all", stream: str = "corpus"
) -> Iterator[Case]:
    """An endless stream of cases (see generate_cases)."""
    i = 0
    while True:
        yield make_case(_case_rng(seed, stream, i), case_id=f"{stream}-{i:05d}", values=values, phrasings=phrasings)
        i += 1


# =========================================================================== questions
# kind -> question phrasings. {drug} is the primary drug's name; {he}/{He}/{his} pronouns.
QUESTIONS: dict[str, tuple[str, ...]] = {
    "age": (
        "How old is the patient?",
        "What is the patient's age?",
        "Age?",
        "How old was the patient at presentation?",
        "What age was the patient?",
        "Patient age?",
        "What was the age of the patient on admission?",
        "How old is {he}?",
        "State the patient's age.",
        "How many years old is the patient?",
        "What was the patient's age at admission?",
        "Give the age of the patient.",
    ),
    "sex": (
        "What is the patient's sex?",
        "Sex?",
        "Is the patient male or female?",
        "What sex was the patient?",
        "Was the patient a man or a woman?",
        "Patient sex?",
        "Gender of the patient?",
        "Is this a male or female patient?",
        "Male or female?",
    ),
    "diagnosis": (
        "What was the diagnosis?",
        "Diagnosis?",
        "What was the patient diagnosed with?",
        "What condition did the patient have?",
        "What was the final diagnosis?",
        "Which diagnosis was made?",
        "What illness was the patient admitted with?",
        "What was {he} treated for?",
        "What was the working diagnosis?",
        "Dx?",
    ),
    "symptoms": (
        "What were the presenting symptoms?",
        "What symptoms did the patient present with?",
        "Presenting complaint?",
        "How did the patient present?",
        "Which symptoms were reported on admission?",
        "What were the symptoms at presentation?",
        "What did {he} present with?",
        "Symptoms?",
        "What complaints led to admission?",
        "Which symptoms did {he} report?",
    ),
    "history": (
        "What comorbidities did the patient have?",
        "Past medical history?",
        "What was the patient's medical background?",
        "Which conditions were in the patient's history?",
        "What pre-existing conditions were noted?",
        "Comorbidities?",
        "What is the relevant background?",
        "Which comorbidities are documented?",
        "PMH?",
    ),
    "treatment": (
        "Which drug was started and at what dose?",
        "What medication and dose was given?",
        "What was the main treatment?",
        "What treatment was started?",
        "Treatment?",
        "What was the patient started on?",
        "Which medication regimen was commenced?",
        "What was {he} given, and at what dose?",
        "Rx?",
        "Which treatment, with dose, was commenced?",
    ),
    "drug": (
        "What medication was given?",
        "Which drug was started?",
        "Name the drug that was started.",
        "What drug did the patient receive?",
        "Which medicine was commenced?",
        "Drug started?",
        "What was the first-line drug?",
        "Which medication was {he} started on?",
    ),
    "dose": (
        "What dose of {drug} was given?",
        "How much {drug} was given?",
        "What was the dose of {drug}?",
        "Dose of {drug}?",
        "At what dose and route was {drug} given?",
        "How was {drug} dosed?",
        "What was the {drug} regimen?",
        "Give the dose of {drug}.",
    ),
    "oxygen": (
        "What oxygen therapy was given?",
        "What respiratory support did the patient need?",
        "Oxygen therapy?",
        "How was the patient oxygenated?",
        "What level of respiratory support was required?",
        "What respiratory support did {he} receive?",
        "Respiratory support?",
        "What oxygen did {he} need?",
        "Which oxygen delivery was used?",
    ),
    "physio": (
        "What physiotherapy was provided?",
        "Physiotherapy?",
        "What did physiotherapy involve?",
        "Which physiotherapy interventions were used?",
        "What rehabilitation did the patient receive?",
        "What did the physiotherapist do?",
        "What physiotherapy did {he} receive?",
        "Which rehabilitation interventions were delivered?",
    ),
    "outcome": (
        "What was the outcome?",
        "How did the patient respond?",
        "Outcome?",
        "What happened to the patient?",
        "How did the patient progress?",
        "What was the response to treatment?",
        "How did {he} do?",
        "What was the clinical course?",
        "What was the result of treatment?",
    ),
    "los": (
        "How long was the hospital stay?",
        "What was the length of stay?",
        "LOS?",
        "How long did the patient stay in hospital?",
        "Length of stay?",
        "How long was {he} in hospital?",
        "How many days was the patient in hospital?",
        "Duration of admission?",
    ),
    "discharge": (
        "Where was the patient discharged to?",
        "What was the discharge destination?",
        "Discharge destination?",
        "Where did the patient go after discharge?",
        "Where did {he} go on leaving hospital?",
        "Where was {he} discharged?",
        "To where was the patient discharged?",
        "What was the destination on discharge?",
    ),
    "spo2": (
        "What was the oxygen saturation on arrival?",
        "SpO2 on admission?",
        "What was the initial SpO2?",
        "What were the patient's saturations at presentation?",
        "Saturations?",
        "What was the SpO2 on arrival?",
        "Oxygen saturation at presentation?",
    ),
    "hr": (
        "What was the heart rate?",
        "HR on arrival?",
        "What was the pulse on admission?",
        "Heart rate?",
        "What was the pulse rate?",
        "Heart rate on admission?",
    ),
    "temp": (
        "What was the temperature?",
        "Temperature on arrival?",
        "What temperature was recorded?",
        "Temp?",
        "What was the body temperature on admission?",
        "What was {his} temperature?",
    ),
    "imaging": (
        "What did imaging show?",
        "What was found on imaging?",
        "Imaging findings?",
        "What did the scan show?",
        "What was seen on radiology?",
        "What did the imaging demonstrate?",
        "Radiology findings?",
    ),
    "incidental": (
        "What incidental finding was noted?",
        "Which incidental lesion was reported?",
        "Incidental finding?",
        "What was found incidentally?",
        "Was anything found incidentally?",
        "What unrelated finding was reported?",
    ),
}
# Kinds whose answers carry the reserved values; the test splits ask about them more often.
RESERVED_VALUE_KINDS = ("age", "symptoms", "drug", "treatment", "dose")

ABSENT_QUESTIONS: dict[str, tuple[str, ...]] = {
    # What a case report never says: asked, the answer is NOT_STATED whatever the context.
    "blood type": ("What is the patient's blood type?", "Blood group?", "What blood group is {he}?",
                   "Which blood type does the patient have?", "Blood type?"),
    "insurance": ("What insurance does the patient have?", "Insurance provider?", "Who insures the patient?",
                  "Is the patient insured, and with whom?"),
    "address": ("What is the patient's home address?", "Address?", "What is {his} street address?",
                "Patient's postal address?"),
    "phone": ("What is the patient's phone number?", "Contact number?", "What number can {he} be reached on?"),
    "religion": ("What is the patient's religion?", "Religion?", "Which faith does the patient follow?"),
    "eye colour": ("What colour are the patient's eyes?", "Eye colour?", "What colour are {his} eyes?"),
}
# Kinds that may be asked of a window left without their answer: values stated once, in one form. Not sex (a
# pronoun still tells it), nor a diagnosis or symptoms (other sentences may name them in other words).
_WINDOWED_ABSENCE_KINDS = ("age", "drug", "dose", "spo2", "hr", "temp", "los")


# =========================================================================== a question language
# The fixed phrasings above are few (about 150 for training), too few for a model trained from scratch to learn
# that "age", "how old" and "years" ask the same thing. Training questions are therefore also sampled from a small
# compositional grammar: slot words and their synonyms and abbreviations, in wh-, imperative, polite and terse
# frames, with lower case, a missing "?" and the odd typo. The reserved (held-out) phrasings above are never
# produced (a sampled question that matches one is drawn again), so `test_unseen_phrasing` still measures
# wording the model never saw; the core words people use (sex/gender, age/how old, drug/medication) are all in.
SLOT_WORDS: dict[str, tuple[str, ...]] = {
    "age": ("age", "age in years", "age at presentation", "age on admission", "years of age"),
    "sex": ("sex", "gender", "biological sex"),
    "diagnosis": ("diagnosis", "final diagnosis", "working diagnosis", "main diagnosis", "dx", "condition"),
    "symptoms": ("presenting symptoms", "symptoms", "presenting complaint", "complaints on admission",
                 "symptoms at presentation"),
    "history": ("past medical history", "medical history", "comorbidities", "background", "pmh", "co-morbidities"),
    "treatment": ("treatment", "medication and dose", "drug and dose", "treatment regimen", "main treatment"),
    "drug": ("drug", "medication", "medicine", "drug started", "medication started", "new medication"),
    "dose": ("dose of {drug}", "dosage of {drug}", "{drug} dose", "{drug} dosage", "dose of {drug} given"),
    "oxygen": ("oxygen therapy", "respiratory support", "oxygen support", "O2 requirement", "oxygen requirement"),
    "physio": ("physiotherapy", "physio", "physiotherapy input", "rehabilitation", "rehab"),
    "outcome": ("outcome", "clinical course", "response to treatment", "progress"),
    "los": ("length of stay", "LOS", "hospital stay", "length of admission", "duration of admission"),
    "discharge": ("discharge destination", "destination on discharge", "discharge plan", "d/c destination"),
    "spo2": ("oxygen saturation", "SpO2", "sats", "saturations", "O2 sats"),
    "hr": ("heart rate", "pulse", "HR", "pulse rate"),
    "temp": ("temperature", "temp", "body temperature"),
    "imaging": ("imaging findings", "imaging", "radiology findings", "scan findings", "imaging result"),
    "incidental": ("incidental finding", "incidental lesion", "unrelated finding", "incidental result"),
    "blood type": ("blood type", "blood group", "ABO group"),
    "insurance": ("insurance", "insurance provider", "insurer", "health insurance"),
    "address": ("home address", "address", "postal address", "street address"),
    "phone": ("phone number", "contact number", "telephone number", "mobile number"),
    "religion": ("religion", "faith", "religious affiliation"),
    "eye colour": ("eye colour", "eye color", "colour of the eyes"),
}
SLOT_QUESTIONS: dict[str, tuple[str, ...]] = {
    # Whole questions a slot word does not make: {subj} is "the patient", "this patient", "the pt" or a pronoun.
    "age": ("how old is {subj}", "how old was {subj}", "how many years old is {subj}", "how old",
            "what age is {subj}", "how old is {subj} in years"),
    "sex": ("is {subj} male or female", "was {subj} a man or a woman", "male or female", "what gender is {subj}",
            "what sex is {subj}", "man or woman", "is {subj} a man or a woman"),
    "diagnosis": ("what was {subj} diagnosed with", "what did {subj} have", "what was wrong with {subj}"),
    "symptoms": ("what did {subj} present with", "what did {subj} complain of", "what brought {subj} in"),
    "history": ("what conditions does {subj} have", "what is {subj} known to have"),
    "treatment": ("what was {subj} given and at what dose", "what was {subj} treated with"),
    "drug": ("what was {subj} started on", "which drug was {subj} given", "what medication did {subj} get",
             "what medicine was {subj} given", "which medication was started"),
    "dose": ("how much {drug} was given", "how much {drug} did {subj} get", "what dose of {drug} did {subj} get"),
    "oxygen": ("how much oxygen did {subj} need", "what oxygen was {subj} on"),
    "physio": ("what physio did {subj} get", "what rehab did {subj} have"),
    "outcome": ("how did {subj} get on", "what happened in the end", "did {subj} get better"),
    "los": ("how long was {subj} in hospital", "how many days was {subj} admitted", "how long did {subj} stay"),
    "discharge": ("where was {subj} discharged to", "where did {subj} go after discharge",
                  "where did {subj} go home to"),
    "spo2": ("what were {subj_poss} sats", "what was {subj_poss} oxygen saturation on arrival"),
    "hr": ("what was {subj_poss} pulse", "how fast was {subj_poss} heart rate"),
    "temp": ("was {subj} febrile, and what was the temperature", "what temp did {subj} have"),
    "imaging": ("what did the imaging show", "what did the x-ray or scan show"),
    "incidental": ("what else was found", "was there an incidental finding"),
    "blood type": ("what blood group is {subj}",),
    "insurance": ("who insures {subj}",),
    "address": ("where does {subj} live",),
    "phone": ("how can {subj} be reached by phone",),
    "religion": ("what faith is {subj}",),
    "eye colour": ("what colour are {subj_poss} eyes",),
}
_WH_FRAMES = ("what is the {poss} {slot}", "what was the {poss} {slot}", "what was {subj_poss} {slot}",
              "what is {subj_poss} {slot}", "what {slot} was recorded", "what's the {slot}", "what was the {slot}",
              "which {slot} is documented", "what {slot} did {subj} have", "{poss} {slot}", "{slot}",
              "{slot} of the patient", "pt {slot}", "the {poss} {slot}", "{slot} please")
_COMMAND_FRAMES = ("give the {poss} {slot}", "state the {slot}", "tell me the {poss} {slot}",
                   "please give the {slot}", "report the {slot}", "list the {slot}", "i need the {poss} {slot}",
                   "find the {slot}", "look up the {poss} {slot}")
_POLITE_FRAMES = ("could you tell me the {poss} {slot}", "can you give me {subj_poss} {slot}",
                  "do you know the {poss} {slot}", "would you tell me the {slot}")
_SUBJECTS = (("the patient", "patient's"), ("this patient", "patient's"), ("the pt", "pt's"))


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


def sample_question(kind: str, rng: random.Random, *, drug: str, sex: str) -> str:
    """A question asking for `kind`, drawn from the grammar (never a reserved phrasing; see SLOT_WORDS)."""
    pronouns = _PRONOUNS[sex]
    for _ in range(10):
        subj, poss = rng.choice(_SUBJECTS)
        if rng.random() < 0.25:
            subj_text, subj_poss = pronouns["he"], pronouns["his"]
        else:
            subj_text, subj_poss = subj, f"{subj}'s"
        if kind in SLOT_QUESTIONS and rng.random() < 0.4:
            text, end = rng.choice(SLOT_QUESTIONS[kind]), "?"
        else:
            frames = rng.choice((_WH_FRAMES, _WH_FRAMES, _COMMAND_FRAMES, _POLITE_FRAMES))
            text = rng.choice(frames)
            end = "." if frames is _COMMAND_FRAMES else "?"
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


GRAMMAR_TEMPLATE = "(grammar)"
"""QARecord.template of a question sampled from the grammar."""
GRAMMAR_SHARE = 0.6
"""Share of the train and val questions sampled from the grammar; the rest use the fixed train phrasings."""


def questions(kind: str, pool: Pool) -> list[str]:
    """The question phrasings of `kind` in the train, reserved or whole pool (a quarter reserved)."""
    return _pick_pool(QUESTIONS[kind] if kind in QUESTIONS else ABSENT_QUESTIONS[kind], pool, 0.25)


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
    for literal, name, _, _ in _FORMATTER.parse(template):
        out.append(re.escape(literal))
        if name is not None:
            out.append(_PLACEHOLDER_PATTERNS[name])
    return re.compile("".join(out) + r"\Z")


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
    present = [k for k in _WINDOWED_ABSENCE_KINDS if k in case.spans]
    if present and rng.random() < 0.5:
        kind = rng.choice(present)
        context = _window_without(case, kind, rng)
        if context is not None:
            template = rng.choice(questions(kind, phrasings))
            question = template.format(drug=case.primary_drug, **_PRONOUNS[case.sex])
            return QARecord(question, context, NOT_STATED, kind, case.id, template)
    kind = rng.choice(list(ABSENT_QUESTIONS))
    template = rng.choice(questions(kind, phrasings))
    context = case.text if rng.random() < 0.5 else (_window_without(case, "age", rng) or case.text)
    return QARecord(template.format(**_PRONOUNS[case.sex]), context, NOT_STATED, kind, case.id, template)


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
                rec = QARecord(sample_question(rec.kind, rng, drug=case.primary_drug, sex=case.sex), rec.context,
                               rec.answer, rec.kind, rec.case_id, GRAMMAR_TEMPLATE)
            out.append(rec)
            continue
        if grammar and rng.random() < grammar:
            question, template = sample_question(kind, rng, drug=case.primary_drug, sex=case.sex), GRAMMAR_TEMPLATE
        else:
            template = rng.choice(questions(kind, phrasings))
            question = template.format(drug=case.primary_drug, **_PRONOUNS[case.sex])
        out.append(QARecord(question, _context(case, kind, rng), case.answer(kind), kind, case.id, template))
    return out


def iter_qa(split: Split, seed: int = DEFAULT_SEED) -> Iterator[QARecord]:
    """An endless, prefix-stable stream of QA rows for `split`.

    Train and val ask two questions per case, the test splits one (favouring the kinds that carry
    reserved values), so every test context is a different case.
    """
    values, phrasings = SPLIT_POOLS[split]
    per_case = 2 if split in ("train", "val") else 1
    favour = RESERVED_VALUE_KINDS if values == "reserved" else ()
    for i, case in enumerate(iter_cases(seed, values=values, phrasings=phrasings, stream=f"qa-{split}")):
        yield from qa_for_case(case, _case_rng(seed, f"qa-{split}-q", i), per_case, phrasings, favour=favour,
                               unanswerable=UNANSWERABLE_SHARE[split],
                               grammar=GRAMMAR_SHARE if split in ("train", "val") else 0.0)


def qa_cases(split: Split, n: int, seed: int = DEFAULT_SEED) -> list[Case]:
    """The first `n` cases behind `iter_qa(split, seed)` (QARecord.case_id names them)."""
    values, phrasings = SPLIT_POOLS[split]
    return generate_cases(n, seed, values=values, phrasings=phrasings, stream=f"qa-{split}")


def generate_qa(split: Split, n: int, seed: int = DEFAULT_SEED) -> list[QARecord]:
    """The first `n` rows of `iter_qa(split, seed)`."""
    out: list[QARecord] = []
    for rec in iter_qa(split, seed):
        if len(out) >= n:
            break
        out.append(rec)
    return out


# =========================================================================== files
def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write rows with fixed settings (\\n line ends, minimal quoting) so files are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def write_dataset(
    out_dir: str | Path,
    *,
    cases: int = DEFAULT_CASES,
    qa_train: int = DEFAULT_QA["train"],
    qa_val: int = DEFAULT_QA["val"],
    qa_test: int = DEFAULT_QA["test"],
    qa_test_unseen: int = DEFAULT_QA["test_unseen_phrasing"],
    qa_test_unanswerable: int = DEFAULT_QA["test_unanswerable"],
    seed: int = DEFAULT_SEED,
) -> dict[str, dict]:
    """Write the corpus and the QA splits under `out_dir`; returns rows and bytes per file.

    Layout: corpora/clinical_cases.csv (id,text) and qa/{train,val,test,test_unseen_phrasing,
    test_unanswerable}.csv (question,context,answer,kind; the answer NOT_STATED where the context holds none).
    """
    out = Path(out_dir)
    report: dict[str, dict] = {}
    path = out / CORPUS_FILE
    n = _write_csv(path, ("id", "text"), ((c.id, c.text) for c in generate_cases(cases, seed)))
    report[str(CORPUS_FILE)] = {"rows": n, "bytes": path.stat().st_size}
    sizes = {"train": qa_train, "val": qa_val, "test": qa_test, "test_unseen_phrasing": qa_test_unseen,
             "test_unanswerable": qa_test_unanswerable}
    for split, count in sizes.items():
        path = out / QA_DIR / f"{split}.csv"
        n = _write_csv(path, QA_HEADER,
                       ((r.question, r.context, r.answer, r.kind) for r in generate_qa(split, count, seed)))
        report[str(QA_DIR / f"{split}.csv")] = {"rows": n, "bytes": path.stat().st_size}
    return report


# =========================================================================== command line
def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `generate-corpus` on the main CLI's subparsers (handler: run_cli)."""
    p = subparsers.add_parser(
        "generate-corpus",
        help="write the synthetic clinical case corpus and QA splits",
        description="Write SYNTHETIC clinical case reports (corpora/clinical_cases.csv) and extractive QA splits "
        "(qa/train.csv, val.csv, test.csv, test_unseen_phrasing.csv, test_unanswerable.csv) under --out. "
        "Deterministic by seed.",
    )
    _add_arguments(p)
    p.set_defaults(handler=run_cli)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags shared by `generate-corpus` and `python -m genai_core.clinical.synthetic`."""
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (corpora/ and qa/ are made inside it)")
    p.add_argument(
        "--cases", type=int, default=DEFAULT_CASES, metavar="N", help=f"cases in the corpus (default: {DEFAULT_CASES})"
    )
    p.add_argument(
        "--qa-train",
        type=int,
        default=DEFAULT_QA["train"],
        metavar="N",
        help=f"QA train rows (default: {DEFAULT_QA['train']})",
    )
    p.add_argument(
        "--qa-val", type=int, default=DEFAULT_QA["val"], metavar="N", help=f"QA val rows (default: {DEFAULT_QA['val']})"
    )
    p.add_argument(
        "--qa-test",
        type=int,
        default=DEFAULT_QA["test"],
        metavar="N",
        help=f"rows in test.csv and in test_unseen_phrasing.csv each (default: {DEFAULT_QA['test']})",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S", help=f"random seed (default: {DEFAULT_SEED})")


def run_cli(args: argparse.Namespace) -> int:
    """Handler of `generate-corpus`: write the files and print one line per file."""
    for name in ("cases", "qa_train", "qa_val", "qa_test"):
        if getattr(args, name) < 0:
            print(f"error: --{name.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2
    report = write_dataset(
        args.out,
        cases=args.cases,
        qa_train=args.qa_train,
        qa_val=args.qa_val,
        qa_test=args.qa_test,
        qa_test_unseen=args.qa_test,
        seed=args.seed,
    )
    for name, info in report.items():
        print(f"{Path(args.out) / name}: {info['rows']} rows, {info['bytes'] / 1e6:.2f} MB")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m genai_core.clinical.synthetic --out DIR ...` (same flags as `generate-corpus`)."""
    parser = argparse.ArgumentParser(prog="python -m genai_core.clinical.synthetic",
                                     description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
