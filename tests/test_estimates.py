"""The numbers the app shows before training, held against the real thing: parameter counts against
built models, activation bytes against what autograd saves, peak memory against a fresh process's
measured peak, FLOPs against torch's FLOP counter, step time against timed training steps."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import time
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from genai_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig, steps_per_epoch
from genai_core.devices import autocast
from genai_core.models import build_model
from genai_core.train.estimates import (
    Estimate,
    clear_cache,
    count_params,
    estimate,
    flops_per_token,
    matmul_params,
    measure_cpu_peak_memory,
    memory_estimate,
)
from genai_core.train.trainer import make_optimizer
from genai_core.units import format_bytes, format_seconds


def run_config(model: ModelConfig | None = None, **train: object) -> RunConfig:
    return RunConfig(data=DataConfig(corpus="unused.txt"), model=model or ModelConfig(),
                     train=TrainConfig(**{"num_threads": 1, **train}))


# --------------------------------------------------------------------------- parameters
READER_HEADS = {"span_head": True, "kind_head": True, "question_kinds": ["age", "drug", "dose"]}


@pytest.mark.parametrize(("arch", "heads"), [("gpt", {}), ("gpt", {"copy_head": True}), ("gpt", READER_HEADS),
                                             ("lstm", {}), ("gru", {})],
                         ids=["gpt", "gpt-copy-head", "gpt-span-and-kind-heads", "lstm", "gru"])
def test_param_count_equals_built_model(arch: str, heads: dict) -> None:
    shapes = [(8, 1, 1, 2, 2), (24, 2, 3, 97, 33), (64, 4, 2, 1000, 16)]  # d_model, heads, layers, vocab, seq
    checked = 0
    for (C, H, L, V, T), bias, tie, pos in itertools.product(shapes, [True, False], [True, False],
                                                             ["learned", "sinusoidal"]):
        cfg = ModelConfig(arch=arch, d_model=C, n_heads=H, n_layers=L, vocab_size=V, seq_len=T, bias=bias,
                          tie_embeddings=tie, pos_encoding=pos, **heads)
        real = sum(p.numel() for p in build_model(cfg).parameters())
        assert count_params(cfg) == real == closed_form_params(cfg), cfg
        checked += 1
    assert checked == 24


def closed_form_params(m: ModelConfig) -> int:
    """The parameter count on paper (GPT-2's 12 L C^2 plus embeddings, norms, biases and heads), an oracle
    independent of the module shapes that `count_params` reads."""
    C, V, L, b = m.d_model, m.vocab_size, m.n_layers, int(m.bias)
    ln = C if m.arch == "gpt" and m.norm == "rmsnorm" else C * (1 + b)
    n = V * C + ln + (0 if m.tie_embeddings else V * C)
    if m.arch != "gpt":
        G = 4 if m.arch == "lstm" else 3
        return n + L * (2 * G * C * C + b * 2 * G * C)
    n += m.seq_len * C if m.pos_encoding == "learned" else 0
    n += 2 * C * C + C + 1 if m.copy_head else 0
    n += (4 + 2 * m.span_lookahead) * C * C if m.span_head else 0
    n += len(m.question_kinds) * (C + 1) if m.kind_head else 0
    return n + L * (2 * ln + 12 * C * C + b * 9 * C)


def test_estimate_reports_exact_params_and_matmul_weights() -> None:
    m = ModelConfig(d_model=64, n_heads=4, n_layers=3, vocab_size=500, seq_len=32, tie_embeddings=False)
    est = estimate(m, "cpu", train=TrainConfig(num_threads=1), calibrate=False)
    assert est.params == sum(p.numel() for p in build_model(m).parameters())
    assert est.params_matmul == 3 * 12 * 64 * 64 + 500 * 64


# --------------------------------------------------------------------------- FLOPs
@pytest.mark.parametrize("copy_head", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_flops_match_torch_flop_counter(bias: bool, copy_head: bool) -> None:
    # dropout > 0 puts CPU attention on the math path, whose bmms the counter sees (it does not count
    # the fused CPU kernel); the math path computes the full T x T scores, as the formula counts.
    m = ModelConfig(d_model=64, n_heads=4, n_layers=2, seq_len=32, vocab_size=100, dropout=0.1, bias=bias,
                    copy_head=copy_head)
    model = build_model(m)
    x = torch.randint(0, m.vocab_size, (3, m.seq_len))
    with FlopCounterMode(display=False) as counter:
        _, loss = model(x, x)
        loss.backward()
    assert counter.get_total_flops() == flops_per_token(m) * x.numel()
    copy = 6 * m.d_model * m.seq_len if copy_head else 0  # the copy head's (T x C) @ (C x T) scores
    assert flops_per_token(m) == 6 * matmul_params(m) + 12 * m.n_layers * m.d_model * m.seq_len + copy


def test_gru_flops_match_torch_flop_counter() -> None:
    # The CPU runs a GRU cell by cell, so the counter sees its matmuls (unlike oneDNN's fused LSTM). It
    # counts one recurrent matmul per layer and sequence less in the backward pass than the formula: the
    # initial state is zero and needs no gradient.
    m = ModelConfig(arch="gru", d_model=64, n_layers=2, seq_len=32, vocab_size=100)
    x = torch.randint(0, m.vocab_size, (3, m.seq_len))
    with FlopCounterMode(display=False) as counter:
        _, loss = build_model(m)(x, x)
        loss.backward()
    h0_grad = 2 * 3 * m.d_model * m.d_model * m.n_layers * x.shape[0]
    assert counter.get_total_flops() == flops_per_token(m) * x.numel() - h0_grad


def test_flops_per_step_scales_with_batch_and_accumulation() -> None:
    m = ModelConfig(d_model=64, n_heads=4, n_layers=2, seq_len=32, vocab_size=100)
    est = estimate(m, "cpu", train=TrainConfig(batch_size=5, grad_accum_steps=3, num_threads=1), calibrate=False)
    assert est.flops_per_step == est.flops_per_token * 5 * 32 * 3
    assert est.tokens_per_step == 5 * 32 * 3


# --------------------------------------------------------------------------- memory
def _saved_activation_bytes(m: ModelConfig, batch: int, precision: str) -> int:
    """Bytes autograd saves for the backward pass of one micro-batch, minus the log-softmax output."""
    model = build_model(m)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:  # views of one storage count once
            storages[st.data_ptr()] = max(storages.get(st.data_ptr(), 0), st.nbytes())
        return t

    x = torch.randint(0, m.vocab_size, (batch, m.seq_len))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(torch.device("cpu"), precision):
        model(x, x)
    # The fp32 log-softmax output belongs to the `logits` term, not to `activations`.
    return sum(storages.values()) - batch * m.seq_len * m.vocab_size * 4


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("overrides", [{}, {"dropout": 0.1}, {"bias": False, "tie_embeddings": False},
                                       {"pos_encoding": "sinusoidal", "n_heads": 8}, {"copy_head": True},
                                       {"copy_head": True, "dropout": 0.1, "bias": False}],
                         ids=["flash", "math-dropout", "no-bias-untied", "sinusoidal-8-heads", "copy-head",
                              "copy-head-math-no-bias"])
def test_gpt_activation_formula_matches_saved_tensors(overrides: dict, precision: str) -> None:
    m = ModelConfig(**{"d_model": 128, "n_heads": 4, "n_layers": 3, "seq_len": 64, "vocab_size": 300, **overrides})
    saved = _saved_activation_bytes(m, 4, precision)
    est = memory_estimate(m, TrainConfig(batch_size=4), "cpu", precision)
    assert est.attention == ("math" if m.dropout else "flash")
    assert est.activations == pytest.approx(saved, rel=0.01)


def test_lstm_activation_formula_is_close_to_saved_tensors() -> None:
    m = ModelConfig(arch="lstm", d_model=128, n_layers=3, seq_len=64, vocab_size=300)
    saved = _saved_activation_bytes(m, 4, "fp32")
    assert memory_estimate(m, TrainConfig(batch_size=4), "cpu", "fp32").activations == pytest.approx(saved, rel=0.1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("shape", [(128, 3), (64, 2)])
def test_gru_activation_formula_matches_saved_tensors(precision: str, shape: tuple[int, int]) -> None:
    m = ModelConfig(arch="gru", d_model=shape[0], n_layers=shape[1], seq_len=64, vocab_size=300)
    saved = _saved_activation_bytes(m, 4, precision)
    est = memory_estimate(m, TrainConfig(batch_size=4), "cpu", precision).activations
    assert est == pytest.approx(saved, rel=0.02)


MEMORY_CASES = [
    pytest.param(ModelConfig(d_model=256, n_heads=4, n_layers=4, seq_len=128, vocab_size=96),
                 TrainConfig(batch_size=16, num_threads=1), id="char-vocab"),
    pytest.param(ModelConfig(d_model=128, n_heads=4, n_layers=2, seq_len=128, vocab_size=8192),
                 TrainConfig(batch_size=16, num_threads=1), id="bpe-vocab-8192-logits-dominate"),
    pytest.param(ModelConfig(d_model=256, n_heads=8, n_layers=4, seq_len=256, vocab_size=96, dropout=0.1),
                 TrainConfig(batch_size=8, num_threads=1), id="dropout-math-attention"),
    pytest.param(ModelConfig(d_model=128, n_heads=4, n_layers=2, seq_len=128, vocab_size=2048, copy_head=True),
                 TrainConfig(batch_size=16, num_threads=1), id="copy-head-heap-served"),
    pytest.param(ModelConfig(d_model=128, n_heads=4, n_layers=2, seq_len=128, vocab_size=8192, copy_head=True),
                 TrainConfig(batch_size=8, num_threads=1), id="copy-head-mmapped"),
    pytest.param(ModelConfig(arch="gru", d_model=256, n_layers=4, seq_len=128, vocab_size=96),
                 TrainConfig(batch_size=16, num_threads=1, precision="fp32"), id="gru"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "train"), MEMORY_CASES)
def test_memory_estimate_within_factor_of_measured_peak(model: ModelConfig, train: TrainConfig) -> None:
    est = estimate(model, "cpu", train=train, calibrate=False).memory
    assert est.total > 2 * est.runtime  # the model, not the framework, must be what is compared
    measured = measure_cpu_peak_memory(model, train, steps=3)["measured"]
    ratio = est.total / measured
    assert 1 / 1.5 <= ratio <= 1.5, (f"estimate {format_bytes(est.total)} vs measured {format_bytes(measured)} "
                                     f"(ratio {ratio:.2f}): {est}")


def test_memory_parts_and_peak() -> None:
    m = ModelConfig(d_model=128, n_heads=4, n_layers=2, seq_len=128, vocab_size=8192)
    t = TrainConfig(batch_size=16)
    mem = memory_estimate(m, t, "cpu", "fp32")
    P = count_params(m)
    hidden = 12 * 2 * 128 * 128  # the block matrices, whose Muon state is one momentum buffer (AdamW keeps two)
    assert (mem.weights, mem.gradients, mem.optimizer) == (4 * P, 4 * P, 8 * P - 4 * hidden)
    adamw = memory_estimate(m, t.model_copy(update={"optimizer": "adamw"}), "cpu", "fp32")
    assert adamw.optimizer == 8 * P
    assert mem.logits == 16 * 128 * 8192 * 16  # (12 + 4) bytes per logit at the start of backward
    assert mem.logits > mem.activations  # a BPE vocabulary's logits dominate a small model
    assert mem.peak_phase == "backward start"
    assert mem.total == (mem.weights + mem.optimizer + mem.activations + mem.logits + mem.workspace
                         + mem.allocator + mem.runtime)
    # Accumulation keeps earlier micro-batches' gradients alive through the next one.
    accum = memory_estimate(m, t.model_copy(update={"grad_accum_steps": 2}), "cpu", "fp32")
    assert accum.total == mem.total + mem.gradients
    # A big model on a tiny batch peaks when its gradients are complete, not at the activations.
    big = memory_estimate(ModelConfig(d_model=1024, n_heads=8, n_layers=8, seq_len=8, vocab_size=256),
                          TrainConfig(batch_size=1), "cpu", "fp32")
    assert big.peak_phase == "backward end"


def test_precision_and_device_change_activations() -> None:
    m = ModelConfig(d_model=256, n_heads=4, n_layers=4, seq_len=512, vocab_size=1000, dropout=0.1)
    t = TrainConfig(batch_size=8)
    fp32 = memory_estimate(m, t, "cpu", "fp32")
    bf16 = memory_estimate(m, t, "cpu", "bf16")
    assert bf16.activations < fp32.activations
    assert bf16.logits < fp32.logits  # the logits halve; the fp32 cross-entropy buffers do not
    # CPU with dropout takes the math path (T x T per head); CUDA keeps a fused O(T) kernel.
    cuda = memory_estimate(m, t, "cuda", "bf16")
    assert (fp32.attention, cuda.attention) == ("math", "flash")
    long_m = m.model_copy(update={"seq_len": 1024})
    cpu_growth = memory_estimate(long_m, t, "cpu", "fp32").activations / fp32.activations
    cuda_growth = memory_estimate(long_m, t, "cuda", "bf16").activations / cuda.activations
    assert cuda_growth == pytest.approx(2.0, rel=0.05)  # linear in T
    assert cpu_growth > 3.0  # quadratic term dominates at this length


def test_huge_model_does_not_fit_and_is_not_built() -> None:
    m = ModelConfig(d_model=8192, n_heads=64, n_layers=96, seq_len=2048, vocab_size=65536)
    t0 = time.perf_counter()
    est = estimate(m, "cpu", train=TrainConfig(batch_size=64, num_threads=1))  # would need terabytes
    assert time.perf_counter() - t0 < 30  # it was not built (building it alone would exhaust memory)
    assert not est.fits and not est.calibrated
    assert est.memory.total > est.memory.available
    assert est.message.startswith(f"needs {format_bytes(est.memory.total)} but ")
    assert "lower" in est.message
    assert est.params > 77e9


def test_fitting_config_has_no_message() -> None:
    est = estimate(run_config(), "cpu", calibrate=False)
    assert est.fits and est.message == ""
    assert est.memory.available and est.memory.available > 0


# --------------------------------------------------------------------------- time
def _independent_step_seconds(cfg: RunConfig, steps: int = 5) -> float:
    """Median seconds of a training step run as the Trainer runs it, without the estimator's code."""
    m, t = cfg.model, cfg.train
    device = torch.device("cpu")
    torch.manual_seed(1)
    model = build_model(m)
    opt = make_optimizer(model, cfg, device)
    x = torch.randint(0, m.vocab_size, (t.batch_size, m.seq_len))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        for _ in range(t.grad_accum_steps):
            _, loss = model(x, x)
            (loss / t.grad_accum_steps).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_default_config_is_calibrated_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("genai_core.train.estimates.busy_cores", lambda: 0.0)  # quiet, whatever else runs beside
    clear_cache()
    cfg = run_config(max_steps=500)
    first = estimate(cfg, "cpu")
    assert first.calibrated and not first.cached
    assert first.method.startswith("timed 3 training steps")
    second = estimate(cfg, "cpu")
    assert second.cached and second.method.endswith("(cached)")
    assert second.seconds_per_step == first.seconds_per_step
    # Another name or dropout value is the same shape: the calibration is reused.
    renamed = estimate(cfg.model_copy(update={"name": "other"}), "cpu")
    assert renamed.cached and renamed.seconds_per_step == first.seconds_per_step
    # Accumulation reuses the timing: grad_accum_steps forward+backward passes and one optimizer update. (How the
    # two compare depends on the CPU: at this size Muon's update can cost more than a pass, so the step's ratio
    # to the unaccumulated one is not a constant to assert.)
    accum = estimate(run_config(max_steps=500, grad_accum_steps=3), "cpu")
    assert accum.cached
    assert (accum.seconds_per_micro_batch, accum.seconds_per_update) == \
        (first.seconds_per_micro_batch, first.seconds_per_update)
    assert accum.seconds_per_step == pytest.approx(3 * first.seconds_per_micro_batch + first.seconds_per_update)
    assert first.seconds_per_step == pytest.approx(first.seconds_per_micro_batch + first.seconds_per_update)
    # The timings are of the right order (generous: the CPU may be shared with other work).
    for config, est in ((cfg, first), (run_config(max_steps=500, grad_accum_steps=3), accum)):
        measured = _independent_step_seconds(config)
        assert measured / 3 < est.seconds_per_step < 3 * measured, (config.train.grad_accum_steps, measured)


def test_totals_follow_the_config() -> None:
    tokens = 1_000_000
    cfg = run_config(epochs=2.5)
    est = estimate(cfg, "cpu", train_tokens=tokens, calibrate=False)
    spe = steps_per_epoch(tokens, 12, 64)
    assert est.steps_per_epoch == spe
    assert est.total_steps == math.ceil(2.5 * spe)
    assert est.seconds_per_epoch == pytest.approx(spe * est.seconds_per_step)
    assert est.overhead_seconds is not None and est.overhead_seconds > 0  # evaluations and samples
    assert est.total_seconds == pytest.approx(est.total_steps * est.seconds_per_step + est.overhead_seconds)
    # max_steps wins over the corpus size; without either length nothing can be totalled.
    capped = estimate(run_config(max_steps=300), "cpu", train_tokens=tokens, calibrate=False)
    assert capped.total_steps == 300 and capped.steps_per_epoch == spe
    bare = estimate(ModelConfig(), "cpu", train=TrainConfig(num_threads=1), calibrate=False)
    assert bare.total_steps is None and bare.total_seconds is None
    # A ModelConfig + TrainConfig without a length trains one epoch, as RunConfig does.
    one = estimate(ModelConfig(), "cpu", train=TrainConfig(num_threads=1), train_tokens=tokens, calibrate=False)
    assert one.total_steps == spe
    # More processes: fewer steps per epoch.
    assert estimate(cfg, "cpu", train_tokens=tokens, calibrate=False, world_size=4).steps_per_epoch == \
        steps_per_epoch(tokens, 12, 64, 1, 4)


def test_estimate_is_json_serialisable() -> None:
    est = estimate(run_config(max_steps=10), "cpu", train_tokens=50_000, calibrate=False)
    assert isinstance(est, Estimate)
    data = json.loads(json.dumps(est.to_dict()))
    assert data["params"] == est.params
    assert data["memory"]["total"] == est.memory.total
    assert set(data) >= {"params", "memory", "flops_per_step", "flops_per_token", "seconds_per_step",
                         "seconds_per_epoch", "total_seconds", "steps_per_epoch", "calibrated", "method", "fits"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_estimate_against_measured_peak() -> None:
    cfg = run_config(ModelConfig(d_model=512, n_heads=8, n_layers=6, seq_len=512, vocab_size=8192),
                     batch_size=16, max_steps=10, device="cuda")
    est = estimate(cfg, "cuda")
    assert est.calibrated and est.precision in ("bf16", "fp16")
    device = torch.device("cuda")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    model = build_model(cfg.model).to(device)
    opt = make_optimizer(model, cfg, device)
    x = torch.randint(0, cfg.model.vocab_size, (16, cfg.model.seq_len), device=device)
    for _ in range(3):
        with autocast(device, est.precision):
            _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    measured = torch.cuda.max_memory_allocated() - base
    ratio = (est.memory.total - est.memory.runtime) / measured  # the context is outside torch's allocator
    assert 1 / 1.5 <= ratio <= 1.5, ratio


def test_a_busy_machine_is_said_and_never_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("genai_core.train.estimates.busy_cores", lambda: 1.5)
    clear_cache()
    est = estimate(run_config(max_steps=50), "cpu")
    assert not est.calibrated and est.busy_cores == 1.5
    assert "busy" in est.message and "slower" in est.message
    monkeypatch.setattr("genai_core.train.estimates.busy_cores", lambda: 0.0)
    assert estimate(run_config(max_steps=50), "cpu").calibrated  # nothing slow was cached meanwhile


def test_background_calibration_answers_at_once_then_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("genai_core.train.estimates.busy_cores", lambda: 0.0)
    clear_cache()
    cfg = run_config(max_steps=50)
    first = estimate(cfg, "cpu", background=True)
    assert first.pending and not first.calibrated
    deadline = time.monotonic() + 60
    while (later := estimate(cfg, "cpu", calibrate=False)).pending:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert later.calibrated and later.method.startswith("timed")


def test_runs_of_the_same_shape_calibrate_the_estimate(tmp_path: Path, tiny_txt: Path) -> None:
    from conftest import tiny_config

    from genai_core.train.trainer import train

    cfg = tiny_config(tiny_txt, max_steps=40, log_interval=5)
    done = train(cfg, tmp_path / "done").run
    rates = [r["tokens_per_s"] for r in done.metrics()[1:]]
    est = estimate(done.config(), "cpu", runs_root=tmp_path, calibrate=False)
    assert est.calibrated and "done" in est.method and "measured while" in est.method
    tokens = cfg.train.batch_size * cfg.model.seq_len
    assert est.seconds_per_step == pytest.approx(tokens / statistics.median(rates[-10:]), rel=1e-6)
    other = done.config().model_copy(update={"model": done.config().model.model_copy(update={"d_model": 64})})
    assert "measured while" not in estimate(other, "cpu", runs_root=tmp_path, calibrate=False).method


# --------------------------------------------------------------------------- formatting
def test_format_bytes() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(999) == "999 B"
    assert format_bytes(1234567) == "1.2 MB"
    assert format_bytes(31.2e9) == "31.2 GB"
    assert format_bytes(999_999) == "1.0 MB"
    assert format_bytes(250e9) == "250 GB"
    assert format_bytes(None) == "?"


def test_format_seconds() -> None:
    assert format_seconds(0.0123) == "12 ms"
    assert format_seconds(12.34) == "12.3 s"
    assert format_seconds(75) == "1 min 15 s"
    assert format_seconds(7500) == "2 h 05 min"
    assert format_seconds(200_000) == "2 d 7 h"
    assert format_seconds(None) == "?"
    assert format_seconds(math.inf) == "forever"
