"""How sure must the kind head be of `other` before a question is answered "not stated"? A sweep over that bar.

    python benchmarks/qa_scope_sweep.py --run DIR/now-s0 [--run DIR/now-s1 ...]

For each run (fine-tuned with out-of-scope questions, `benchmarks/qa_scope.py`) and each question of three sets
(the unseen-wording test split, out-of-scope questions from the held-out families, the hand-written real-style
reports), the span head's answer and the kind head's reading are taken once; then, for each bar θ, a question
read as `other` with probability ≥ θ is answered "not stated" and any other gets the span head's answer (its
best span, or "not stated" where its null answer wins). θ = 0.5 and below is the shipped rule (the kind head's
first choice). Printed per θ: the mean over the runs of unseen-wording exact match and false abstention, "not
stated" on held-out out-of-scope questions, and on the real-style reports "not stated" where they do not answer
and false abstention where they do.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from qa_scope import out_of_scope_file  # noqa: E402
from real_style_qa import HELDOUT  # noqa: E402

from genai_core.clinical.demo import QA_DIR  # noqa: E402
from genai_core.evaluate.scoring import NOT_STATED, OUT_OF_SCOPE_KIND, exact_match  # noqa: E402
from genai_core.generate.extractive import read_answer  # noqa: E402
from genai_core.generate.sampling import Sampler  # noqa: E402
from genai_core.qa.prompt import is_not_stated  # noqa: E402
from genai_core.runs.folder import Run  # noqa: E402

BARS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01)
"""1.01: never abstain for the kind alone (the span head decides everything)."""
WORST = {"em": min, "fa": max, "oos": min, "absent": min, "rfa": max}


def readings(run: Path, path: Path) -> list[tuple[str, bool, float, str]]:
    """Per question: the reference, whether the kind head read `other`, its probability, the span head's answer."""
    sampler = Sampler.from_run(run)
    lowercase = Run(run).config().data.lowercase
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = []
    for q, c, a in zip(table["question"], table["context"], table["answer"], strict=True):
        got = read_answer(sampler.model, sampler.tokenizer, q, c, lowercase=lowercase)
        span = (NOT_STATED if not got.choices or got.not_stated_probability >= got.choices[0].probability
                else got.choices[0].text)
        out.append((a, got.kind == OUT_OF_SCOPE_KIND, got.kind_confidence or 0.0, span))
    return out


def answers(rows: list[tuple[str, bool, float, str]], bar: float) -> list[tuple[str, str]]:
    return [(ref, NOT_STATED if other and p >= bar else span) for ref, other, p, span in rows]


def pct(flags: list[bool]) -> float:
    return 100 * sum(flags) / len(flags) if flags else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, action="append", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="genai-sweep-") as tmp:
        held = out_of_scope_file(Path(tmp), held_out=True)
        sets = {"unseen": QA_DIR / "test_unseen_phrasing.csv", "held-out OOS": held, "real": HELDOUT}
        per_run = [{name: readings(run, path) for name, path in sets.items()} for run in args.run]
    print(f"{len(args.run)} runs; mean over runs (worst run in brackets)")
    print(f"{'bar θ':>6s} {'unseen EM':>14s} {'unseen abst.':>14s} {'held-out OOS NS':>16s} {'real absent NS':>15s} "
          f"{'real false abst.':>17s}")
    for bar in BARS:
        cols: dict[str, list[float]] = {k: [] for k in ("em", "fa", "oos", "absent", "rfa")}
        for r in per_run:
            unseen = answers(r["unseen"], bar)
            cols["em"].append(100 * statistics.mean(exact_match(p, a) for a, p in unseen))
            cols["fa"].append(pct([is_not_stated(p) for _, p in unseen]))
            cols["oos"].append(pct([is_not_stated(p) for _, p in answers(r["held-out OOS"], bar)]))
            real = answers(r["real"], bar)
            cols["absent"].append(pct([is_not_stated(p) for a, p in real if is_not_stated(a)]))
            cols["rfa"].append(pct([is_not_stated(p) for a, p in real if not is_not_stated(a)]))
        cells = [f"{statistics.mean(v):.1f} ({WORST[k](v):.1f})" for k, v in cols.items()]
        print(f"{bar:6.2f} " + " ".join(f"{c:>{w}s}" for c, w in zip(cells, (14, 14, 16, 15, 17), strict=True)))


if __name__ == "__main__":
    main()
