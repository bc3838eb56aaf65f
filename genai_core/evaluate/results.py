"""What both evaluations share: opening the run to evaluate, and saving a result in its folder.

A result is saved as eval/<kind>-<name>.json in the run folder (`kind` is "perplexity" or "qa", `name` the data
source); the latest evaluation of a source replaces the previous one. The Runs and Evaluate pages read them back
with `Run.saved_evaluations()`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from genai_core.errors import CheckpointError
from genai_core.files import atomic_write_json, json_safe
from genai_core.runs.folder import Run

Progress = Callable[[float, str], None]
"""Called with the fraction done (0-1) and a line saying what was done."""


def open_run(run: Run | Path | str) -> Run:
    """The run folder to evaluate; a CheckpointError when it is not one."""
    run = run if isinstance(run, Run) else Run(run)
    if not run.exists():
        raise CheckpointError(f"{run.path} is not a run folder (no config.json)")
    return run


def checkpoint_step(run: Run) -> int:
    """The training step of the run's latest checkpoint (the one evaluated); a CheckpointError when it has none."""
    ckpt = run.latest_checkpoint()
    if ckpt is None:
        raise CheckpointError(f"run {run.name} has no checkpoint yet")
    return Run.step_of(ckpt)


def save_evaluation(run: Run, result: dict[str, Any]) -> Path:
    """Write a result as eval/<kind>-<name>.json in the run folder (atomically; it replaces the previous one)."""
    path = run.eval_path / f"{result['kind']}-{result['name']}.json"
    atomic_write_json(path, json_safe(result))
    return path
