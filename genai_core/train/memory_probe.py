"""The ground truth for the memory estimate: peak resident memory of a few CPU training steps, measured in a fresh
interpreter (tests and benchmarks hold `estimate(...).memory.total` against it).

The child process runs `_measure_child` of this module; `measure_cpu_peak_memory` starts it and reads its answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from genai_core.config import REPO_ROOT, DataConfig, ModelConfig, RunConfig, TrainConfig, child_env
from genai_core.devices import resolve_precision
from genai_core.train.timing import random_batch

CHILD_SCRIPT = "from genai_core.train.memory_probe import _measure_child; _measure_child()"
"""What the child interpreter runs: `_measure_child` below."""


def _measure_child() -> None:
    """Body of the child process of `measure_cpu_peak_memory`: argv = [config JSON, steps]."""
    import json
    import resource
    import sys

    from genai_core.models import build_model
    from genai_core.train.optim import TrainStep, make_optimizer

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    cfg = RunConfig.model_validate_json(sys.argv[1])
    steps = int(sys.argv[2])
    m, t = cfg.model, cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    device = torch.device("cpu")
    torch.manual_seed(t.seed)
    batch = random_batch(m, t.batch_size, device)
    baseline = rss()
    model = build_model(m)
    step = TrainStep(model, make_optimizer(model, t, device), t, device,
                     resolve_precision(t.precision, device, m.d_model))
    model.train()
    for _ in range(steps):
        step(lambda: batch).loss.item()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux
    print(json.dumps({"baseline": baseline, "peak": hwm, "measured": hwm - baseline, "ru_maxrss": maxrss}))


def measure_cpu_peak_memory(config: RunConfig | ModelConfig, train: TrainConfig | None = None, *, steps: int = 3,
                            env: dict[str, str] | None = None, timeout: float = 300.0) -> dict[str, int]:
    """Measured peak memory of `steps` CPU training steps, in a fresh interpreter (Linux).

    The child imports torch, builds a random batch and records its resident memory (`baseline`),
    then builds the model and fused AdamW and trains as the Trainer does; `measured` is the peak
    resident memory minus the baseline. The ground truth that tests and benchmarks hold
    `estimate(...).memory.total` against.

    The peak is the child's VmHWM, the high-water mark of its own address space. `ru_maxrss` (also
    returned) is not usable here: Linux folds the RSS the process had at fork -- a copy of its
    parent's -- into it at exec, so a child of a 600 MB pytest or app process starts with a
    600 MB "peak" (seen: a 141 MB run read as 283 MB).
    """
    import json
    import subprocess
    import sys

    if isinstance(config, RunConfig):
        cfg = config
    else:
        cfg = RunConfig(data=DataConfig(corpus=Path("unused.txt")), model=config, train=train or TrainConfig())
    proc = subprocess.run([sys.executable, "-c", CHILD_SCRIPT, cfg.model_dump_json(), str(steps)],
                          capture_output=True, text=True, env=child_env(env), cwd=str(REPO_ROOT), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
