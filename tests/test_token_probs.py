"""Per-token probabilities while streaming (`Generation.tokens`), recomputed independently from plain
forward passes with `apply_repetition_penalty` and `filter_logits`."""

from __future__ import annotations

import math

import pytest
import torch

from genai_core.config import ModelConfig, SampleConfig
from genai_core.data.tokenization import CharTokenizer
from genai_core.generate.decoding import ALTERNATIVES, apply_repetition_penalty, filter_logits
from genai_core.generate.sampling import Sampler
from genai_core.models import build_model

ARCHS = {"gpt": {}, "gpt-copy": {"copy_head": True}, "lstm": {"arch": "lstm"}, "gru": {"arch": "gru"}}
KNOBS = [
    {"temperature": 0.9},
    {"temperature": 1.3, "top_k": 6},
    {"temperature": 0.7, "top_p": 0.8},
    {"temperature": 1.0, "top_k": 10, "top_p": 0.9, "repetition_penalty": 1.5},
    {"temperature": 0.0, "repetition_penalty": 1.3},
    {"temperature": 0.0, "top_k": 3, "top_p": 0.5},  # greedy: the filters do not touch what is reported
]


def _sampler(arch: str, seq_len: int = 48) -> Sampler:
    tok = CharTokenizer("abcdefghijklmnopqrstuvwxyz .,")
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=2, seq_len=seq_len,
                                    **ARCHS[arch])).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.12)  # distributions far from uniform, so that the top alternatives are well defined
    return Sampler(model, tok)


def expected_distribution(s: Sampler, context: list[int], cfg: SampleConfig) -> torch.Tensor:
    """What the token after `context` was drawn from, recomputed with a plain full forward pass."""
    with torch.inference_mode():
        logits, _ = s.model(torch.tensor([context]))
    row = logits[0, -1].float()
    seen = torch.zeros_like(row, dtype=torch.bool)
    seen[torch.tensor(context)] = True
    row = apply_repetition_penalty(row, seen, cfg.repetition_penalty).clone()
    row[s.tokenizer.unk_id] = float("-inf")
    if cfg.temperature == 0:
        return row.softmax(-1)  # greedy reports the distribution at temperature 1, without top-k / top-p
    return filter_logits(row, cfg.temperature, cfg.top_k, cfg.top_p).softmax(-1)


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: "-".join(f"{a}{b}" for a, b in k.items()))
def test_token_probabilities_are_the_distribution_each_token_was_drawn_from(arch: str, knobs: dict) -> None:
    s = _sampler(arch)
    cfg = SampleConfig(max_new_tokens=30, seed=5, stop_at_end=False, **knobs)
    g = s.stream("the cat", cfg, with_probs=True)
    list(g)
    assert len(g.tokens) == len(g.ids) == 30
    context = list(g.prompt_ids)
    for t, token in zip(g.tokens, g.ids, strict=True):
        p = expected_distribution(s, context, cfg)
        assert t.id == token and p[token] > 0
        assert t.prob == pytest.approx(float(p[token]), abs=1e-5)
        # The model's own probability: temperature 1, no top-k / top-p, whatever the knobs.
        own = expected_distribution(s, context, cfg.model_copy(update={"temperature": 0.0}))
        assert t.confidence == pytest.approx(float(own[token]), abs=1e-5)
        top = torch.topk(p, ALTERNATIVES)
        expected = [(i, pr) for i, pr in zip(top.indices.tolist(), top.values.tolist(), strict=True) if pr > 0]
        assert [a[0] for a in t.alternatives] == [i for i, _ in expected]
        assert [a[2] for a in t.alternatives] == pytest.approx([pr for _, pr in expected], abs=1e-5)
        assert [a[1] for a in t.alternatives] == [s.tokenizer.decode([i]) for i, _ in expected]
        if cfg.temperature == 0:
            assert t.alternatives[0][0] == token  # greedy took the most likely
        context.append(token)
    assert "".join(t.text for t in g.tokens) == g.text


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_recording_probabilities_changes_nothing_else(arch: str) -> None:
    s = _sampler(arch, seq_len=16)  # 5 windows: the re-prefill path too
    for knobs in KNOBS:
        cfg = SampleConfig(max_new_tokens=80, seed=3, stop_at_end=False, **knobs)
        plain, probs = s.stream("ab", cfg), s.stream("ab", cfg, with_probs=True)
        assert list(plain) == list(probs) and plain.ids == probs.ids and plain.text == probs.text
        assert plain.tokens == [] and len(probs.tokens) == 80
        assert all(0 < t.prob <= 1 and t.alternatives[0][2] >= t.prob - 1e-6 for t in probs.tokens)


def test_tokens_are_recorded_before_each_piece_is_yielded_and_stop_cuts_text_not_tokens() -> None:
    s = _sampler("gpt")
    g = s.stream("ab", SampleConfig(max_new_tokens=30, temperature=1.0, seed=2, stop_at_end=False), with_probs=True)
    seen = 0
    for piece in g:
        seen += len(piece)
        assert sum(len(t.text) for t in g.tokens) >= seen
    stop = g.text[10:12]
    cut = s.stream("ab", SampleConfig(max_new_tokens=30, temperature=1.0, seed=2, stop_at_end=False, stop=[stop]),
                   with_probs=True)
    list(cut)
    assert cut.finish_reason == "stop" and len(cut.tokens) == len(cut.ids)
    assert "".join(t.text for t in cut.tokens).startswith(cut.text)


def test_beam_search_token_probabilities_are_its_scores() -> None:
    s = _sampler("gpt")
    res = s.beam_search("the", SampleConfig(max_new_tokens=20, num_beams=3, num_return=3, stop_at_end=False),
                        with_probs=True)
    for h in res.hypotheses:
        assert len(h.tokens) == len(h.ids) == len(h.token_logprobs)
        context = list(res.prompt_ids)
        for t, lp in zip(h.tokens, h.token_logprobs, strict=True):
            assert t.prob == pytest.approx(math.exp(lp), rel=1e-6)
            p = expected_distribution(s, context, SampleConfig(temperature=0))
            assert t.prob == pytest.approx(float(p[t.id]), abs=1e-5)
            assert [a[0] for a in t.alternatives] == torch.topk(p, ALTERNATIVES).indices.tolist()
            context.append(t.id)
