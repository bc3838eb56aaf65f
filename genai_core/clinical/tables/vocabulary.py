"""Word lists of the synthetic cases: invented-name syllables, drug families, dose routes and frequencies,
durations, social-history words, pronouns and incidental-finding sites (data only)."""

from __future__ import annotations

from dataclasses import dataclass

# =========================================================================== invented drug-name syllables
NAME_HEADS = (
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
NAME_MIDS = (
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


# =========================================================================== drug families
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


# =========================================================================== eponyms (lesions, facilities)
EPONYM_HEADS = (
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
EPONYM_TAILS = ("", "ett", "er", "ing", "ow", "ley", "by", "ham", "wick", "ford", "ton", "el", "mere", "combe")


# =========================================================================== oxygen levels
# Items may be restricted to a respiratory support level: "imv:" (ventilated), "niv:", "o2:" (any
# oxygen), "icu:" (HFNC or more), "noimv:" (not ventilated). Keeps "extubated" out of ward cases.
REQUIRES: dict[str, tuple[str, ...]] = {
    "imv": ("imv",),
    "niv": ("niv",),
    "o2": ("low", "mask", "hfnc", "cpap", "niv", "imv"),
    "icu": ("hfnc", "cpap", "niv", "imv"),
    "noimv": ("none", "low", "mask", "hfnc", "cpap", "niv"),
}


# =========================================================================== doses
ROUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # code -> (narrative forms, terse forms)
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
INFUSIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "IV": (("by IV infusion", "as an intravenous infusion", "IV infusion"), ("IVI", "IV infusion")),
    "EPI": (("by epidural infusion",), ("epidural infusion",)),
}
FREQS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
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


# =========================================================================== durations
DURATION_FORMS: dict[str, tuple[tuple[str, str], ...]] = {
    # kind -> (narrative, terse) pairs with a {n} placeholder
    "days": (("{n} days", "{n}/7"), ("{n} days", "{n}d")),
    "hours": (("{n} hours", "{n}h"), ("{n} hours", "{n} hrs")),
    "weeks": (("{n} weeks", "{n}/52"), ("{n} weeks", "{n} wks")),
}
DURATION_RANGES = {"days": (2, 9), "hours": (1, 12), "weeks": (2, 6)}
NUMBER_WORDS = (
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


# =========================================================================== social history and findings
JOBS = (
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
PARTNERS = {
    "male": ("wife", "partner", "daughter", "son", "brother"),
    "female": ("husband", "partner", "daughter", "son", "sister"),
}
HOBBIES = ("gardener", "walker", "cyclist", "golfer", "swimmer", "birdwatcher", "bowls player", "dancer", "angler")
SEX_WORDS = {
    "male": (("man", "male", "gentleman"), ("male", "M")),
    "female": (("woman", "female", "lady"), ("female", "F")),
}
CHILD_SEX_WORDS = {"male": ("boy",), "female": ("girl",)}
CHILD_AGES = (2, 16)
"""Ages of a `child`-style case (`make_case(style="child")`), drawn from CHILD_CONDITIONS."""
CHILD_CONDITIONS = ("asthma", "cap", "dka", "sepsis")
CHILD_HISTORY = (  # the first, alone or not at all
    "no significant past medical history|no PMH",
    "eczema|eczema",
    "recurrent viral-induced wheeze|recurrent VIW",
    "prematurity (born at 32 weeks)|ex-32/40 prem",
    "a penicillin allergy|penicillin allergy",
    "coeliac disease|coeliac",
)
"""A child's history (`make_case(style="child")`): an adult condition's history (AF, CKD 3) would read wrong."""
CARERS = ("mother", "father", "parents", "grandmother")


PRONOUNS = {
    "male": {"He": "He", "he": "he", "His": "His", "his": "his", "him": "him"},
    "female": {"He": "She", "he": "she", "His": "Her", "his": "her", "him": "her"},
}
LOCATIONS = (
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
LESIONS = ("nodule", "cyst", "lesion", "calcification", "opacity", "hamartoma", "adenoma")
