"""Question answering on case reports written in the style of real ones, which the generator never saw.

    python benchmarks/real_style_qa.py --run demo-qa-finetune [--run ANOTHER ...] [--show-misses]

`assets/qa/heldout_real_style.csv` holds 30 short case descriptions written by hand for this check (issue 27) in
the styles published case reports and admission notes use: age and sex in one phrase ("A 58-year-old
African-American woman"), children ("a 4-year-old boy", "a 10 year old child ... his mother"), the sex given only
by pronouns, several drugs with doses, vital signs in prose and in shorthand, one-line ER presentations. Real drug
and disease names, no generated value. It is never used for training, and was committed before any change to the
generator, so its figures before and after compare.

Each case is asked its age and sex in a different wording, one to three answerable questions of the kinds the demo
learns, and questions the case does not answer: of those kinds ("What was her temperature?" where none is given),
of kinds the demo drilled as unanswerable (blood type, eye colour, address, phone, religion, insurance), and of
kinds no one taught it ("What is the name of her cardiologist?", "What is the capital of France?"), kind `other`.

Printed per run (percent of the rows named):
- age: the numbers in the answer are the numbers of the reference ("58" for "58-year-old");
- sex: the answer means the reference's sex (woman / female / F / lady / she ... against man / male / M / boy /
  he ...); where the text gives the sex only by pronouns the reference is `male` or `female`;
- whole words: span answers that are whole words of the context (not "is brought to", "olleg");
- not stated: out-of-scope (kind `other`) and unanswerable questions answered "not stated";
- false abstention: answerable questions answered "not stated";
- exact match over every row, as `eval --qa` scores it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genai_core.evaluate.answers import evaluate_qa  # noqa: E402
from genai_core.evaluate.scoring import OUT_OF_SCOPE_KIND, SEX_WORDS, sex_in  # noqa: E402
from genai_core.qa.prompt import is_not_stated  # noqa: E402

HELDOUT = ROOT / "assets" / "qa" / "heldout_real_style.csv"
# The engine's sex words, and the plural and family words a person may answer with ("women", "mother").
_SEX_WORDS = {sex: words | {"female": {"women", "mother", "daughter"}, "male": {"men", "father", "son"}}[sex]
              for sex, words in SEX_WORDS.items()}


def sex_of(answer: str) -> str | None:
    """`male` or `female` when every sex word of the answer agrees, else None (no sex word, or both)."""
    return sex_in(answer, _SEX_WORDS)


def numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", text)


def whole_words(answer: str, context: str) -> bool:
    """True when `answer` occurs in `context` starting and ending at word boundaries."""
    return re.search(rf"(?<!\w){re.escape(answer.strip())}(?!\w)", context, flags=re.IGNORECASE) is not None


def figures(run: str | Path) -> dict[str, Any]:
    """Answer every question of the held-out file with `run` and score it as the module docstring says:
    percentages under `age`, `sex`, `whole_words`, `not_stated_absent`, `not_stated_out_of_scope`,
    `false_abstention`, `exact_match`, with `misses` (what went wrong, row by row) and the evaluation's result."""
    result = evaluate_qa(run, HELDOUT, save=False)
    rows = result["predictions"]
    age = [r for r in rows if r["kind"] == "age"]
    sex = [r for r in rows if r["kind"] == "sex"]
    absent = [r for r in rows if is_not_stated(r["answer"])]
    other = [r for r in absent if r["kind"] == OUT_OF_SCOPE_KIND]
    answerable = [r for r in rows if not is_not_stated(r["answer"])]
    spans = [(r, c) for r, c in zip(rows, _contexts(), strict=True)
             if not is_not_stated(r["prediction"]) and r["prediction"].strip().lower() not in ("male", "female")]
    age_ok = [numbers(r["prediction"]) == numbers(r["answer"]) for r in age]
    sex_ok = [sex_of(r["answer"]) is not None and sex_of(r["prediction"]) == sex_of(r["answer"]) for r in sex]

    def pct(hits: int, n: int) -> tuple[float | None, int, int]:
        return (100 * hits / n if n else None, hits, n)

    return {
        "age": pct(sum(age_ok), len(age)),
        "sex": pct(sum(sex_ok), len(sex)),
        "whole_words": pct(sum(whole_words(r["prediction"], c) for r, c in spans), len(spans)),
        "not_stated_absent": pct(sum(is_not_stated(r["prediction"]) for r in absent), len(absent)),
        "not_stated_out_of_scope": pct(sum(is_not_stated(r["prediction"]) for r in other), len(other)),
        "false_abstention": pct(sum(is_not_stated(r["prediction"]) for r in answerable), len(answerable)),
        "exact_match": result["metrics"]["exact_match"],
        "misses": ([("age", r) for r, ok in zip(age, age_ok, strict=True) if not ok]
                   + [("sex", r) for r, ok in zip(sex, sex_ok, strict=True) if not ok]
                   + [("absent", r) for r in absent if not is_not_stated(r["prediction"])]
                   + [("abstained", r) for r in answerable if is_not_stated(r["prediction"])]),
        "result": result,
    }


FIGURES = (("age", "age right"), ("sex", "sex right"), ("whole_words", "whole-word spans"),
           ("not_stated_absent", "not stated, absent"), ("not_stated_out_of_scope", "  of which out of scope"),
           ("false_abstention", "false abstention"))


def report(run: str, show_misses: bool) -> None:
    got = figures(run)
    result = got["result"]
    print(f"\n{run} (checkpoint step {result['checkpoint_step']}, {result['method']} answers, "
          f"{result['rows']} questions on {HELDOUT.name}, {result['seconds']:.0f} s)")
    for key, label in FIGURES:
        value, hits, n = got[key]
        print(f"  {label:24s} {value:5.1f}% ({hits}/{n})" if n else f"  {label:24s}   –")
    print(f"  {'exact match, all':24s} {got['exact_match']:5.1f}")
    if show_misses:
        for what, r in got["misses"]:
            print(f"    {what:9s} {r['question']!r}: {r['prediction']!r} (reference {r['answer']!r}; "
                  f"understood as {r.get('understood_as')})")


def _contexts() -> list[str]:
    import pandas as pd

    return [str(c) for c in pd.read_csv(HELDOUT, dtype=str, keep_default_na=False)["context"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, help="a QA run (name under $GENAI_RUNS_DIR or path)")
    ap.add_argument("--show-misses", action="store_true", help="print every question answered wrongly")
    args = ap.parse_args()
    for run in args.run:
        report(run, args.show_misses)


if __name__ == "__main__":
    main()
