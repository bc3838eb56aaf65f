"""Sampling filters, streaming, stop strings, cropping and the cached path."""

from __future__ import annotations

import torch

from genai_core.config import ModelConfig, SampleConfig
from genai_core.data.tokenization import CharTokenizer
from genai_core.generate.decoding import choose_token, filter_logits
from genai_core.generate.sampling import Sampler, generate_uncached
from genai_core.models import build_model


def test_top_k_keeps_exactly_k() -> None:
    logits = torch.tensor([1.0, 5.0, 3.0, 4.0, 2.0])
    out = filter_logits(logits, top_k=2)
    assert torch.isfinite(out).nonzero().flatten().tolist() == [1, 3]


def test_top_p_keeps_smallest_nucleus_and_at_least_one() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    kept = lambda p: torch.isfinite(filter_logits(logits, top_p=p)).nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.5) == [0]
    assert kept(0.6) == [0, 1]
    assert kept(0.8) == [0, 1]
    assert kept(0.81) == [0, 1, 2]
    assert kept(0.01) == [0]  # never empty
    assert kept(1.0) == [0, 1, 2, 3]


def test_filters_on_random_rows_keep_the_argmax_and_a_minimal_nucleus() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        logits = torch.randn(3, 100, generator=g) * 3
        for k, p in ((5, 1.0), (0, 0.9), (10, 0.5)):
            out = filter_logits(logits, 0.7, k, p)
            finite = torch.isfinite(out)
            assert finite.gather(1, logits.argmax(1, keepdim=True)).all()
            assert (finite.sum(1) <= (k or 100)).all()
            if p < 1:
                # The nucleus is taken over what top-k left: renormalise over those tokens.
                base = filter_logits(logits, 0.7, k, 1.0).softmax(1)
                mass = (base * finite).sum(1)
                smallest_kept = base.masked_fill(~finite, 2.0).min(1).values
                assert (mass >= p - 1e-6).all()
                assert (mass - smallest_kept < p + 1e-6).all()  # minimal: without its least token it falls short


def test_temperature_zero_is_greedy_and_seed_is_reproducible() -> None:
    logits = torch.tensor([0.1, 2.0, 1.9])
    assert choose_token(logits, SampleConfig(temperature=0), None) == 1
    draws = lambda seed: [choose_token(logits, SampleConfig(temperature=1.0), torch.Generator().manual_seed(seed))  # noqa: E731
                          for _ in range(1)]
    assert draws(3) == draws(3)


def _sampler(seq_len: int = 32) -> Sampler:
    torch.manual_seed(0)
    tok = CharTokenizer("abcdefghijklmnopqrstuvwxyz .,")
    model = build_model(ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=2, seq_len=seq_len))
    return Sampler(model, tok)


def test_stream_yields_pieces_and_matches_uncached_greedy() -> None:
    s = _sampler()
    g = s.stream("the cat", SampleConfig(max_new_tokens=60, temperature=0, stop_at_end=False))
    pieces = list(g)
    assert "".join(pieces) == g.text and len(g.ids) == 60 and g.finish_reason == "length"
    ref = generate_uncached(s.model, s.tokenizer.encode("the cat").ids, 60)
    inside_window = s.model.config.seq_len - len("the cat")
    assert g.ids[:inside_window] == ref[:inside_window]


def test_prompt_cropping_and_unknown_characters_are_reported() -> None:
    s = _sampler(seq_len=16)
    g = s.stream("a" * 40 + "Ω!", SampleConfig(max_new_tokens=3))
    assert g.info.tokens == 15 and g.info.cropped_tokens == 27
    assert g.info.unknown_chars == ["!", "Ω"]
    assert any("cropped" in w for w in g.info.warnings())
    list(g)


def test_stop_strings_end_generation_and_are_not_included() -> None:
    s = _sampler()
    free = s.generate("ab", SampleConfig(max_new_tokens=40, temperature=1.0, seed=1, stop_at_end=False))
    stop = free[5:7]
    g = s.stream("ab", SampleConfig(max_new_tokens=40, temperature=1.0, seed=1, stop=[stop], stop_at_end=False))
    text = "".join(g)
    assert g.finish_reason == "stop" and stop not in text and free.startswith(text)


def test_sampling_is_seeded_and_never_emits_unknown() -> None:
    s = _sampler()
    cfg = SampleConfig(max_new_tokens=80, temperature=1.5, seed=7)
    assert s.generate("x", cfg) == s.generate("x", cfg)
    assert s.tokenizer.unk_id not in s.stream("x", cfg).ids


def test_repetition_penalty_reduces_repeats() -> None:
    s = _sampler()
    plain = s.generate("aaaa", SampleConfig(max_new_tokens=60, temperature=0, stop_at_end=False))
    penal = s.generate("aaaa", SampleConfig(max_new_tokens=60, temperature=0, repetition_penalty=3.0,
                                            stop_at_end=False))
    assert len(set(penal)) >= len(set(plain))
    assert penal != plain
