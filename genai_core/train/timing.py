"""How long a training step of a configuration takes on this device.

The best source first: runs of the same shape that trained on this machine (`history_timing`); an
earlier calibration in this process; timing a few real training steps of the exact model now when
that is cheap; otherwise the throughput model below, from a measured (or nominal) device throughput.
Calibrations and throughputs are cached per (shape, device) for the life of the process.

Time
----
seconds_per_step = grad_accum_steps x (forward + backward of one micro-batch) + optimizer step
(clipping included). `total_seconds` adds evaluations (eval_batches forwards every evaluation) and
periodic samples (sample_tokens single-token decode steps); checkpoint writes and data preparation
are not included. The forward, backward, optimizer and decode times are measured (1 warmup + 3 timed
steps of the exact model on random ids, medians) when the throughput model below puts a step under
CALIBRATE_BELOW_S and the run needs at most half the free memory; otherwise they come from
FLOPs / (measured matmul FLOP/s x UTILISATION) + TRAFFIC_PASSES x activation bytes / measured copy
bandwidth + OP_OVERHEAD_S per eager op.
"""

from __future__ import annotations

import atexit
import math
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from genai_core.config import ModelConfig, TrainConfig
from genai_core.data.tokenstore import Batch
from genai_core.devices import resolve_device, resolve_precision
from genai_core.train.counts import (
    MemoryEstimate,
    count_params,
    flops_per_token,
    matmul_params,
    memory_terms,
    muon_flops,
)

CALIBRATE_BELOW_S = 0.5
"""Time real steps only when one step is estimated below this (a calibration runs 4 of them)."""
CALIBRATE_MEMORY_SHARE = 0.5
"""...and when the run needs at most this share of the free memory (the app must not be the one to OOM)."""
TIMED_STEPS = 3
UTILISATION = {"cpu": 0.7, "cuda": 0.4, "mps": 0.3}
"""Share of the large-matmul throughput that a training step's matmuls reach (fallback path only; CPU:
measured 0.65-0.7 for GPTs of d_model 128-512 against a 1024^3 matmul, one thread, torch 2.13)."""
TRAFFIC_PASSES = 8
"""Times each saved activation byte crosses memory in a step: written once, then read and rewritten by
the elementwise kernels of forward and backward (LayerNorm, GELU, softmax, their gradients)."""
OP_OVERHEAD_S = 20e-6
"""Dispatch cost of one eager op (Python, autograd, kernel launch): what small models are bound by."""
NOMINAL_THROUGHPUT = {"cpu": (10e9, 10e9), "cuda": (50e12, 1e12), "mps": (3e12, 100e9)}
"""(FLOP/s per CPU thread or per device, bytes/s) assumed when calibrate=False and nothing was measured."""
BUSY_CORES = 0.5
"""Cores busy with other programs from which the machine counts as busy: no step is timed then, and the
estimate says so."""

_LOCK = threading.Lock()
_PENDING: set[tuple[Any, ...]] = set()
_CALIBRATIONS: dict[tuple[Any, ...], StepTiming] = {}
_THROUGHPUT: dict[tuple[str, str, int], tuple[float, float]] = {}


@dataclass(frozen=True)
class StepTiming:
    """Seconds of one micro-batch's forward / backward, one optimizer step, one decoded token."""

    forward: float
    backward: float
    optimizer: float
    token: float
    calibrated: bool
    method: str


# --------------------------------------------------------------------------- device timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Temporarily use the run's CPU thread count (timings depend on it)."""
    old = torch.get_num_threads()
    if n and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


@contextmanager
def _tf32(device: torch.device) -> Iterator[None]:
    """The trainer enables TF32 on CUDA; time under the same setting, then put it back."""
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old



def device_throughput(device: torch.device, precision: str, threads: int | None = None) -> tuple[float, float]:
    """Measured (matmul FLOP/s, copy bytes/s) of `device` in `precision`, timed once per process.

    On CPU it is measured with `threads` torch threads (default: torch's current setting).
    """
    key = _throughput_key(device, precision, threads)
    with _LOCK:
        if key not in _THROUGHPUT:
            with _threads(threads):
                _THROUGHPUT[key] = _measure_throughput(device, precision)
        return _THROUGHPUT[key]


def _throughput_key(device: torch.device, precision: str, threads: int | None) -> tuple[str, str, int]:
    n = (threads or torch.get_num_threads()) if device.type == "cpu" else 0
    return (str(device), precision, n)


def _measure_throughput(device: torch.device, precision: str) -> tuple[float, float]:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    n, reps = (1024, 6) if device.type == "cpu" else (4096, 5)  # best of several: the machine may be shared
    with torch.inference_mode(), _tf32(device):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        best = math.inf
        for i in range(reps + 1):
            _sync(device)
            t0 = time.perf_counter()
            a @ b
            _sync(device)
            if i:  # the first call pays one-time setup
                best = min(best, time.perf_counter() - t0)
        flops = 2 * n**3 / best
        elems = 16 * 2**20 if device.type == "cpu" else 64 * 2**20
        src = torch.ones(elems, device=device)
        dst = torch.empty_like(src)
        best = math.inf
        for i in range(reps + 1):
            _sync(device)
            t0 = time.perf_counter()
            dst.copy_(src)
            _sync(device)
            if i:
                best = min(best, time.perf_counter() - t0)
        bandwidth = 2 * src.numel() * src.element_size() / best
    return flops, bandwidth


def _nominal_throughput(device: torch.device, threads: int | None) -> tuple[float, float]:
    flops, bandwidth = NOMINAL_THROUGHPUT.get(device.type, NOMINAL_THROUGHPUT["cpu"])
    if device.type == "cpu":
        flops *= threads or torch.get_num_threads()
    return flops, bandwidth


def _rough_timing(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str,
                  throughput: tuple[float, float], method: str) -> StepTiming:
    """Step time from FLOPs, memory traffic and op dispatch (used when timing real steps is too costly)."""
    flops, bandwidth = throughput
    util = UTILISATION.get(device.type, 0.3)
    tokens = t.batch_size * m.seq_len
    terms = memory_terms(m, t.batch_size, device.type, precision)
    if m.arch == "gpt":
        traffic = TRAFFIC_PASSES * (terms["activations"] + terms["logits"])
        ops = 70 * m.n_layers + 50 + (30 if m.copy_head else 0)
    else:  # one fused oneDNN/cuDNN kernel per LSTM layer and direction of the pass
        traffic = 2 * terms["activations"] + TRAFFIC_PASSES * terms["logits"]
        ops = 10 * m.n_layers + 50
        if m.arch == "gru" and device.type == "cpu":
            ops += 5 * m.seq_len * m.n_layers  # the CPU runs a GRU cell by cell: ~5 ops per cell (fitted, torch 2.13)
    fwd_bwd = flops_per_token(m) * tokens / (flops * util) + traffic / bandwidth + ops * OP_OVERHEAD_S
    P = count_params(m)
    # Fused AdamW reads p, g, m, v and writes p, m, v; clipping reads and rescales g: ~40 bytes per parameter.
    opt = 40 * P / bandwidth + 30 * OP_OVERHEAD_S
    if t.optimizer == "muon" and m.arch == "gpt":  # Newton-Schulz: matmuls and ~20 small ops per matrix
        opt += muon_flops(m) / (flops * util) + 4 * m.n_layers * 20 * OP_OVERHEAD_S
    # A decoded token reads every weight once and runs ~10 small kernels per layer (the fast decoder).
    token = 2 * matmul_params(m) / (flops * util) + 4 * P / bandwidth + (5 + 10 * m.n_layers) * OP_OVERHEAD_S / 4
    return StepTiming(forward=fwd_bwd / 3, backward=2 * fwd_bwd / 3, optimizer=opt, token=token,
                      calibrated=False, method=method)


def random_batch(m: ModelConfig, batch_size: int, device: torch.device | str) -> Batch:
    """Random token ids of one micro-batch: timing and memory do not depend on the values."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, m.vocab_size, (batch_size, m.seq_len), generator=gen)
    y = torch.randint(0, m.vocab_size, (batch_size, m.seq_len), generator=gen)
    return Batch(x.to(device), y.to(device))


def time_steps(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str) -> StepTiming:
    """Time 1 warmup + TIMED_STEPS training steps of this exact model as the Trainer runs them (median)."""
    from genai_core.generate.gpt_decoder import GPTDecoder
    from genai_core.model import GPT
    from genai_core.models import build_model
    from genai_core.train.optim import TrainStep, make_optimizer

    t1 = t.model_copy(update={"grad_accum_steps": 1})
    fork_devices = [device.index or 0] if device.type in ("cuda", "mps") else []
    fork_type = device.type if device.type in ("cuda", "mps") else "cuda"
    fwd, bwd, opt_t, tok = [], [], [], []
    with torch.random.fork_rng(devices=fork_devices, device_type=fork_type), _threads(t.num_threads), \
            _tf32(device), torch.inference_mode(False), torch.enable_grad():
        torch.manual_seed(t.seed)  # inside fork_rng: the caller's random state is left untouched
        model = build_model(m).to(device)
        model.train()
        step = TrainStep(model, make_optimizer(model, t1, device), t1, device, precision)
        batch = random_batch(m, t.batch_size, device)

        def record(forward: float, backward: float, optimizer: float) -> None:
            fwd.append(forward)
            bwd.append(backward)
            opt_t.append(optimizer)

        step(lambda: batch)  # pays lazy initialisation (kernels, optimizer state): not recorded
        for _ in range(TIMED_STEPS):
            step(lambda: batch, timer=record)
        del step
        # One decoded token, as periodic samples produce them (the fast decoder when the model has one).
        model.eval()
        with torch.no_grad():
            # A copy-head GPT has no fast decoder (generation runs it through GPT.next_logits).
            decoder = GPTDecoder(model, 1) if isinstance(model, GPT) and not m.copy_head else None
            cache = None if decoder is not None else model.new_cache(1, device)
            ids = torch.zeros(1, 1, dtype=torch.long, device=device)
            for i in range(min(4, m.seq_len)):
                _sync(device)
                t0 = time.perf_counter()
                if decoder is not None:
                    decoder.step(0)
                else:
                    model.next_logits(ids, cache)
                _sync(device)
                if i:
                    tok.append(time.perf_counter() - t0)
        del model, decoder, cache
    if device.type == "cuda":
        torch.cuda.empty_cache()  # give the timing model's blocks back before the real run
    return StepTiming(forward=statistics.median(fwd), backward=statistics.median(bwd),
                   optimizer=statistics.median(opt_t), token=statistics.median(tok) if tok else 0.0,
                   calibrated=True, method=f"timed {TIMED_STEPS} training steps of this model on {device}")


def _calibration_key(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str) -> tuple[Any, ...]:
    # Dropout's value does not change the cost, only whether it is on (it selects the attention kernel).
    shape = (m.arch, m.vocab_size, m.d_model, m.n_heads, m.n_layers, m.seq_len, m.dropout > 0,
             m.pos_encoding, m.norm, m.qk_norm, m.mlp, m.bias, m.tie_embeddings, m.copy_head, m.span_head,
             m.kind_head, m.span_lookahead, m.logit_softcap is not None)
    return (*shape, t.batch_size, t.grad_clip > 0, t.compile, t.optimizer, t.muon_precision, precision, str(device),
            t.num_threads or torch.get_num_threads())


def step_timing(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str, mem: MemoryEstimate,
                calibrate: bool, *, busy: float = 0.0, background: bool = False) -> tuple[StepTiming, bool, bool]:
    """The step timing, whether it came from the cache, and whether a background calibration is pending."""
    key = _calibration_key(m, t, device, precision)
    with _LOCK:
        hit = _CALIBRATIONS.get(key)
        pending = key in _PENDING
    if hit is not None:
        return hit, True, False
    if calibrate and busy >= BUSY_CORES:
        # Steps timed on a loaded machine read several times too slow, and would stay cached: use the
        # throughput model, with the device's matmul speed measured (once) rather than a nominal guess.
        device_throughput(device, precision, t.num_threads)
        calibrate = False
    if calibrate and background:
        rough = step_timing(m, t, device, precision, mem, False)[0]
        if not pending:
            _calibrate_in_background(key, m, t, device, precision, mem)
        return rough, False, True
    if not calibrate:
        return _uncalibrated_timing(m, t, device, precision), False, pending
    return _calibrate(key, m, t, device, precision, mem)


def _uncalibrated_timing(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str) -> StepTiming:
    """The throughput model's timing: from the device's throughput when it was measured already, else nominal."""
    with _LOCK:
        measured = _THROUGHPUT.get(_throughput_key(device, precision, t.num_threads))
    if measured is not None:
        return _rough_timing(m, t, device, precision, measured, _throughput_method(device, measured))
    nominal = _nominal_throughput(device, t.num_threads)
    return _rough_timing(m, t, device, precision, nominal,
                         f"nominal {nominal[0] / 1e9:,.0f} GFLOP/s for {device.type} (not calibrated)")


_ONE_AT_A_TIME = threading.Lock()
"""Held while a background calibration times steps."""
_CLOSING = threading.Event()


@atexit.register
def _finish_calibrations() -> None:
    """At exit, let the calibration that is timing steps finish and start no other: tearing torch's thread pool
    down under a running step aborts the process ("terminate called without an active exception")."""
    _CLOSING.set()
    if _ONE_AT_A_TIME.acquire(timeout=60):
        _ONE_AT_A_TIME.release()


def _calibrate_in_background(key: tuple[Any, ...], m: ModelConfig, t: TrainConfig, device: torch.device,
                             precision: str, mem: MemoryEstimate) -> None:
    """Time real steps in a daemon thread; `step_timing` answers from the cache once it is done."""
    with _LOCK:
        _PENDING.add(key)

    def work() -> None:
        try:
            with _ONE_AT_A_TIME:  # a grid asks for many at once: steps timed side by side spoil each other
                if _CLOSING.is_set():
                    return
                warm_up(str(device), precision, t.num_threads)  # one-time costs, not in the timed steps
                step_timing(m, t, device, precision, mem, True)
        finally:
            with _LOCK:
                _PENDING.discard(key)

    threading.Thread(target=work, name="genai-calibration", daemon=True).start()


def _calibrate(key: tuple[Any, ...], m: ModelConfig, t: TrainConfig, device: torch.device, precision: str,
               mem: MemoryEstimate) -> tuple[StepTiming, bool, bool]:
    """Time real steps now when the throughput model says that is cheap and there is room; else the model's
    figure, saying why. Either is cached under `key`. Returns what `step_timing` returns."""
    measured = device_throughput(device, precision, t.num_threads)
    rough = _rough_timing(m, t, device, precision, measured, _throughput_method(device, measured))
    cheap = rough.forward + rough.backward + rough.optimizer < CALIBRATE_BELOW_S
    room = mem.available is None or mem.total <= CALIBRATE_MEMORY_SHARE * mem.available
    if not (cheap and room):
        reason = "too slow to time here" if not cheap else "too big to time here"
        timing = StepTiming(rough.forward, rough.backward, rough.optimizer, rough.token, False,
                            f"{rough.method} ({reason})")
        with _LOCK:
            _CALIBRATIONS[key] = timing
        return timing, False, False
    with _LOCK:  # one calibration at a time: two at once would slow each other down
        hit = _CALIBRATIONS.get(key)
        if hit is not None:
            return hit, True, False
        try:
            timing = time_steps(m, t, device, precision)
        except Exception as e:  # e.g. out of memory: an estimate must never take the app down
            if device.type == "cuda":
                torch.cuda.empty_cache()
            timing = StepTiming(rough.forward, rough.backward, rough.optimizer, rough.token, False,
                                f"{rough.method} (timing failed: {type(e).__name__})")
        if t.compile and timing.calibrated:
            # Compiling would cost far more than the calibration; compiled steps are usually faster.
            timing = replace(timing, method=timing.method + " without torch.compile")
        _CALIBRATIONS[key] = timing
    return timing, False, False


def history_timing(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str,
                   runs_root: Path) -> StepTiming | None:
    """The step time runs of this exact shape measured while they trained on this machine (the trainer's own
    tokens/s, evaluations excluded), split into forward/backward/optimizer as the throughput model splits it.
    None when no such run has logged enough steps."""
    from genai_core.runs.folder import list_runs

    rates: list[float] = []
    source = ""
    for run in list_runs(runs_root):
        try:
            cfg = run.config()
            status = run.read_status_raw()
        except Exception:  # a damaged run teaches nothing about speed
            continue
        same = (cfg.model.model_copy(update={"dropout": 0.0}) == m.model_copy(update={"dropout": 0.0})
                and (cfg.model.dropout > 0) == (m.dropout > 0) and cfg.train.batch_size == t.batch_size
                and cfg.train.grad_accum_steps == t.grad_accum_steps and cfg.train.optimizer == t.optimizer
                and bool(cfg.train.compile) == bool(t.compile) and status.get("precision") == precision
                # Runs from before muon_precision ran torch.optim.Muon, whose Newton-Schulz is always bf16.
                and (t.optimizer != "muon" or status.get("muon_precision", "bf16") == t.muon_precision)
                and status.get("device", "").split(":")[0] == device.type
                and (device.type != "cpu" or status.get("threads") == t.num_threads)
                and status.get("world_size", 1) == 1)
        if not same:
            continue
        tps = [r["tokens_per_s"] for r in run.metrics()[1:] if r.get("tokens_per_s")]  # the first holds warm-up
        if len(tps) >= 3:
            rates.append(statistics.median(tps[-10:]))
            source = source or run.name
    if not rates:
        return None
    sec_step = t.batch_size * m.seq_len * t.grad_accum_steps / statistics.median(rates)
    rough = _rough_timing(m, t, device, precision, _nominal_throughput(device, t.num_threads), "")
    scale = sec_step / max(t.grad_accum_steps * (rough.forward + rough.backward) + rough.optimizer, 1e-12)
    return StepTiming(rough.forward * scale, rough.backward * scale, rough.optimizer * scale, rough.token, True,
                   f"measured while {source}{f' and {len(rates) - 1} more' if len(rates) > 1 else ''} "
                   f"trained on this machine (same shape and settings)")


def _throughput_method(device: torch.device, measured: tuple[float, float]) -> str:
    return (f"FLOPs / ({measured[0] / 1e9:,.0f} GFLOP/s measured matmul on {device} "
            f"x {UTILISATION.get(device.type, 0.3):.0%} utilisation)")


def warm_up(device: str = "auto", precision: str = "auto", threads: int | None = None) -> None:
    """Pay the one-time costs of the first calibration ahead of time (e.g. in a thread at app start).

    Creating the first fused AdamW imports torch's compiler stack (~1 s, once per process), and the
    device throughput is timed once; after this a calibration of a small model takes a few tenths
    of a second.
    """
    dev = resolve_device(device)
    p = torch.nn.Parameter(torch.zeros(2, device=dev))
    torch.optim.AdamW([p], fused=dev.type in ("cuda", "cpu"))
    device_throughput(dev, resolve_precision(precision, dev), threads)


def clear_cache() -> None:
    """Forget every calibration and throughput measurement (e.g. after the hardware's load changed)."""
    with _LOCK:
        _CALIBRATIONS.clear()
        _THROUGHPUT.clear()

