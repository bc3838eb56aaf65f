"""Beam search: the `cfg.num_beams` most likely continuations instead of one sampled continuation.

All hypotheses advance together as the rows of one batch through the model's cache (`GPTDecoder`, `KVCache`
or `RecurrentState`), reordered after every step; the `cfg.num_return` best come back ranked by a GNMT
length-penalised score (`length_penalty`). `Sampler.beam_search(prompt, cfg)` encodes a prompt and calls
`beam_search`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.nn import functional as F

from genai_core.config import SampleConfig
from genai_core.data.tokenization import StreamDecoder, Tokenizer
from genai_core.generate.decoding import (
    ALTERNATIVES,
    WINDOW_KEEP,
    PromptInfo,
    TokenInfo,
    apply_repetition_penalty,
    find_stop,
    unknown_bias,
)
from genai_core.generate.gpt_decoder import GPTDecoder
from genai_core.model import LanguageModel


class RowSampler(Protocol):
    """What beam search needs of a `sampling.Sampler`: a Protocol, as sampling imports this module for
    `Sampler.beam_search`. `state` is whatever `new_state` returns (a `GPTDecoder` or a model's cache)."""

    tokenizer: Tokenizer
    device: torch.device
    model: LanguageModel

    def new_state(self, logit_bias: torch.Tensor | None = None, batch_size: int = 1) -> Any: ...

    def prefill_rows(self, state: Any, rows: torch.Tensor) -> torch.Tensor: ...

    def step_rows(self, state: Any, tokens: torch.Tensor) -> torch.Tensor: ...


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty (Wu et al. 2016): ((5 + length) / 6) ** alpha; 1 for alpha = 0.

    A hypothesis's score is its log-probability divided by this: log-probabilities only fall as a
    sequence grows, so without it (alpha = 0) the shortest hypotheses win.
    """
    return ((5 + length) / 6) ** alpha


@dataclass
class Hypothesis:
    """One finished beam: a continuation, its log-probability and its length-penalised score."""

    ids: list[int]
    """Generated ids (the end-of-text token that ended it is not included, as in `Generation.ids`)."""
    text: str
    """Their text, cut before the stop string when one ended it."""
    logprob: float
    """Sum of the log-probabilities of its tokens (the end-of-text token that ended it included), under the
    distribution beam search scores with: the model's, after the repetition penalty and the unknown-token
    ban (temperature, top-k and top-p do not apply)."""
    score: float
    """logprob / length_penalty(length, alpha): what hypotheses are ranked by."""
    finish_reason: str
    """`end` (end-of-text token), `stop` (a stop string) or `length` (max_new_tokens reached)."""
    token_logprobs: list[float] = field(default_factory=list)
    """Log-probability of each scored token: one per id, plus the end-of-text token when it ended it."""
    tokens: list[TokenInfo] = field(default_factory=list)
    """Per generated token, when asked for (`with_probs`): its probability and the top alternatives."""

    @property
    def length(self) -> int:
        """Tokens scored: the length the penalty uses."""
        return len(self.token_logprobs)


@dataclass
class BeamResult:
    """What `beam_search` returns: the best hypotheses, best first, and how the prompt was encoded."""

    hypotheses: list[Hypothesis]
    prompt_ids: list[int]
    info: PromptInfo
    steps: int = 0
    """Decoding steps run (each advances every live beam by one token)."""

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]


@dataclass
class _Beam:
    """A live hypothesis: its ids and text so far, and the batch row of the cache holding its state
    (for a new child: its parent's row, until the cache is reordered)."""

    row: int
    ids: list[int]
    decoder: StreamDecoder
    logprob: float = 0.0
    token_logprobs: list[float] = field(default_factory=list)
    tokens: list[TokenInfo] = field(default_factory=list)

    def child(self, logprob: float, tok: Tokenizer) -> _Beam:
        """A copy to extend by one token whose total log-probability is `logprob`."""
        decoder = StreamDecoder(tok)
        decoder.ids, decoder.text = list(self.decoder.ids), self.decoder.text
        return _Beam(self.row, list(self.ids), decoder, logprob, [*self.token_logprobs, logprob - self.logprob],
                     list(self.tokens))


def beam_search(sampler: RowSampler, prompt_ids: Sequence[int], cfg: SampleConfig, *, info: PromptInfo | None = None,
                with_probs: bool = False) -> BeamResult:
    """Beam search over the model's log-probabilities, through its cache, for every architecture.

    The search keeps `cfg.num_beams` hypotheses as rows of one batch. Each step scores every
    continuation of every live hypothesis (log-softmax of the logits after the repetition penalty, per
    hypothesis over its own tokens, and the unknown-token ban) and keeps the most likely ones by total
    log-probability. The cache is then reordered (`reorder(index)` on `GPTDecoder`, `KVCache` or
    `RecurrentState`: row b continues from the row of its parent), and only the new tokens are fed;
    the prompt is never recomputed. A hypothesis that produces the end-of-text token (with
    `cfg.stop_at_end`) or a stop string leaves the beam finished, and the beam narrows by one (Wu et al.
    2016), so width 1 is exactly greedy decoding; the search ends when no hypothesis is live or after
    `cfg.max_new_tokens` steps (the live ones then finish with reason `length`). When the window fills,
    every hypothesis is re-prefilled from its last `WINDOW_KEEP` of a window, as in `Generation`.

    Finished hypotheses are ranked by score = log-probability / `length_penalty(length, cfg.length_penalty)`;
    the `cfg.num_return` best are returned, best first. Temperature, top-k, top-p and the seed do not apply.
    """
    tok = sampler.tokenizer
    prompt = list(prompt_ids) or [tok.eot_id]
    if info is None:
        info = PromptInfo(tokens=len(prompt), text=tok.decode(prompt))
    with torch.inference_mode():
        search = _Search(sampler, prompt, cfg, with_probs)
        steps = search.run()
    finished = sorted(search.finished, key=lambda h: h.score, reverse=True)
    return BeamResult(finished[: cfg.num_return], prompt, info, steps)


class _Search:
    """One beam search in progress: the batch cache of K rows, the tokens each row has seen (for the
    repetition penalty) and the hypotheses finished so far. Runs in inference mode (`beam_search`)."""

    def __init__(self, sampler: RowSampler, prompt: list[int], cfg: SampleConfig, with_probs: bool) -> None:
        self.sampler, self.prompt, self.cfg, self.with_probs = sampler, prompt, cfg, with_probs
        self.tok, self.device = sampler.tokenizer, sampler.device
        self.K, self.V, self.T = cfg.num_beams, sampler.model.config.vocab_size, sampler.model.config.seq_len
        self.unk = getattr(self.tok, "unk_id", None)
        self.finished: list[Hypothesis] = []
        self.state = sampler.new_state(logit_bias=unknown_bias(self.unk, self.V, self.device), batch_size=self.K)
        self.mask_unk = self.unk is not None and not isinstance(self.state, GPTDecoder)  # see Generation._start
        self.seen: torch.Tensor | None = None
        if cfg.repetition_penalty != 1.0:
            self.seen = torch.zeros(self.K, self.V, dtype=torch.bool, device=self.device)
            self.seen[:, torch.tensor(prompt, device=self.device)] = True

    def run(self) -> int:
        """Search until no hypothesis is live or `max_new_tokens` steps; the number of steps run."""
        # Every row starts from the same prompt (rows of a batch cannot be filled from one row's prefill
        # in the GPT decoder); only row 0 is read until the first step makes the beams differ.
        logits = self.sampler.prefill_rows(self.state,
                                           torch.tensor([self.prompt], device=self.device).expand(self.K, -1))
        alive = [_Beam(0, [], StreamDecoder(self.tok))]
        for step in range(self.cfg.max_new_tokens):
            nxt, parents = self.extend(alive, self.log_probs(logits[: len(alive)]))
            if not nxt or step + 1 == self.cfg.max_new_tokens:
                for beam in nxt:
                    self.finish(beam, "length")
                return step + 1
            logits = self.advance(nxt, parents)
            alive = nxt
        return 0

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(live, vocab) log-probabilities the hypotheses are scored with: after the repetition penalty and
        the unknown-token ban (no temperature, top-k or top-p)."""
        rows = logits.float()
        if self.seen is not None:
            rows = apply_repetition_penalty(rows, self.seen[: rows.size(0)], self.cfg.repetition_penalty)
        if self.mask_unk:
            rows = rows.clone()
            rows[:, self.unk] = float("-inf")
        return F.log_softmax(rows, dim=-1)

    def extend(self, alive: list[_Beam], logp: torch.Tensor) -> tuple[list[_Beam], list[int]]:
        """The most likely continuations of the live hypotheses, one slot per beam not yet finished: the
        ones still live, and the cache row each continues from (finished ones go to `self.finished`)."""
        prior = torch.tensor([b.logprob for b in alive], dtype=torch.float64, device=self.device)
        total = (logp.double() + prior[:, None]).view(-1)
        take = min(self.K - len(self.finished), total.numel())
        values, flat = torch.topk(total, take)  # sorted, best first
        alternatives = None
        if self.with_probs:
            alt_lp, alt_ids = torch.topk(logp, min(ALTERNATIVES, self.V), dim=-1)
            alternatives = (alt_ids.tolist(), alt_lp.exp().tolist())
        nxt: list[_Beam] = []
        parents: list[int] = []  # the cache row each of nxt continues from
        for value, index in zip(values.tolist(), flat.tolist(), strict=True):
            if value == float("-inf"):
                break  # fewer possible continuations than beams (a tiny vocabulary)
            parent = alive[index // self.V]
            beam = self.child(parent, index % self.V, value, alternatives)
            if beam is not None:
                parents.append(parent.row)
                beam.row = len(nxt)
                nxt.append(beam)
        return nxt, parents

    def child(self, parent: _Beam, token: int, logprob: float,
              alternatives: tuple[list[list[int]], list[list[float]]] | None) -> _Beam | None:
        """`parent` extended by `token` (total log-probability `logprob`), or None when that finished it.

        `alternatives` are the (ids, probabilities) of the most likely tokens of every live row, with_probs only.
        """
        beam = parent.child(logprob, self.tok)
        if self.cfg.stop_at_end and token == self.tok.eot_id:
            self.finish(beam, "end")
            return None
        before = len(beam.decoder.text)  # a stop string may start up to its length before this
        piece = beam.decoder.push(token)
        beam.ids.append(token)
        if alternatives is not None:
            ids, probs = alternatives[0][parent.row], alternatives[1][parent.row]
            alts = [(i, self.tok.decode([i]), p) for i, p in zip(ids, probs, strict=True) if p > 0]
            beam.tokens.append(TokenInfo(token, piece, math.exp(logprob - parent.logprob), alts))
        if self.cfg.stop:
            cut = find_stop(beam.decoder.text, self.cfg.stop, before)
            if cut is not None:
                self.finish(beam, "stop", beam.decoder.text[:cut])
                return None
        return beam

    def advance(self, nxt: list[_Beam], parents: list[int]) -> torch.Tensor:
        """Move each row of the cache to its parent's state and feed the new tokens; the next (K, vocab) logits."""
        K, pad = self.K, self.K - len(nxt)
        # Row b of the batch continues from its parent's row; spare rows repeat row 0 (their logits are ignored).
        index = torch.tensor(parents + [parents[0]] * pad, device=self.device)
        tokens = torch.tensor([b.ids[-1] for b in nxt] + [nxt[0].ids[-1]] * pad, device=self.device)
        if self.seen is not None:
            self.seen = self.seen.index_select(0, index)
            self.seen[torch.arange(K, device=self.device), tokens] = True
        if self.state.pos >= self.T:
            # Window full: as in Generation, keep the last WINDOW_KEEP of each hypothesis's context.
            if isinstance(self.state, GPTDecoder):
                self.state.reset()
            else:
                self.state = self.sampler.new_state(batch_size=K)
            keep = max(1, int(self.T * WINDOW_KEEP))
            contexts = [(self.prompt + b.ids)[-keep:] for b in nxt]
            contexts += [contexts[0]] * pad
            return self.sampler.prefill_rows(self.state, torch.tensor(contexts, device=self.device))
        if parents != list(range(K)):  # often every hypothesis just extends itself: nothing moves
            self.state.reorder(index)
        return self.sampler.step_rows(self.state, tokens)

    def finish(self, beam: _Beam, reason: str, text: str | None = None) -> None:
        """Move a hypothesis to the finished ones, with its score."""
        if text is None:
            text = beam.decoder.text + beam.decoder.flush()
        score = beam.logprob / length_penalty(len(beam.token_logprobs), self.cfg.length_penalty)
        self.finished.append(Hypothesis(beam.ids, text, beam.logprob, score, reason, beam.token_logprobs,
                                        beam.tokens))


__all__ = ["BeamResult", "Hypothesis", "beam_search", "length_penalty"]
