"""How far are `genai_core.train.estimates` from reality? Estimated vs measured step time and peak memory.

For each configuration, on a synthetic corpus (random words, char or BPE tokenizer):

- time: the estimate (calibrated when cheap, plus the pure throughput model, i.e. `calibrate=False`
  after the device throughput was measured) against the median `dt` of the Trainer's own step events
  over a real `Trainer.fit` run (the code path of training; the first steps are left out as warmup),
  and the estimated `total_seconds` against the wall time of `fit()` (steps, evaluation, samples, and
  the one final checkpoint write, which `total_seconds` leaves out);
- memory (CPU): `memory.total` against the peak resident memory of a fresh interpreter running
  three training steps (`measure_cpu_peak_memory`, default glibc malloc settings).

    python benchmarks/estimate_accuracy.py [--configs default,wide,...] [--steps 20] [--threads 1]

Threads default to 1: on a shared machine a second OpenMP thread that gets descheduled can make a
step ten times slower, which would measure the neighbours rather than the estimate. Prints a table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genai_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from genai_core.train.estimates import (  # noqa: E402
    clear_cache,
    device_throughput,
    estimate,
    measure_cpu_peak_memory,
)
from genai_core.train.trainer import Trainer, TrainEvent, setup_run  # noqa: E402
from genai_core.units import format_bytes, format_seconds  # noqa: E402

# name: (model overrides, train overrides, tokenizer, measured steps)
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any], str, int | None]] = {
    "default": ({}, {}, "char", None),
    "wide": ({"d_model": 256, "n_heads": 4, "n_layers": 4, "seq_len": 128}, {"batch_size": 16}, "char", None),
    "bpe8k": ({"d_model": 128, "n_layers": 2, "seq_len": 128}, {"batch_size": 16}, "bpe", None),
    "dropout": ({"d_model": 256, "n_heads": 8, "n_layers": 4, "seq_len": 256, "dropout": 0.1}, {"batch_size": 8},
                "char", None),
    "accum": ({"d_model": 192, "n_heads": 6, "n_layers": 3, "seq_len": 128}, {"batch_size": 8, "grad_accum_steps": 3},
              "char", None),
    "lstm": ({"arch": "lstm", "d_model": 256, "n_layers": 2, "seq_len": 128}, {"batch_size": 16}, "char", None),
    # Estimated above the calibration threshold: exercises the throughput model.
    "big": ({"d_model": 384, "n_heads": 6, "n_layers": 4, "seq_len": 256}, {"batch_size": 8}, "char", 8),
}


def write_corpus(path: Path, records: int = 25_000, seed: int = 0) -> None:
    """Lines of Zipf-distributed pseudo-words: enough distinct strings for an 8192-token BPE."""
    rng = np.random.default_rng(seed)
    syl = [c + v + n for c in "bcdfghjklmnprstvwz" for v in "aeiou" for n in ("", "n")]
    words = ["".join(rng.choice(syl, size=rng.integers(1, 4))) for _ in range(20_000)]
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    lines = [" ".join(rng.choice(words, size=12, p=p)) + "." for _ in range(records)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_trainer(config: RunConfig, out: Path) -> tuple[RunConfig, int, list[float], float]:
    """Train through `setup_run` + `Trainer.fit`: (final config, train tokens, step dts, wall seconds).

    The wall time runs from the trainer's `start` event to its `end` event: steps, evaluations,
    samples and the final checkpoint, without data preparation and model construction.
    """
    config, run, store = setup_run(config, out, overwrite=True)
    dts: list[float] = []
    marks: dict[str, float] = {}

    def on_event(ev: TrainEvent) -> None:
        if ev.kind == "step":
            dts.append(float(ev.data["dt"]))
        elif ev.kind in ("start", "end"):
            marks[ev.kind] = time.perf_counter()

    Trainer(config, run, store, callbacks=[on_event]).fit()
    return config, len(store.train), dts, marks["end"] - marks["start"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from {', '.join(CONFIGS)}")
    ap.add_argument("--steps", type=int, default=20, help="measured training steps per configuration")
    ap.add_argument("--warmup", type=int, default=3, help="first steps left out of the measured median")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpora = {"char": Path(tmp) / "small.txt", "bpe": Path(tmp) / "large.txt"}
        write_corpus(corpora["char"], records=4_000)  # ~300k characters: plenty of windows for char runs
        write_corpus(corpora["bpe"])  # ~1.9M characters: enough distinct strings for 8192 BPE tokens
        for name in args.configs.split(","):
            model_kw, train_kw, tokenizer, steps = CONFIGS[name]
            steps = steps or args.steps
            cfg = RunConfig(
                data=DataConfig(corpus=corpora[tokenizer], tokenizer=tokenizer, vocab_size=8192),
                model=ModelConfig(**model_kw),
                train=TrainConfig(max_steps=steps + args.warmup, num_threads=args.threads, eval_interval=10_000,
                                  eval_batches=5, sample_tokens=60, log_interval=1, warmup_steps=0, **train_kw),
            )
            # Estimate with the tokenizer's real vocabulary: prepare the data first (setup_run does it).
            cfg, train_tokens, dts, elapsed = run_trainer(cfg, Path(tmp) / f"run-{name}")
            clear_cache()
            device_throughput(torch.device("cpu"), "fp32", args.threads)
            rough = estimate(cfg, "cpu", train_tokens=train_tokens, calibrate=False)
            t0 = time.perf_counter()
            est = estimate(cfg, "cpu", train_tokens=train_tokens)
            calib_s = time.perf_counter() - t0
            measured = statistics.median(dts[args.warmup:])
            mem = None if args.no_memory else measure_cpu_peak_memory(cfg)["measured"]
            rows.append((name, cfg, est, rough, measured, elapsed, calib_s, mem))
            print(f"{name}: done ({len(dts)} steps)", file=sys.stderr, flush=True)

    head = (f"{'config':<8} {'vocab':>5} {'method':<10} {'est s/step':>10} {'measured':>9} {'error':>7} "
            f"{'throughput':>10} {'error':>7} {'est total':>10} {'trainer':>9} {'error':>7} {'calib':>6} "
            f"{'est mem':>8} {'measured':>9} {'ratio':>6}  attention")
    print(head)
    print("-" * len(head))
    for name, cfg, est, rough, measured, elapsed, calib_s, mem in rows:
        err = est.seconds_per_step / measured - 1
        rough_err = rough.seconds_per_step / measured - 1
        total_err = (est.total_seconds or 0) / elapsed - 1 if elapsed else float("nan")
        method = "measured" if est.calibrated else "throughput"
        mem_cols = (f"{format_bytes(est.memory.total):>8} {format_bytes(mem):>9} {est.memory.total / mem:>6.2f}"
                    if mem else f"{format_bytes(est.memory.total):>8} {'-':>9} {'-':>6}")
        print(f"{name:<8} {cfg.model.vocab_size:>5} {method:<10} {format_seconds(est.seconds_per_step):>10} "
              f"{format_seconds(measured):>9} {err:>+7.0%} {format_seconds(rough.seconds_per_step):>10} "
              f"{rough_err:>+7.0%} {format_seconds(est.total_seconds):>10} {format_seconds(elapsed):>9} "
              f"{total_err:>+7.0%} {calib_s:>5.2f}s {mem_cols}  {est.memory.attention}")
    print("\nerror = estimate / measured - 1; 'throughput' is the uncalibrated FLOPs/bandwidth/dispatch model; "
          "'trainer' is the wall time of Trainer.fit from its start to its end event (warmup steps included); "
          "memory ratio = estimate / measured peak RSS growth.")


if __name__ == "__main__":
    main()
