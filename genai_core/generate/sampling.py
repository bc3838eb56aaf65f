"""Text generation: temperature / top-k / top-p / repetition penalty, stop strings, streaming.

`Sampler.stream(prompt, cfg)` returns a `Generation`: iterate it to receive text pieces as they are
produced (it plugs straight into `st.write_stream`); its `info` says up front how the prompt was
encoded (cropped tokens, characters the tokenizer did not know) and `finish_reason` says why it
stopped. Generation runs through the model's cache, so each new token costs one position: for a
GPT that is `GPTDecoder` (a fused, allocation-free decode step on the raw weights), for a copy-head
GPT the `KVCache` of `GPT.forward`, for the LSTM and GRU their recurrent state. When the window fills,
the last `Generation.WINDOW_KEEP` (3/4) of it is re-prefilled.
Sampling draws from the top-k / top-p candidates only (`token_distribution`), on the logits' device.

`Sampler.stream(prompt, cfg, with_probs=True)` also records, for each generated token, the probability
it had and the five most likely tokens of the distribution it was drawn from (`Generation.tokens`).

`Sampler.beam_search(prompt, cfg)` keeps `cfg.num_beams` hypotheses instead of one (see `beam_search`):
all of them advance together as one batch through the same cache, reordered after every step, and the
`cfg.num_return` best come back ranked by a GNMT length-penalised score (`length_penalty`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch.nn import functional as F

from genai_core.config import SampleConfig
from genai_core.data.tokenization import StreamDecoder, Tokenizer
from genai_core.devices import resolve_device
from genai_core.errors import GenAIError
from genai_core.model import GPT, GPTDecoder, KVCache, LanguageModel, RecurrentState, build_model, load_state
from genai_core.runs.folder import Run


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


def _token_info(token: int, piece: str, probs: torch.Tensor, order: torch.Tensor | None, chosen: int,
                tokenizer: Tokenizer) -> TokenInfo:
    """A `TokenInfo` from unnormalised weights `probs` over `order` (None: the whole vocabulary), the
    chosen token being at position `chosen` of `probs`. One copy to the host."""
    n = min(ALTERNATIVES, probs.numel())
    top_w, top_i = torch.topk(probs, n)  # sorted, highest first
    top_ids = top_i if order is None else order[top_i]
    packed = torch.cat([(probs[chosen] / probs.sum()).reshape(1).float(), (top_w / probs.sum()).float()])
    values = packed.tolist()
    ids = top_ids.tolist()
    alts = [(i, tokenizer.decode([i]), p) for i, p in zip(ids, values[1:], strict=True) if p > 0]
    return TokenInfo(token, piece, values[0], alts)


def _choose_with_probs(logits: torch.Tensor, cfg: SampleConfig,
                       generator: torch.Generator | None) -> tuple[int, torch.Tensor, torch.Tensor | None, int]:
    """`choose_token` (same token for the same generator state), also returning the distribution it used:
    (token, weights, ids of the weights or None for the whole vocabulary, position of the token in them)."""
    if cfg.temperature == 0:
        token = int(torch.argmax(logits))
        return token, torch.softmax(logits.float(), dim=-1), None, token
    probs, order = token_distribution(logits, cfg)
    choice = int(torch.multinomial(probs, 1, generator=generator))
    return (choice if order is None else int(order[choice])), probs, order, choice


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


class TokenConstraint(Protocol):
    """Limits which tokens generation may choose next (e.g. `qa.SpanConstraint`: only spans of a context)."""

    def allowed(self) -> torch.Tensor:
        """(vocab,) bool mask of the tokens that may come next."""
        ...

    def update(self, token: int) -> None:
        """Record the token that was chosen."""
        ...


class Generation:
    """An iterator of generated text pieces; also keeps the full text, ids and why it stopped.

    With `with_probs`, `tokens` gets one `TokenInfo` per id as each is produced (before its text piece is
    yielded). It is opt-in: it costs a top-k, a copy to the host and a few decodes per token (8-19% more time
    per token for the 4x4x128 GPT on 2 shared CPU cores, measured; `bench_generation` measures it).
    """

    def __init__(self, sampler: Sampler, prompt_ids: list[int], info: PromptInfo, cfg: SampleConfig,
                 with_probs: bool = False, constraint: TokenConstraint | None = None) -> None:
        self.sampler = sampler
        self.constraint = constraint
        self.prompt_ids = prompt_ids
        self.info = info
        self.cfg = cfg
        self.with_probs = with_probs
        self.ids: list[int] = []
        self.tokens: list[TokenInfo] = []
        self.text = ""
        self.finish_reason: str | None = None
        self._iter = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._iter

    def __next__(self) -> str:
        return next(self._iter)

    #: Share of the window kept as context when the window is full (see `_run`).
    WINDOW_KEEP = 0.75

    def _run(self) -> Iterator[str]:
        s, cfg = self.sampler, self.cfg
        model, tok, device = s.model, s.tokenizer, s.device
        T = model.config.seq_len
        decoder = StreamDecoder(tok)
        stops = cfg.stop
        hold = max((len(x) for x in stops), default=1) - 1
        emitted = 0  # characters of self.text already yielded
        context = list(self.prompt_ids)
        penalty = cfg.repetition_penalty
        unk = getattr(tok, "unk_id", None)
        keep = max(1, int(T * self.WINDOW_KEEP))
        # Inference mode is entered per token and never held across a `yield`: it is thread-local state,
        # and the consumer of this iterator (a UI, a training loop) must not run inside it.
        with torch.inference_mode():
            gen = _generator(cfg, device) if cfg.temperature > 0 else None
            bias = None
            if unk is not None:  # the unknown token stands for "a character we never saw": never emit it
                bias = torch.zeros(model.config.vocab_size, device=device)
                bias[unk] = float("-inf")
            state = s.new_state(logit_bias=bias)
            mask_unk = unk is not None and not isinstance(state, GPTDecoder)  # the fast path adds the bias itself
            seen = None
            if penalty != 1.0:
                seen = torch.zeros(model.config.vocab_size, dtype=torch.bool, device=device)
                if context:
                    seen[torch.tensor(context, device=device)] = True
            logits = s.prefill(state, context)
        n = cfg.max_new_tokens
        for i in range(n):
            piece = ""
            with torch.inference_mode():
                row = logits if seen is None else apply_repetition_penalty(logits, seen, penalty)
                if mask_unk:
                    row = row.clone()
                    row[unk] = float("-inf")
                if self.constraint is not None:
                    row = row.masked_fill(~self.constraint.allowed().to(row.device), float("-inf"))
                if gen is not None and gen.device != row.device:
                    row = row.cpu()  # devices without their own generator (rare) sample on the CPU
                if self.with_probs:
                    nxt, weights, order, chosen = _choose_with_probs(row, cfg, gen)
                else:
                    nxt = choose_token(row, cfg, gen)
                if cfg.stop_at_end and nxt == tok.eot_id:
                    self.finish_reason = "end"
                    break
                self.ids.append(nxt)
                context.append(nxt)
                if seen is not None:
                    seen[nxt] = True
                if self.constraint is not None:
                    self.constraint.update(nxt)
                added = decoder.push(nxt)
                self.text += added
                if self.with_probs:
                    self.tokens.append(_token_info(nxt, added, weights, order, chosen, tok))
                if stops:
                    cut = _find_stop(self.text, stops, emitted)
                    if cut is not None:
                        self.text = self.text[:cut]
                        self.finish_reason = "stop"
                        break
                if i + 1 < n:  # compute the next logits before yielding: one inference-mode entry per token
                    if state.pos >= T:
                        # Window full. Positions are absolute (learned or sinusoidal, added at the input),
                        # so cached keys/values cannot be shifted: keep the most recent WINDOW_KEEP of the
                        # window and recompute them in one prefill. The model then always sees at least
                        # 3/4 of a window of context, and a prefill (about one uncached forward) is paid
                        # once every T/4 tokens instead of once per token.
                        if isinstance(state, GPTDecoder):
                            state.reset()
                        else:
                            state = s.new_state()
                        logits = s.prefill(state, context[-keep:])
                    else:
                        logits = s.step(state, nxt)
                safe = len(self.text) - hold if stops else len(self.text)
                if safe > emitted:
                    piece = self.text[emitted:safe]
                    emitted = safe
            if piece:
                yield piece
        else:
            self.finish_reason = "length"
        if self.finish_reason != "stop":
            self.text += decoder.flush()
        if len(self.text) > emitted:
            yield self.text[emitted:]


def _generator(cfg: SampleConfig, device: torch.device) -> torch.Generator:
    """Sampling randomness on the logits' device (no copy to the CPU per token), seeded from `cfg`."""
    try:
        gen = torch.Generator(device=device)
    except RuntimeError:  # a backend without device generators
        gen = torch.Generator(device="cpu")
    if cfg.seed is None:
        gen.seed()
    else:
        gen.manual_seed(cfg.seed)
    return gen


def _find_stop(text: str, stops: list[str], emitted: int) -> int | None:
    start = max(0, emitted - max(len(s) for s in stops))
    hits = [i for s in stops if (i := text.find(s, start)) >= 0]
    return min(hits) if hits else None


class Sampler:
    """Generates text from a model and its tokenizer."""

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, device: torch.device | str = "cpu") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)

    @classmethod
    def from_run(cls, run: Run | Path | str, device: str = "auto") -> Sampler:
        run = run if isinstance(run, Run) else Run(run)
        cfg = run.config()
        tok = run.tokenizer()
        if tok.vocab_size != cfg.model.vocab_size:
            raise GenAIError(f"run {run.name}: tokenizer has {tok.vocab_size} tokens, "
                             f"model expects {cfg.model.vocab_size}")
        dev = resolve_device(device)
        model = build_model(cfg.model)
        load_state(model, run.load_weights())
        return cls(model.to(dev), tok, dev)

    def encode_prompt(self, prompt: str) -> tuple[list[int], PromptInfo]:
        """Ids the model will see for `prompt`, cropped from the left to leave room to generate."""
        enc = self.tokenizer.encode(prompt)
        ids = enc.ids
        limit = self.model.config.seq_len - 1  # at least one position for the first new token
        cropped = max(0, len(ids) - limit)
        ids = ids[cropped:]
        if not ids:
            ids = [self.tokenizer.eot_id]  # an empty prompt starts a new record
        text = self.tokenizer.decode(ids) if cropped else prompt
        return ids, PromptInfo(tokens=len(ids), cropped_tokens=cropped, unknown_chars=enc.unknown, text=text)

    def stream(self, prompt: str, cfg: SampleConfig | None = None, *, with_probs: bool = False) -> Generation:
        """Sample (or decode greedily at temperature 0) a continuation of `prompt`, piece by piece.

        `with_probs` fills `Generation.tokens` (see `TokenInfo`). Beam search does not stream (its best
        hypothesis is known only at the end): a `cfg.num_beams` above 1 is refused; use `beam_search`.
        """
        cfg = cfg or SampleConfig()
        if cfg.num_beams > 1:
            raise GenAIError(f"num_beams is {cfg.num_beams}: beam search does not stream, call beam_search "
                             "(or set num_beams to 1 to sample)")
        ids, info = self.encode_prompt(prompt)
        return Generation(self, ids, info, cfg, with_probs=with_probs)

    def beam_search(self, prompt: str, cfg: SampleConfig | None = None, *, with_probs: bool = False) -> BeamResult:
        """The `cfg.num_return` best continuations of `prompt` found by a beam of `cfg.num_beams` (see
        `beam_search`); the prompt is encoded as for `stream`."""
        ids, info = self.encode_prompt(prompt)
        return beam_search(self, ids, cfg or SampleConfig(), info=info, with_probs=with_probs)

    def generate(self, prompt: str, cfg: SampleConfig | None = None) -> str:
        g = self.stream(prompt, cfg)
        for _ in g:
            pass
        return g.text

    # -- the model calls of generation
    def new_state(self, logit_bias: torch.Tensor | None = None,
                  batch_size: int = 1) -> GPTDecoder | KVCache | RecurrentState:
        """An empty generation state for `batch_size` sequences: the fast `GPTDecoder` for a GPT, the
        model's own cache otherwise (a copy-head GPT, whose head the decoder does not have; an RNN).

        `logit_bias` (vocab,) is added to every row of logits the GPT decoder returns (other models
        ignore it; `Generation` masks their rows itself).
        """
        if isinstance(self.model, GPT) and not self.model.config.copy_head:
            return self.model.decoder(batch_size, logit_bias)
        return self.model.new_cache(batch_size, self.device)

    def prefill(self, cache: GPTDecoder | KVCache | RecurrentState, ids: list[int]) -> torch.Tensor:
        """Feed `ids` after what `cache` holds; the (vocab,) logits of the next token."""
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        if isinstance(cache, GPTDecoder):
            return cache.prefill(x)[0]
        logits, _ = self.model(x, cache=cache, last_only=True)
        return logits[0, -1]

    def step(self, cache: GPTDecoder | KVCache | RecurrentState, token: int) -> torch.Tensor:
        """Feed one token; the (vocab,) logits of the next one."""
        if isinstance(cache, GPTDecoder):
            return cache.step(token)[0]
        x = torch.tensor([[token]], dtype=torch.long, device=self.device)
        logits, _ = self.model(x, cache=cache, last_only=True)
        return logits[0, -1]


    def prefill_rows(self, cache: GPTDecoder | KVCache | RecurrentState, rows: torch.Tensor) -> torch.Tensor:
        """Feed (B, T) ids, one row per sequence of the batch; the (B, vocab) logits of each next token."""
        if isinstance(cache, GPTDecoder):
            return cache.prefill(rows)
        logits, _ = self.model(rows, cache=cache, last_only=True)
        return logits[:, -1]

    def step_rows(self, cache: GPTDecoder | KVCache | RecurrentState, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence ((B,) ids); the (B, vocab) logits of each next token."""
        if isinstance(cache, GPTDecoder):
            return cache.step(tokens)
        logits, _ = self.model(tokens.view(-1, 1), cache=cache, last_only=True)
        return logits[:, -1]


# --------------------------------------------------------------------------- beam search
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


def beam_search(sampler: Sampler, prompt_ids: Sequence[int], cfg: SampleConfig, *, info: PromptInfo | None = None,
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
    every hypothesis is re-prefilled from its last `Generation.WINDOW_KEEP` of a window, as in `Generation`.

    Finished hypotheses are ranked by score = log-probability / `length_penalty(length, cfg.length_penalty)`;
    the `cfg.num_return` best are returned, best first. Temperature, top-k, top-p and the seed do not apply.
    """
    model, tok, device = sampler.model, sampler.tokenizer, sampler.device
    K, V, T = cfg.num_beams, model.config.vocab_size, model.config.seq_len
    prompt = list(prompt_ids) or [tok.eot_id]
    if info is None:
        info = PromptInfo(tokens=len(prompt), text=tok.decode(prompt))
    keep = max(1, int(T * Generation.WINDOW_KEEP))
    stops, penalty = cfg.stop, cfg.repetition_penalty
    unk = getattr(tok, "unk_id", None)
    finished: list[Hypothesis] = []

    def finish(beam: _Beam, reason: str, text: str | None = None) -> None:
        if text is None:
            text = beam.decoder.text + beam.decoder.flush()
        finished.append(Hypothesis(beam.ids, text, beam.logprob, beam.logprob / length_penalty(
            len(beam.token_logprobs), cfg.length_penalty), reason, beam.token_logprobs, beam.tokens))

    steps = 0
    with torch.inference_mode():
        bias = None
        if unk is not None:  # never produce the unknown token (see Generation)
            bias = torch.zeros(V, device=device)
            bias[unk] = float("-inf")
        state = sampler.new_state(logit_bias=bias, batch_size=K)
        mask_unk = unk is not None and not isinstance(state, GPTDecoder)
        seen = None
        if penalty != 1.0:
            seen = torch.zeros(K, V, dtype=torch.bool, device=device)
            seen[:, torch.tensor(prompt, device=device)] = True
        # Every row starts from the same prompt (rows of a batch cannot be filled from one row's prefill
        # in the GPT decoder); only row 0 is read until the first step makes the beams differ.
        logits = sampler.prefill_rows(state, torch.tensor([prompt], device=device).expand(K, -1))
        alive = [_Beam(0, [], StreamDecoder(tok))]
        for step in range(cfg.max_new_tokens):
            steps = step + 1
            rows = logits[: len(alive)].float()
            if seen is not None:
                rows = apply_repetition_penalty(rows, seen[: len(alive)], penalty)
            if mask_unk:
                rows = rows.clone()
                rows[:, unk] = float("-inf")
            logp = F.log_softmax(rows, dim=-1)
            prior = torch.tensor([b.logprob for b in alive], dtype=torch.float64, device=device)
            total = (logp.double() + prior[:, None]).view(-1)
            take = min(K - len(finished), total.numel())
            values, flat = torch.topk(total, take)  # sorted, best first
            if with_probs:
                alt_lp, alt_ids = torch.topk(logp, min(ALTERNATIVES, V), dim=-1)
                alt_p, alt_ids = alt_lp.exp().tolist(), alt_ids.tolist()
            nxt: list[_Beam] = []
            parents: list[int] = []  # the cache row each of nxt continues from
            for value, index in zip(values.tolist(), flat.tolist(), strict=True):
                if value == float("-inf"):
                    break  # fewer possible continuations than beams (a tiny vocabulary)
                parent, token = alive[index // V], index % V
                beam = parent.child(value, tok)
                if cfg.stop_at_end and token == tok.eot_id:
                    finish(beam, "end")
                    continue
                before = len(beam.decoder.text)  # a stop string may start up to its length before this
                piece = beam.decoder.push(token)
                beam.ids.append(token)
                if with_probs:
                    alts = [(i, tok.decode([i]), p) for i, p in zip(alt_ids[parent.row], alt_p[parent.row],
                                                                   strict=True) if p > 0]
                    beam.tokens.append(TokenInfo(token, piece, math.exp(value - parent.logprob), alts))
                if stops:
                    cut = _find_stop(beam.decoder.text, stops, before)
                    if cut is not None:
                        finish(beam, "stop", beam.decoder.text[:cut])
                        continue
                parents.append(parent.row)
                beam.row = len(nxt)
                nxt.append(beam)
            if not nxt or step + 1 == cfg.max_new_tokens:
                for beam in nxt:
                    finish(beam, "length")
                break
            # Row b of the batch continues from its parent's row; spare rows repeat row 0 (their logits are ignored).
            index = torch.tensor(parents + [parents[0]] * (K - len(nxt)), device=device)
            tokens = torch.tensor([b.ids[-1] for b in nxt] + [nxt[0].ids[-1]] * (K - len(nxt)), device=device)
            if seen is not None:
                seen = seen.index_select(0, index)
                seen[torch.arange(K, device=device), tokens] = True
            if state.pos >= T:
                # Window full: as in Generation, keep the last WINDOW_KEEP of each hypothesis's context.
                if isinstance(state, GPTDecoder):
                    state.reset()
                else:
                    state = sampler.new_state(batch_size=K)
                contexts = [(prompt + b.ids)[-keep:] for b in nxt]
                contexts += [contexts[0]] * (K - len(nxt))
                logits = sampler.prefill_rows(state, torch.tensor(contexts, device=device))
            else:
                if parents != list(range(K)):  # often every hypothesis just extends itself: nothing moves
                    state.reorder(index)
                logits = sampler.step_rows(state, tokens)
            alive = nxt
    finished.sort(key=lambda h: h.score, reverse=True)
    return BeamResult(finished[: cfg.num_return], prompt, info, steps)


def generate_uncached(model: LanguageModel, ids: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding that recomputes the whole (cropped) window for every token: the reference the
    cached path is checked and benchmarked against."""
    model.eval()
    T = model.config.seq_len
    out = list(ids)
    dev = next(model.parameters()).device
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            x = torch.tensor([out[-T:]], dtype=torch.long, device=dev)
            logits, _ = model(x)
            out.append(int(torch.argmax(logits[0, -1])))
    return out[len(ids):]


__all__ = ["GPT", "BeamResult", "Generation", "Hypothesis", "PromptInfo", "Sampler", "TokenInfo", "beam_search",
           "choose_token", "filter_logits", "generate_uncached", "length_penalty", "token_distribution"]
