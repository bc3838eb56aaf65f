"""Text generation: temperature / top-k / top-p / repetition penalty, stop strings, streaming.

`Sampler.stream(prompt, cfg)` returns a `Generation`: iterate it to receive text pieces as they are
produced (it plugs straight into `st.write_stream`); its `info` says up front how the prompt was
encoded (cropped tokens, characters the tokenizer did not know) and `finish_reason` says why it
stopped. Generation runs through the model's cache, so each new token costs one position.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import SampleConfig
from .devices import resolve_device
from .errors import GenAIError
from .model import GPT, LanguageModel, build_model, load_state
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


def choose_token(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator | None) -> int:
    """Pick the next id from a (vocab,) row of logits."""
    if cfg.temperature == 0:
        return int(torch.argmax(logits))
    filtered = filter_logits(logits.float(), cfg.temperature, cfg.top_k, cfg.top_p)
    probs = filtered.softmax(dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


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
            out.append(f"{len(self.unknown_chars)} character(s) never seen in training were encoded as unknown: {shown}")
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

    def _run(self) -> Iterator[str]:
        s, cfg = self.sampler, self.cfg
        model, tok, device = s.model, s.tokenizer, s.device
        T = model.config.seq_len
        gen = None
        if cfg.temperature > 0:
            gen = torch.Generator(device="cpu")
            if cfg.seed is None:
                gen.seed()
            else:
                gen.manual_seed(cfg.seed)
        decoder = StreamDecoder(tok)
        stops = cfg.stop
        hold = max((len(x) for x in stops), default=1) - 1
        emitted = 0  # characters of self.text already yielded
        context = list(self.prompt_ids)
        seen = torch.zeros(model.config.vocab_size, dtype=torch.bool, device=device)
        unk = getattr(tok, "unk_id", None)
        if cfg.repetition_penalty != 1.0 and context:
            seen[torch.tensor(context, device=device)] = True
        with torch.inference_mode():
            cache = model.new_cache(1, device)
            logits = s.prefill(cache, context)
            for _ in range(cfg.max_new_tokens):
                row = apply_repetition_penalty(logits, seen, cfg.repetition_penalty)
                if unk is not None:  # the unknown token stands for "a character we never saw": never emit it
                    row = row.clone()
                    row[unk] = float("-inf")
                nxt = choose_token(row.cpu() if gen is not None and row.device.type != "cpu" else row, cfg, gen)
                if cfg.stop_at_end and nxt == tok.eot_id:
                    self.finish_reason = "end"
                    break
                self.ids.append(nxt)
                context.append(nxt)
                if cfg.repetition_penalty != 1.0:
                    seen[nxt] = True
                self.text += decoder.push(nxt)
                if stops:
                    cut = _find_stop(self.text, stops, emitted)
                    if cut is not None:
                        self.text = self.text[:cut]
                        self.finish_reason = "stop"
                        break
                safe = len(self.text) - hold if stops else len(self.text)
                if safe > emitted:
                    yield self.text[emitted:safe]
                    emitted = safe
                if cache.pos >= T:
                    # Window full: keep the most recent three quarters and recompute their keys/values,
                    # so the model always sees at least 3/4 of a window of context.
                    keep = context[-max(1, (3 * T) // 4):]
                    cache = model.new_cache(1, device)
                    logits = s.prefill(cache, keep)
                else:
                    logits = s.step(cache, nxt)
            else:
                self.finish_reason = "length"
        if self.finish_reason != "stop":
            self.text += decoder.flush()
        if len(self.text) > emitted:
            yield self.text[emitted:]


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
            raise GenAIError(f"run {run.name}: tokenizer has {tok.vocab_size} tokens, model expects {cfg.model.vocab_size}")
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

    # -- the two model calls of generation
    def prefill(self, cache: object, ids: list[int]) -> torch.Tensor:
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        logits, _ = self.model(x, cache=cache, last_only=True)
        return logits[0, -1]

    def step(self, cache: object, token: int) -> torch.Tensor:
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


__all__ = ["Generation", "PromptInfo", "Sampler", "filter_logits", "choose_token", "generate_uncached", "GPT"]
