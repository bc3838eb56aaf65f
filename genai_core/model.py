"""Language models: a GPT-style decoder (Radford et al. 2019) and an LSTM baseline.

Both take token ids (B, T) and return next-token logits (B, T, vocab), plus the mean cross-entropy
when targets are given. Both generate through a cache of past state: keys/values per layer for the
GPT (a preallocated static buffer, written in place), hidden and cell states for the LSTM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from .config import ModelConfig
from .errors import CheckpointError


@dataclass
class KVCache:
    """Keys and values of every layer for positions [0, pos), preallocated up to `max_len`."""

    k: torch.Tensor  # (n_layers, B, n_heads, max_len, head_dim)
    v: torch.Tensor
    pos: int = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[3]


@dataclass
class RecurrentState:
    """Hidden and cell state of a stacked LSTM after `pos` tokens."""

    h: torch.Tensor | None = None
    c: torch.Tensor | None = None
    pos: int = 0


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.d_model = cfg.d_model
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, C = x.shape
        H = self.n_heads
        q, k, v = self.c_attn(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
        start = 0
        if cache is not None:
            start = cache.pos
            cache.k[layer, :B, :, start:start + T] = k
            cache.v[layer, :B, :, start:start + T] = v
            k = cache.k[layer, :B, :, : start + T]
            v = cache.v[layer, :B, :, : start + T]
        weights = None
        if need_weights:
            # Explicit softmax only when someone wants to look at the attention pattern.
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
            mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = weights @ v
        elif start == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)
        elif T == 1:
            y = F.scaled_dot_product_attention(q, k, v)  # one new query sees every cached position
        else:
            mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y)), weights


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, w = self.attn(self.ln_1(x), cache, layer, need_weights)
        x = x + a
        return x + self.mlp(self.ln_2(x)), w


def sinusoidal_table(seq_len: int, d_model: int) -> torch.Tensor:
    """Fixed positional encodings of Vaswani et al. (2017): sin on even, cos on odd dimensions."""
    pos = torch.arange(seq_len, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(seq_len, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
    return pe


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.pos_encoding == "learned":
            self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model)
        else:
            self.register_buffer("pe", sinusoidal_table(cfg.seq_len, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.apply(_init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    def positions(self, start: int, T: int, device: torch.device) -> torch.Tensor:
        if self.config.pos_encoding == "learned":
            return self.wpe(torch.arange(start, start + T, device=device))
        return self.pe[start:start + T]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                loss_weights: torch.Tensor | None = None, need_weights: bool = False,
                last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.config.seq_len:
            raise ValueError(f"sequence of {start + T} tokens exceeds seq_len {self.config.seq_len}")
        x = self.drop(self.wte(idx) + self.positions(start, T, idx.device))
        self.last_attention: list[torch.Tensor] = []
        for i, block in enumerate(self.h):
            x, w = block(x, cache, i, need_weights)
            if w is not None:
                self.last_attention.append(w)
        if cache is not None:
            cache.pos += T
        x = self.ln_f(x)
        if last_only and targets is None:
            x = x[:, -1:]
        logits = self.lm_head(x)
        return logits, lm_loss(logits, targets, loss_weights)

    def new_cache(self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None) -> KVCache:
        c = self.config
        dtype = dtype or self.wte.weight.dtype
        shape = (c.n_layers, batch_size, c.n_heads, c.seq_len, c.head_dim)
        return KVCache(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))


class LSTMLM(nn.Module):
    """Embedding -> stacked LSTM -> LayerNorm -> (tied) output projection."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(cfg.d_model, cfg.d_model, num_layers=cfg.n_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0, bias=cfg.bias)
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        nn.init.normal_(self.wte.weight, mean=0.0, std=0.02)
        if not cfg.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: RecurrentState | None = None,
                loss_weights: torch.Tensor | None = None, need_weights: bool = False,
                last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.drop(self.wte(idx))
        state = None if cache is None or cache.h is None else (cache.h, cache.c)
        x, (h, c) = self.lstm(x, state)
        if cache is not None:
            cache.h, cache.c, cache.pos = h, c, cache.pos + idx.shape[1]
        x = self.ln_f(self.drop(x))
        if last_only and targets is None:
            x = x[:, -1:]
        logits = self.lm_head(x)
        return logits, lm_loss(logits, targets, loss_weights)

    def new_cache(self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None) -> RecurrentState:
        return RecurrentState()


LanguageModel = GPT | LSTMLM


def lm_loss(logits: torch.Tensor, targets: torch.Tensor | None, weights: torch.Tensor | None = None) -> torch.Tensor | None:
    """Mean next-token cross-entropy; with `weights`, a weighted mean (0 = position ignored)."""
    if targets is None:
        return None
    flat = logits.reshape(-1, logits.size(-1)).float()
    if weights is None:
        return F.cross_entropy(flat, targets.reshape(-1))
    per_token = F.cross_entropy(flat, targets.reshape(-1), reduction="none")
    w = weights.reshape(-1).to(per_token.dtype)
    return (per_token * w).sum() / w.sum().clamp_min(1.0)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def build_model(cfg: ModelConfig) -> LanguageModel:
    return GPT(cfg) if cfg.arch == "gpt" else LSTMLM(cfg)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, counting tied weights once."""
    return sum(p.numel() for p in model.parameters())


def state_for_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict without the tied output weight (safetensors refuses shared storage)."""
    sd = unwrap(model).state_dict()
    if unwrap(model).config.tie_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


def load_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load weights after checking names, shapes and values, with a specific message on mismatch."""
    raw = unwrap(model)
    expected = state_for_save(raw)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            "checkpoint does not match the model config: "
            + (f"missing {missing[:4]}{'...' if len(missing) > 4 else ''} " if missing else "")
            + (f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}" if unexpected else "")
        )
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"checkpoint tensor {k} has shape {tuple(state[k].shape)}, the model needs {tuple(v.shape)}")
        if not state[k].dtype.is_floating_point and v.dtype.is_floating_point:
            raise CheckpointError(f"checkpoint tensor {k} has dtype {state[k].dtype}, expected floating point")
        if v.dtype.is_floating_point and not torch.isfinite(state[k]).all():
            raise CheckpointError(f"checkpoint tensor {k} holds NaN or infinite values")
    raw.load_state_dict(state, strict=False)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
