"""A grid of runs: which knobs an exploration may vary, reading their values, and planning the runs.

The Train page's *Explore* gathers up to `MAX_KNOBS` knobs with up to `MAX_VALUES` values each; every
combination becomes a run with the form's settings and those values, named after them. `plan_grid` checks
each cell the way a single run is checked (the config's bounds, the corpus's window limit, the name, the
memory estimate), so the grid is queued only when every cell can train.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from genai_core.config import ModelConfig, RunConfig, TrainConfig
from genai_core.data.tokenstore import seq_len_problem
from genai_core.errors import GenAIError, user_message
from genai_core.runs.folder import slugify
from genai_core.train.estimates import estimate

EXPLORABLE: dict[str, tuple[Literal["model", "train"], type]] = {
    "d_model": ("model", int), "n_layers": ("model", int), "n_heads": ("model", int), "seq_len": ("model", int),
    "dropout": ("model", float), "lr": ("train", float), "batch_size": ("train", int),
    "warmup_steps": ("train", int), "weight_decay": ("train", float),
}
"""Knobs a grid can vary: name -> (config section, value type)."""
EXAMPLES: dict[str, str] = {
    "d_model": "64, 128, 256", "n_layers": "2, 4, 6", "n_heads": "2, 4, 8", "seq_len": "64, 128, 256",
    "dropout": "0, 0.1, 0.2", "lr": "0.001, 0.003, 0.01", "batch_size": "8, 16, 32", "warmup_steps": "0, 50, 200",
    "weight_decay": "0, 0.01, 0.1",
}
"""What the values box of each knob suggests (its placeholder)."""
MAX_KNOBS = 2
MAX_VALUES = 4
"""At most 4 x 4 = 16 runs: a grid larger than that is better planned in a script than in a form."""


@dataclass
class GridCell:
    """One planned run: its config, or why it cannot train (`problem`), and its estimated size and time."""

    name: str
    config: RunConfig | None
    problem: str = ""
    params: int | None = None
    seconds: float | None = None
    seconds_per_step: float | None = None
    pending: bool = False
    """Its steps are being timed in the background: ask again for the calibrated time."""

    def note(self) -> dict[str, Any]:
        """What the run's status keeps of the estimate it was queued with (shown beside the measured speed)."""
        return {"estimated_step_s": self.seconds_per_step, "estimated_total_s": self.seconds}


def read_values(raw: str, kind: type) -> list[Any]:
    """`"64, 128"` -> `[64, 128]`: the values of a knob's type, in order, separated by commas, spaces or ;
    (a whole float such as "64.0" reads as an int; "1.5" does not). What a grid and a sweep's space both read."""
    parts = [p for p in re.split(r"[,\s;]+", raw.strip()) if p]
    try:
        return [kind(float(p)) if kind is int and float(p).is_integer() else kind(p) for p in parts]
    except ValueError:
        raise GenAIError(f"could not read {raw!r} as {kind.__name__} values separated by commas") from None


def parse_values(raw: str, kind: type) -> list[Any]:
    """`read_values`, up to MAX_VALUES distinct values."""
    values = list(dict.fromkeys(read_values(raw, kind)))
    if len(values) > MAX_VALUES:
        raise GenAIError(f"give at most {MAX_VALUES} values per knob (got {len(values)})")
    return values


def value_label(v: float) -> str:
    """How a knob value reads in a run name: `64`, `0.003`, `1e-05`."""
    return str(v) if isinstance(v, int) else f"{v:g}"


def cell_name(prefix: str, values: dict[str, Any]) -> str:
    """`explore-d_model-64-lr-0.003`: the prefix, then each knob and its value, as a valid run name."""
    return slugify("-".join([prefix, *(f"{k}-{value_label(v)}" for k, v in values.items())]))


def _cell_config(base: RunConfig, name: str, values: dict[str, Any]) -> RunConfig:
    """`base` with the cell's values (validated by the config models, as any run's are)."""
    in_section = {section: {k: v for k, v in values.items() if EXPLORABLE[k][0] == section}
                  for section in ("model", "train")}
    model = ModelConfig(**{**base.model.model_dump(), **in_section["model"]})
    train = TrainConfig(**{**base.train.model_dump(), **in_section["train"]})
    return RunConfig(name=name, data=base.data, model=model, train=train)


def plan_grid(base: RunConfig, axes: dict[str, list[Any]], prefix: str, *, runs_root: Path,
              max_seq_len: int | None = None, train_tokens: int | None = None,
              calibrate: bool = False) -> list[GridCell]:
    """Every combination of `axes` (knob -> values) as a checked cell, in the order they would be queued.

    `max_seq_len` and `train_tokens` describe the prepared corpus (None when not known yet). Each cell's time is
    the Train page's estimate of that config: runs of its shape that trained here, else timed steps; with
    `calibrate`, the cells not timed yet are timed in the background, one after another (`pending` until then),
    so a table asked again shows the timed figure rather than the throughput model's guess.
    """
    unknown = [k for k in axes if k not in EXPLORABLE]
    if unknown:
        raise GenAIError(f"cannot vary {', '.join(unknown)} in a grid: choose from {', '.join(EXPLORABLE)}")
    if len(axes) > MAX_KNOBS:
        raise GenAIError(f"vary at most {MAX_KNOBS} knobs in one grid (got {len(axes)})")
    cells = []
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo, strict=True))
        cell = GridCell(name=cell_name(prefix, values), config=None)
        try:
            cell.config = _cell_config(base, cell.name, values)
        except (ValidationError, GenAIError) as e:
            cell.problem = user_message(e) or str(e)
            cells.append(cell)
            continue
        if max_seq_len is not None:
            cell.problem = seq_len_problem(cell.config.model.seq_len, max_seq_len) or ""
        if (Path(runs_root) / cell.name).exists():
            cell.problem = "a run of this name exists (change the prefix)"
        if not cell.problem:
            _estimate_cell(cell, train_tokens, runs_root, calibrate)
        cells.append(cell)
    return cells


def _estimate_cell(cell: GridCell, train_tokens: int | None, runs_root: Path, calibrate: bool) -> None:
    assert cell.config is not None
    try:
        est = estimate(cell.config, train_tokens=train_tokens, calibrate=calibrate, background=calibrate,
                       runs_root=runs_root)
    except GenAIError as e:
        cell.problem = str(e)
        return
    cell.params, cell.seconds, cell.seconds_per_step = est.params, est.total_seconds, est.seconds_per_step
    cell.pending = est.pending
    if est.fit_problem:
        cell.problem = est.fit_problem
