"""Explore: search the knobs with a sweep, watch it think, and train the best config longer.

A sweep (`genai_core.explore.sweep`) trains trials as ordinary runs (`<sweep>-tNN`, on the Runs page like any
run), with Optuna choosing each trial's knobs from the space below and stopping the trials that fall behind at
the evaluation steps. Its controller runs in a process of its own, so the sweep goes on if this page, the
browser or the server goes away; this page reads its `summary.json` and the trials' curves from the disk.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from genai_core.config import RECIPES, DataConfig, RunConfig, TrainConfig, with_recipe
from genai_core.errors import GenAIError
from genai_core.explore.grid import plan_grid
from genai_core.explore.settings import MAX_BUDGET_MINUTES, MAX_PARALLEL, MAX_SEED_RERUNS, MAX_TRIALS
from genai_core.explore.space import SWEEPABLE, SearchSpace
from genai_core.explore.sweep import (
    MIN_TRIALS_FOR_IMPORTANCE,
    Sweep,
    SweepSettings,
    list_sweeps,
    sweep_estimate,
    sweeps_dir,
)
from genai_core.runs.folder import Run, list_runs, validate_run_name
from genai_core.units import format_seconds
from pages import ui
from pages.parts.train_form import anything_active, corpus_stats, field_help, literals

SHOWN = "explore_sweep"
DEFAULT_SPACE = [
    {"knob": "lr", "low": 3e-4, "high": 1e-2, "log": True, "choices": ""},
    {"knob": "d_model", "low": None, "high": None, "log": False, "choices": "64, 128"},
    {"knob": "n_layers", "low": 1, "high": 4, "log": False, "choices": ""},
]
LIVE_EVERY_S = 2.0


def start_points(data: DataConfig | None) -> dict[str, Callable[[], RunConfig]]:
    """Where a sweep's fixed part can come from: the Train page's settings (handed over by its "Sweep knobs
    around these settings"), a recipe's defaults on the chosen corpus, or a pretraining run's config."""
    points: dict[str, Callable[[], RunConfig]] = {}
    handed = st.session_state.get(ui.SWEEP_BASE)
    if handed:
        points["The Train page's settings"] = lambda: RunConfig.model_validate(handed)
    if data is not None:
        for recipe in RECIPES:
            points[f"The {recipe} recipe's defaults"] = (
                lambda r=recipe: RunConfig.model_validate(with_recipe({"data": data.model_dump()}, r)))
    for run in list_runs(ui.runs_root()):
        try:
            if run.config().task == "lm":
                points[f"Run {run.name}"] = run.config
        except GenAIError:  # a damaged run is not offered
            continue
    return points


def new_sweep(data: DataConfig | None) -> None:
    """The space, the search's settings and the fixed part of the config; the cost (per cell, for a grid) before
    Start."""
    st.markdown("**The space**: a range (low, high, log scale) or a list of choices per knob.")
    as_json = st.toggle("Edit as JSON (the CLI's --space file)", key="explore_as_json",
                        help='e.g. {"lr": {"low": 1e-4, "high": 1e-2, "log": true}, "d_model": [64, 128]}')
    if as_json:
        text = st.text_area("Space (JSON)", value=json.dumps(SearchSpace.from_rows(DEFAULT_SPACE).as_json()),
                            key="explore_space_text", height=110)
    rows = None if as_json else st.data_editor(
        pd.DataFrame(DEFAULT_SPACE), num_rows="dynamic", key="explore_space", width="stretch", hide_index=True,
        column_config={
            "knob": st.column_config.SelectboxColumn("knob", options=list(SWEEPABLE), required=True),
            "low": st.column_config.NumberColumn("low", format="%g"),
            "high": st.column_config.NumberColumn("high", format="%g"),
            "log": st.column_config.CheckboxColumn("log scale"),
            "choices": st.column_config.TextColumn("choices", help="e.g. 64, 128 (then low and high are ignored)"),
        })
    c1, c2, c3, c4, c5 = st.columns(5)
    trials = c1.number_input("Trials", 1, MAX_TRIALS, SweepSettings.model_fields["trials"].default,
                             help=field_help(SweepSettings, "trials"))
    budget = c2.number_input("Budget (training minutes, 0 = none)", 0.0, float(MAX_BUDGET_MINUTES), 0.0, step=5.0,
                             help=field_help(SweepSettings, "budget_minutes"))
    parallel = c3.number_input("Parallel trials", 1, MAX_PARALLEL, 1, help=field_help(SweepSettings, "parallel"))
    seed = c4.number_input("Sampler seed", 0, 1_000_000, 0, help=field_help(SweepSettings, "seed"))
    reruns = c5.number_input("Seed reruns of the best", 0, MAX_SEED_RERUNS, 0,
                             help=field_help(SweepSettings, "seed_reruns"))
    sampler = st.radio("Sampler", literals(SweepSettings, "sampler"), horizontal=True,
                       help=field_help(SweepSettings, "sampler"),
                       format_func={"tpe": "TPE (learns from finished trials)", "random": "Random",
                                    "grid": "Grid (every combination)"}.get)
    pruner = st.radio("Early stopping", literals(SweepSettings, "pruner"), horizontal=True,
                      help=field_help(SweepSettings, "pruner"),
                      format_func={"hyperband": "Hyperband", "asha": "Successive halving (ASHA)",
                                   "median": "Median", "none": "Off: every trial to the end"}.get)
    st.caption({"hyperband": "Trials are dealt into brackets that cut the worst two thirds at the rungs, each "
                             "bracket from a later first rung, so a slow starter that would end best survives in one.",
                "asha": "At each rung (every evaluation step), a trial goes on only if it is in the best third "
                        "of the trials that reached that rung.",
                "median": "A trial stops when its validation loss is worse than the median of earlier trials at "
                          "the same step.",
                "none": "Every trial trains to the end."}[pruner])
    st.markdown("**What every trial shares**")
    points = start_points(data)
    if not points:
        st.warning("Choose a corpus on the Data page first.", icon=":material/menu_book:")
        return
    f1, f2, f3 = st.columns(3)
    start = f1.selectbox("Start from", list(points), key="explore_start",
                         help="Every knob not in the space comes from here (its corpus and tokenizer too).")
    with ui.user_errors():
        chosen = points[start]()
        max_steps = f2.number_input("Max steps per trial", 10, 1_000_000, max(10, chosen.train.max_steps or 300),
                                    step=50)
        rung = f3.number_input("Evaluate every N steps (the rungs)", 1, 100_000, min(50, max_steps),
                               help=field_help(TrainConfig, "eval_interval"))
        m, t = chosen.model, chosen.train
        st.caption(f"Corpus {chosen.data.corpus.name} ({chosen.data.tokenizer} tokens); d_model {m.d_model}, "
                   f"{m.n_layers} layers, {m.n_heads} heads, seq_len {m.seq_len}; {t.optimizer}, lr {t.lr:g}, "
                   f"batch {t.batch_size}.")
        name = st.text_input("Sweep name", value=ui.unique_run_name("sweep"),
                             help="Its trials are the runs NAME-t00, NAME-t01, …")
        space = SearchSpace.from_json(text) if rows is None else SearchSpace.from_rows(rows.to_dict("records"))
        # Trials outlive this page: a thread runner (the API's default) becomes the runs folder's scheduler.
        runner = "process" if chosen.train.runner == "thread" else chosen.train.runner
        base = chosen.model_copy(update={"name": "", "train": chosen.train.model_copy(update={
            "max_steps": max_steps, "epochs": None, "eval_interval": rung, "log_interval": max(1, min(10, rung)),
            "runner": runner})})
        base = RunConfig.model_validate(base.model_dump())
        settings = SweepSettings(trials=trials, budget_minutes=budget or None, parallel=parallel, sampler=sampler,
                                 pruner=pruner, seed=seed, seed_reruns=reruns)
        validate_run_name(name)
        space.check(base)
        pending = bool(st.session_state.get(GRID_PENDING)) and sampler == "grid"
        st.fragment(cost_and_start, run_every=1.0 if pending else None)(base, space, settings, name)


GRID_PENDING = "explore_grid_pending"


def cost_and_start(base: RunConfig, space: SearchSpace, settings: SweepSettings, name: str) -> None:
    """What the sweep may cost, and Start. For a grid, every cell checked and timed first (a cell that cannot
    train keeps Start off); a fragment that draws itself again each second while cells are being timed, so the
    table settles on the timed figures without a click."""
    grid = space.grid_size()
    problems = False
    with ui.user_errors():
        if settings.sampler == "grid":
            stats = corpus_stats(base.data)  # a cell's window must fit the corpus; its time follows its tokens
            cells = plan_grid(base, space, settings, name, runs_root=ui.runs_root(), max_seq_len=stats["max_seq_len"],
                              train_tokens=stats["train_tokens"], calibrate=not anything_active())
            ui.table([{"trial": c.name, **c.values,
                       "estimated time": "timing…" if c.pending else format_seconds(c.seconds)
                       if c.seconds is not None else None, "problem": c.problem} for c in cells],
                     hide_index=True, width="stretch")
            problems = any(c.problem for c in cells)
            pending = any(c.pending for c in cells)
            if pending != bool(st.session_state.get(GRID_PENDING)):
                st.session_state[GRID_PENDING] = pending
                st.rerun()
            total = sum(c.seconds or 0.0 for c in cells)
            st.info(f"{len(cells)} of the grid's {grid} cells, each trained to the end: about "
                    f"{format_seconds(total)}" + (" in all; early stopping cuts the losers short."
                                                 if settings.pruner != "none" else " in all.")
                    + (" Fix the cells with a problem first." if problems else ""), icon=":material/schedule:")
        else:
            cost = sweep_estimate(base, space, settings, ui.runs_root())
            st.info(f"{', '.join(k.describe() for k in space.knobs)}. A trial of the largest corner trains in about "
                    f"{format_seconds(cost['trial_seconds'])}; {settings.trials} trials run to the end: at most "
                    f"about {format_seconds(cost['sweep_seconds'])}" + (f" (the full grid has {grid} cells)" if grid
                                                                       else "")
                    + ". Early stopping cuts the losers short.", icon=":material/schedule:")
        start = st.button("Start the sweep", type="primary", key="explore_start_sweep",
                          **ui.change_kwargs(disabled=problems))
        if start and ui.presenter_only():
            sweep = Sweep.create(sweeps_dir(ui.runs_root()) / name, ui.runs_root(), base, space, settings)
            sweep.start_controller()
            st.session_state[SHOWN] = name
            st.session_state.pop(GRID_PENDING, None)
            st.rerun()


def sweep_view(name: str) -> None:
    """One sweep, redrawn every tick while its controller runs."""
    try:
        sweep = Sweep.open(sweeps_dir(ui.runs_root()) / name, ui.runs_root())
    except GenAIError as e:
        st.error(str(e))
        return
    live = sweep.controlled()
    summary = sweep.summary()
    trials = summary.get("trials", [])
    counts = {s: sum(t["state"] == s for t in trials) for s in ("completed", "pruned", "failed")}
    running = len(trials) - sum(counts.values())
    c = st.columns(4)
    c[0].metric("Trials", f"{len(trials)} / {sweep.settings.trials}")
    c[1].metric("Completed · pruned", f"{counts['completed']} · {counts['pruned']}")
    best = summary.get("best")
    c[2].metric("Best val loss", f"{best['val_loss']:.4f}" if best else "–", help=best["run"] if best else None)
    saved = (summary.get("compute") or {}).get("saved_by_pruning")
    c[3].metric("Compute saved by early stopping", f"{saved:.0%}" if saved is not None else "–")
    state = "running" if live else "finished" if summary.get("finished") else "stopped"
    st.markdown(f"**{state}**" + (f" · {running} trial(s) training or queued" if running and live else ""))
    row = st.container(horizontal=True)
    if live and row.button("Stop the sweep", key="explore_stop",
                           **ui.change_kwargs("Its trials save a checkpoint and stop; resume later.")) \
            and ui.presenter_only():
        sweep.request_stop()
        st.rerun()
    if not live and state == "stopped" and row.button("Resume the sweep", key="explore_resume", type="primary",
                                                      **ui.change_kwargs()) and ui.presenter_only():
        sweep.start_controller()
        st.rerun()
    if best and row.button("Train the best config 3× longer", key="explore_longer",
                           **ui.change_kwargs(f"A new run with {best['run']}'s config and three times its steps.")) \
            and ui.presenter_only():
        with ui.user_errors():
            config = sweep.best_config(longer=3)
            if config is None:
                raise GenAIError(f"the best trial {best['run']} is gone from the runs folder")
            longer = ui.unique_run_name(f"{best['run']}-longer")
            ui.job_manager().submit(config, longer)
            st.session_state[ui.FOLLOW] = longer
            st.switch_page("pages/train.py")
    if summary.get("seed_reruns"):
        reruns = summary["seed_reruns"]
        losses = ", ".join(f"{r['run']} {r['val_loss']:.4f}" if r["val_loss"] is not None else f"{r['run']} "
                           f"{r['state']}" for r in reruns)
        spread = summary.get("seed_spread")
        st.info(f"Seed noise: the best config trained again with other seeds: {losses}"
                + (f". Spread over {len(reruns) + 1} seeds: **{spread:.4f}**; trials closer than that are a tie."
                   if spread is not None else "."), icon=":material/casino:")
    if not trials:
        st.caption("The first trial's curve appears once it has trained a few steps.")
        return
    curves, progress = st.columns(2)
    curves.plotly_chart(_curves(sweep, trials), width="stretch")
    progress.plotly_chart(_best_so_far(summary), width="stretch")
    left, right = st.columns(2)
    left.plotly_chart(_parallel_coordinates(trials, sweep), width="stretch")
    if summary.get("importance"):
        right.plotly_chart(_importance(summary["importance"]), width="stretch")
    else:
        right.caption(f"Which knobs mattered shows once {MIN_TRIALS_FOR_IMPORTANCE} trials have reached a rung.")
    ui.table([{"trial": t["run"], **t["params"], "state": t["state"], "val loss": t["val_loss"],
               "steps": f"{t['steps']:,} / {t['total_steps']:,}",
               "cut at": t["pruned_at"]["step"] if t.get("pruned_at") else None, "note": t.get("message") or ""}
              for t in trials], hide_index=True, width="stretch")


def _curves(sweep: Sweep, trials: list[dict[str, Any]]) -> go.Figure:
    """Every trial's validation curve; pruned trials faded, the best one bold."""
    fig = go.Figure()
    best = min((t for t in trials if t["state"] == "completed" and t["val_loss"] is not None),
               key=lambda t: t["val_loss"], default=None)
    for i, t in enumerate(trials):
        rows = [r for r in Run(sweep.runs_root / t["run"]).metrics() if r.get("val_loss") is not None]
        pruned = t["state"] == "pruned"
        fig.add_trace(go.Scatter(
            x=[r["step"] for r in rows], y=[r["val_loss"] for r in rows], mode="lines+markers", name=t["run"],
            opacity=0.35 if pruned else 1.0, marker={"size": 4},
            line={"color": ui.PALETTE[i % len(ui.PALETTE)], "dash": "dot" if pruned else "solid",
                  "width": 4 if best is not None and t["run"] == best["run"] else 2}))
    fig.update_layout(title="Validation loss of every trial (pruned: dotted, faded)", xaxis_title="step",
                      yaxis_title="val loss", height=380, margin={"t": 50, "b": 40})
    return fig


def _best_so_far(summary: dict[str, Any]) -> go.Figure:
    points = summary.get("best_so_far") or []
    fig = go.Figure(go.Scatter(x=[p["flops"] / 1e9 for p in points], y=[p["best_val_loss"] for p in points],
                               mode="lines+markers", line={"shape": "hv"},
                               text=[f"after trial {p['trial']}" for p in points]))
    fig.update_layout(title="Best validation loss found, against compute spent", xaxis_title="GFLOP trained",
                      yaxis_title="best val loss", height=380, margin={"t": 50, "b": 40})
    return fig


def _parallel_coordinates(trials: list[dict[str, Any]], sweep: Sweep) -> go.Figure:
    """One line per finished trial across the knobs, coloured by its validation loss."""
    ended = [t for t in trials if t["val_loss"] is not None]
    dims = []
    for k in sweep.space.knobs:
        values = [t["params"].get(k.name) for t in ended]
        if k.choices is not None and not all(isinstance(v, int | float) for v in k.choices):
            index = {v: i for i, v in enumerate(k.choices)}
            dims.append({"label": k.name, "values": [index.get(v, 0) for v in values],
                         "tickvals": list(index.values()), "ticktext": [str(v) for v in index]})
        elif k.log:  # a log-scale knob on a log axis, labelled with its values
            ticks = [v for v in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0) if k.low <= v <= k.high] or [k.low]
            dims.append({"label": f"{k.name} (log)", "values": [math.log10(v) for v in values],
                         "tickvals": [math.log10(v) for v in ticks], "ticktext": [f"{v:g}" for v in ticks]})
        else:
            dims.append({"label": k.name, "values": values})
    dims.append({"label": "val loss", "values": [t["val_loss"] for t in ended]})
    fig = go.Figure(go.Parcoords(line={"color": [t["val_loss"] for t in ended], "colorscale": "Viridis_r",
                                       "showscale": True}, dimensions=dims, labelangle=-30))
    fig.update_layout(title="Knobs against validation loss", height=380, margin={"t": 80, "b": 30, "l": 50})
    return fig


def _importance(importance: dict[str, Any]) -> go.Figure:
    knobs = importance["knobs"]
    names = list(knobs)[::-1]
    fig = go.Figure(go.Bar(x=[knobs[n] for n in names], y=names, orientation="h"))
    fig.update_layout(title=f"Which knobs mattered (PED-ANOVA, val loss at step {importance['step']:,} of "
                            f"{importance['trials']} trials)", height=380, margin={"t": 50, "b": 40})
    return fig


st.title("Explore")
st.caption("Search the knobs: a sweep trains trials as runs, learns from the ones that finished, and stops the "
           "ones falling behind early, so a good config is found in a fraction of a grid's compute.")
sweeps = list_sweeps(ui.runs_root())
names = [s.name for s in sweeps]
if names:
    shown = st.session_state.get(SHOWN)
    chosen = st.selectbox("Sweep", names, index=names.index(shown) if shown in names else 0)
    active = next(s for s in sweeps if s.name == chosen).controlled()
    st.fragment(sweep_view, run_every=LIVE_EVERY_S if active else None)(chosen)
    st.divider()
data_cfg, source = ui.data_choice()
with st.expander("New sweep", expanded=not names, icon=":material/travel_explore:"):
    if data_cfg is not None:
        st.caption(f"Corpus for the recipes: {data_cfg.corpus.name} "
                   f"({'from the Data page' if source == 'data page' else 'the demo'}, {data_cfg.tokenizer} tokens).")
    new_sweep(data_cfg)
