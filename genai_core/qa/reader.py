"""The QA model: the GPT of `genai_core.model` with the heads a reader adds, and the loss it is fine-tuned on.

- The **answer-only loss**: a QA example is a prompt (context and question, given) followed by its answer and
  the end marker; only those are predicted. The output head runs at those positions alone, a tenth of the
  tokens, which is most of a fine-tuning step's saving over the dense `GPT.forward`.
- The **span head** (`ModelConfig.span_head`): from the answer position (the prompt's last token, which has
  read the question and the whole context) a start and an end pointer over the context's tokens, as SQuAD 2.0
  readers; pointing at the answer position itself means "not stated".
- The **kind head** (`ModelConfig.kind_head`): what the question asks, one of `question_kinds`, read at the
  answer position; an auxiliary loss that shapes the features the span is read from.

A subclass, so a checkpoint's names are the GPT's plus the heads' (`span_q.weight`, `kind_head.weight`, ...),
as runs saved before this module existed have them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn as nn
from torch.nn import functional as F

from genai_core.config import ModelConfig
from genai_core.model import GPT, IGNORE, init_weights

KIND_LOSS_WEIGHT = 0.5
"""Weight of the question-kind loss beside the answer's: an auxiliary objective, it should shape the features
the answer is read from, not outweigh the answer."""


class SpanTargets(NamedTuple):
    """What the span head learns from each example, each (B,) or an int for one example (`store.span_target`):
    the answer position `query` (the prompt's last token), the context's token range [lo, hi), and the
    answer's first and last token. Both are `query` when the context does not hold the answer, IGNORE when no
    whole-token span can be pointed at."""

    query: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor


@dataclass(frozen=True)
class QATargets:
    """The targets of a QA batch, what `QAGPT.forward` trains on."""

    next_ids: torch.Tensor
    """(B, T) next-token ids: the answer's tokens and the end marker; IGNORE over the prompt and the padding."""
    span: SpanTargets | None = None
    """The span head's targets (None: no span loss)."""
    kind: torch.Tensor | None = None
    """(B,) index into `question_kinds` of what each question asks, IGNORE when unknown (None: no kind loss)."""

    def answer_only(self) -> QATargets:
        """The same targets without the heads': the loss a QA run reports as its validation loss."""
        return replace(self, span=None, kind=None)


def has_reader_heads(cfg: ModelConfig) -> bool:
    """Whether a config's network has a span or kind head (so only `QAGPT` can hold its weights)."""
    return cfg.arch == "gpt" and (cfg.span_head or (cfg.kind_head and bool(cfg.question_kinds)))


class QAGPT(GPT):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        C = cfg.d_model
        if cfg.span_head:  # start and end pointers: a query from the answer position, a key per position
            self.span_q = nn.Linear(C, 2 * C, bias=False)
            self.span_k = nn.Linear(C, 2 * C, bias=False)
            if cfg.span_lookahead:
                self.span_ahead = nn.Linear(cfg.span_lookahead * C, 2 * C, bias=False)
        if cfg.kind_head and cfg.question_kinds:
            self.kind_head = nn.Linear(C, len(cfg.question_kinds))
        for name in ("span_q", "span_k", "span_ahead", "kind_head"):
            if hasattr(self, name):
                init_weights(getattr(self, name))

    def forward(self, idx: torch.Tensor,  # type: ignore[override]
                targets: QATargets | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """With `QATargets`, the logits of the answer positions (N, vocab), in row-major order, and the loss: the
        answer's mean cross-entropy, plus the span and kind heads' where their targets are given. Without targets,
        or with next-token ids (B, T), the GPT's: logits (B, T, vocab) at every position and their loss."""
        if not isinstance(targets, QATargets):
            return super().forward(idx, targets)
        h = self.hidden(idx)
        rows, cols = (targets.next_ids != IGNORE).nonzero(as_tuple=True)
        logits = self.head(h, idx, at=(rows, cols))
        loss = F.cross_entropy(logits.float(), targets.next_ids[rows, cols])
        return logits, loss + self.reader_loss(h, targets)

    def span_logits(self, h: torch.Tensor, query: torch.Tensor, lo: torch.Tensor,
                    hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end logits (B, T) of the span head: the answer position `query` (B,) scores every position
        as the answer's first and last token. Only the context [lo, hi) and `query` itself (no answer in the
        context, as SQuAD 2.0 readers point at [CLS]) are candidates; the rest is -inf. A causal model can point
        this way because the answer position comes last: it has read the question and the whole context. With
        the context first (`qa_layout`), the context's keys do not depend on the question's wording (but for the
        last few, whose lookahead reads past the context's end: with the demo's tokenizer, the format's "\\nQ:")."""
        B, T, C = h.shape
        hq = h[torch.arange(B, device=h.device), query]
        q_start, q_end = self.span_q(hq).float().chunk(2, dim=-1)
        k_start, k_end = self.span_keys(h, query).float().chunk(2, dim=-1)
        scale = 1.0 / math.sqrt(C)
        start = (k_start @ q_start[:, :, None]).squeeze(-1) * scale
        end = (k_end @ q_end[:, :, None]).squeeze(-1) * scale
        t = torch.arange(T, device=h.device)[None]
        candidate = ((t >= lo[:, None]) & (t < hi[:, None])) | (t == query[:, None])
        return start.masked_fill(~candidate, float("-inf")), end.masked_fill(~candidate, float("-inf"))

    def span_keys(self, h: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The span head's start and end keys (B, T, 2C): each position's own hidden state and, with
        `span_lookahead`, the next few positions' (zeros past the answer position `query`, where training puts
        the answer itself and inference has nothing)."""
        keys = self.span_k(h)
        n = self.config.span_lookahead
        if not n:
            return keys
        t = torch.arange(h.shape[1], device=h.device)
        ahead = [F.pad(h[:, d:], (0, 0, 0, d)) * (t + d <= query[:, None]).unsqueeze(-1).to(h.dtype)
                 for d in range(1, n + 1)]
        return keys + self.span_ahead(torch.cat(ahead, dim=-1))

    def kind_logits(self, h: torch.Tensor, query: torch.Tensor) -> torch.Tensor | None:
        """(B, kinds) logits of what each question asks, read at the answer position; None without a kind head."""
        if not hasattr(self, "kind_head"):
            return None
        return self.kind_head(h[torch.arange(h.shape[0], device=h.device), query]).float()

    def reader_loss(self, h: torch.Tensor, targets: QATargets) -> torch.Tensor:
        """Mean start and end cross-entropy of the span head, plus the kind head's (where each has targets)."""
        def mean_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            # Summed over the rows that have a target, divided by their count (at least 1): no NaN for a batch
            # without any, and no data-dependent branch (a device sync, a graph break under torch.compile).
            total = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="sum")
            return total / (target != IGNORE).sum().clamp_min(1)

        loss = h.new_zeros((), dtype=torch.float32)
        span = targets.span
        if span is None:
            return loss
        logits = self.kind_logits(h, span.query)
        if logits is not None and targets.kind is not None:
            loss = loss + KIND_LOSS_WEIGHT * mean_ce(logits, targets.kind)
        if self.config.span_head:
            start, end = self.span_logits(h, span.query, span.lo, span.hi)
            loss = loss + 0.5 * (mean_ce(start, span.first) + mean_ce(end, span.last))
        return loss
