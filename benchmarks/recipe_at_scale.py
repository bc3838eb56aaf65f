"""The recipe check beyond the demo sizes: classic vs modern at 6 layers x 384 with a BPE tokenizer.

A shorter run than the main benchmark (`bench --recipes`), same real text (Shakespeare); both arms use the
engine's CPU defaults (bf16 autocast where native, the free cores' threads). Prints each curve and the
training time at which modern first reaches classic's final validation loss.

    python benchmarks/recipe_at_scale.py [--steps 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genai_core.bench.recipes import SHAKESPEARE, train_arm
from genai_core.config import RunConfig, with_recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        arms = {}
        for recipe in ("classic", "modern"):
            cfg = RunConfig.model_validate(with_recipe({
                "name": f"scale-{recipe}",
                "data": {"corpus": str(SHAKESPEARE), "tokenizer": "bpe", "vocab_size": 1024},
                "model": {"n_layers": 6, "n_heads": 6, "d_model": 384, "seq_len": 128},
                "train": {"batch_size": 12, "max_steps": args.steps, "eval_interval": 50, "eval_batches": 20,
                          "log_interval": 50, "sample_tokens": 1, "device": "cpu"},
            }, recipe))
            print(f"{recipe} ...", file=sys.stderr, flush=True)
            arms[recipe] = train_arm(recipe, cfg, out, f"scale-{recipe}")
        c, m = arms["classic"], arms["modern"]
        print(f"6x384 GPT, BPE 1024, seq 128, batch 12, {args.steps} steps, Shakespeare")
        print(f"{'step':>6} {'classic':>9} {'modern':>9}")
        for (s, vc, _), (_, vm, _) in zip(c.curve, m.curve, strict=False):
            print(f"{s:>6} {vc:>9.4f} {vm:>9.4f}")
        print(f"classic {c.tokens_per_s:,.0f} tokens/s, {c.train_seconds:.0f} s; "
              f"modern {m.tokens_per_s:,.0f} tokens/s, {m.train_seconds:.0f} s; "
              f"final {c.final:.4f} vs {m.final:.4f} ({m.final - c.final:+.4f})")
        reach = m.seconds_to(c.final)
        print(f"modern reaches classic's final loss after {reach:.0f} s ({c.train_seconds / reach:.2f}x sooner)"
              if reach else "modern never reached classic's final loss")


if __name__ == "__main__":
    main()
