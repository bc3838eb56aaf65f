"""DistributedDataParallel under torchrun: 2 CPU processes over gloo, rank 0 writes the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genai_core.model import load_state
from genai_core.models import build_model
from genai_core.runs.folder import Run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_training_writes_one_consistent_run(tmp_path: Path, tiny_txt: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "genai_core", "train", "--corpus", str(tiny_txt), "--out", str(out), "--device", "cpu",
           "--d-model", "32", "--n-heads", "2", "--n-layers", "2", "--seq-len", "16", "--batch-size", "4",
           "--max-steps", "20", "--eval-interval", "10", "--log-interval", "5", "--warmup-steps", "2",
           "--sample-tokens", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Run(out)
    status = run.status()
    assert status["state"] == "completed" and status["world_size"] == 2
    # One step sees both ranks' batches.
    assert status["tokens_per_step"] == 2 * 4 * 16
    rows = run.metrics()
    assert [r["step"] for r in rows] == [5, 10, 15, 20]  # written once, by rank 0 only
    assert rows[-1]["tokens"] == 20 * 2 * 4 * 16
    assert all(len(json.dumps(r)) for r in rows)
    # The checkpoint holds one model (DDP's 'module.' prefix stripped) and it samples.
    weights, _, state = run.load_checkpoint()
    assert not any(k.startswith("module.") for k in weights)
    assert len(state["rng"]) == 2  # each rank's batch RNG, so a resume continues every rank's stream
    model = build_model(run.config().model)
    load_state(model, weights)
    assert torch.isfinite(model(torch.zeros(1, 4, dtype=torch.long))[0]).all()
