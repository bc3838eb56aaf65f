"""The fast generation path: GPTDecoder logits, greedy equivalence, window refills, fused sampling."""

from __future__ import annotations

import pytest
import torch

from genai_core.config import ModelConfig, SampleConfig
from genai_core.data.tokenization import CharTokenizer
from genai_core.generate.decoding import filter_logits, token_distribution
from genai_core.generate.gpt_decoder import GPTDecoder
from genai_core.generate.sampling import Generation, Sampler, generate_uncached
from genai_core.model import GPT
from genai_core.models import build_model

GPT_CONFIGS = [
    ModelConfig(vocab_size=40, d_model=32, n_heads=4, n_layers=2, seq_len=24),
    ModelConfig(vocab_size=40, d_model=32, n_heads=2, n_layers=3, seq_len=24, pos_encoding="sinusoidal", bias=False),
    ModelConfig(vocab_size=40, d_model=32, n_heads=4, n_layers=2, seq_len=24, pos_encoding="sinusoidal"),
    ModelConfig(vocab_size=40, d_model=32, n_heads=4, n_layers=2, seq_len=24, bias=False, tie_embeddings=False),
]
_ids = lambda c: f"{c.pos_encoding}-bias{c.bias}-tie{c.tie_embeddings}"  # noqa: E731


def _model(cfg: ModelConfig, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():  # non-zero biases and norm gains, so that every weight matters
        for name, p in model.named_parameters():
            if name.endswith(("bias", "ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.add_(torch.randn_like(p) * 0.1)
    assert isinstance(model, GPT)
    return model


@pytest.mark.parametrize("cfg", GPT_CONFIGS, ids=_ids)
@pytest.mark.parametrize("batch", [1, 3])
def test_decoder_logits_equal_full_forward_at_every_position(cfg: ModelConfig, batch: int) -> None:
    model = _model(cfg)
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len))
    with torch.inference_mode():
        full, _ = model(x)
        dec = GPTDecoder(model, batch)
        got = {4: dec.prefill(x[:, :5])}  # a prompt, then single steps
        for t in range(5, 15):
            got[t] = dec.step(x[:, t])
        got[18] = dec.prefill(x[:, 15:19])  # a chunk on top of a cache
        for t in range(19, cfg.seq_len):
            got[t] = dec.step(x[:, t])
    assert dec.pos == cfg.seq_len
    for t, logits in got.items():
        torch.testing.assert_close(logits, full[:, t], rtol=0, atol=1e-5, msg=f"position {t}")


def test_decoder_is_as_accurate_as_the_module_cache_path_at_bench_size() -> None:
    # The bench's shape with weights large enough for trained-model logits (|logit| up to ~3.5): the fast
    # path must stay within 1e-5 of full forwards, and no further from them than GPT.next_logits with its own cache.
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=100, n_layers=4, n_heads=4, d_model=128, seq_len=64)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.08)
            else:
                p.add_(torch.randn_like(p) * 0.1)
    x = torch.randint(0, 100, (2, 64))
    with torch.inference_mode():
        full, _ = model(x)
        cache = model.new_cache(2, "cpu")
        module = [model.next_logits(x[:, :8], cache)] + [model.next_logits(x[:, t:t + 1], cache)
                                                         for t in range(8, 64)]
        dec = GPTDecoder(model, 2)
        fast = [dec.prefill(x[:, :8])] + [dec.step(x[:, t]) for t in range(8, 64)]
    err_module = (torch.stack(module, 1) - full[:, 7:]).abs().max().item()
    err_fast = (torch.stack(fast, 1) - full[:, 7:]).abs().max().item()
    assert err_fast < 1e-5
    assert err_fast <= 2 * err_module + 1e-7


@pytest.mark.parametrize("cfg", GPT_CONFIGS[:2], ids=_ids)
def test_decoder_cache_is_a_regular_kv_cache_and_reset_reuses_it(cfg: ModelConfig) -> None:
    model = _model(cfg, seed=1)
    x = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with torch.inference_mode():
        full, _ = model(x)
        dec = GPTDecoder(model, 2)
        model.next_logits(x[:, :6], dec.cache)  # the module path fills the decoder's buffer ...
        step = dec.step(x[:, 6])  # ... and the fast path continues from it
        torch.testing.assert_close(step, full[:, 6], rtol=0, atol=1e-5)
        nxt = model.next_logits(x[:, 7:8], dec.cache)  # and the other way round
        torch.testing.assert_close(nxt, full[:, 7], rtol=0, atol=1e-5)
        dec.reset()  # a new context overwrites the stale slots
        y = torch.randint(0, cfg.vocab_size, (2, 10))
        ref, _ = model(y)
        torch.testing.assert_close(dec.prefill(y), ref[:, -1], rtol=0, atol=1e-5)
        torch.testing.assert_close(dec.step(y[:, 0]), model(torch.cat([y, y[:, :1]], 1))[0][:, -1], rtol=0, atol=1e-5)


def test_decoder_refuses_to_overflow_and_adds_its_logit_bias() -> None:
    cfg = GPT_CONFIGS[0]
    model = _model(cfg)
    bias = torch.zeros(cfg.vocab_size)
    bias[3] = float("-inf")
    with torch.inference_mode():
        plain, biased = GPTDecoder(model, 1), GPTDecoder(model, 1, logit_bias=bias)
        ids = torch.randint(0, cfg.vocab_size, (1, cfg.seq_len))
        a, b = plain.prefill(ids), biased.prefill(ids)
        assert b[0, 3] == float("-inf")
        torch.testing.assert_close(a[0, torch.arange(cfg.vocab_size) != 3], b[0, torch.arange(cfg.vocab_size) != 3])
        with pytest.raises(ValueError, match="full"):
            plain.step(1)
        with pytest.raises(ValueError, match="exceeds"):
            GPTDecoder(model, 1).prefill(torch.zeros(1, cfg.seq_len + 1, dtype=torch.long))


def _sampler(cfg: ModelConfig, seed: int = 0) -> Sampler:
    tok = CharTokenizer("abcdefghijklmnopqrstuvwxyz .,!?")
    cfg = cfg.model_copy(update={"vocab_size": tok.vocab_size})
    torch.manual_seed(seed)
    return Sampler(build_model(cfg), tok)


def _masked_uncached(model: torch.nn.Module, ids: list[int], n: int, unk: int, keep: int | None = None) -> list[int]:
    """Greedy reference through full forwards, never choosing `unk`. With `keep`, the visible context
    follows the cached path's window rule (refill with the last `keep` tokens when the window is full)."""
    T = model.config.seq_len
    visible, out = list(ids), []
    with torch.inference_mode():
        for _ in range(n):
            logits, _ = model(torch.tensor([visible[-T:]]))
            row = logits[0, -1].clone()
            row[unk] = float("-inf")
            nxt = int(row.argmax())
            out.append(nxt)
            if keep is not None and len(visible) >= T:
                visible = [*visible, nxt][-keep:]
            else:
                visible.append(nxt)
    return out


@pytest.mark.parametrize("cfg", [GPT_CONFIGS[0], GPT_CONFIGS[1],
                                 ModelConfig(arch="lstm", vocab_size=40, d_model=32, n_layers=2, seq_len=24)],
                         ids=["gpt-learned", "gpt-sinusoidal-nobias", "lstm"])
def test_greedy_generation_equals_uncached_inside_the_window(cfg: ModelConfig) -> None:
    s = _sampler(cfg)
    prompt = "the cat"
    ids = s.tokenizer.encode(prompt).ids
    g = s.stream(prompt, SampleConfig(max_new_tokens=60, temperature=0, stop_at_end=False))
    list(g)
    inside = cfg.seq_len - len(ids)
    ref = _masked_uncached(s.model, ids, 60, s.tokenizer.unk_id)
    assert g.ids[:inside] == ref[:inside]
    if cfg.arch == "gpt":  # the plain reference of the spec: identical while unk is never the argmax
        plain = generate_uncached(s.model, ids, inside)
        if s.tokenizer.unk_id not in plain:
            assert g.ids[:inside] == plain


@pytest.mark.parametrize("cfg", GPT_CONFIGS[:2], ids=_ids)
def test_window_refills_keep_the_last_three_quarters(cfg: ModelConfig) -> None:
    s = _sampler(cfg, seed=3)
    ids = s.tokenizer.encode("a b").ids
    g = s.stream("a b", SampleConfig(max_new_tokens=5 * cfg.seq_len, temperature=0, stop_at_end=False))
    list(g)
    keep = max(1, int(cfg.seq_len * Generation.WINDOW_KEEP))
    assert keep == 3 * cfg.seq_len // 4
    assert g.ids == _masked_uncached(s.model, ids, 5 * cfg.seq_len, s.tokenizer.unk_id, keep=keep)


@pytest.mark.parametrize("cfg", [GPT_CONFIGS[0], ModelConfig(arch="lstm", vocab_size=40, d_model=32, n_layers=1,
                                                             seq_len=16)], ids=["gpt", "lstm"])
def test_sampling_with_a_seed_is_reproducible_and_seeds_differ(cfg: ModelConfig) -> None:
    s = _sampler(cfg)
    for kw in ({}, {"top_k": 5}, {"top_p": 0.8}, {"top_k": 8, "top_p": 0.9, "repetition_penalty": 1.3}):
        a = s.stream("ab", SampleConfig(max_new_tokens=80, temperature=0.9, seed=11, stop_at_end=False, **kw))
        b = s.stream("ab", SampleConfig(max_new_tokens=80, temperature=0.9, seed=11, stop_at_end=False, **kw))
        c = s.stream("ab", SampleConfig(max_new_tokens=80, temperature=0.9, seed=12, stop_at_end=False, **kw))
        ta, tb, tc = "".join(a), "".join(b), "".join(c)
        assert ta == tb and a.ids == b.ids
        assert a.ids != c.ids and ta != tc
        assert s.tokenizer.unk_id not in a.ids


def test_fused_sampling_distribution_equals_filter_logits() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        logits = torch.randn(100, generator=g) * 3
        for k, p, temp in ((0, 1.0, 0.7), (5, 1.0, 1.0), (0, 0.9, 0.8), (20, 0.9, 0.8), (10, 0.5, 1.3),
                           (100, 0.95, 1.0)):
            cfg = SampleConfig(temperature=temp, top_k=k, top_p=p)
            weights, order = token_distribution(logits, cfg)
            dense = torch.zeros(100)
            if order is None:
                dense = weights
            else:
                dense[order] = weights
            expected = filter_logits(logits, temp, k, p).softmax(-1)
            torch.testing.assert_close(dense / dense.sum(), expected, rtol=0, atol=1e-6)


def test_inference_mode_is_not_held_between_pieces() -> None:
    s = _sampler(GPT_CONFIGS[0])
    g = s.stream("ab", SampleConfig(max_new_tokens=20, temperature=0.8, stop_at_end=False))
    next(g)
    assert not torch.is_inference_mode_enabled()  # the consumer runs outside inference mode
    rest = list(g)
    assert not torch.is_inference_mode_enabled()
    assert len(g.ids) == 20 and rest


def test_generation_state_is_the_fast_decoder_for_gpt_only() -> None:
    assert isinstance(_sampler(GPT_CONFIGS[0]).new_state(), GPTDecoder)
    lstm = _sampler(ModelConfig(arch="lstm", vocab_size=40, d_model=32, n_layers=1, seq_len=16))
    assert not isinstance(lstm.new_state(), GPTDecoder)
