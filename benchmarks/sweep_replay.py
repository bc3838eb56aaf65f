"""Replay sweeps on a finished grid: which sampler and early stopping would have found its best, for what compute?

    python benchmarks/sweep_replay.py RUNS_DIR [--grid grid] [--seeds 10] [--noise 0.0137]

A grid sweep (every cell trained to the end, as `bench --sweep` leaves in `OUT/runs/.sweeps/grid`) holds every
cell's validation loss at every rung. A trial's curve does not depend on whether a pruner later stops it (same
seed, same data, deterministic on CPU), so any sampler and pruner can be replayed against those curves in seconds
instead of hours: Optuna asks for a cell, the replay reports the cell's recorded losses rung by rung, and a pruned
cell costs only the steps it trained. Repeated draws are told the earlier result, as `Sweep` does.

Prints, per sampler x pruner, over `--seeds` sampler seeds (and study names, which deal Hyperband's brackets):
the mean gap of the best found to the grid's best, the mean share of the grid's FLOPs spent, and in how many seeds
the sweep was within `--noise` for at most 35 % of the compute (the issue's goal). Knob values and FLOPs per step
come from the trials' own run folders. Checked against real sweeps: replayed with a real sweep's name and seed,
TPE with ASHA and with Hyperband on the 1000-step grid found exactly the real sweeps' best (1.8674 and 1.8405).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from genai_core.explore.sweep import Sweep, flops_per_step, sweeps_dir
from genai_core.runs.folder import Run

GOAL_COMPUTE = 0.35
REPEATS_BEFORE_DONE = 50
"""Draws in a row that only repeat earlier trials before the search is over (`Sweep._ask_new`'s tries)."""


def load_grid(runs: Path, name: str) -> tuple[dict[str, list[Any]], dict[tuple, dict[int, float]], dict[tuple, float]]:
    """The grid's knobs and values; per cell (a tuple of values) its val loss by step and its FLOPs per step."""
    sweep = Sweep.open(sweeps_dir(runs) / name, runs)
    grid = sweep.space.grid()
    assert grid is not None, "not a grid sweep"
    curves, cost = {}, {}
    for t in sweep.summary()["trials"]:
        key = tuple(t["params"][k] for k in grid)
        run = Run(runs / t["run"])
        curves[key] = {int(r["step"]): float(r["val_loss"]) for r in run.metrics() if r.get("val_loss") is not None}
        cost[key] = flops_per_step(run.config())
    return grid, curves, cost


def replay(grid: dict[str, list[Any]], curves: dict[tuple, dict[int, float]], cost: dict[tuple, float],
           sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner,
           study_name: str = "replay") -> tuple[float, float]:
    """(best final val loss found, FLOPs spent) of one sweep of as many trials as the grid has cells (a repeated
    draw is told the earlier outcome and does not count, as in `Sweep`). Hyperband
    deals trials into brackets by a hash of the study's name and the trial's number, so `study_name` matters too:
    the name of a real sweep and its sampler seed replay that sweep."""
    study = optuna.create_study(study_name=study_name, sampler=sampler, pruner=pruner)
    space = {k: optuna.distributions.CategoricalDistribution(v) for k, v in grid.items()}
    told: dict[tuple, Any] = {}
    found, spent = float("inf"), 0.0
    repeats = 0
    while len(told) < len(curves) and repeats < REPEATS_BEFORE_DONE:  # as many trials as cells, as `Sweep` asks
        trial = study.ask(space)
        key = tuple(trial.params[k] for k in grid)
        if key in told:  # a repeat: the earlier outcome, nothing trained, not a trial of the sweep
            state, value = told[key]
            study.tell(trial, value, state=state)
            repeats += 1
            continue
        repeats = 0
        curve = curves[key]
        end = max(curve)
        for step in sorted(curve):
            trial.report(curve[step], step)
            if step < end and trial.should_prune():
                spent += cost[key] * step
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                told[key] = (optuna.trial.TrialState.PRUNED, None)
                break
        else:
            spent += cost[key] * end
            study.tell(trial, curve[end])
            told[key] = (optuna.trial.TrialState.COMPLETE, curve[end])
            found = min(found, curve[end])
    return found, spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, help="The runs folder holding the grid sweep's trials.")
    p.add_argument("--grid", default="grid", help="The grid sweep's name.")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--noise", type=float, required=True, help="The seed noise: a gap up to this is a tie.")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    grid, curves, cost = load_grid(args.runs, args.grid)
    ends = {max(c) for c in curves.values()}
    assert len(ends) == 1, f"every cell must have trained to the same end, found {sorted(ends)}"
    end = ends.pop()
    rung = min(min(c) for c in curves.values())
    best = min(c[end] for c in curves.values())
    full = sum(cost[k] * end for k in curves)
    samplers: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
        "tpe": lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=5),
        "random": lambda s: optuna.samplers.RandomSampler(seed=s)}
    pruners: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
        "asha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=rung, reduction_factor=3),
        "asha, reduction 2": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=rung, reduction_factor=2),
        "hyperband (default)": lambda: optuna.pruners.HyperbandPruner(min_resource=rung, max_resource=end,
                                                                      reduction_factor=3),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=rung - 1),
        "percentile 25": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=3, n_warmup_steps=rung - 1),
        "none": lambda: optuna.pruners.NopPruner()}
    print(f"{len(curves)} cells of {', '.join(grid)}; best {best:.4f}; a tie within {args.noise}; "
          f"{args.seeds} sampler seeds each")
    print(f"{'pruner':<22} {'sampler':<7} {'mean gap':>9} {'mean compute':>13} {'goal met':>9}")
    rows = []
    for pname, make_pruner in pruners.items():
        for sname, make_sampler in samplers.items():
            results = [replay(grid, curves, cost, make_sampler(seed), make_pruner(), f"{sname}-{pname}-{seed}")
                       for seed in range(args.seeds)]
            gaps = [f - best for f, _ in results]
            shares = [s / full for _, s in results]
            met = sum(g <= args.noise and c <= GOAL_COMPUTE for g, c in zip(gaps, shares, strict=True))
            rows.append({"pruner": pname, "sampler": sname, "gap": sum(gaps) / len(gaps),
                         "compute": sum(shares) / len(shares), "met": met})
            print(f"{pname:<22} {sname:<7} {rows[-1]['gap']:>+9.4f} {rows[-1]['compute']:>12.0%} "
                  f"{met:>5}/{args.seeds}")
    (args.runs / "sweep_replay.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
