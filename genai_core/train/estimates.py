"""What a configuration will cost before it is trained: parameters, memory, FLOPs and time.

`estimate(config)` is the engine's single source of the numbers the app shows while a person moves
sliders. It combines three parts, each in its own module:

- `counts.py`: parameters, FLOPs and peak memory, analytic from the config (microseconds); the memory
  and FLOP formulas are written out in its docstring;
- `timing.py`: the step time, from runs of the same shape, a calibration (a few real training steps
  of the exact model on the device when that is cheap) or a measured device throughput;
- `memory_probe.py`: the measured peak memory the estimate is held against (tests, benchmarks).

Their public names are importable from here too: `from genai_core.train.estimates import estimate, count_params`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from genai_core.config import ModelConfig, RunConfig, TrainConfig, steps_per_epoch
from genai_core.devices import (
    busy_cores,
    cpu_cores,
    muon_precision_choice,
    precision_choice,
    resolve_compile,
    resolve_device,
    resolve_threads,
)
from genai_core.train.counts import (
    MemoryEstimate,
    attention_path,
    count_params,
    flops_per_token,
    matmul_params,
    memory_estimate,
)
from genai_core.train.memory_probe import measure_cpu_peak_memory
from genai_core.train.timing import (
    BUSY_CORES,
    StepTiming,
    clear_cache,
    device_throughput,
    history_timing,
    random_batch,
    step_timing,
    warm_up,
)
from genai_core.units import format_bytes

TIGHT_SHARE = 0.8
"""A run needing more than this share of the free memory fits, with a warning."""
COMPILE_SECONDS = 30.0
"""What torch.compile takes on its first step on CPU (measured 31-33 s for d_model 128-256, torch 2.13)."""


@dataclass(frozen=True)
class Estimate:
    """Everything the app shows about a configuration before training it."""

    arch: str
    device: str
    precision: str
    """Autocast precision of the forward and backward passes (`auto` resolved)."""
    precision_why: str
    """Why that precision: set in the config, or what was measured on this machine."""
    muon_precision: str | None
    """Dtype of Muon's Newton-Schulz iteration (`auto` resolved); None without Muon."""
    muon_precision_why: str
    threads: int | None
    """CPU threads the run would train with (None on a GPU)."""
    compiled: bool
    """The run compiles its model with torch.compile."""
    params: int
    """Trainable parameters (tied weights counted once); equals `sum(p.numel() for p in model.parameters())`."""
    params_matmul: int
    """Weights taking part in matrix multiplies: the N of `6 N` FLOPs per token."""
    memory: MemoryEstimate
    tokens_per_step: int
    flops_per_token: float
    flops_per_step: float
    seconds_per_step: float
    """grad_accum_steps x `seconds_per_micro_batch` + `seconds_per_update`."""
    seconds_per_micro_batch: float
    """Forward and backward of one micro-batch."""
    seconds_per_update: float
    """The optimizer step (clipping included), paid once per step whatever the accumulation."""
    tokens_per_second: float
    steps_per_epoch: int | None
    seconds_per_epoch: float | None
    total_steps: int | None
    total_seconds: float | None
    """Training steps plus evaluations and samples (checkpoint writes not included)."""
    overhead_seconds: float | None
    """The evaluation and sampling part of `total_seconds`."""
    calibrated: bool
    """The time comes from timing this model's real training steps on the device (or from a run of the
    same shape that trained on this machine)."""
    pending: bool
    """A calibration is running in the background; ask again in a moment for the timed figure."""
    busy_cores: float
    """Cores other programs kept busy when the estimate was made (0 when not measured)."""
    cached: bool
    """The timing was reused from an earlier call in this process."""
    method: str
    fits: bool
    message: str
    """Empty when everything is fine; otherwise what is wrong and what to change."""

    @property
    def fit_problem(self) -> str | None:
        """Why the run must not start (it would not fit in memory), or None: the one refusal the Train page
        and the CLI share."""
        return None if self.fits else f"Will not fit in memory: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new training run on `device` now."""
    try:
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            # Blocks torch has cached but not handed out are free for this process too.
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        if device.type == "mps" and hasattr(torch.mps, "recommended_max_memory"):
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # a query that fails must not break the estimate
        return None


# --------------------------------------------------------------------------- the estimate
def estimate(config: RunConfig | ModelConfig, device: str = "auto", *, train: TrainConfig | None = None,
             train_tokens: int | None = None, calibrate: bool = True, world_size: int = 1,
             runs_root: Path | None = None, background: bool = False,
             window_tokens: float | None = None) -> Estimate:
    """Parameters, peak memory, FLOPs and time of training `config` on `device`.

    `config` is a RunConfig, or a ModelConfig with `train` (default TrainConfig()). `device="auto"`
    uses the config's own device setting. `train_tokens` (tokens in the training split) gives
    steps per epoch; without it only a `max_steps` run has a total.

    The time, best source first: runs of the same shape under `runs_root` that trained on this machine
    (their measured tokens/s); an earlier calibration in this process; with `calibrate`, timing real
    steps now when cheap (`timing.CALIBRATE_BELOW_S`) and the machine is not busy (`timing.BUSY_CORES`), in a
    background thread with `background` (the estimate then says `pending`); else the measured device
    throughput. `window_tokens` is the average width of a batch when it is less than seq_len (a QA
    fine-tune pads each batch to its longest example: `QAStore.mean_window_tokens`); the step time is
    scaled to it. Raises GenAIError for an unavailable device or precision.
    """
    if isinstance(config, RunConfig):
        m, t = config.model, config.train
    else:
        m, t = config, train or TrainConfig()
    dev = resolve_device(t.device if device == "auto" else device)
    precision_path = precision_choice(t.precision, dev, m.d_model)
    precision = precision_path.value
    muon_path = None
    if t.optimizer == "muon" and m.arch == "gpt":  # time the Newton-Schulz dtype the run will take
        muon_path = muon_precision_choice(t.muon_precision, dev, m.d_model)
        t = t.model_copy(update={"muon_precision": muon_path.value})
    if dev.type == "cpu":  # the thread count a run started now would get (the time depends on it)
        t = t.model_copy(update={"num_threads": resolve_threads(t.num_threads, dev)})
    mem = memory_estimate(m, t, dev.type, precision, available_memory(dev))
    params = count_params(m)

    tokens_per_step = t.batch_size * m.seq_len * t.grad_accum_steps * world_size
    fpt = flops_per_token(m)
    busy = busy_cores() if dev.type == "cpu" and calibrate else 0.0
    history = history_timing(m, t, dev, precision, Path(runs_root)) if runs_root is not None else None
    if history is not None:
        timing, cached, pending = history, False, False
    else:
        timing, cached, pending = step_timing(m, t, dev, precision, mem, calibrate, busy=busy, background=background)
    width = min(1.0, window_tokens / m.seq_len) if window_tokens and history is None else 1.0
    sec_micro = (timing.forward + timing.backward) * width
    sec_step = t.grad_accum_steps * sec_micro + timing.optimizer

    spe = steps_per_epoch(train_tokens, t.batch_size, m.seq_len, t.grad_accum_steps, world_size) \
        if train_tokens else None
    total_steps, total_seconds, overhead = _run_length(t, spe, sec_step, timing)
    compiled = resolve_compile(t.compile, dev, m.d_model, "lm", total_steps)
    if compiled and total_seconds is not None and overhead is not None:
        # Compiling costs its time once; the compiled steps (measured 0.8x eager at d_model 256) are not
        # timed here, so the estimate errs long.
        total_seconds += COMPILE_SECONDS
        overhead += COMPILE_SECONDS

    fits, message = _fit_message(mem, dev)
    return Estimate(
        arch=m.arch, device=str(dev), precision=precision, precision_why=precision_path.why,
        muon_precision=muon_path.value if muon_path else None, muon_precision_why=muon_path.why if muon_path else "",
        threads=t.num_threads if dev.type == "cpu" else None,
        compiled=compiled,
        params=params, params_matmul=matmul_params(m),
        memory=mem, tokens_per_step=tokens_per_step, flops_per_token=fpt,
        flops_per_step=fpt * t.batch_size * m.seq_len * t.grad_accum_steps,
        seconds_per_step=sec_step, seconds_per_micro_batch=sec_micro, seconds_per_update=timing.optimizer,
        tokens_per_second=tokens_per_step / sec_step if sec_step > 0 else math.inf,
        steps_per_epoch=spe, seconds_per_epoch=spe * sec_step if spe is not None else None,
        total_steps=total_steps, total_seconds=total_seconds, overhead_seconds=overhead,
        calibrated=timing.calibrated, pending=pending, busy_cores=busy, cached=cached,
        method=timing.method + (" (cached)" if cached else ""), fits=fits,
        message="; ".join(m for m in (message, _busy_message(busy)) if m),
    )


def _run_length(t: TrainConfig, spe: int | None, sec_step: float,
                timing: StepTiming) -> tuple[int | None, float | None, float | None]:
    """Total steps, total seconds and the evaluation + sampling part of them (None when the length is unknown:
    no `max_steps` and no steps per epoch)."""
    if t.max_steps is not None:
        total_steps: int | None = t.max_steps
    elif spe is not None:
        total_steps = max(1, math.ceil((t.epochs or 1.0) * spe))  # RunConfig's default length is one epoch
    else:
        total_steps = None
    if total_steps is None:
        return None, None, None
    # The trainer evaluates on log steps that are also evaluation steps, and always at the end.
    n_evals = (total_steps - 1) // math.lcm(t.log_interval, t.eval_interval) + 1
    n_samples = ((total_steps - 1) // (t.sample_interval or t.eval_interval) + 1) if t.sample_tokens else 0
    overhead = n_evals * t.eval_batches * timing.forward + n_samples * t.sample_tokens * timing.token
    return total_steps, total_steps * sec_step + overhead, overhead


def _busy_message(busy: float) -> str:
    if busy < BUSY_CORES:
        return ""
    return (f"the machine is busy: other programs keep about {busy:.1f} of its {cpu_cores()} cores working, so "
            "training will be slower than this (and no step was timed now)")


def _fit_message(mem: MemoryEstimate, device: torch.device) -> tuple[bool, str]:
    if mem.available is None:
        return True, ""
    where = "in RAM" if device.type == "cpu" else f"on {device}"
    if mem.total <= TIGHT_SHARE * mem.available:
        return True, ""
    if mem.total <= mem.available:
        return True, (f"needs {format_bytes(mem.total)} of the {format_bytes(mem.available)} free {where}: "
                      "other programs may push it out of memory")
    batch_part = max(mem.activations, mem.logits) + mem.workspace
    state_part = mem.weights + mem.gradients + mem.optimizer
    if mem.logits >= mem.activations and batch_part >= state_part:
        hint = "lower batch_size or seq_len, or use a smaller vocabulary (the batch x seq_len x vocab logits dominate)"
    elif batch_part >= state_part:
        hint = "lower batch_size or seq_len (grad_accum_steps keeps the effective batch)"
    else:
        hint = "lower d_model or n_layers (weights, gradients and AdamW state dominate)"
    return False, f"needs {format_bytes(mem.total)} but {format_bytes(mem.available)} is free {where}: {hint}"


__all__ = [
    "Estimate",
    "MemoryEstimate",
    "attention_path",
    "available_memory",
    "clear_cache",
    "count_params",
    "device_throughput",
    "estimate",
    "flops_per_token",
    "matmul_params",
    "measure_cpu_peak_memory",
    "memory_estimate",
    "random_batch",
    "warm_up",
]
