"""A grid sweep's cells planned before it starts: each cell checked the way a single run is checked (the config's
bounds, the corpus's window limit, the run name, the memory estimate) and timed, so the Explore page shows what
every cell will cost and which cannot train before anything is queued."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai_core.config import RunConfig
from genai_core.data.tokenstore import seq_len_problem
from genai_core.errors import GenAIError
from genai_core.explore.settings import SweepSettings
from genai_core.explore.space import SearchSpace
from genai_core.explore.sweep import grid_cells, trial_name
from genai_core.train.estimates import estimate


@dataclass
class GridCell:
    """One planned trial: its config, or why it cannot train (`problem`), and its estimated size and time."""

    name: str
    values: dict[str, Any]
    config: RunConfig | None
    problem: str = ""
    params: int | None = None
    seconds: float | None = None
    seconds_per_step: float | None = None
    pending: bool = False
    """Its steps are being timed in the background: ask again for the calibrated time."""


def plan_grid(base: RunConfig, space: SearchSpace, settings: SweepSettings, sweep: str, *, runs_root: Path,
              max_seq_len: int | None = None, train_tokens: int | None = None,
              calibrate: bool = False) -> list[GridCell]:
    """The cells the grid sweep `sweep` would train, named and ordered as it will (`sweep.grid_cells`), each
    checked and estimated.

    `max_seq_len` and `train_tokens` describe the prepared corpus (None when not known yet). Each cell's time is
    the Train page's estimate of that config: runs of its shape that trained here, else timed steps; with
    `calibrate`, the cells not timed yet are timed in the background, one after another (`pending` until then),
    so a table asked again shows the timed figure rather than the throughput model's guess.
    """
    cells = []
    for number, values in enumerate(grid_cells(space, base, settings)):
        cell = GridCell(name=trial_name(sweep, number), values=values, config=None)
        try:
            cell.config = space.config_for(base, values).model_copy(update={"name": cell.name})
        except GenAIError as e:
            cell.problem = str(e).split(": ", 1)[-1]  # the values are in the row already
            cells.append(cell)
            continue
        if max_seq_len is not None:
            cell.problem = seq_len_problem(cell.config.model.seq_len, max_seq_len) or ""
        if (Path(runs_root) / cell.name).exists():
            cell.problem = "a run of this name exists (change the sweep's name)"
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
