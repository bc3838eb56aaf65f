"""The models: causality, cache equivalence, init, tying, checkpoint loading safety."""

from __future__ import annotations

import pytest
import torch

from genai_core.config import ModelConfig
from genai_core.errors import CheckpointError
from genai_core.model import GPT, IGNORE, RecurrentLM, load_state, state_for_save
from genai_core.models import build_model
from genai_core.qa.reader import QAGPT, QATargets

CONFIGS = [
    ModelConfig(vocab_size=50, d_model=32, n_heads=4, n_layers=2, seq_len=24),
    ModelConfig(vocab_size=50, d_model=32, n_heads=2, n_layers=3, seq_len=24, pos_encoding="sinusoidal", bias=False),
    ModelConfig(vocab_size=50, d_model=32, n_heads=4, n_layers=2, seq_len=24, tie_embeddings=False),
    ModelConfig(arch="lstm", vocab_size=50, d_model=32, n_layers=2, seq_len=24),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.arch}-{c.pos_encoding}-bias{c.bias}-tie{c.tie_embeddings}")
def test_future_tokens_never_change_earlier_logits(cfg: ModelConfig) -> None:
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    for t in (0, 5, cfg.seq_len - 2):
        y = x.clone()
        y[:, t + 1:] = torch.randint(0, cfg.vocab_size, y[:, t + 1:].shape)
        a, _ = model(x)
        b, _ = model(y)
        torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.arch}-{c.pos_encoding}-bias{c.bias}-tie{c.tie_embeddings}")
def test_cached_logits_equal_full_forward(cfg: ModelConfig) -> None:
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    x = torch.randint(0, cfg.vocab_size, (3, cfg.seq_len))
    with torch.no_grad():
        full, _ = model(x)
        cache = model.new_cache(3, "cpu")
        # A prefill, one token at a time, then a multi-token chunk on top of the cache (whose last position
        # reads, in layers past the first, what the chunk's earlier positions computed under the causal mask).
        ends = [7, 8, 9, 10, 11, 12, cfg.seq_len]
        parts = [model.next_logits(x[:, a:b], cache) for a, b in zip([0, *ends], ends, strict=False)]
    torch.testing.assert_close(torch.stack(parts, dim=1), full[:, [e - 1 for e in ends]], rtol=0, atol=1e-5)


def test_gpt2_init_and_tying() -> None:
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=1000, d_model=256, n_heads=4, n_layers=8, seq_len=32))
    assert m.lm_head.weight is m.wte.weight
    assert abs(m.wte.weight.std().item() - 0.02) < 0.002
    proj = m.h[0].attn.c_proj.weight.std().item()
    assert abs(proj - 0.02 / (2 * 8) ** 0.5) < 0.001  # residual projections scaled by depth
    assert all((blk.attn.c_attn.bias == 0).all() for blk in m.h)


def test_initial_loss_is_near_uniform() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=65, d_model=64, n_heads=4, n_layers=2, seq_len=32)
    m = build_model(cfg)
    x = torch.randint(0, 65, (8, 32))
    _, loss = m(x, torch.randint(0, 65, (8, 32)))
    assert abs(loss.item() - torch.log(torch.tensor(65.0)).item()) < 0.3


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_ignored_targets_do_not_count_and_the_qa_model_computes_only_the_others(arch: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=20, d_model=16, n_heads=2, n_layers=1, seq_len=8, arch=arch)
    m = build_model(cfg, qa=True)
    x, y = torch.randint(0, 20, (2, 8)), torch.full((2, 8), IGNORE)
    y[:, -1] = torch.randint(0, 20, (2,))
    logits, _ = m(x)
    expected = torch.nn.functional.cross_entropy(logits[:, -1], y[:, -1])
    torch.testing.assert_close(m(x, y)[1], expected)  # every model: IGNORE targets are left out of the mean
    if arch == "gpt":
        assert isinstance(m, QAGPT)
        # The QA model runs its head at the trained positions only: their logits, in row-major order.
        sparse_logits, sparse_loss = m(x, QATargets(y))
        torch.testing.assert_close(sparse_loss, expected)
        torch.testing.assert_close(sparse_logits, logits[:, -1])


def test_too_long_input_is_refused() -> None:
    m = build_model(ModelConfig(vocab_size=10, d_model=16, n_heads=2, n_layers=1, seq_len=8))
    with pytest.raises(ValueError, match="exceeds seq_len"):
        m(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("cfg", CONFIGS[:1] + CONFIGS[-1:], ids=["gpt", "lstm"])
def test_state_roundtrip_and_bad_checkpoints(cfg: ModelConfig) -> None:
    a, b = build_model(cfg), build_model(cfg)
    sd = state_for_save(a)
    assert "lm_head.weight" not in sd  # tied: stored once (safetensors refuses shared storage)
    load_state(b, sd)
    x = torch.randint(0, cfg.vocab_size, (1, 8))
    torch.testing.assert_close(a.eval()(x)[0], b.eval()(x)[0])
    bad_shape = dict(sd)
    bad_shape["wte.weight"] = torch.zeros(7, 3)
    with pytest.raises(CheckpointError, match="shape"):
        load_state(b, bad_shape)
    missing = {k: v for k, v in sd.items() if k != "ln_f.weight"}
    with pytest.raises(CheckpointError, match="missing"):
        load_state(b, missing)
    nan = dict(sd)
    nan["ln_f.weight"] = torch.full_like(sd["ln_f.weight"], float("nan"))
    with pytest.raises(CheckpointError, match="NaN"):
        load_state(b, nan)
    extra = {**sd, "evil": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="unexpected"):
        load_state(b, extra)


@pytest.mark.parametrize("arch, cell", [("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)])
def test_recurrent_arch_builds_its_own_cell(arch: str, cell: type[torch.nn.RNNBase]) -> None:
    model = build_model(CONFIGS[-1].model_copy(update={"arch": arch}))
    assert isinstance(model, RecurrentLM) and type(model.rnn) is cell
