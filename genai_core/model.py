"""Language models: a GPT-style decoder (Radford et al. 2019) and LSTM / GRU baselines.

The GPT takes the architecture knobs of `ModelConfig`: the 2019 GPT-2 block (learned positions, LayerNorm,
GELU MLP, tied head) or any mix of the later ones from the nanoGPT speedrun (modded-nanogpt): rotary
position embeddings (Su et al. 2021), RMSNorm (Zhang & Sennrich 2019), QK-norm (Henry et al. 2020),
the ReLU^2 MLP (So et al. 2021), zero-initialised output projections, an untied head and tanh logit
soft-capping (Gemma 2).

All take token ids (B, T) and return next-token logits (B, T, vocab), plus the mean cross-entropy
when targets are given (positions whose target is `IGNORE` do not count). All generate through
`next_logits(idx, cache)` and a cache of past state: keys/values per layer for the GPT (a preallocated
static buffer, written in place), hidden (and for the LSTM cell) states for the recurrent models. Every
cache has `reorder(index)`, which beam search uses to make row b continue from row index[b] (the beams
that survived a step) without recomputing anything.

Question answering adds heads to the GPT in `genai_core.qa.reader` (a subclass); `genai_core.models` says
which class a config builds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn as nn
from torch.nn import functional as F

from genai_core.config import ModelConfig
from genai_core.errors import CheckpointError

NORM_EPS = 1e-5
"""Epsilon of every LayerNorm, RMSNorm and QK-norm (torch's LayerNorm default)."""
ROPE_BASE = 10000.0
"""Base of the rotary frequencies (RoFormer's)."""
IGNORE = -1
"""A target that no loss counts (QA fine-tuning trains on the answer's tokens only)."""


@dataclass
class KVCache:
    """Keys and values of every layer for positions [0, pos), preallocated up to `max_len`.

    With a copy head, also the copy head's keys and the token ids of those positions (what it copies).
    """

    k: torch.Tensor  # (n_layers, B, n_heads, max_len, head_dim)
    v: torch.Tensor
    pos: int = 0
    copy_k: torch.Tensor | None = None  # (B, max_len, d_model)
    ids: torch.Tensor | None = None  # (B, max_len) int64

    def reorder(self, index: torch.Tensor) -> None:
        """Row b of the batch becomes what row index[b] was, for positions [0, pos) (in place, so views
        of these tensors, e.g. a `GPTDecoder`'s, stay valid). `index` holds one row per batch row."""
        p = self.pos
        self.k[:, :, :, :p] = self.k[:, :, :, :p].index_select(1, index)
        self.v[:, :, :, :p] = self.v[:, :, :, :p].index_select(1, index)
        if self.copy_k is not None and self.ids is not None:
            self.copy_k[:, :p] = self.copy_k[:, :p].index_select(0, index)
            self.ids[:, :p] = self.ids[:, :p].index_select(0, index)


@dataclass
class RecurrentState:
    """Hidden state (and, for an LSTM, cell state; None for a GRU) of a stacked RNN after `pos` tokens."""

    h: torch.Tensor | None = None  # (n_layers, B, d_model)
    c: torch.Tensor | None = None
    pos: int = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Row b of the batch becomes what row index[b] was (index may also repeat rows, e.g. to grow a batch of 1)."""
        if self.h is not None:
            self.h = self.h.index_select(1, index)
        if self.c is not None:
            self.c = self.c.index_select(1, index)


def rope_tables(seq_len: int, head_dim: int, base: float = ROPE_BASE) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotary tables, (seq_len, head_dim) each: pair i of a head (dimensions i and i + hd/2) turns by the
    angle pos * base^(-2i/hd). `cos` repeats each angle's cosine for both halves; `sin` carries the sign of
    the rotation (-sin for the first half, +sin for the second), so that `apply_rope` is two products."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.arange(seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return torch.cat((angles.cos(), angles.cos()), -1), torch.cat((-angles.sin(), angles.sin()), -1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (i, i + hd/2) of the head vectors in x (..., hd) by its angle (tables from `rope_tables`,
    broadcast against x).

    Queries and keys rotated by their own positions have dot products that depend only on the
    difference of the positions: attention sees relative position, and nothing is learned for it.
    """
    half = x.shape[-1] // 2
    swapped = torch.cat((x[..., half:], x[..., :half]), dim=-1)
    return x * cos.to(x.dtype) + swapped * sin.to(x.dtype)


def make_norm(cfg: ModelConfig) -> nn.Module:
    """The block's normalisation: LayerNorm (GPT-2) or RMSNorm (no mean, no bias)."""
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.d_model, eps=NORM_EPS)
    return nn.LayerNorm(cfg.d_model, eps=NORM_EPS, bias=cfg.bias)


def norm_function(cfg: ModelConfig) -> Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None],
                                                  torch.Tensor]:
    """`make_norm`'s normalisation as a function of (x, weight, bias), for the fast decoder (`GPTDecoder`)."""
    shape = (cfg.d_model,)
    if cfg.norm == "rmsnorm":
        return lambda x, w, b: torch.rms_norm(x, shape, w, NORM_EPS)
    return lambda x, w, b: torch.layer_norm(x, shape, w, b, NORM_EPS)


def softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    """cap * tanh(logits / cap): smooth bound on the logits to (-cap, cap) (no-op for None)."""
    return logits if cap is None else cap * torch.tanh(logits / cap)


Rope = tuple[torch.Tensor, torch.Tensor] | None
Positions = tuple[torch.Tensor, torch.Tensor] | Literal["last"] | None
"""Where the output head runs: every position (None), the last one, or the (rows, cols) given."""


@dataclass
class AttentionMaps:
    """What `GPT.attention_maps` returns: the attention of one forward pass, for the inspection views."""

    layers: list[torch.Tensor]
    """Per layer, (B, n_heads, T, T): row t is how position t's query spread its attention over positions <= t."""
    copy: tuple[torch.Tensor, torch.Tensor] | None = None
    """The copy head's attention over positions (B, T, T) and its gate (B, T, 1), the share left to the
    vocabulary; None without a copy head."""


def normalise_and_rotate(qk: torch.Tensor, qk_norm: bool, rope: Rope) -> torch.Tensor:
    """Queries and keys (B, T, 2, H, hd) after QK-norm and RoPE (`rope`: the tables of their T positions), the
    two together, one op each: on a CPU a small model pays per op, not per element. The training path and the
    fast decoder (`GPTDecoder`) both transform them here."""
    T, hd = qk.shape[1], qk.shape[-1]
    if qk_norm:  # unit-RMS queries and keys: attention logits stay bounded whatever the weights do
        qk = F.rms_norm(qk, (hd,), eps=NORM_EPS)
    if rope is not None:
        qk = apply_rope(qk, rope[0].view(T, 1, 1, hd), rope[1].view(T, 1, 1, hd))
    return qk


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.d_model = cfg.d_model
        self.qk_norm = cfg.qk_norm
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def project(self, x: torch.Tensor, rope: Rope = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of x (B, T, C), each (B, H, T, hd), after QK-norm and RoPE when on."""
        B, T, C = x.shape
        hd = C // self.n_heads
        qkv = self.c_attn(x).view(B, T, 3, self.n_heads, hd)
        if not self.qk_norm and rope is None:
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
            return q, k, v
        q, k = normalise_and_rotate(qkv[:, :, :2], self.qk_norm, rope).permute(2, 0, 3, 1, 4)
        return q, k, qkv[:, :, 2].transpose(1, 2)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                need_weights: bool = False, rope: Rope = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, C = x.shape
        q, k, v = self.project(x, rope)
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
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.n_heads)
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


def activation(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The MLP's nonlinearity: GELU (tanh approximation, as GPT-2) or ReLU^2 (Primer)."""
    if kind == "relu2":
        return F.relu(x).square()
    return F.gelu(x, approximate="tanh")


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.kind = cfg.mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(activation(self.c_fc(x), self.kind)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                need_weights: bool = False, rope: Rope = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, w = self.attn(self.ln_1(x), cache, layer, need_weights, rope)
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
        elif cfg.pos_encoding == "sinusoidal":
            self.register_buffer("pe", sinusoidal_table(cfg.seq_len, cfg.d_model), persistent=False)
        else:  # rope: nothing is added to the embeddings; queries and keys are rotated in every layer
            cos, sin = rope_tables(cfg.seq_len, cfg.head_dim)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        if cfg.copy_head:
            self.copy_q = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
            self.copy_k = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
            self.copy_gate = nn.Linear(cfg.d_model, 1)
        self.apply(init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                if cfg.zero_init:  # each block starts as the identity; Muon/AdamW grow it from there
                    nn.init.zeros_(p)
                else:  # GPT-2: scale residual projections by depth
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))
        if cfg.zero_init and not cfg.tie_embeddings:
            nn.init.zeros_(self.lm_head.weight)  # uniform first prediction; the head learns from the first step

    def positions(self, start: int, T: int, device: torch.device) -> torch.Tensor | None:
        """Absolute position vectors added to the embeddings (None with RoPE, which rotates q and k instead)."""
        if self.config.pos_encoding == "learned":
            return self.wpe(torch.arange(start, start + T, device=device))
        if self.config.pos_encoding == "sinusoidal":
            return self.pe[start:start + T]
        return None

    def rope(self, start: int, T: int) -> Rope:
        """Rotary angles of positions [start, start + T) (None without RoPE)."""
        if self.config.pos_encoding != "rope":
            return None
        return self.rope_cos[start:start + T], self.rope_sin[start:start + T]

    def forward(self, idx: torch.Tensor,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits (B, T, vocab) at every position and, with targets (B, T), the mean cross-entropy."""
        h = self.hidden(idx)
        logits = self.head(h, idx)
        return logits, lm_loss(logits, targets)

    def next_logits(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Feed (B, T) ids after what `cache` holds (and add them to it); the (B, vocab) logits of each row's next
        token. Generation's path for a model without a fast decoder (`GPTDecoder`): a copy-head GPT."""
        start = cache.pos
        h = self.hidden(idx, cache)
        logits = self.head(h, idx, cache, start, at="last")
        cache.pos += idx.shape[1]
        return logits[:, -1]

    def attention_maps(self, idx: torch.Tensor) -> AttentionMaps:
        """The attention weights of one pass over `idx`, for looking at, not for training: per layer (B, H, T, T),
        and the copy head's attention over positions and gate when the model has one."""
        layers: list[torch.Tensor] = []
        h = self.hidden(idx, attention=layers)
        copy = self.copy_mixture(h, idx, None, 0)[1] if self.config.copy_head else None
        return AttentionMaps(layers, copy)

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None,
               attention: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The final hidden states (B, T, C) of the blocks, after the last norm. A list passed as `attention`
        receives each layer's attention weights (computed by an explicit softmax, so only when asked)."""
        T = idx.shape[1]
        start = cache.pos if cache is not None else 0
        if start + T > self.config.seq_len:
            raise ValueError(f"sequence of {start + T} tokens exceeds seq_len {self.config.seq_len}")
        x = self.wte(idx)
        pos = self.positions(start, T, idx.device)
        x = self.drop(x if pos is None else x + pos)
        rope = self.rope(start, T)
        for i, block in enumerate(self.h):
            x, w = block(x, cache, i, attention is not None, rope)
            if attention is not None:
                attention.append(w)
        return self.ln_f(x)

    def head(self, h: torch.Tensor, idx: torch.Tensor, cache: KVCache | None = None, start: int = 0,
             at: Positions = None) -> torch.Tensor:
        """Next-token logits from the final hidden states `h` (B, T, C) of `idx`: at every position (B, T, vocab),
        at the last (`at="last"`, (B, 1, vocab)), or at the (rows, cols) positions given ((N, vocab))."""
        if self.config.copy_head:
            return self.copy_mixture(h, idx, cache, start, at)[0]
        if at == "last":
            h = h[:, -1:]
        elif at is not None:
            h = h[at]
        return softcap(self.lm_head(h), self.config.logit_softcap)

    def copy_mixture(self, h: torch.Tensor, idx: torch.Tensor, cache: KVCache | None, start: int,
                     at: Positions = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Pointer-generator output (See et al. 2017, in a decoder-only model): log of
        g * softmax(lm_head(h)) + (1 - g) * copy, where `copy` puts the copy attention's weight on
        position j onto token idx[j] (j up to the current position) and g = sigmoid(gate(h)).

        Returns log-probabilities: they are valid logits (softmax gives the mixture back), so the loss,
        temperature, top-k and top-p work on them unchanged; `at` as in `head`. Also the copy attention and
        the gate, for `attention_maps`.
        """
        B, T, C = h.shape
        k = self.copy_k(h)
        ids = idx
        if cache is not None:
            cache.copy_k[:B, start:start + T] = k
            cache.ids[:B, start:start + T] = idx
            k, ids = cache.copy_k[:B, : start + T], cache.ids[:B, : start + T]
        positions = torch.arange(start, start + T, device=h.device)
        if at == "last":
            h, positions = h[:, -1:], positions[-1:]
        elif at is not None:  # one query per selected (row, col): each attends over its own row
            rows, cols = at
            h, k, ids, positions = h[rows, cols][:, None], k[rows], ids[rows], cols[:, None] + start
        S = k.shape[1]
        visible = torch.arange(S, device=h.device) <= positions[..., None]  # (T, S) or (N, 1, S): causal
        scores = (self.copy_q(h) @ k.transpose(1, 2)).float() / math.sqrt(C)
        attn = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1)
        gate = torch.sigmoid(self.copy_gate(h).float())  # share of the vocabulary distribution
        vocab = softcap(self.lm_head(h).float(), self.config.logit_softcap).softmax(dim=-1)
        copy = torch.zeros_like(vocab).scatter_add_(-1, ids[:, None, :].expand_as(attn), attn)
        # A token neither generated nor copyable can underflow to 0; clamp keeps its log finite.
        out = (gate * vocab + (1.0 - gate) * copy).clamp_min(1e-30).log()
        return (out if at is None or at == "last" else out[:, 0]), (attn, gate)

    def new_cache(self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None) -> KVCache:
        c = self.config
        dtype = dtype or self.wte.weight.dtype
        shape = (c.n_layers, batch_size, c.n_heads, c.seq_len, c.head_dim)
        cache = KVCache(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))
        if c.copy_head:
            cache.copy_k = torch.zeros(batch_size, c.seq_len, c.d_model, device=device, dtype=dtype)
            cache.ids = torch.zeros(batch_size, c.seq_len, device=device, dtype=torch.long)
        return cache


class RecurrentLM(nn.Module):
    """Embedding -> stacked LSTM or GRU (`config.arch`) -> LayerNorm -> (tied) output projection.

    The recurrent module is registered under the architecture's name (`lstm.*` / `gru.*` in the state
    dict), so LSTM checkpoints saved before the GRU existed load unchanged. A GRU (Cho et al. 2014) has
    three gates to the LSTM's four and no cell state: its `RecurrentState.c` stays None.
    """

    CELLS: ClassVar[dict[str, type[nn.RNNBase]]] = {"lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.arch not in self.CELLS:
            raise ValueError(f"RecurrentLM needs arch lstm or gru, not {cfg.arch}")
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.add_module(cfg.arch, self.CELLS[cfg.arch](
            cfg.d_model, cfg.d_model, num_layers=cfg.n_layers, batch_first=True,
            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0, bias=cfg.bias))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        nn.init.normal_(self.wte.weight, mean=0.0, std=0.02)
        if not cfg.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits (B, T, vocab) at every position and, with targets (B, T), the mean cross-entropy."""
        logits = self.lm_head(self._run(idx, None))
        return logits, lm_loss(logits, targets)

    def next_logits(self, idx: torch.Tensor, cache: RecurrentState) -> torch.Tensor:
        """Feed (B, T) ids after the state `cache` holds (and update it); the (B, vocab) logits of the next token."""
        return self.lm_head(self._run(idx, cache)[:, -1])

    def _run(self, idx: torch.Tensor, cache: RecurrentState | None) -> torch.Tensor:
        """The final hidden states (B, T, C), continuing from `cache` (updated) when one is given."""
        x = self.drop(self.wte(idx))
        lstm = self.config.arch == "lstm"
        state = None
        if cache is not None and cache.h is not None:
            state = (cache.h, cache.c) if lstm else cache.h
        x, new = self.rnn(x, state)
        if cache is not None:
            cache.h, cache.c = new if lstm else (new, None)
            cache.pos += idx.shape[1]
        return self.ln_f(self.drop(x))

    @property
    def rnn(self) -> nn.RNNBase:
        """The stacked LSTM or GRU (registered under its architecture's name)."""
        return getattr(self, self.config.arch)

    def new_cache(self, batch_size: int, device: torch.device | str,
                  dtype: torch.dtype | None = None) -> RecurrentState:
        return RecurrentState()


LanguageModel = GPT | RecurrentLM


def lm_loss(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    """Mean next-token cross-entropy over the targets that are not `IGNORE` (None without targets)."""
    if targets is None:
        return None
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE)


def init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation of a linear layer or an embedding: normal with std 0.02, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


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
            raise CheckpointError(f"checkpoint tensor {k} has shape {tuple(state[k].shape)}, "
                                  f"the model needs {tuple(v.shape)}")
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
