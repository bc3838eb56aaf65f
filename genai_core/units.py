"""How the engine writes sizes, durations and counts for people: one style everywhere (CLI, pages, reports).

Sizes are decimal (1 MB = 1,000,000 bytes), as disks and the OS's memory meters show them.
"""

from __future__ import annotations

import math


def format_bytes(n: float | None) -> str:
    """`1234567` -> `1.2 MB` (decimal units, as disks and the OS's memory meters show them)."""
    if n is None:
        return "?"
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n < 1000:
        return f"{sign}{int(n)} B"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if n < 999.5 or unit == "PB":
            break
    return f"{sign}{n:.1f} {unit}" if n < 100 else f"{sign}{n:.0f} {unit}"


def format_seconds(s: float | None) -> str:
    """`0.0123` -> `12 ms`, `75` -> `1 min 15 s`, `7500` -> `2 h 05 min`, `200000` -> `2 d 7 h`."""
    if s is None or math.isnan(s):
        return "?"
    if math.isinf(s):
        return "forever"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    s = round(s)
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def format_count(n: float | None) -> str:
    """`1234` -> `1.2k`, `3_400_000` -> `3.4M`, `7e9` -> `7.0B`; below 1,000 the number itself."""
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:,.0f}"


def format_si(value: float, unit: str) -> str:
    """`1.2e10, "FLOP"` -> `12.0 GFLOP`: a decimal SI prefix for quantities that are not bytes."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def format_rate(x: float | None) -> str:
    """A learning rate as people write one, short enough for a narrow metric: `3e-4`, `3.1e-4`, `0.02`, `–`."""
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0 or 1e-2 <= abs(x) < 100:
        return f"{x:.2g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
