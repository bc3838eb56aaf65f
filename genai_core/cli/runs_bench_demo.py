"""`runs` (the run folders as a table), `bench` (this machine's speed) and `demo-qa` (the clinical QA demo)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from genai_core.cli.console import StopOnCtrlC, TrainPrinter, num, table
from genai_core.errors import GenAIError
from genai_core.files import json_safe
from genai_core.units import format_count


def cmd_runs(args: argparse.Namespace) -> int:
    """`runs`: one line per run folder, newest first (or their summaries as JSON)."""
    from genai_core.runs.folder import list_runs, runs_dir

    root = Path(args.root) if args.root else runs_dir()
    if args.root and not root.is_dir():
        raise GenAIError(f"{root} is not a folder")
    from genai_core.train.launcher import heal_queue

    if heal_queue(root):
        print(f"note: restarted the scheduler of {root}: runs were waiting in its queue with none serving them",
              file=sys.stderr, flush=True)
    rows: list[dict[str, Any]] = []
    for run in list_runs(root):
        try:
            rows.append(run.summary())
        except (GenAIError, OSError) as e:  # one broken folder must not hide the others
            rows.append({"name": run.name, "state": "broken", "message": str(e)})
    if args.json:
        print(json.dumps(json_safe(rows), indent=2))
        return 0
    if not rows:
        print(f"no runs in {root}")
        return 0
    headers = ["NAME", "STATE", "ARCH", "PARAMS", "STEP", "TRAIN", "BEST VAL", "PPL", "TOKENIZER"]
    cells = [[
        str(r["name"]), str(r.get("state") or "-"), str(r.get("arch") or "-"), format_count(r.get("params")),
        f"{r.get('step', 0) or 0:,}", num(r.get("train_loss"), ".4f"), num(r.get("best_val_loss"), ".4f"),
        num(r.get("best_val_ppl"), ".2f"), str(r.get("tokenizer") or "-"),
    ] for r in rows]
    print(table(headers, cells, right={3, 4, 5, 6, 7}))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """`bench`: this machine's data, training and generation speed, or the training recipes with --recipes."""
    if args.paths:
        from genai_core.bench.paths import run_paths

        run_paths(json_output=args.json, quick=args.quick)
        return 0
    if args.sweep:
        from genai_core.bench import sweeps

        if args.ray:
            sweeps.ray_main(args.out, json_output=args.json, quick=args.quick, steps=args.train_steps)
        else:
            sweeps.main(args.out, json_output=args.json, quick=args.quick, steps=args.train_steps)
        return 0
    if args.recipes:
        from genai_core.bench.recipes import main

        main(args.out, json_output=args.json, quick=args.quick, steps=args.train_steps, ablation=not args.no_ablation)
        return 0
    from genai_core.bench.speed import run_bench  # another module's heavy imports: only when asked for

    run_bench(json_output=args.json, quick=args.quick, train_steps=args.train_steps, corpus_mb=args.corpus_mb)
    return 0


def cmd_demo_qa(args: argparse.Namespace) -> int:
    """`demo-qa`: pretrain, fine-tune for QA and score, printing progress and a final report."""
    for name, value in (("--pretrain-steps", args.pretrain_steps), ("--qa-steps", args.qa_steps)):
        if value is not None and value < 1:
            raise GenAIError(f"{name} must be at least 1 (got {value})")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise GenAIError(f"{out} exists and is not a folder")
    if not args.overwrite:
        taken = [str(out / n) for n in ("pretrain", "qa") if (out / n).exists()]
        if taken:
            raise GenAIError(f"{' and '.join(taken)} already exist(s); use --overwrite or another --out")
    from genai_core.clinical import demo

    steps = {k: v for k, v in (("pretrain_steps", args.pretrain_steps), ("qa_steps", args.qa_steps)) if v}
    stop = threading.Event()
    with StopOnCtrlC(stop, announce=True):
        report = demo.run_demo_qa(out, **steps, evaluate=() if args.no_eval else demo.EVAL_SPLITS,
                                  overwrite=args.overwrite, callbacks=[TrainPrinter(not args.json)],
                                  stop_event=stop, log=lambda m: None if args.json else print(f"== {m}", flush=True))
    result = {"pretrain": str(report.pretrain), "qa": str(report.qa),
              "minutes": {k: round(v, 2) for k, v in report.minutes.items()},
              "scores": {split: r["metrics"] for split, r in report.scores.items()},
              "abstention": {split: r.get("abstention") for split, r in report.scores.items()},
              "by_kind": {split: {k: m["exact_match"] for k, m in r.get("by_kind", {}).items()}
                          for split, r in report.scores.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for split, metrics in result["scores"].items():
        ab = result["abstention"][split] or {}
        line = ", ".join(f"{k} {v:.1f}" for k, v in metrics.items() if v is not None)
        if ab.get("abstained") is not None:
            line += f" | said not stated on {ab['abstained']:.1f}% of {ab['unanswerable']} unanswerable"
        if ab.get("false_abstention") is not None:
            line += f" | not stated on {ab['false_abstention']:.1f}% of {ab['answerable']} answerable"
        print(f"{split}: {line}")
        kinds = result["by_kind"][split]
        if kinds:
            print("  exact match by kind: " + ", ".join(f"{k} {v:.0f}" for k, v in kinds.items()))
    print("minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in result["minutes"].items()))
    print(f"runs: {report.pretrain} -> {report.qa}")
    return 0

