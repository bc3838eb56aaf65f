"""Where and how a run computes: its device and CPU threads, and each `auto` path (autocast, Muon's
Newton-Schulz precision, torch.compile) resolved once, at the run's first start, and read back from status.json
(`auto_paths`) on every resume, on any machine, so that a resumed run continues on its path."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from genai_core.config import RunConfig, TrainConfig
from genai_core.devices import (
    Choice,
    muon_precision_choice,
    precision_choice,
    resolve_compile,
    resolve_device,
    resolve_precision,
    resolve_threads,
)
from genai_core.errors import GenAIError
from genai_core.speed_probe import BF16_ENV
from genai_core.train.distributed import DistInfo
from genai_core.train.optim import NS_DTYPES


def run_device(t: TrainConfig, dist: DistInfo) -> tuple[torch.device, int]:
    """The device (this rank's GPU under torchrun) and CPU threads; applies the thread count and, on CUDA,
    TF32 matmuls."""
    device = resolve_device(t.device)
    if device.type == "cuda" and dist.world > 1:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    threads = resolve_threads(t.num_threads, device)
    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device, threads


def auto_paths(t: TrainConfig, d_model: int, recorded: dict[str, Any], device: torch.device,
               notice: Callable[[str], None]) -> dict[str, Choice]:
    """The autocast and Newton-Schulz precisions. An `auto` one is resolved once, at the run's first start
    (probing this machine if nothing was measured yet: a few seconds, once per machine), and taken from
    `recorded` (status.json's `auto_paths`; empty for a new run) on every resume. A config value other than
    `auto`, or $GENAI_BF16, overrides the record; a recorded path this device cannot run is chosen again, with
    a `notice`."""
    fresh = {"precision": lambda: precision_choice(t.precision, device, d_model, measure="now"),
             "muon_precision": lambda: muon_precision_choice(t.muon_precision, device, d_model, measure="now")}
    paths: dict[str, Choice] = {}
    for name, choose in fresh.items():
        before = recorded.get(name)
        if getattr(t, name) == "auto" and not os.environ.get(BF16_ENV) and isinstance(before, dict):
            value = str(before.get("value"))
            try:  # the recorded precision must still run here (fp16 resumed on a CPU does not)
                if name == "precision":
                    resolve_precision(value, device)  # GenAIError when this device cannot run it
                elif value not in NS_DTYPES:
                    raise KeyError(value)
                paths[name] = Choice(value, f"{before.get('why', '')} (chosen at the run's first start)")
                continue
            except (GenAIError, KeyError):
                notice(f"{name} {before.get('value')!r}, chosen at this run's first start, cannot run on {device}: "
                       "choosing again")
        paths[name] = choose()
    return paths


def compile_choice(config: RunConfig, recorded: dict[str, Any], device: torch.device, total: int) -> bool:
    """`TrainConfig.compile`, its `auto` resolved once at the run's first start and kept on resume."""
    before = recorded.get("compile")
    if config.train.compile is None and isinstance(before, dict) and isinstance(before.get("value"), bool):
        return bool(before["value"])
    return resolve_compile(config.train.compile, device, config.model.d_model, config.task, total)
