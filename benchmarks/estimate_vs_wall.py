"""Does the Train page's time estimate hold? Estimate first, as the page does, then train, and compare.

For the default knobs (the configs' defaults on the bundled clinical corpus, 200 steps) and the two demo
presets (`genai_core.clinical.demo`, the fine-tune shortened to 300 steps), in this order, in one fresh process:

1. `estimate(config, calibrate=True)`: what the Train page shows before Start (a few real steps timed
   on this machine when cheap, with the thread count a run started now would get);
2. `training.train(config)`: the real run, timed from the trainer's start event to its end event (steps,
   evaluations, samples and checkpoints; data preparation left out, as the estimate leaves it out).

Prints estimated and measured seconds and their ratio (the goal: within 0.7-1.3 on a quiet machine),
with the machine's load before each run, because a busy machine is the usual reason for a miss.

    python benchmarks/estimate_vs_wall.py [--only default,pretrain,qa]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genai_core.clinical.demo import DEMO_CORPUS, demo_pretrain_config, demo_qa_config
from genai_core.config import DataConfig, RunConfig, TrainConfig
from genai_core.devices import busy_cores
from genai_core.train.estimates import estimate
from genai_core.train.trainer import TrainEvent, setup_run, train
from genai_core.units import format_seconds


def timed_train(config: RunConfig, out: Path) -> float:
    marks: dict[str, float] = {}

    def on_event(ev: TrainEvent) -> None:
        if ev.kind in ("start", "end"):
            marks[ev.kind] = time.perf_counter()

    train(config, out, callbacks=[on_event])
    return marks["end"] - marks["start"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="default,pretrain,qa")
    args = ap.parse_args()
    wanted = args.only.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plans: list[tuple[str, RunConfig]] = [
            ("default", RunConfig(data=DataConfig(corpus=DEMO_CORPUS), train=TrainConfig(max_steps=200))),
            ("pretrain", demo_pretrain_config()),
        ]
        for name, cfg in plans:
            if name not in wanted and not (name == "pretrain" and "qa" in wanted):
                continue
            # The vocabulary comes from the tokenizer: prepare the data first (cached for the run below).
            prepared, _run, store = setup_run(cfg, root / f"probe-{name}")
            busy = busy_cores()
            est = estimate(prepared, train_tokens=store.train_tokens)
            wall = timed_train(cfg, root / name)
            rows.append((name, est, wall, busy))
            print(f"{name}: done", file=sys.stderr, flush=True)
        if "qa" in wanted:
            cfg = demo_qa_config(parent=root / "pretrain", steps=300)
            prepared, _run, store = setup_run(cfg, root / "probe-qa")
            busy = busy_cores()
            est = estimate(prepared, train_tokens=store.train_tokens, window_tokens=store.mean_window_tokens())
            wall = timed_train(cfg, root / "qa")
            rows.append(("qa (300 steps)", est, wall, busy))

    print(f"{'run':<16} {'steps':>6} {'estimated':>10} {'measured':>10} {'ratio':>6} {'busy cores':>10}  method")
    for name, est, wall, busy in rows:
        ratio = (est.total_seconds or float("nan")) / wall
        print(f"{name:<16} {est.total_steps or 0:>6} {format_seconds(est.total_seconds):>10} "
              f"{format_seconds(wall):>10} {ratio:>6.2f} {busy:>10.1f}  {est.method}")
    print(f"\nratio = estimated / measured total time; {os.cpu_count()} cores; the estimate was made first, in this "
          "process, as the Train page makes it (the QA one with the store's mean batch width).")


if __name__ == "__main__":
    main()
