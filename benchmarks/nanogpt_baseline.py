"""A nanoGPT-style training loop, re-implemented from memory as the reference for `genai_core.bench.speed`.

It follows the style of Karpathy's nanoGPT (`model.py` + `train.py`) without being a copy of it:

- the model: pre-LayerNorm blocks, learned positions, tied input/output embeddings, exact GELU
  (`nn.GELU()`, as nanoGPT), causal attention through `F.scaled_dot_product_attention`, GPT-2 init
  with the residual projections scaled by 1/sqrt(2 * n_layers), loss over every position;
- `get_batch`: a fresh `np.memmap` on every call, random offsets from torch's generator, one
  `torch.stack` of int64 slices for x and another for y;
- AdamW in its default (non-fused, single-tensor on CPU) implementation, weight decay on tensors
  of two or more dimensions only, linear warmup then cosine decay to lr / 10, gradient clipping at
  1.0, a (disabled on CPU) GradScaler, the next batch fetched right after the forward pass;
- `estimate_loss` style evaluation in eval mode under `torch.no_grad()`.

It reads the same `train.bin` / `val.bin` token files as the engine (any unsigned dtype), so both
loops see exactly the same data. Run alone: `python benchmarks/nanogpt_baseline.py DATA_DIR`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class BaselineConfig:
    """Hyperparameters; the defaults mirror the engine's bench configuration."""

    vocab_size: int = 96
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    batch_size: int = 12
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_iters: int = 20
    seed: int = 0
    dtype: str = "uint16"
    """dtype of the token files."""


# --------------------------------------------------------------------------- model
class LayerNorm(nn.Module):
    """LayerNorm whose bias can be switched off (nanoGPT predates `nn.LayerNorm(bias=False)`)."""

    def __init__(self, ndim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class SelfAttention(nn.Module):
    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.n_head, self.n_embd, self.dropout = cfg.n_head, cfg.n_embd, cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                           dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class FeedForward(nn.Module):
    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(cfg.n_embd, cfg.bias)
        self.attn = SelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg.n_embd, cfg.bias)
        self.mlp = FeedForward(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class BaselineGPT(nn.Module):
    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=LayerNorm(cfg.n_embd, cfg.bias),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas: tuple[float, float],
                             device_type: str) -> torch.optim.AdamW:
        params = {n: p for n, p in self.named_parameters() if p.requires_grad}
        groups = [
            {"params": [p for p in params.values() if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params.values() if p.dim() < 2], "weight_decay": 0.0},
        ]
        # nanoGPT asks for the fused kernel on CUDA only; on CPU AdamW runs its default implementation.
        extra = {"fused": True} if device_type == "cuda" else {}
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)


# --------------------------------------------------------------------------- training
@dataclass
class BaselineResult:
    step_times: list[float] = field(default_factory=list)
    """Seconds per optimizer step (batch fetch to zero_grad), every step."""
    wall_s: float = 0.0
    final_train_loss: float = float("nan")
    val_loss: float = float("nan")
    tokens_per_step: int = 0


class BaselineTrainer:
    """nanoGPT's training loop cut into steps, so that a benchmark can interleave it with another loop
    (step by step, both see the same machine load). `train` runs it straight through."""

    def __init__(self, data_dir: Path | str, cfg: BaselineConfig, device: str = "cpu") -> None:
        self.data_dir = Path(data_dir)
        self.cfg = cfg
        self.device = device
        self.dtype = np.dtype(cfg.dtype)
        self.device_type = "cuda" if "cuda" in device else "cpu"
        self.ctx = nullcontext()  # fp32 on CPU, as nanoGPT
        torch.manual_seed(cfg.seed)
        self.model = BaselineGPT(cfg).to(device)
        self.optimizer = self.model.configure_optimizers(cfg.weight_decay, cfg.learning_rate,
                                                         (cfg.beta1, cfg.beta2), self.device_type)
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=False)  # fp16 only; disabled here
        self.result = BaselineResult(tokens_per_step=cfg.batch_size * cfg.block_size)
        self.iter_num = 0
        self.X, self.Y = self.get_batch("train")

    def get_batch(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        # A new memmap per batch (nanoGPT does this to avoid a memory leak of long-lived memmaps).
        data = np.memmap(self.data_dir / f"{split}.bin", dtype=self.dtype, mode="r")
        ix = torch.randint(len(data) - cfg.block_size, (cfg.batch_size,))
        x = torch.stack([torch.from_numpy(data[i:i + cfg.block_size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + cfg.block_size].astype(np.int64)) for i in ix])
        if self.device_type == "cuda":
            return (x.pin_memory().to(self.device, non_blocking=True),
                    y.pin_memory().to(self.device, non_blocking=True))
        return x.to(self.device), y.to(self.device)

    def get_lr(self, it: int) -> float:
        cfg = self.cfg
        if it < cfg.warmup_iters:
            return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
        if it > cfg.max_iters:
            return cfg.min_lr
        ratio = (it - cfg.warmup_iters) / (cfg.max_iters - cfg.warmup_iters)
        coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
        return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)

    def step(self) -> float:
        """One optimizer step; its duration in seconds (also appended to `result.step_times`)."""
        cfg, model, optimizer, scaler = self.cfg, self.model, self.optimizer, self.scaler
        t0 = time.perf_counter()
        lr = self.get_lr(self.iter_num)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with self.ctx:
            _, loss = model(self.X, self.Y)
        self.X, self.Y = self.get_batch("train")  # fetch the next batch while (on a GPU) the forward runs
        scaler.scale(loss).backward()
        if cfg.grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        self.result.final_train_loss = loss.item()  # the engine reads its loss every step too: same sync
        dt = time.perf_counter() - t0
        self.result.step_times.append(dt)
        self.iter_num += 1
        return dt

    @torch.no_grad()
    def estimate_loss(self) -> dict[str, float]:
        out = {}
        self.model.eval()
        for split in ("train", "val"):
            losses = torch.zeros(self.cfg.eval_iters)
            for k in range(self.cfg.eval_iters):
                xb, yb = self.get_batch(split)
                with self.ctx:
                    _, loss = self.model(xb, yb)
                losses[k] = loss.item()
            out[split] = float(losses.mean())
        self.model.train()
        return out

    def finish(self) -> BaselineResult:
        self.result.val_loss = self.estimate_loss()["val"]
        return self.result


def train(data_dir: Path | str, cfg: BaselineConfig, device: str = "cpu"
          ) -> tuple[BaselineGPT, BaselineResult]:
    """Train from `data_dir/{train,val}.bin` for `cfg.max_iters` steps; the model and timings."""
    trainer = BaselineTrainer(data_dir, cfg, device)
    t0 = time.perf_counter()
    while trainer.iter_num < cfg.max_iters:
        trainer.step()
    trainer.result.wall_s = time.perf_counter() - t0
    return trainer.model, trainer.finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", help="folder holding train.bin and val.bin")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--dtype", default="uint16", help="dtype of the token files (uint8, uint16, uint32)")
    ap.add_argument("--vocab-size", type=int, default=None, help="default: max token id + 1")
    args = ap.parse_args()
    data_dir = Path(args.data_dir)
    vocab = args.vocab_size
    if vocab is None:
        vocab = int(np.memmap(data_dir / "train.bin", dtype=np.dtype(args.dtype), mode="r").max()) + 1
    _, res = train(data_dir, BaselineConfig(vocab_size=vocab, max_iters=args.steps, dtype=args.dtype))
    times = sorted(res.step_times[10:] or res.step_times)
    print(json.dumps({"steps": len(res.step_times), "median_step_s": times[len(times) // 2],
                      "tokens_per_s": res.tokens_per_step / times[len(times) // 2], "wall_s": res.wall_s,
                      "train_loss": res.final_train_loss, "val_loss": res.val_loss}))


if __name__ == "__main__":
    main()
