"""The fast inference path of a `GPT` (`GPTDecoder(model)`): prefill a prompt, then decode one token at a time with a
fraction of the module call overhead. Generation uses it; training never does."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from torch.nn import functional as F

from genai_core.model import GPT, KVCache, activation, norm_function, normalise_and_rotate, softcap


class GPTDecoder:
    """Fast inference path of a `GPT`: prefill a prompt, then decode one token at a time.

    Same arithmetic as `GPT.next_logits`, but with a fraction of its per-token overhead,
    which is what dominates a sub-million-parameter model on a CPU (one decode step is ~50 tiny
    kernels, each costing microseconds of dispatch for nanoseconds of maths):

    - the weights are read once into plain tensors (no nn.Module `__call__`/`__getattr__` per token);
    - one contiguous buffer holds q, k and v of every (layer, position): the qkv matmul of a step
      writes straight into its slot (`addmm(..., out=slot)`), so caching k and v costs no copy;
    - the attention views of each position are built once and reused, including after a re-prefill;
    - residual adds are folded into the output projections (`addmm(x, y, W^T)`);
    - an optional `logit_bias` (e.g. -inf on the unknown token) is added by the head's matmul itself.

    `cache` is a regular `KVCache` whose k and v are views of that buffer, so `GPT.next_logits`
    can continue from (or feed) the same state. Call under `torch.inference_mode()` or `no_grad()`.
    The decoder holds views of the parameters: in-place updates (optimizer steps, `load_state`) are
    seen, but build a new one after moving the model to another device or dtype (`Sampler` builds one
    per generation).
    """

    def __init__(self, model: GPT, batch_size: int = 1, logit_bias: torch.Tensor | None = None) -> None:
        cfg = model.config
        if cfg.copy_head:
            raise ValueError("GPTDecoder has no copy head; decode a copy-head model through GPT.next_logits")
        self.config = cfg
        self.batch_size = B = batch_size
        C, H, L, T = cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.seq_len
        hd = C // H
        w = model.wte.weight.detach()
        self.wte = w
        # Added to the embeddings (learned or sinusoidal); RoPE adds nothing and rotates q and k instead.
        self.pos_table = (model.wpe.weight.detach() if cfg.pos_encoding == "learned"
                          else model.pe if cfg.pos_encoding == "sinusoidal" else None)
        self.rope = (model.rope_cos, model.rope_sin) if cfg.pos_encoding == "rope" else None

        def det(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach()

        def mat(t: torch.Tensor) -> torch.Tensor:
            # A transposed view, as F.linear uses it. Copying it once into (in, out) row-major would
            # make a one-row matmul ~6% faster, but its different summation order moves the logits
            # up to ~1e-5 away from GPT.forward's (measured on a trained model): not worth it.
            return t.detach().t()

        # Per layer: ln_1, c_attn (W^T, b), c_proj (W^T, b), ln_2, c_fc (W^T, b), mlp c_proj (W^T, b). A norm is
        # `model.norm_function` bound to its module's weights: a module's forward, even without `__call__`'s hooks,
        # measured 7-10% slower per token here.
        norm = norm_function(cfg)

        def bound(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
            w, b = det(m.weight), det(getattr(m, "bias", None))
            return lambda x: norm(x, w, b)

        self.layers = [
            (bound(b.ln_1), mat(b.attn.c_attn.weight), det(b.attn.c_attn.bias),
             mat(b.attn.c_proj.weight), det(b.attn.c_proj.bias), bound(b.ln_2),
             mat(b.mlp.c_fc.weight), det(b.mlp.c_fc.bias), mat(b.mlp.c_proj.weight), det(b.mlp.c_proj.bias))
            for b in model.h
        ]
        self.ln_f = bound(model.ln_f)
        self.head_t = mat(model.lm_head.weight)
        if logit_bias is not None:
            logit_bias = logit_bias.to(device=w.device, dtype=w.dtype).reshape(-1)
        self.logit_bias = logit_bias
        # (layer, position, batch, q|k|v * heads * head_dim): a step's qkv row lands in one contiguous slot.
        self.buf = torch.zeros(L, T, B, 3 * C, device=w.device, dtype=w.dtype)
        parts = self.buf.view(L, T, B, 3, H, hd)
        k = parts[:, :, :, 1].permute(0, 2, 3, 1, 4)  # (L, B, H, T, hd), the layout KVCache promises
        v = parts[:, :, :, 2].permute(0, 2, 3, 1, 4)
        self.cache = KVCache(k, v)
        self._k = list(k.unbind(0))
        self._v = list(v.unbind(0))
        self._q = [parts[i, :, :, 0].unsqueeze(3) for i in range(L)]  # (T, B, H, 1, hd)
        self._pos_views: list[list[tuple[torch.Tensor, ...]] | None] = [None] * T
        self._idx = torch.zeros(B, dtype=torch.long, device=w.device)

    @property
    def pos(self) -> int:
        """Positions already in the cache."""
        return self.cache.pos

    def reset(self) -> None:
        """Forget the context (stale slots are never read: attention only looks at [0, pos))."""
        self.cache.pos = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Row b of the batch becomes what row index[b] was (beam search): one copy of the cached k|v
        of positions [0, pos) (their q is never read again), in place, so every precomputed view stays valid."""
        kv = self.buf[:, : self.cache.pos, :, self.config.d_model:]
        kv.copy_(kv.index_select(2, index))

    def _views(self, pos: int) -> list[tuple[torch.Tensor, ...]]:
        views = self._pos_views[pos]
        if views is None:  # built on first use: positions recur after every re-prefill
            S = pos + 1
            views = [(self.buf[i, pos], self._q[i][pos], self._k[i][:, :, :S], self._v[i][:, :, :S])
                     for i in range(len(self.layers))]
            self._pos_views[pos] = views
        return views

    def _qk(self, qkv: torch.Tensor, start: int, T: int) -> None:
        """QK-norm and RoPE of freshly computed q and k, in place: qkv is (B, T, 3 C) rows of positions
        [start, start + T), transformed as `CausalSelfAttention.project` does before caching."""
        cfg = self.config
        if not cfg.qk_norm and self.rope is None:
            return
        qk = qkv.view(qkv.shape[0], T, 3, cfg.n_heads, cfg.head_dim)[:, :, :2]  # (B, T, 2, H, hd)
        rope = None if self.rope is None else (self.rope[0][start:start + T], self.rope[1][start:start + T])
        qk.copy_(normalise_and_rotate(qk, cfg.qk_norm, rope))

    def step(self, token: int | torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence (an int, or a (B,) / (B, 1) id tensor); next-token logits (B, vocab)."""
        pos = self.cache.pos
        if pos >= self.config.seq_len:
            raise ValueError(f"the cache is full ({pos} positions of seq_len {self.config.seq_len}); reset it")
        idx = self._idx
        if isinstance(token, int):
            idx.fill_(token)
        else:
            idx.copy_(token.reshape(-1))
        B, C, kind = self.batch_size, self.config.d_model, self.config.mlp
        x = torch.embedding(self.wte, idx)
        if self.pos_table is not None:
            x.add_(self.pos_table[pos])
        for (ln_1, wqkv, bqkv, wo, bo, ln_2, wfc, bfc, wp, bp), (slot, q, k, v) in zip(
                self.layers, self._views(pos), strict=True):
            h = ln_1(x)
            if bqkv is None:
                torch.mm(h, wqkv, out=slot)
            else:
                torch.addmm(bqkv, h, wqkv, out=slot)
            self._qk(slot, pos, 1)
            # One query per head: (B, H, 1, hd) comes out contiguous, i.e. already (B, C).
            y = F.scaled_dot_product_attention(q, k, v).view(B, C)
            x = torch.addmm(x, y, wo)
            if bo is not None:
                x += bo
            h = ln_2(x)
            h = activation(torch.mm(h, wfc) if bfc is None else torch.addmm(bfc, h, wfc), kind)
            x = torch.addmm(x, h, wp)
            if bp is not None:
                x += bp
        self.cache.pos = pos + 1
        return self._head(x)

    def prefill(self, idx: torch.Tensor) -> torch.Tensor:
        """Feed (B, T) ids after the cached positions; logits (B, vocab) of the last position only."""
        cfg = self.config
        B, T = idx.shape
        start = self.cache.pos
        S = start + T
        if S > cfg.seq_len:
            raise ValueError(f"sequence of {S} tokens exceeds seq_len {cfg.seq_len}")
        C, H = cfg.d_model, cfg.n_heads
        x = F.embedding(idx, self.wte)
        if self.pos_table is not None:
            x = x + self.pos_table[start:S]
        x = x.reshape(B * T, C)  # rows in (b, t) order
        last = len(self.layers) - 1
        for i, (ln_1, wqkv, bqkv, wo, bo, ln_2, wfc, bfc, wp, bp) in enumerate(self.layers):
            h = ln_1(x)
            qkv = (torch.mm(h, wqkv) if bqkv is None else torch.addmm(bqkv, h, wqkv)).view(B, T, 3 * C)
            self._qk(qkv, start, T)
            self.buf[i, start:S].copy_(qkv.transpose(0, 1))
            Tq = T
            if i == last:
                # Only the last position reaches the logits: the final block's attention output and MLP
                # are needed for it alone (its keys/values for all positions are already cached).
                qkv, x, Tq = qkv[:, -1:], x.view(B, T, C)[:, -1], 1
            q = qkv.view(B, Tq, 3, H, C // H)[:, :, 0].transpose(1, 2)
            k, v = self._k[i][:, :, :S], self._v[i][:, :, :S]
            if Tq == 1:
                y = F.scaled_dot_product_attention(q, k, v)
            elif start == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                mask = torch.ones(Tq, S, dtype=torch.bool, device=idx.device).tril(diagonal=start)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = torch.addmm(x, y.transpose(1, 2).reshape(B * Tq, C), wo)
            if bo is not None:
                x += bo
            h = ln_2(x)
            h = activation(torch.mm(h, wfc) if bfc is None else torch.addmm(bfc, h, wfc), cfg.mlp)
            x = torch.addmm(x, h, wp)
            if bp is not None:
                x += bp
        self.cache.pos = S
        return self._head(x)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln_f(x)
        cap = self.config.logit_softcap
        if cap is not None:  # the ban (-inf) must survive the cap, so it is added after it
            logits = softcap(torch.mm(x, self.head_t), cap)
            return logits if self.logit_bias is None else logits + self.logit_bias
        if self.logit_bias is None:
            return torch.mm(x, self.head_t)
        return torch.addmm(self.logit_bias, x, self.head_t)
