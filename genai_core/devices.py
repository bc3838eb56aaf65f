"""Device and precision choice, and a description of the hardware for the UI."""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import torch

from .errors import GenAIError


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


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto`: bf16 on GPUs that support it, fp16 (with loss scaling) on older GPUs, fp32 elsewhere."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise GenAIError("fp16 needs a CUDA GPU (on CPU use fp32, or bf16 on CPUs with bf16 support)")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise GenAIError("this GPU does not support bf16; use fp16 or auto")
    return precision


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
