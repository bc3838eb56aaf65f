"""What every decoder shares: from a row of logits to the next token, and what is recorded about it.

`Generation` (sampling and greedy decoding, in `sampling`) and `beam_search` (in `beam`) both build on
these pieces, and the Chat page's distribution view (`inspection.next_token_view`) applies the same
filters, so the three always agree on what the knobs mean:

- `apply_repetition_penalty`, `filter_logits` and `token_distribution`: the knobs on a row of logits;
  `choose_token`: the next id (argmax at temperature 0, else a draw); `unknown_bias`: the ban on the
  unknown token;
- `TokenInfo` and `PromptInfo`: what a generation records about each token and about its prompt;
- `find_stop` (stop strings) and `WINDOW_KEEP` (what is kept when the window is full).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from genai_core.config import SampleConfig

WINDOW_KEEP = 0.75
"""Share of the window kept as context when the window is full: the decoders then re-prefill the most recent
WINDOW_KEEP of it (positions are absolute, so cached keys and values cannot be shifted)."""


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Scale by temperature, then mask (to -inf) tokens outside the top-k and the top-p nucleus.

    Works on (..., vocab). The most likely token always survives, so sampling is always possible.
    """
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    V = logits.size(-1)
    if 0 < top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens before it already reach top_p; the first is never dropped.
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL (Keskar et al. 2019): make tokens already present less likely, whatever their sign."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def token_distribution(logits: torch.Tensor, cfg: SampleConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The candidates of a (vocab,) row and their (unnormalised) probabilities under `cfg` (temperature > 0).

    Same distribution as `filter_logits` followed by softmax, in a handful of kernels: top-k first
    (sorted), then temperature, softmax and the top-p cut over those k values only; the vocabulary is
    never sorted or scattered back. Returns (weights, ids), ids None meaning "the whole vocabulary in
    order". Unlike `filter_logits`, top-k keeps exactly k tokens when several tie at the k-th value.
    """
    V = logits.size(-1)
    if 0 < cfg.top_k < V:
        vals, order = torch.topk(logits, cfg.top_k)  # sorted, highest first
    elif cfg.top_p < 1.0:
        vals, order = torch.sort(logits, descending=True)
    else:
        vals, order = logits, None
    if vals.dtype != torch.float32:
        vals = vals.float()
    probs = torch.softmax(vals / cfg.temperature if cfg.temperature != 1.0 else vals, dim=-1)
    if cfg.top_p < 1.0:
        # Drop a token when the (more likely) tokens before it already reach top_p; the first never is.
        # multinomial takes unnormalised weights, so no renormalisation is needed.
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= cfg.top_p, 0.0)
    return probs, order


def choose_token(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator | None) -> int:
    """Pick the next id from a (vocab,) row of logits: argmax at temperature 0, else a draw from
    `token_distribution` (no copy to the CPU: the generator lives on the logits' device)."""
    if cfg.temperature == 0:
        return int(torch.argmax(logits))
    probs, order = token_distribution(logits, cfg)
    choice = torch.multinomial(probs, 1, generator=generator)
    return int(choice) if order is None else int(order[choice])


ALTERNATIVES = 5
"""Tokens listed in `TokenInfo.alternatives`."""


@dataclass
class TokenInfo:
    """One generated token and the distribution it was chosen from.

    That distribution is exactly what the token was drawn from when sampling: the logits after the
    repetition penalty and the unknown-token ban, then temperature, top-k and top-p. At temperature 0
    (greedy), where no distribution is drawn from, it is the softmax at temperature 1 of the logits after
    the repetition penalty and the ban (top-k and top-p, which cannot change an argmax, are not applied).
    In beam search it is the distribution the hypotheses are scored with (the same as greedy's).
    """

    id: int
    """Token id."""
    text: str
    """The text this token added to the output (empty while a multi-byte character is incomplete)."""
    prob: float
    """Probability of this token under that distribution."""
    alternatives: list[tuple[int, str, float]]
    """The ALTERNATIVES most likely tokens of that distribution as (id, text, probability), most likely first;
    the chosen token is among them when it is that likely. Tokens of probability 0 are left out."""
    model_prob: float | None = None
    """Probability of this token under the model itself: the softmax at temperature 1 of the same logits, before
    temperature, top-k and top-p (None: equal to `prob`, as in greedy decoding and beam search). How sure the
    model was is judged on this, so it does not move with the sampling knobs."""

    @property
    def confidence(self) -> float:
        """`model_prob` where it differs from `prob`, else `prob`."""
        return self.prob if self.model_prob is None else self.model_prob

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for a page's session state): text, probability, confidence and the alternatives."""
        return {"text": self.text, "prob": self.prob, "confidence": self.confidence,
                "alternatives": [[text, p] for _, text, p in self.alternatives]}


@dataclass
class PromptInfo:
    """How the prompt reached the model."""

    tokens: int
    """Prompt tokens the model sees (after cropping)."""
    cropped_tokens: int = 0
    """Tokens removed from the left because the prompt did not fit the context window."""
    unknown_chars: list[str] = field(default_factory=list)
    """Characters the tokenizer does not know; each was encoded as the unknown token."""
    text: str = ""
    """The prompt text exactly as the model sees it."""

    def warnings(self) -> list[str]:
        out = []
        if self.cropped_tokens:
            out.append(f"the prompt was longer than the context window: its first {self.cropped_tokens} "
                       f"tokens were cropped and the model sees the last {self.tokens}")
        if self.unknown_chars:
            shown = " ".join(repr(c) for c in self.unknown_chars[:10])
            out.append(f"{len(self.unknown_chars)} character(s) never seen in training were encoded as unknown: "
                       f"{shown}")
        return out


def unknown_bias(unk: int | None, vocab_size: int, device: torch.device) -> torch.Tensor | None:
    """(vocab,) logit bias that bans the unknown token, or None for a tokenizer without one.

    The unknown token stands for "a character never seen in training": a decoder must never produce it.
    """
    if unk is None:
        return None
    bias = torch.zeros(vocab_size, device=device)
    bias[unk] = float("-inf")
    return bias


def find_stop(text: str, stops: list[str], emitted: int) -> int | None:
    """Where the first stop string starts in `text`, looking only where one could have appeared since
    `emitted` characters were known (a stop string may begin up to its length before that)."""
    start = max(0, emitted - max(len(s) for s in stops))
    hits = [i for s in stops if (i := text.find(s, start)) >= 0]
    return min(hits) if hits else None


__all__ = ["ALTERNATIVES", "WINDOW_KEEP", "PromptInfo", "TokenInfo", "apply_repetition_penalty", "choose_token",
           "filter_logits", "find_stop", "token_distribution", "unknown_bias"]
