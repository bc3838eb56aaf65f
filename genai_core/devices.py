"""Device and precision choice, and a description of the hardware for the UI."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch

from genai_core import speed_probe
from genai_core.errors import GenAIError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GenAIError("device cuda was requested but no CUDA GPU is available; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GenAIError("device mps was requested but Apple MPS is not available; use --device auto or cpu")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise GenAIError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return torch.device(name)


@dataclass(frozen=True)
class Choice:
    """What an `auto` setting resolved to on this machine, and why (the Train page and `bench --paths` say it)."""

    value: str
    why: str


ProbeMode = Literal["now", "background", "never"]


def precision_choice(precision: str, device: torch.device, d_model: int = 128,
                     measure: ProbeMode = "background") -> Choice:
    """The autocast precision of the forward and backward passes. `auto`: bf16 on GPUs that support it, fp16
    (with loss scaling) on older GPUs; on a CPU bf16 where a training step of about this width was measured
    at least 10% faster in bf16 on this machine (`speed_probe`; CPU flags are the guess until then), else
    fp32. An explicit precision the device cannot run is an error."""
    if precision == "auto":
        if device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return Choice("bf16", "this GPU runs bf16 natively")
            return Choice("fp16", "this GPU has no bf16")
        if device.type == "cpu":
            v = speed_probe.verdict(measure)
            return Choice("bf16" if v.bf16_pays("train_step", d_model) else "fp32", v.why("train_step", d_model))
        return Choice("fp32", f"{device.type}: bf16 autocast not measured there")
    if precision == "fp16" and device.type != "cuda":
        raise GenAIError("fp16 needs a CUDA GPU (on CPU use fp32, or bf16 on CPUs with bf16 support)")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise GenAIError("this GPU does not support bf16; use fp16 or auto")
    return Choice(precision, "set in the config")


def resolve_precision(precision: str, device: torch.device, d_model: int = 128,
                      measure: ProbeMode = "background") -> str:
    """`precision_choice`'s value."""
    return precision_choice(precision, device, d_model, measure).value


def muon_precision_choice(requested: str, device: torch.device, d_model: int = 128,
                          measure: ProbeMode = "background") -> Choice:
    """The dtype of Muon's Newton-Schulz iteration. `auto`: bf16 on CUDA (tensor cores), and on a CPU where
    the iteration on a block matrix of about this width was measured at least 10% faster in bf16 here;
    fp32 elsewhere (MPS too: not measured there)."""
    if requested != "auto":
        return Choice(requested, "set in the config")
    if device.type == "cuda":
        return Choice("bf16", "GPUs run bf16 matmuls natively")
    if device.type == "cpu":
        v = speed_probe.verdict(measure)
        return Choice("bf16" if v.bf16_pays("newton_schulz", d_model) else "fp32", v.why("newton_schulz", d_model))
    return Choice("fp32", f"{device.type}: bf16 not measured there")


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


THREADS_ENV = "GENAI_NUM_THREADS"
"""Pins the thread count of runs that leave it open (the tests set 1: the same reductions in the same order)."""
_BUSY: tuple[float, float] = (-1e9, 0.0)  # (monotonic time, busy cores) of the last sample


def busy_cores(sample_s: float = 0.3, max_age_s: float = 5.0) -> float:
    """How many cores *other* programs keep busy right now: the machine's CPU time over a short sample, less
    this process's own (its training threads are not a neighbour). Reused for `max_age_s`, so that a page
    rerun does not wait on it every time."""
    import time

    import psutil

    global _BUSY
    now = time.monotonic()
    if now - _BUSY[0] <= max_age_s:
        return _BUSY[1]
    me = psutil.Process()

    def sample() -> tuple[float, float, float, float]:
        """(wall, all CPU time, idle CPU time, this process's CPU time), from one reading of each counter."""
        t = psutil.cpu_times()
        own = me.cpu_times()
        return time.monotonic(), sum(t), t.idle + getattr(t, "iowait", 0.0), own.user + own.system

    w0, total0, idle0, own0 = sample()
    time.sleep(sample_s)
    w1, total1, idle1, own1 = sample()
    busy = ((total1 - total0) - (idle1 - idle0) - (own1 - own0)) / max(w1 - w0, 1e-6)
    _BUSY = (time.monotonic(), max(0.0, busy))
    return _BUSY[1]


def resolve_threads(requested: int | None, device: torch.device, *, busy: float | None = None) -> int:
    """Torch threads for a training run: the requested number, else the cores that are free now (at least 1).

    Why not torch's default (every core): with another program busy on a 2-core machine, 2 threads ran
    6-10x slower than 1 (the threads wait on each other at every op); on an idle one, 2 threads are
    ~1.5x faster than 1. On a GPU the CPU only feeds the device: torch's default is kept.
    """
    if requested:
        return requested
    pinned = os.environ.get(THREADS_ENV, "")
    if pinned.isdigit() and int(pinned) > 0:
        return int(pinned)
    if device.type != "cpu":
        return torch.get_num_threads()
    cores = cpu_cores()
    if busy is None:
        busy = busy_cores()
    return max(1, min(cores, round(cores - busy)))


COMPILE_MIN_D_MODEL = 256
COMPILE_MIN_STEPS = 1000


def resolve_compile(requested: bool | None, device: torch.device, d_model: int, task: str,
                    total_steps: int | None) -> bool:
    """Whether a run compiles its model: as requested, else where it measurably pays (see TrainConfig.compile)."""
    if requested is not None:
        return requested
    return (device.type == "cpu" and task == "lm" and d_model >= COMPILE_MIN_D_MODEL
            and total_steps is not None and total_steps >= COMPILE_MIN_STEPS)


def autocast(device: torch.device, precision: str) -> Any:
    """Autocast context for the forward pass (a no-op for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def device_info() -> dict[str, Any]:
    """What training will run on: GPU name and memory, or CPU cores and RAM."""
    import psutil

    dev = resolve_device("auto")
    info: dict[str, Any] = {"device": dev.type, "torch": torch.__version__,
                            "cpu_threads": torch.get_num_threads(), "cpu_cores": os.cpu_count(),
                            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1)}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(name=p.name, memory_gb=round(p.total_memory / 2**30, 1), gpus=torch.cuda.device_count(),
                    bf16=torch.cuda.is_bf16_supported())
    elif dev.type == "mps":
        info.update(name="Apple GPU (MPS)")
    else:
        info.update(name=f"CPU ({os.cpu_count()} cores)")
    return info
