"""Which CPU training path pays, per model size: fp32 or bf16 autocast, eager or torch.compile, 1 or 2 threads.

For each shape (the demo's d_model 128 and d_model 256 / 384), the engine's own training step
(`genai_core.train.optim.TrainStep`) of the modern and classic recipes is timed on random ids in every path,
the paths interleaved round by round so that all see the same machine load. torch.compile is timed
twice: its first step (the compile time) and its steady steps; "pays after" is the number of steps at
which the compile time is won back. Prints a table; figures go to docs/performance.md.

    python benchmarks/cpu_paths.py [--rounds 8] [--shapes 128,256,384] [--no-compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genai_core.config import RECIPES, ModelConfig, TrainConfig
from genai_core.models import build_model
from genai_core.train.estimates import random_batch
from genai_core.train.optim import TrainStep, make_optimizer

SHAPES = {128: (4, 64, 12), 256: (6, 128, 16), 384: (6, 256, 16)}  # d_model: (layers, seq_len, batch)


def make_step(recipe: str, d: int, precision: str, compiled: bool) -> tuple[TrainStep, object]:
    layers, seq, batch = SHAPES[d]
    m = ModelConfig(vocab_size=66, d_model=d, n_heads=max(4, d // 64), n_layers=layers, seq_len=seq,
                    **RECIPES[recipe]["model"])
    t = TrainConfig(batch_size=batch, max_steps=10, **RECIPES[recipe]["train"])
    torch.manual_seed(0)
    model = build_model(m)
    model.train()
    fwd = torch.compile(model) if compiled else model
    cpu = torch.device("cpu")
    return TrainStep(fwd, make_optimizer(model, t, cpu), t, cpu, precision), random_batch(m, batch, cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--shapes", default="128,256,384")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    cores = torch.get_num_threads()
    print(f"torch {torch.__version__}, {cores} threads available; median step time over {args.rounds} rounds")
    for d in (int(x) for x in args.shapes.split(",")):
        for recipe in ("classic", "modern"):
            paths = {f"{prec} eager {th}t": (prec, False, th) for prec in ("fp32", "bf16") for th in (1, cores)}
            if not args.no_compile and recipe == "modern":  # compile is the costly part: the default recipe only
                paths[f"bf16 compiled {cores}t"] = ("bf16", True, cores)
            steps, first = {}, {}
            for name, (prec, compiled, th) in paths.items():
                torch.set_num_threads(th)
                step, batch = make_step(recipe, d, prec, compiled)
                t0 = time.perf_counter()
                step(lambda b=batch: b).loss.item()  # compiles, when compiled
                first[name] = time.perf_counter() - t0
                steps[name] = (step, batch, th)
            times: dict[str, list[float]] = {k: [] for k in paths}
            for _ in range(args.rounds):
                for name, (step, batch, th) in steps.items():
                    torch.set_num_threads(th)
                    t0 = time.perf_counter()
                    step(lambda b=batch: b).loss.item()
                    times[name].append(time.perf_counter() - t0)
            base = statistics.median(times[f"fp32 eager {cores}t"][1:])
            layers, seq, batch = SHAPES[d]
            print(f"\nd_model {d}, {layers} layers, seq {seq}, batch {batch}, {recipe}")
            for name, ts in times.items():
                med = statistics.median(ts[1:])
                line = f"  {name:<20} {med * 1e3:8.1f} ms/step  {base / med:5.2f}x fp32 eager"
                if "compiled" in name:
                    eager = statistics.median(times[f"bf16 eager {cores}t"][1:])
                    gain = eager - med
                    pays = f"pays back after {first[name] / gain:,.0f} steps" if gain > 0 else "never pays back"
                    line += f"  (compile {first[name]:.0f} s; {pays})"
                print(line, flush=True)


if __name__ == "__main__":
    main()
