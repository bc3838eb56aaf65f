"""`sweep`: search a space of knobs with trials trained as runs, losing trials stopped early; a live table."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

from genai_core.cli.console import StopOnCtrlC
from genai_core.cli.options import EXIT_INTERRUPTED, PROG, given, run_path
from genai_core.cli.prepare_train import config_from_flags
from genai_core.errors import GenAIError
from genai_core.units import format_seconds


def sweep_dir(arg: str) -> Path:
    """A bare name means <runs folder>/.sweeps/<name> (beside its trials, out of the runs list); else a path."""
    from genai_core.explore.sweep import sweeps_dir

    path = run_path(arg)
    return sweeps_dir(path.parent) / path.name if path != Path(arg) else path


def cmd_sweep(args: argparse.Namespace) -> int:
    from genai_core.explore.space import SearchSpace
    from genai_core.explore.sweep import Sweep, SweepSettings
    from genai_core.runs.folder import runs_dir

    out, runs = sweep_dir(args.out), runs_dir()
    if args.resume:
        sweep = Sweep.open(out, runs)
    else:
        if args.space is None:
            args.parser.error("--space is required (or --resume to continue a sweep)")
        try:
            text = Path(args.space).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise GenAIError(f"cannot read the space file {args.space}: {e}") from None
        space = SearchSpace.from_json(text)
        sections = {s: given(args, s) for s in ("data", "model", "train")}
        sections["train"].setdefault("runner", "process")  # trials outlive this command, one per device
        base = config_from_flags(args, sections)
        settings = SweepSettings(trials=args.trials, budget_minutes=args.budget_minutes, parallel=args.parallel,
                                 sampler=args.sampler, pruner=args.pruner, seed=args.sweep_seed,
                                 seed_reruns=args.seed_reruns)
        sweep = Sweep.create(out, runs, base, space, settings)
        print(f"sweep {sweep.name}: {', '.join(k.describe() for k in space.knobs)}; {settings.trials} trials, "
              f"{settings.sampler} sampler, {settings.pruner} early stopping; folder {out}", flush=True)
    table = _Table()
    stop = threading.Event()
    with StopOnCtrlC(stop, announce=True):
        summary = sweep.run(stop=stop, on_tick=table.update)
    table.update(summary)
    if stop.is_set():
        print(f"sweep stopped; its trials saved checkpoints. Continue with: {PROG} sweep --out {args.out} --resume")
        return EXIT_INTERRUPTED
    best = summary.get("best")
    c = summary["compute"]
    if best:
        print(f"best: {best['run']} val loss {best['val_loss']:.4f} with "
              + ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items()))
    if summary.get("seed_spread") is not None:
        losses = [best["val_loss"], *(r["val_loss"] for r in summary["seed_reruns"])]
        print(f"seed noise: the best config's val loss over {len(losses)} seeds "
              f"{', '.join(f'{v:.4f}' for v in losses)}; spread {summary['seed_spread']:.4f}")
    print(f"trained {format_seconds(c['train_seconds'])}; early stopping saved {c['saved_by_pruning']:.0%} of the "
          "compute of the same trials run to the end")
    if summary.get("importance"):
        imp = summary["importance"]
        print(f"importance (val loss at step {imp['step']:,} of {imp['trials']} trials): "
              + ", ".join(f"{k} {v:.2f}" for k, v in imp["knobs"].items()))
    print(f"summary: {out / 'summary.json'}")
    return 0


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class _Table:
    """Prints a trial's line whenever its state, step or validation loss changes."""

    def __init__(self) -> None:
        self.shown: dict[str, tuple[Any, ...]] = {}

    def update(self, summary: dict[str, Any]) -> None:
        for t in summary["trials"]:
            key = (t["state"], t["steps"], t["val_loss"])
            if self.shown.get(t["run"]) == key:
                continue
            self.shown[t["run"]] = key
            params = " ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items())
            val = f"val {t['val_loss']:.4f}" if t["val_loss"] is not None else "val –"
            cut = f" (cut at step {t['pruned_at']['step']})" if t.get("pruned_at") else ""
            why = f": {t['message']}" if t.get("message") else ""
            print(f"{t['run']:<24} {params:<40} {t['state']:<9} step {t['steps']:>6}/{t['total_steps']:<6} "
                  f"{val}{cut}{why}", flush=True)
