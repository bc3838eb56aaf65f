"""Text generation: temperature / top-k / top-p / repetition penalty, stop strings, streaming.

`Sampler.stream(prompt, cfg)` returns a `Generation`: iterate it to receive text pieces as they are
produced (it plugs straight into `st.write_stream`); its `info` says up front how the prompt was
encoded (cropped tokens, characters the tokenizer did not know) and `finish_reason` says why it
stopped. Generation runs through the model's cache, so each new token costs one position: for a
GPT that is `GPTDecoder` (a fused, allocation-free decode step on the raw weights), for the LSTM its
recurrent state. When the window fills, the last `Generation.WINDOW_KEEP` (3/4) of it is re-prefilled.
Sampling draws from the top-k / top-p candidates only (`token_distribution`), on the logits' device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import SampleConfig
from .devices import resolve_device
from .errors import GenAIError
from .model import GPT, GPTDecoder, KVCache, LanguageModel, RecurrentState, build_model, load_state
from .runs import Run
from .tokenization import StreamDecoder, Tokenizer


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


class Generation:
    """An iterator of generated text pieces; also keeps the full text, ids and why it stopped."""

    def __init__(self, sampler: Sampler, prompt_ids: list[int], info: PromptInfo, cfg: SampleConfig) -> None:
        self.sampler = sampler
        self.prompt_ids = prompt_ids
        self.info = info
        self.cfg = cfg
        self.ids: list[int] = []
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
                if gen is not None and gen.device != row.device:
                    row = row.cpu()  # devices without their own generator (rare) sample on the CPU
                nxt = choose_token(row, cfg, gen)
                if cfg.stop_at_end and nxt == tok.eot_id:
                    self.finish_reason = "end"
                    break
                self.ids.append(nxt)
                context.append(nxt)
                if seen is not None:
                    seen[nxt] = True
                self.text += decoder.push(nxt)
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

    def stream(self, prompt: str, cfg: SampleConfig | None = None) -> Generation:
        cfg = cfg or SampleConfig()
        ids, info = self.encode_prompt(prompt)
        return Generation(self, ids, info, cfg)

    def generate(self, prompt: str, cfg: SampleConfig | None = None) -> str:
        g = self.stream(prompt, cfg)
        for _ in g:
            pass
        return g.text

    # -- the model calls of generation
    def new_state(self, logit_bias: torch.Tensor | None = None) -> GPTDecoder | KVCache | RecurrentState:
        """An empty generation state: the fast `GPTDecoder` for a GPT, the model's own cache otherwise.

        `logit_bias` (vocab,) is added to every row of logits the GPT decoder returns (other models
        ignore it; `Generation` masks their rows itself).
        """
        if isinstance(self.model, GPT) and not self.model.config.copy_head:
            return self.model.decoder(1, logit_bias)
        return self.model.new_cache(1, self.device)

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


__all__ = ["GPT", "Generation", "PromptInfo", "Sampler", "choose_token", "filter_logits", "generate_uncached",
           "token_distribution"]
