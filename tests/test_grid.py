"""Planning an exploration grid (`genai_core.train.grid`): names, checks per cell, value parsing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import tiny_config

from genai_core.errors import GenAIError
from genai_core.train import grid


def test_every_combination_becomes_a_named_checked_cell(tiny_txt: Path, tmp_path: Path) -> None:
    base = tiny_config(tiny_txt)
    cells = grid.plan_grid(base, {"d_model": [32, 48], "lr": [0.003, 1e-5]}, "sweep", runs_root=tmp_path,
                           max_seq_len=1000, train_tokens=5000)
    assert [c.name for c in cells] == ["sweep-d_model-32-lr-0.003", "sweep-d_model-32-lr-1e-05",
                                       "sweep-d_model-48-lr-0.003", "sweep-d_model-48-lr-1e-05"]
    assert all(not c.problem and c.config is not None for c in cells)
    assert [(c.config.model.d_model, c.config.train.lr) for c in cells if c.config] == [
        (32, 0.003), (32, 1e-5), (48, 0.003), (48, 1e-5)]
    assert all(c.config and c.config.model.n_layers == base.model.n_layers for c in cells)  # the rest: the base's
    assert cells[0].params is not None and cells[2].params is not None and cells[2].params > cells[0].params
    assert all(c.seconds is not None and c.seconds > 0 for c in cells)


def test_a_cell_that_cannot_train_says_why(tiny_txt: Path, tmp_path: Path) -> None:
    base = tiny_config(tiny_txt)
    (tmp_path / "g-seq_len-16").mkdir()
    cells = {c.name: c for c in grid.plan_grid(base, {"seq_len": [16, 64, 0]}, "g", runs_root=tmp_path,
                                               max_seq_len=32)}
    assert cells["g-seq_len-16"].problem == "a run of this name exists (change the prefix)"
    assert "seq_len 64 is too long for this corpus" in cells["g-seq_len-64"].problem
    assert cells["g-seq_len-0"].config is None and "seq_len" in cells["g-seq_len-0"].problem  # config bound


def test_values_are_parsed_as_the_knobs_type() -> None:
    assert grid.parse_values("64, 128;256 128", int) == [64, 128, 256]
    assert grid.parse_values("1e-3 3e-3", float) == [0.001, 0.003]
    assert grid.parse_values("", int) == []
    with pytest.raises(GenAIError, match="as int values"):
        grid.parse_values("64, wide", int)
    with pytest.raises(GenAIError, match="at most 4 values"):
        grid.parse_values("1 2 3 4 5", int)
    with pytest.raises(GenAIError, match="at most 2 knobs"):
        grid.plan_grid(tiny_config(Path("x.txt")), {"d_model": [32], "lr": [0.1], "dropout": [0.0]}, "g",
                       runs_root=Path("."))


def test_cell_estimates_are_timed_in_the_background_and_then_hold(tiny_txt: Path, tmp_path: Path) -> None:
    from genai_core.train import timing

    timing.clear_cache()
    base = tiny_config(tiny_txt)
    axes = {"d_model": [32, 48, 64]}
    first = grid.plan_grid(base, axes, "t", runs_root=tmp_path, calibrate=True)
    assert all(c.seconds and c.seconds_per_step for c in first)
    deadline = time.monotonic() + 120
    while any(c.pending for c in grid.plan_grid(base, axes, "t", runs_root=tmp_path, calibrate=True)):
        assert time.monotonic() < deadline, "the cells were never timed"
        time.sleep(0.2)
    timed = grid.plan_grid(base, axes, "t", runs_root=tmp_path, calibrate=True)
    again = grid.plan_grid(base, axes, "t", runs_root=tmp_path, calibrate=True)
    assert [c.seconds for c in timed] == [c.seconds for c in again]  # the figure no longer moves
    assert timed[0].note() == {"estimated_step_s": timed[0].seconds_per_step, "estimated_total_s": timed[0].seconds}
