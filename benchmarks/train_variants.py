"""Where does a training step's time go? Variants of one step of the bench configuration, interleaved.

Each variant owns its model and optimizer and runs one step in turn (round robin), so all of them see
the same machine load; the report gives the median step time of each and its ratio to the
nanoGPT-style baseline. The step mirrors `Trainer.fit` (vectorised batch, fused AdamW, clipping,
`loss.item()` every step) without its events and logging.

    python benchmarks/train_variants.py [--steps 150] [--threads 2] [--compile]

`--compile` adds a `torch.compile`d model and reports its compile time (the first step) apart.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genai_core.config import ModelConfig  # noqa: E402
from genai_core.data.tokenstore import windows_to_batch  # noqa: E402
from genai_core.model import GPT  # noqa: E402
from genai_core.train.trainer import lr_at  # noqa: E402


def _baseline_module() -> object:
    spec = importlib.util.spec_from_file_location("nanogpt_baseline", ROOT / "benchmarks" / "nanogpt_baseline.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _exact_gelu(model: GPT) -> GPT:
    """The same model with nanoGPT's exact GELU instead of the tanh approximation."""
    for block in model.h:
        mlp = block.mlp
        mlp.forward = (lambda m: lambda x: m.dropout(m.c_proj(F.gelu(m.c_fc(x)))))(mlp)
    return model


def ours_step(data: np.ndarray, steps: int, *, bf16: bool = False, exact_gelu: bool = False,
              foreach_clip: bool = False, compile_model: bool = False, seed: int = 0) -> Callable[[int], None]:
    """A closure running step `i` the way `Trainer.fit` does, on its own model and optimizer."""
    torch.manual_seed(seed)
    model = GPT(ModelConfig(vocab_size=int(data.max()) + 1, n_layers=4, n_heads=4, d_model=128, seq_len=64))
    if exact_gelu:
        _exact_gelu(model)
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99), fused=True)
    fwd = torch.compile(model) if compile_model else model
    rng = np.random.default_rng(seed)

    def step(i: int) -> None:
        lr = lr_at(i, 1e-3, 100, steps, 0.1)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, len(data) - 64, size=12)
        x, y = windows_to_batch(data, starts, 64)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        with ctx:
            _, loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True if foreach_clip else None)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd model")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 100, size=1_000_000).astype(np.uint8)  # the timing does not depend on the text
    base_dir = Path(tempfile.mkdtemp(prefix="genai-train-variants-"))
    data.tofile(base_dir / "train.bin")
    data[:100_000].tofile(base_dir / "val.bin")
    nb = _baseline_module()
    base = nb.BaselineTrainer(base_dir, nb.BaselineConfig(vocab_size=100, max_iters=args.steps, dtype="uint8"))

    variants: dict[str, Callable[[int], None]] = {
        "baseline (nanoGPT-style)": lambda i: base.step(),
        "ours (Trainer step)": ours_step(data, args.steps),
        "ours, exact GELU": ours_step(data, args.steps, exact_gelu=True),
        "ours, foreach clip": ours_step(data, args.steps, foreach_clip=True),
        "ours, exact GELU + foreach clip": ours_step(data, args.steps, exact_gelu=True, foreach_clip=True),
        "ours, bf16 autocast": ours_step(data, args.steps, bf16=True),
    }
    compile_s = None
    if args.compile:
        step = ours_step(data, args.steps, compile_model=True)
        t0 = time.perf_counter()
        step(0)
        step(1)  # a second step: recompilations for the changed learning rate or shapes show up here
        compile_s = time.perf_counter() - t0
        variants["ours, torch.compile"] = step
    times: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(args.steps):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn(i)
            times[name].append(time.perf_counter() - t0)
    skip = min(20, args.steps // 5)
    med = {k: statistics.median(v[skip:]) for k, v in times.items()}
    ref = med["baseline (nanoGPT-style)"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps each, interleaved")
    for k, m in med.items():
        print(f"  {k:34s} {m * 1e3:8.2f} ms/step  {768 / m:8.0f} tokens/s  {ref / m:5.3f}x baseline")
    if compile_s is not None:
        saved = (med["ours (Trainer step)"] - med["ours, torch.compile"]) * 2000
        print(f"  torch.compile: first two steps took {compile_s:.1f} s; over 2000 steps it saves {saved:.1f} s "
              f"-> {'pays' if saved > compile_s else 'does not pay'}")
    (base_dir / "train.bin").unlink()
    (base_dir / "val.bin").unlink()
    base_dir.rmdir()


if __name__ == "__main__":
    main()
