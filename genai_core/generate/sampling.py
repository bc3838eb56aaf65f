"""Text generation: temperature / top-k / top-p / repetition penalty, stop strings, streaming.

`Sampler.stream(prompt, cfg)` returns a `Generation`: iterate it to receive text pieces as they are
produced (it plugs straight into `st.write_stream`); its `info` says up front how the prompt was
encoded (cropped tokens, characters the tokenizer did not know) and `finish_reason` says why it
stopped. Generation runs through the model's cache, so each new token costs one position: for a
GPT that is `GPTDecoder` (a fused, allocation-free decode step on the raw weights), for a copy-head
GPT the `KVCache` of `GPT.next_logits`, for the LSTM and GRU their recurrent state. When the window fills,
the last `WINDOW_KEEP` (3/4) of it is re-prefilled.
Sampling draws from the top-k / top-p candidates only (`decoding.token_distribution`), on the logits' device.

`Sampler.stream(prompt, cfg, with_probs=True)` also records, for each generated token, the probability
it had and the five most likely tokens of the distribution it was drawn from (`Generation.tokens`).

`Sampler.beam_search(prompt, cfg)` keeps `cfg.num_beams` hypotheses instead of one (see `beam.beam_search`):
all of them advance together as one batch through the same cache, reordered after every step, and the
`cfg.num_return` best come back ranked by a GNMT length-penalised score (`beam.length_penalty`).
The pieces both decoders share (the knobs on a row of logits, `TokenInfo`, `PromptInfo`, stop strings) are
in `decoding`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch

from genai_core.config import SampleConfig
from genai_core.data.tokenization import StreamDecoder, Tokenizer
from genai_core.devices import resolve_device
from genai_core.errors import GenAIError
from genai_core.generate.beam import BeamResult, beam_search
from genai_core.generate.decoding import (
    ALTERNATIVES,
    WINDOW_KEEP,
    PromptInfo,
    TokenInfo,
    apply_repetition_penalty,
    choose_token,
    find_stop,
    token_distribution,
    unknown_bias,
)
from genai_core.generate.gpt_decoder import GPTDecoder
from genai_core.model import GPT, KVCache, LanguageModel, RecurrentState, load_state
from genai_core.models import build_model
from genai_core.runs.folder import Run


def _token_info(token: int, piece: str, probs: torch.Tensor, order: torch.Tensor | None, chosen: int,
                tokenizer: Tokenizer, logits: torch.Tensor) -> TokenInfo:
    """A `TokenInfo` from unnormalised weights `probs` over `order` (None: the whole vocabulary), the
    chosen token being at position `chosen` of `probs`, and the row of `logits` they came from (for the model's
    own probability). One copy to the host."""
    n = min(ALTERNATIVES, probs.numel())
    top_w, top_i = torch.topk(probs, n)  # sorted, highest first
    top_ids = top_i if order is None else order[top_i]
    model_p = torch.softmax(logits.float(), dim=-1)[token].reshape(1)
    packed = torch.cat([(probs[chosen] / probs.sum()).reshape(1).float(), model_p, (top_w / probs.sum()).float()])
    values = packed.tolist()
    ids = top_ids.tolist()
    alts = [(i, tokenizer.decode([i]), p) for i, p in zip(ids, values[2:], strict=True) if p > 0]
    return TokenInfo(token, piece, values[0], alts, model_prob=values[1])


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

    #: Share of the window kept as context when the window is full (see `decoding.WINDOW_KEEP`).
    WINDOW_KEEP = WINDOW_KEEP

    def _run(self) -> Iterator[str]:
        """The generation loop: choose a token, record it, compute the next logits, yield what text is final.

        Up to the longest stop string's length minus one characters are held back until no stop string can
        start in them.
        """
        cfg, tok = self.cfg, self.sampler.tokenizer
        decoder = StreamDecoder(tok)
        hold = max((len(x) for x in cfg.stop), default=1) - 1
        emitted = 0  # characters of self.text already yielded
        context = list(self.prompt_ids)
        # Inference mode is entered per token and never held across a `yield`: it is thread-local state,
        # and the consumer of this iterator (a UI, a training loop) must not run inside it.
        with torch.inference_mode():
            gen = _generator(cfg, self.sampler.device) if cfg.temperature > 0 else None
            state, mask_unk, seen = self._start(context)
            logits = self.sampler.prefill(state, context)
        n = cfg.max_new_tokens
        for i in range(n):
            piece = ""
            with torch.inference_mode():
                row = self._final_logits(logits, seen, mask_unk, gen)
                if self.with_probs:
                    nxt, weights, order, chosen = _choose_with_probs(row, cfg, gen)
                else:
                    nxt = choose_token(row, cfg, gen)
                if cfg.stop_at_end and nxt == tok.eot_id:
                    self.finish_reason = "end"
                    break
                added = self._append(nxt, decoder, context, seen)
                if self.with_probs:
                    self.tokens.append(_token_info(nxt, added, weights, order, chosen, tok, row))
                if cfg.stop and self._cut_at_stop(emitted):
                    break
                if i + 1 < n:  # compute the next logits before yielding: one inference-mode entry per token
                    state, logits = self._advance(state, context, nxt)
                safe = len(self.text) - hold if cfg.stop else len(self.text)
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

    def _start(self, context: list[int]) -> tuple[GPTDecoder | KVCache | RecurrentState, bool, torch.Tensor | None]:
        """An empty state with the unknown token banned; whether rows must still be masked for it (only the
        fast GPT path adds the ban itself); the tokens seen so far, for the repetition penalty (None when off)."""
        s = self.sampler
        vocab, unk = s.model.config.vocab_size, getattr(s.tokenizer, "unk_id", None)
        state = s.new_state(logit_bias=unknown_bias(unk, vocab, s.device))
        mask_unk = unk is not None and not isinstance(state, GPTDecoder)
        seen = None
        if self.cfg.repetition_penalty != 1.0:
            seen = torch.zeros(vocab, dtype=torch.bool, device=s.device)
            if context:
                seen[torch.tensor(context, device=s.device)] = True
        return state, mask_unk, seen

    def _final_logits(self, logits: torch.Tensor, seen: torch.Tensor | None, mask_unk: bool,
                      gen: torch.Generator | None) -> torch.Tensor:
        """The row to choose from: repetition penalty, the unknown-token ban and the constraint applied."""
        row = logits if seen is None else apply_repetition_penalty(logits, seen, self.cfg.repetition_penalty)
        if mask_unk:
            row = row.clone()
            row[self.sampler.tokenizer.unk_id] = float("-inf")
        if self.constraint is not None:
            row = row.masked_fill(~self.constraint.allowed().to(row.device), float("-inf"))
        if gen is not None and gen.device != row.device:
            row = row.cpu()  # devices without their own generator (rare) sample on the CPU
        return row

    def _append(self, token: int, decoder: StreamDecoder, context: list[int], seen: torch.Tensor | None) -> str:
        """Record a chosen token everywhere it counts; the text it added."""
        self.ids.append(token)
        context.append(token)
        if seen is not None:
            seen[token] = True
        if self.constraint is not None:
            self.constraint.update(token)
        added = decoder.push(token)
        self.text += added
        return added

    def _cut_at_stop(self, emitted: int) -> bool:
        """Cut the text before a stop string that has just appeared; whether one had."""
        cut = find_stop(self.text, self.cfg.stop, emitted)
        if cut is None:
            return False
        self.text = self.text[:cut]
        self.finish_reason = "stop"
        return True

    def _advance(self, state: GPTDecoder | KVCache | RecurrentState, context: list[int],
                 token: int) -> tuple[GPTDecoder | KVCache | RecurrentState, torch.Tensor]:
        """Feed the chosen token; the (possibly new) state and the next logits."""
        s = self.sampler
        if state.pos < s.model.config.seq_len:
            return state, s.step(state, token)
        # Window full. Positions are absolute (learned or sinusoidal, added at the input), so cached
        # keys/values cannot be shifted: keep the most recent WINDOW_KEEP of the window and recompute
        # them in one prefill. The model then always sees at least 3/4 of a window of context, and a
        # prefill (about one uncached forward) is paid once every T/4 tokens instead of once per token.
        if isinstance(state, GPTDecoder):
            state.reset()
        else:
            state = s.new_state()
        keep = max(1, int(s.model.config.seq_len * self.WINDOW_KEEP))
        return state, s.prefill(state, context[-keep:])


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
            return GPTDecoder(self.model, batch_size, logit_bias)
        return self.model.new_cache(batch_size, self.device)

    def prefill(self, cache: GPTDecoder | KVCache | RecurrentState, ids: list[int]) -> torch.Tensor:
        """Feed `ids` after what `cache` holds; the (vocab,) logits of the next token."""
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        if isinstance(cache, GPTDecoder):
            return cache.prefill(x)[0]
        return self.model.next_logits(x, cache)[0]

    def step(self, cache: GPTDecoder | KVCache | RecurrentState, token: int) -> torch.Tensor:
        """Feed one token; the (vocab,) logits of the next one."""
        if isinstance(cache, GPTDecoder):
            return cache.step(token)[0]
        x = torch.tensor([[token]], dtype=torch.long, device=self.device)
        return self.model.next_logits(x, cache)[0]

    def prefill_rows(self, cache: GPTDecoder | KVCache | RecurrentState, rows: torch.Tensor) -> torch.Tensor:
        """Feed (B, T) ids, one row per sequence of the batch; the (B, vocab) logits of each next token."""
        if isinstance(cache, GPTDecoder):
            return cache.prefill(rows)
        return self.model.next_logits(rows, cache)

    def step_rows(self, cache: GPTDecoder | KVCache | RecurrentState, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence ((B,) ids); the (B, vocab) logits of each next token."""
        if isinstance(cache, GPTDecoder):
            return cache.step(tokens)
        return self.model.next_logits(tokens.view(-1, 1), cache)


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


__all__ = ["Generation", "Sampler", "TokenConstraint", "generate_uncached"]
