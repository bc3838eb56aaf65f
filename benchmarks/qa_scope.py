"""Does the demo's QA model know what it was trained for? Fine-tuning seeds scored on the goals of issue 27.

    python benchmarks/qa_scope.py --out DIR [--qa-dir assets/qa] [--seeds 0 1 2 3] [--tag now]

Pretrains the demo's model once (DIR/pretrain, as `demo-qa` does; reused when it is there), fine-tunes it for QA
once per seed on the QA files of `--qa-dir` (DIR/<tag>-s<seed>; reused when completed) and scores each:
- `test` and `test_unseen_phrasing` exact match, and the share of the unseen wording answered "not stated"
  (false abstention: every question there is answerable);
- `test_unanswerable`: the share answered "not stated";
- out-of-scope questions about synthetic test cases, from the families trained on and from the held-out ones
  (`tables.phrasings.HELD_OUT_SCOPE_FAMILIES`, never trained on): the share answered "not stated";
- the hand-written real-style case reports (`benchmarks/real_style_qa.py`): age, sex, whole-word spans, "not
  stated" on absent and out-of-scope questions, false abstention.
The rows marked +τ measure the other way to abstain, side by side: a question also gets "not stated" when the
kind head's confidence is under a threshold read off the validation split (`kind_threshold`). Then the mean and
the worst seed of each figure. `--qa-dir` pointing at an earlier generator's files (the
assets of an older commit) gives the figures before a change, with the same pretrained model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_style_qa import figures  # noqa: E402

from genai_core.clinical.cases import case_rng  # noqa: E402
from genai_core.clinical.demo import QA_DIR, demo_pretrain_config, demo_qa_config  # noqa: E402
from genai_core.clinical.questions import out_of_scope_for_case, qa_cases  # noqa: E402
from genai_core.config import RunConfig  # noqa: E402
from genai_core.evaluate.answers import evaluate_qa  # noqa: E402
from genai_core.evaluate.scoring import OUT_OF_SCOPE_KIND  # noqa: E402
from genai_core.qa.prompt import is_not_stated  # noqa: E402
from genai_core.runs.folder import Run  # noqa: E402
from genai_core.train.trainer import train  # noqa: E402

OUT_OF_SCOPE_ROWS = 150
"""Out-of-scope questions per family group (trained, held out), one per synthetic test case."""
# (label, higher is better)
COLUMNS = (("test EM", True), ("unseen EM", True), ("unseen abstained", False), ("unanswerable NS", True),
           ("OOS trained NS", True), ("OOS held-out NS", True), ("real age", True), ("real sex", True),
           ("real whole words", True), ("real absent NS", True), ("real OOS NS", True), ("real false abst.", False),
           ("+τ kind threshold", True), ("+τ unseen abstained", False), ("+τ OOS held-out NS", True),
           ("+τ real OOS NS", True), ("+τ real false abst.", False))


def out_of_scope_file(folder: Path, held_out: bool) -> Path:
    """Out-of-scope questions asked of the test split's cases, from the trained or the held-out families."""
    rows = []
    for i, case in enumerate(qa_cases("test", OUT_OF_SCOPE_ROWS)):
        rec = out_of_scope_for_case(case, case_rng(1, "bench-out-of-scope", i), held_out=held_out)
        rows.append({"question": rec.question, "context": rec.context, "answer": rec.answer, "kind": rec.kind})
    path = folder / f"out_of_scope_{'held_out' if held_out else 'trained'}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def kind_threshold(run: Path, qa_dir: Path) -> float:
    """The alternative to an `other` class: abstain when the kind head is unsure. Its threshold is read off the
    validation split the run trained beside (never a test file): the 5th percentile of the kind head's confidence
    on the answerable questions there, so that the rule alone abstains on at most 5 % of them."""
    val = evaluate_qa(run, qa_dir / "val.csv", save=False)["predictions"]
    sure = sorted(p["kind_confidence"] for p in val if not is_not_stated(p["answer"]))
    return sure[int(0.05 * len(sure))]


def not_stated_or_unsure(rows: list[dict], threshold: float) -> float:
    """The share of `rows` answered "not stated" when a kind-head confidence under `threshold` also abstains."""
    return 100 * sum(is_not_stated(r["prediction"]) or r["kind_confidence"] < threshold for r in rows) / len(rows)


def score(run: Path, oos: dict[bool, Path], qa_dir: Path) -> dict[str, float]:
    test = evaluate_qa(run, QA_DIR / "test.csv", save=False)
    unseen = evaluate_qa(run, QA_DIR / "test_unseen_phrasing.csv", save=False)
    unanswerable = evaluate_qa(run, QA_DIR / "test_unanswerable.csv", save=False)
    real = figures(run)
    out_trained, out_held = (evaluate_qa(run, oos[held], save=False) for held in (False, True))
    tau = kind_threshold(run, qa_dir)
    real_rows = real["result"]["predictions"]
    return {
        "test EM": test["metrics"]["exact_match"],
        "unseen EM": unseen["metrics"]["exact_match"],
        "unseen abstained": unseen["abstention"]["false_abstention"],  # every unseen-wording row is answerable
        "unanswerable NS": unanswerable["abstention"]["abstained"],
        "OOS trained NS": out_trained["abstention"]["abstained"],
        "OOS held-out NS": out_held["abstention"]["abstained"],
        "real age": real["age"][0], "real sex": real["sex"][0], "real whole words": real["whole_words"][0],
        "real absent NS": real["not_stated_absent"][0], "real OOS NS": real["not_stated_out_of_scope"][0],
        "real false abst.": real["false_abstention"][0],
        "+τ kind threshold": tau,
        "+τ unseen abstained": not_stated_or_unsure(unseen["predictions"], tau),
        "+τ OOS held-out NS": not_stated_or_unsure(out_held["predictions"], tau),
        "+τ real OOS NS": not_stated_or_unsure([p for p in real_rows if p["kind"] == OUT_OF_SCOPE_KIND], tau),
        "+τ real false abst.": not_stated_or_unsure([p for p in real_rows if not is_not_stated(p["answer"])], tau),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--qa-dir", type=Path, default=QA_DIR, help="the QA files to fine-tune on (train, val)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--tag", default="now", help="names the fine-tunes: <tag>-s<seed>")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the trainer's choice)")
    args = ap.parse_args()

    def threads(cfg: RunConfig) -> RunConfig:
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"num_threads": args.threads})})

    pretrain = args.out / "pretrain"
    if Run(pretrain).state != "completed":
        t0 = time.perf_counter()
        train(threads(demo_pretrain_config()), pretrain, overwrite=True)
        print(f"pretrained {pretrain} in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    table: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="genai-oos-") as tmp:
        oos = {held: out_of_scope_file(Path(tmp), held) for held in (False, True)}
        for seed in args.seeds:
            run = args.out / f"{args.tag}-s{seed}"
            if Run(run).state != "completed":
                cfg = demo_qa_config(pretrain, args.qa_dir)
                cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed})})
                t0 = time.perf_counter()
                train(threads(cfg), run, overwrite=True)
                print(f"fine-tuned {run} in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
            table[seed] = score(run, oos, args.qa_dir)
            print(f"seed {seed}: " + ", ".join(f"{k} {v:.1f}" for k, v in table[seed].items()), flush=True)
    print(f"\n{args.tag}: {len(table)} fine-tuning seeds on {args.qa_dir}")
    print(f"{'':20s}" + "".join(f"{'s' + str(s):>7s}" for s in table) + f"{'mean':>8s}{'worst':>8s}")
    for label, higher in COLUMNS:
        values = [table[s][label] for s in table]
        worst = min(values) if higher else max(values)
        digits = 4 if label == "+τ kind threshold" else 1  # a probability, not a percentage
        print(f"{label:20s}" + "".join(f"{v:7.{digits}f}" for v in values)
              + f"{statistics.mean(values):8.{digits}f}{worst:8.{digits}f}")


if __name__ == "__main__":
    main()
