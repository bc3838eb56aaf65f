"""`bench --sweep`: does a sweep with early stopping find the grid's best config in a third of its compute?

On Shakespeare (real text no one here wrote; `recipes.SHAKESPEARE`), a 3-knob space of 27 cells (lr, d_model,
n_layers, three choices each) searched four ways, every trial an ordinary run trained by the real trainer:

- grid: every cell to the end (the reference: its best config and its compute);
- the grid's best config again with two more training seeds: the seed noise (the spread of its three losses);
- TPE and random search, each with Hyperband (the sweeps' default early stopping) and with successive halving
  alone (ASHA), each with as many trials as the grid has cells.

Printed per arm: the best final validation loss, its config, trials completed and pruned, the compute (FLOPs
from the model's analytic count, and training seconds) against the grid's, and whether the best is within the
seed noise of the grid's best. `best_so_far.html` in the output folder plots the best loss found against compute
for the three arms. Trials train one at a time in this process (thread runner, 1 thread), about 15 minutes on a
2-core CPU (`--quick`: a 2x2x2 space of short runs, about 2 minutes). An arm already finished in `--out` is reused.

`--ray` (`ray_main`) times one sweep on a Ray cluster of one node and then of two (one CPU each, started on this
machine by `LocalRayCluster`): the same six trials, two submitted at a time, every trial a Ray job.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genai_core.bench.recipes import SHAKESPEARE
from genai_core.config import RunConfig, with_recipe
from genai_core.explore.space import SearchSpace
from genai_core.explore.sweep import SWEEP_FILE, Sweep, SweepSettings, sweeps_dir

SPACE = {"lr": [1e-3, 3e-3, 1e-2], "d_model": [64, 96, 128], "n_layers": [1, 2, 3]}
QUICK_SPACE = {"lr": [1e-3, 1e-2], "d_model": [32, 64], "n_layers": [1, 2]}
STEPS, EVALS = 400, 8
"""A trial's steps, and its evaluations (the rungs) over them."""
QUICK_STEPS, QUICK_RUNG = 80, 20
GOAL_COMPUTE = 0.35


def base_config(steps: int, rung: int, **train: Any) -> RunConfig:
    """The fixed part of every trial: a character GPT on Shakespeare, the classic recipe (AdamW: `lr` is the only
    learning rate), one thread, trained in this process (`train` overrides, e.g. another runner)."""
    return RunConfig.model_validate(with_recipe({
        "data": {"corpus": str(SHAKESPEARE), "tokenizer": "char"},
        "model": {"n_heads": 4, "seq_len": 64},
        "train": {"batch_size": 12, "max_steps": steps, "eval_interval": rung, "eval_batches": 20,
                  "log_interval": rung, "sample_tokens": 1, "num_threads": 1, "device": "cpu", "runner": "thread",
                  "checkpoint_seconds": 0, "seed": 0, **train},
    }, "classic"))


def _folders(out: str | None, prefix: str) -> tuple[Path, Path]:
    """The benchmark's folder (`out`, else a new temporary one) and the runs folder inside it."""
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix=prefix))
    runs = folder / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return folder, runs


def _logger(json_output: bool) -> Callable[[str], None]:
    """Progress lines on stdout, or nothing when the output is JSON."""
    return (lambda message: None) if json_output else (lambda message: print(message, flush=True))


def run_arm(runs: Path, name: str, base: RunConfig, space: SearchSpace, settings: SweepSettings,
            log: Any) -> dict[str, Any]:
    folder = sweeps_dir(runs) / name
    if (folder / SWEEP_FILE).is_file():  # an arm of an earlier run of the benchmark in --out: reused if finished
        done = Sweep.open(folder, runs).summary()
        if done.get("finished"):
            log(f"{name}: reused from {folder}")
            return done
    t0 = time.perf_counter()
    sweep = Sweep.create(folder, runs, base, space, settings)
    seen: set[str] = set()

    def tick(summary: dict[str, Any]) -> None:
        for t in summary["trials"]:
            key = f"{t['run']}:{t['state']}"
            if t["state"] in ("completed", "pruned", "failed") and key not in seen:
                seen.add(key)
                log(f"{name}: {t['run']} {t['state']} at step {t['steps']} val {t['val_loss']}")

    summary = sweep.run(poll_s=0.2, on_tick=tick)
    summary["wall_s"] = time.perf_counter() - t0
    return summary


def main(out: str | None, *, json_output: bool = False, quick: bool = False,
         steps: int | None = None) -> dict[str, Any]:
    space_dict = QUICK_SPACE if quick else SPACE
    steps = steps or (QUICK_STEPS if quick else STEPS)
    rung = QUICK_RUNG if quick else steps // EVALS  # 400 steps: every 50
    folder, runs = _folders(out, "genai-sweep-bench-")
    space, base = SearchSpace.from_dict(space_dict), base_config(steps, rung)
    cells = space.grid_size() or 0
    log = _logger(json_output)

    arms = {"grid": run_arm(runs, "grid", base, space, SweepSettings(trials=cells, sampler="grid", pruner="none"),
                            log)}
    best = arms["grid"]["best"]
    best_config = space.config_for(base, best["params"])
    noise = [best["val_loss"]]
    for seed in (1, 2):
        config = best_config.model_copy(update={"train": best_config.train.model_copy(update={"seed": seed})})
        seeds = SearchSpace.from_dict({"d_model": [config.model.d_model]})
        arm = run_arm(runs, f"seed{seed}", config, seeds, SweepSettings(trials=1, sampler="grid", pruner="none"), log)
        noise.append(arm["best"]["val_loss"])
    for name, sampler, pruner in (("tpe-hyperband", "tpe", "hyperband"), ("random-hyperband", "random", "hyperband"),
                                  ("tpe-asha", "tpe", "asha"), ("random-asha", "random", "asha")):
        arms[name] = run_arm(runs, name, base, space, SweepSettings(trials=cells, sampler=sampler, pruner=pruner),
                             log)
    grid_flops = arms["grid"]["compute"]["flops_trained"]
    grid_s = arms["grid"]["compute"]["train_seconds"]
    spread = max(noise) - min(noise)
    ranks = rung_rank_correlations(runs, arms["grid"])
    report: dict[str, Any] = {"space": space_dict, "steps": steps, "rung": rung, "cells": cells,
                              "seed_losses_of_grid_best": noise, "seed_spread": spread,
                              "rank_correlation_with_final": ranks, "arms": {}}
    for name, s in arms.items():
        c = s["compute"]
        gap = s["best"]["val_loss"] - best["val_loss"]
        report["arms"][name] = {
            "best_val_loss": s["best"]["val_loss"], "best_params": s["best"]["params"],
            "completed": sum(t["state"] == "completed" for t in s["trials"]),
            "pruned": sum(t["state"] == "pruned" for t in s["trials"]),
            "gflops": c["flops_trained"] / 1e9, "train_s": c["train_seconds"],
            "compute_vs_grid": c["flops_trained"] / grid_flops, "seconds_vs_grid": c["train_seconds"] / grid_s,
            "gap_to_grid_best": gap, "within_seed_noise": gap <= spread,
            "best_so_far": s["best_so_far"], "wall_s": s.get("wall_s"),
        }
    (folder / "sweep_bench.json").write_text(json.dumps(report, indent=2))
    _plot(report, folder / "best_so_far.html")
    if json_output:
        print(json.dumps(report, indent=2))
        return report
    print(f"\nShakespeare, {cells} cells ({', '.join(f'{k} {v}' for k, v in space_dict.items())}), {steps} steps "
          f"each, rungs every {rung} steps")
    print(f"seed noise of the grid's best ({_params(best['params'])}): val losses "
          f"{', '.join(f'{v:.4f}' for v in noise)}; spread {spread:.4f}")
    print("how well each rung ranks the grid's cells as they end (Spearman with the final val loss): "
          + ", ".join(f"step {step} {rho:.2f}" for step, rho in ranks.items()))
    print(f"{'arm':<12} {'best val':>9} {'gap':>8} {'in noise':>8} {'done':>5} {'pruned':>6} {'GFLOP':>8} "
          f"{'vs grid':>8} {'train s':>8} {'vs grid':>8}  best config")
    for name, a in report["arms"].items():
        print(f"{name:<12} {a['best_val_loss']:>9.4f} {a['gap_to_grid_best']:>+8.4f} "
              f"{'yes' if a['within_seed_noise'] else 'no':>8} {a['completed']:>5} {a['pruned']:>6} "
              f"{a['gflops']:>8.1f} {a['compute_vs_grid']:>8.0%} {a['train_s']:>8.0f} {a['seconds_vs_grid']:>8.0%}  "
              f"{_params(a['best_params'])}")
    print(f"goal: within the seed noise using at most {GOAL_COMPUTE:.0%} of the grid's compute; folder {folder}")
    return report


def rung_rank_correlations(runs: Path, grid: dict[str, Any]) -> dict[int, float]:
    """For each evaluation step of the grid's trials: the Spearman rank correlation between the cells' val loss
    there and at their end. What early stopping at that step can hope for: near 1, a cut there keeps the cells
    that end best; near 0, it cuts at random."""
    import pandas as pd

    from genai_core.runs.folder import Run

    curves = {t["run"]: {r["step"]: r["val_loss"] for r in Run(runs / t["run"]).metrics()
                         if r.get("val_loss") is not None} for t in grid["trials"]}
    table = pd.DataFrame(curves).T.sort_index(axis=1)  # a row per cell, a column per step
    final = table[table.columns[-1]]
    return {int(step): float(table[step].corr(final, method="spearman")) for step in table.columns}


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _plot(report: dict[str, Any], path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, a in report["arms"].items():
        points = a["best_so_far"]
        fig.add_trace(go.Scatter(x=[p["flops"] / 1e9 for p in points], y=[p["best_val_loss"] for p in points],
                                 mode="lines+markers", name=name, line={"shape": "hv"}))
    fig.update_layout(title=f"Best validation loss found against compute (Shakespeare, {report['cells']}-cell space, "
                            f"{report['steps']} steps a trial)",
                      xaxis_title="GFLOP trained", yaxis_title="best val loss", width=900, height=500)
    fig.write_html(path, include_plotlyjs=True)


RAY_SPACE = {"lr": [3e-3, 1e-2], "d_model": [64, 96, 128]}
RAY_STEPS = 300


def ray_main(out: str | None, *, json_output: bool = False, quick: bool = False,
             steps: int | None = None) -> dict[str, Any]:
    """The same grid sweep (6 trials, two submitted at a time, no pruning: the same work both times) on a local Ray
    cluster of one node, then of two; wall time of each and the speed-up. Nodes have one CPU each, like the tests'
    cluster, so one node trains one trial at a time and two nodes two."""
    from genai_core.train.ray_local import LocalRayCluster

    folder, runs = _folders(out, "genai-sweep-ray-")
    steps = steps or (QUICK_STEPS if quick else RAY_STEPS)
    space = SearchSpace.from_dict(RAY_SPACE)
    settings = SweepSettings(trials=space.grid_size() or 1, sampler="grid", pruner="none", parallel=2)
    log = _logger(json_output)

    report: dict[str, Any] = {"space": RAY_SPACE, "steps": steps, "trials": settings.trials, "nodes": {}}
    with LocalRayCluster(cpus_per_node=1) as cluster:
        base = base_config(steps, steps, runner="ray", ray_address=cluster.address)
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node()
            name = f"ray-{nodes}node-{int(time.time())}"
            log(f"{nodes} node(s): sweep {name}")
            summary = run_arm(runs, name, base, space, settings, log)
            report["nodes"][nodes] = {"wall_s": summary["wall_s"], "train_s": summary["compute"]["train_seconds"],
                                      "completed": sum(t["state"] == "completed" for t in summary["trials"]),
                                      "best_val_loss": summary["best"]["val_loss"] if summary["best"] else None}
    one, two = report["nodes"][1]["wall_s"], report["nodes"][2]["wall_s"]
    report["speedup"] = one / two
    (folder / "sweep_ray_bench.json").write_text(json.dumps(report, indent=2))
    if json_output:
        print(json.dumps(report, indent=2))
        return report
    print(f"\nRay sweep on Shakespeare: {settings.trials} trials of {steps} steps "
          f"({', '.join(f'{k} {v}' for k, v in RAY_SPACE.items())}), 2 submitted at a time, 1 CPU per node")
    for nodes, r in report["nodes"].items():
        print(f"{nodes} node(s): {r['wall_s']:.0f} s wall, {r['train_s']:.0f} s training, {r['completed']} completed, "
              f"best val {r['best_val_loss']:.4f}")
    print(f"speed-up of two nodes over one: {report['speedup']:.2f}x (goal: at least 1.7x); folder {folder}")
    return report
