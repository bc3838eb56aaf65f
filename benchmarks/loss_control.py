"""Controlled loss comparison: our trainer against the nanoGPT-style loop with the randomness removed.

    python benchmarks/loss_control.py [--steps 2000] [--seed 0] [--threads 1]

The bench compares the two loops as they are, so their validation losses differ by the luck of the
initialisation and the batch order as well. Here the baseline starts from our model's initial weights
and draws exactly our trainer's batches (same numpy generator, same windows), once with nanoGPT's
exact GELU and once with our tanh approximation. What is left is the loops' own arithmetic: the GELU,
fused vs single-tensor AdamW, and the order of floating-point operations.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genai_core.bench.speed import _bench_config, _load_baseline, _val_loss, english_text  # noqa: E402
from genai_core.data.tokenstore import prepare_cached, windows_to_batch  # noqa: E402
from genai_core.model import load_state  # noqa: E402
from genai_core.models import build_model  # noqa: E402
from genai_core.runs.folder import Run  # noqa: E402
from genai_core.train.trainer import train  # noqa: E402


def _to_baseline_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our parameter names -> the nanoGPT-style module tree (transformer.wte, transformer.h.0...)."""
    out = {}
    for k, v in state.items():
        out[k if k.startswith("lm_head") else f"transformer.{k}"] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    nb = _load_baseline()
    assert nb is not None
    with tempfile.TemporaryDirectory(prefix="genai-loss-control-") as tmp:
        work = Path(tmp)
        corpus = work / "english.txt"
        corpus.write_text(english_text(), encoding="utf-8")
        config = _bench_config(corpus, args.steps, "cpu", seed=args.seed)
        run_path = work / "runs" / "ours"
        store = prepare_cached(config.data, Run(run_path).token_cache)
        T, B = config.model.seq_len, config.train.batch_size
        model_cfg = config.model.model_copy(update={"vocab_size": store.tokenizer.vocab_size})

        # Our trainer, as it is.
        train(config, run_path)
        ours = build_model(Run(run_path).config().model)
        load_state(ours, Run(run_path).load_weights())
        results = {"ours (Trainer)": _val_loss(ours, store.val, T, B)}

        # The same initial weights as Trainer.fit builds them.
        torch.manual_seed(config.train.seed)
        init = {k: v.clone() for k, v in build_model(model_cfg).state_dict().items()}

        for gelu in ("exact", "tanh"):
            bcfg = nb.BaselineConfig(vocab_size=model_cfg.vocab_size, block_size=T, batch_size=B,
                                     max_iters=args.steps, warmup_iters=config.train.warmup_steps,
                                     dtype=store.dtype.name, seed=args.seed)
            trainer = nb.BaselineTrainer(store.path, bcfg)
            trainer.model.load_state_dict(_to_baseline_names(init))
            if gelu == "tanh":
                for block in trainer.model.transformer.h:
                    block.mlp.gelu = torch.nn.GELU(approximate="tanh")
            rng = np.random.default_rng([config.train.seed, 0])  # Trainer.fit's batch generator (rank 0)

            def our_batches(split: str, trainer: object = trainer, rng: np.random.Generator = rng
                            ) -> tuple[torch.Tensor, torch.Tensor]:
                data = store.train if split == "train" else store.val
                x, y = windows_to_batch(data, rng.integers(0, len(data) - T, size=B), T)
                return x.contiguous(), y.contiguous()

            trainer.get_batch = our_batches
            trainer.X, trainer.Y = our_batches("train")
            while trainer.iter_num < args.steps:
                trainer.step()
            results[f"nanoGPT-style, our init + batches, {gelu} GELU"] = _val_loss(trainer.model, store.val, T, B)
    print(f"{args.steps} steps, seed {args.seed}, {torch.get_num_threads()} threads; validation loss, same windows:")
    for k, v in results.items():
        print(f"  {k:48s} {v:.4f}")


if __name__ == "__main__":
    main()
