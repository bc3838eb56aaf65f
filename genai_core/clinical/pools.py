"""Which values and phrasings the QA splits may use: the reserved (held-out) part of every pool.

Values: ages with ``age % 7 == 3``, invented drug names whose CRC32 is divisible by 5, and a CRC32-chosen quarter
of each condition's symptom combinations are *reserved*. Phrasings: a fraction of every template or question
pool, chosen by CRC32 (`pick_pool`). QA train/val draw from the train part, the test splits from the reserved
part, and the unlabeled corpus from everything.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Literal

Pool = Literal["train", "reserved", "all"]
"""Which part of a value or phrasing pool to draw from."""
Register = Literal["narrative", "terse"]
"""How a sentence reads: a narrative case report, or a terse ward note ("SpO2 88% on RA")."""


def crc(text: str) -> int:
    """A hash that is the same in every process (str.__hash__ is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def pick_pool(items: Sequence[str], pool: Pool, fraction: float) -> list[str]:
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
    reserved = set(sorted(items[1:], key=crc)[:k])
    return [t for t in items if (t in reserved) == (pool == "reserved")]


def is_reserved_age(age: int) -> bool:
    """Ages held out of QA train/val: one in seven, spread over every decade (17, 24, 31, ...)."""
    return age % 7 == 3


def is_reserved_drug(name: str) -> bool:
    """Invented drug names held out of QA train/val: a fifth, chosen by a stable hash."""
    return crc(name) % 5 == 0


def is_reserved_combo(condition: str, symptom_keys: Iterable[str]) -> bool:
    """Symptom combinations (as sets, order ignored) held out of QA train/val: a quarter per condition."""
    return crc(condition + ":" + "|".join(sorted(symptom_keys))) % 4 == 0


def accepts(pool: Pool, reserved: bool) -> bool:
    """Whether a value that is (or is not) `reserved` may be drawn from `pool`."""
    return pool == "all" or reserved == (pool == "reserved")
