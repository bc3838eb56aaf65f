"""Planning a grid sweep's cells (`genai_core.explore.grid`): each cell checked and timed before anything runs, in the
order the sweep trains them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import tiny_config

from genai_core.errors import GenAIError
from genai_core.explore import grid
from genai_core.explore.settings import SweepSettings
from genai_core.explore.space import SearchSpace, read_values

GRID = SweepSettings(trials=1000, sampler="grid", pruner="none")


def test_every_combination_becomes_a_checked_cell_in_the_sweeps_order(tiny_txt: Path, tmp_path: Path) -> None:
    base = tiny_config(tiny_txt)
    space = SearchSpace.from_dict({"d_model": [32, 48], "lr": [0.003, 1e-5]})
    names = [f"g-t{i:02d}" for i in range(4)]
    cells = grid.plan_grid(base, space, GRID, "g", runs_root=tmp_path, max_seq_len=1000, train_tokens=5000)
    assert [c.name for c in cells] == names
    assert [c.values for c in cells] == [{"d_model": 32, "lr": 0.003}, {"d_model": 32, "lr": 1e-5},
                                         {"d_model": 48, "lr": 0.003}, {"d_model": 48, "lr": 1e-5}]
    assert all(not c.problem and c.config is not None for c in cells)
    assert [(c.config.model.d_model, c.config.train.lr, c.config.name) for c in cells if c.config] == [
        (32, 0.003, "g-t00"), (32, 1e-5, "g-t01"), (48, 0.003, "g-t02"), (48, 1e-5, "g-t03")]
    assert all(c.config and c.config.model.n_layers == base.model.n_layers for c in cells)  # the rest: the base's
    assert cells[0].params is not None and cells[2].params is not None and cells[2].params > cells[0].params
    assert all(c.seconds is not None and c.seconds > 0 for c in cells)
    two = GRID.model_copy(update={"trials": 2})
    assert len(grid.plan_grid(base, space, two, "g", runs_root=tmp_path)) == 2  # as many as the sweep's trials
    # Two at once, every cell to the end: the plan shows the order the sweep trains them in, costliest first.
    parallel = grid.plan_grid(base, space, GRID.model_copy(update={"parallel": 2}), "g", runs_root=tmp_path)
    assert [c.values["d_model"] for c in parallel] == [48, 48, 32, 32] and parallel[0].name == "g-t00"


def test_a_cell_that_cannot_train_says_why(tiny_txt: Path, tmp_path: Path) -> None:
    base = tiny_config(tiny_txt)
    (tmp_path / "g-t00").mkdir()
    space = SearchSpace.from_dict({"seq_len": [16, 64, 0]})
    cells = grid.plan_grid(base, space, GRID, "g", runs_root=tmp_path, max_seq_len=32)
    assert cells[0].problem == "a run of this name exists (change the sweep's name)"
    assert "seq_len 64 is too long for this corpus" in cells[1].problem
    assert cells[2].config is None and "seq_len" in cells[2].problem  # a config bound
    with pytest.raises(GenAIError, match="the grid sampler needs every knob as a list"):
        grid.plan_grid(base, SearchSpace.from_dict({"lr": {"low": 1e-3, "high": 1e-2}}), GRID, "g", runs_root=tmp_path)


def test_values_are_read_as_the_knobs_type() -> None:
    assert read_values("64, 128;256 128", int) == [64, 128, 256, 128]
    assert read_values("1e-3 3e-3", float) == [0.001, 0.003]
    assert read_values("64.0", int) == [64] and read_values("", int) == []
    with pytest.raises(GenAIError, match="as int values"):
        read_values("64, wide", int)


def test_cell_estimates_are_timed_in_the_background_and_then_hold(tiny_txt: Path, tmp_path: Path) -> None:
    from genai_core.train import timing

    timing.clear_cache()
    base = tiny_config(tiny_txt)
    space = SearchSpace.from_dict({"d_model": [32, 48, 64]})
    first = grid.plan_grid(base, space, GRID, "t", runs_root=tmp_path, calibrate=True)
    assert all(c.seconds and c.seconds_per_step for c in first)
    deadline = time.monotonic() + 120
    while any(c.pending for c in grid.plan_grid(base, space, GRID, "t", runs_root=tmp_path, calibrate=True)):
        assert time.monotonic() < deadline, "the cells were never timed"
        time.sleep(0.2)
    timed = grid.plan_grid(base, space, GRID, "t", runs_root=tmp_path, calibrate=True)
    again = grid.plan_grid(base, space, GRID, "t", runs_root=tmp_path, calibrate=True)
    assert [c.seconds for c in timed] == [c.seconds for c in again]  # the figure no longer moves
