"""Is a validation-loss gap between our trainer and the nanoGPT-style loop real or seed noise?

    python benchmarks/seed_study.py [--steps 2000] [--seeds 0 1 2] [--keep DIR]

Runs the bench's interleaved training comparison (`genai_core.bench.speed.bench_training`) once per seed
(each seed changes the initialisation and the batch order of both loops) and prints the validation
loss of each loop, scored on the same windows, with the mean and spread of the difference.
`--keep DIR` copies our trained run of the first seed there (for later experiments on a real model).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genai_core.bench.speed import bench_training, english_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 is far steadier on a busy machine)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    diffs = []
    with tempfile.TemporaryDirectory(prefix="genai-seeds-") as tmp:
        work = Path(tmp)
        corpus = work / "english.txt"
        corpus.write_text(english_text(), encoding="utf-8")
        for i, seed in enumerate(args.seeds):
            r = bench_training(corpus, work, args.steps, seed=seed, log=lambda m: None)
            o, b = r["ours"], r["baseline"]
            diffs.append(o["val_loss"] - b["val_loss"])
            print(f"seed {seed}: val loss ours {o['val_loss']:.4f}  nanoGPT-style {b['val_loss']:.4f}  "
                  f"diff {diffs[-1]:+.4f}   speed ratio {r['speed_ratio']:.3f}x (median step)", flush=True)
            if i == 0 and args.keep is not None:
                shutil.copytree(r["run_path"], args.keep, dirs_exist_ok=True)
    if len(diffs) > 1:
        print(f"ours - nanoGPT-style: mean {statistics.mean(diffs):+.4f}, stdev {statistics.stdev(diffs):.4f} "
              f"over {len(diffs)} seeds")


if __name__ == "__main__":
    main()
