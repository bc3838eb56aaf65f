"""Runs: compare runs, see which hyperparameters matter, and share, rename, delete, export or import a run.

A QA fine-tune is listed right after the run it started from (its parent), and the table carries the
scores of each run's latest saved QA evaluation (Evaluate page or `eval --qa`) so hyperparameters can be
judged on answer quality as well as on loss.

Every number comes from the run folders (`Run.summary()`, `Run.metrics()`); moving runs around is
`genai_core.runs.archive`. Actions that change the runs (rename, delete, import) run in widget callbacks:
those run before the page, so the table drawn afterwards already shows the result, and they may
update the state of the selection widgets. Their outcome is kept in session state ("flash") and
shown next to the section that caused it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from genai_core.errors import user_message
from genai_core.runs import archive, compare, report
from genai_core.runs.folder import MAX_RUN_NAME, Run, list_runs
from genai_core.runs.status import ACTIVE_STATES, RESUMABLE_STATES
from pages.ui import (
    FOLLOW,
    LOCKED_HELP,
    PALETTE,
    TABLE_COLUMNS,
    X_AXES,
    can_change,
    change_kwargs,
    job_manager,
    loss_figure,
    numeric_blanks,
    runs_root,
    table,
)

FLASH = "runs_flash"
COMPARE = "runs_compare"
FOCUS = "runs_focus"
UPLOAD_GEN = "runs_upload_gen"


# --------------------------------------------------------------------------- flash messages
def _flash(section: str, kind: str, text: str) -> None:
    st.session_state.setdefault(FLASH, []).append((section, kind, text))


def _show_flash(section: str) -> None:
    messages = st.session_state.get(FLASH, [])
    for _sec, kind, text in [m for m in messages if m[0] == section]:
        if kind == "error":
            st.error(text, icon=":material/block:")
        else:
            st.success(text, icon=":material/check_circle:")
    st.session_state[FLASH] = [m for m in messages if m[0] != section]


def _failed(section: str, exc: Exception) -> None:
    """Show a person's mistake as an error; let a bug propagate to Streamlit."""
    msg = user_message(exc)
    if msg is None:
        raise exc
    _flash(section, "error", msg)


# --------------------------------------------------------------------------- callbacks
def _locked_out(section: str) -> bool:
    """Every callback that writes asks first: in viewer mode a forged click reaches it past a disabled button."""
    if can_change():
        return False
    _flash(section, "error", LOCKED_HELP + ".")
    return True


def _rename(root: Path, old: str) -> None:
    if _locked_out("manage"):
        return
    new = str(st.session_state.get(f"rename_to_{old}", "")).strip()
    try:
        renamed = archive.rename_run(Run(root / old), new)
    except Exception as e:  # _failed re-raises what is not a user error
        _failed("manage", e)
        return
    job_manager().forget(old)
    st.session_state[FOCUS] = renamed.name
    st.session_state[COMPARE] = [renamed.name if n == old else n for n in st.session_state.get(COMPARE, [])]
    _flash("manage", "success", f"Renamed {old} to {renamed.name}.")


def _delete(root: Path, name: str) -> None:
    if _locked_out("manage"):
        return
    if not st.session_state.get(f"delete_confirm_{name}"):
        _flash("manage", "error", "Tick the confirmation box first.")
        return
    try:
        archive.delete_run(Run(root / name))
    except Exception as e:  # _failed re-raises what is not a user error
        _failed("manage", e)
        return
    job_manager().forget(name)
    st.session_state.pop(FOCUS, None)
    st.session_state[COMPARE] = [n for n in st.session_state.get(COMPARE, []) if n != name]
    _flash("manage", "success", f"Deleted run {name}.")


def _import(root: Path, upload_key: str) -> None:
    if _locked_out("import"):
        return
    upload = st.session_state.get(upload_key)
    if upload is None:
        _flash("import", "error", "Choose a .zip file first.")
        return
    name = str(st.session_state.get("import_name", "")).strip() or None
    try:
        upload.seek(0)
        run = archive.import_run(upload, root, name=name)
    except Exception as e:  # _failed re-raises what is not a user error
        _failed("import", e)
        return
    st.session_state[FOCUS] = run.name
    st.session_state[UPLOAD_GEN] = st.session_state.get(UPLOAD_GEN, 0) + 1  # a fresh, empty uploader
    state = run.status().get("state")
    _flash("import", "success", f"Imported {upload.name} as run {run.name} ({state}).")


# --------------------------------------------------------------------------- the table
def lineage_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A markdown tree of the runs that have a parent or children: `parent (lm)` then `↳ child (qa) · F1 ...`."""
    names = {r["name"] for r in rows}
    linked = {r["parent"] for r in rows if r.get("parent")} | {r["name"] for r in rows if r.get("parent")}
    lines = []
    depth: dict[str, int] = {}
    for r in rows:  # lineage order: a parent comes before its children
        if r["name"] not in linked:
            continue
        parent = r.get("parent")
        d = depth.get(parent, -1) + 1 if parent in names else 0
        depth[r["name"]] = d
        scores = [f"{name} F1 {r[key]:.1f}" for key, name in compare.qa_score_keys(r, "f1") if r.get(key) is not None]
        text = f"**{r['name']}** ({r.get('task') or 'lm'})" + (" · " + ", ".join(scores) if scores else "")
        if parent and parent not in names:
            text += f" · started from {parent} (not in this folder)"
        lines.append("    " * d + ("- ↳ " if d else "- ") + text)
    return lines


QA_METRICS = {"exact_match": "EM", "f1": "F1", "rougeL": "ROUGE-L"}


def qa_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Column configs of the QA scores present in any row: per evaluated file, EM, F1 and ROUGE-L (percent)."""
    files = sorted({name for r in rows for _k, name in compare.qa_score_keys(r, "f1")})
    return {f"qa_{f}_{m}": st.column_config.NumberColumn(f"QA {f} {label} (%)", format="%.1f",
                                                         help=f"Latest saved QA evaluation on {f}: {label}, percent")
            for f in files for m, label in QA_METRICS.items()}



PARCOORD_DIMS = [
    ("d_model", "d_model (width)"),
    ("n_layers", "layers"),
    ("n_heads", "heads"),
    ("seq_len", "context (tokens)"),
    ("batch_size", "batch"),  # short: a longer label runs into "learning rate (log scale)" next to it
    ("lr", "learning rate"),
    ("dropout", "dropout"),
    ("weight_decay", "weight decay"),
    ("params", "parameters"),
]


def parcoords_figure(rows: list[dict[str, Any]], target: str = "best_val_loss",
                     label: str = "best val loss (nats/token)") -> go.Figure:
    """Hyperparameters against a result (best validation loss by default, or a QA score), one line per run
    coloured by it; darker is better either way (lower loss, higher score).

    The learning rate spans orders of magnitude, so its axis is log10 with the real values as ticks.
    """
    dims = []
    if len({r["arch"] for r in rows}) > 1:
        archs = sorted({r["arch"] for r in rows})
        dims.append({"label": "architecture", "values": [archs.index(r["arch"]) for r in rows],
                     "tickvals": list(range(len(archs))), "ticktext": archs})
    for key, dim_label in PARCOORD_DIMS:
        values = [r.get(key) for r in rows]
        if any(v is None for v in values):
            continue  # e.g. `params` of a run whose status lacks it
        if key == "lr":
            logs = [math.log10(v) for v in values]
            ticks = sorted(set(values))
            dims.append({"label": "learning rate (log scale)", "values": logs,
                         "tickvals": [math.log10(v) for v in ticks], "ticktext": [f"{v:.0e}" for v in ticks]})
        else:
            dims.append({"label": dim_label, "values": values})
    values = [r[target] for r in rows]
    dims.append({"label": label.split(" (")[0], "values": values})  # its unit is on the colour bar
    is_loss = target == "best_val_loss"
    fig = go.Figure(go.Parcoords(
        line={"color": values, "colorscale": "Viridis", "reversescale": is_loss, "showscale": True,
              "colorbar": {"title": {"text": label.replace(" (", "<br>(")}}},
        dimensions=dims,
        # Slanted, the axis labels of up to ten axes stay apart even in a narrow window (level, they ran into each
        # other at 800 px); the room above the axes is theirs, the title stays short above them.
        labelangle=-40,
    ))
    title = "Hyperparameters vs best validation loss" if is_loss else f"Hyperparameters vs {label}"
    fig.update_layout(title={"text": title, "y": 0.98, "yanchor": "top"}, height=480,
                      margin={"l": 50, "r": 110, "t": 150, "b": 30})
    return fig


LIFECYCLE_DONE = {"resume": "Resumed {}: it continues from its latest checkpoint (see the Train page).",
                  "stop": "Stopping {}: it saves a checkpoint and can be resumed."}


def _lifecycle(action: str, name: str) -> None:
    """Button callback: `resume` or `stop` run `name` through the job manager; the outcome as a flash."""
    if _locked_out("lifecycle"):
        return
    try:
        getattr(job_manager(), action)(name)
    except Exception as e:  # _failed re-raises what is not a user error
        _failed("lifecycle", e)
        return
    st.session_state[FOLLOW] = name  # the Train page's live view shows the run acted on here
    _flash("lifecycle", "success", LIFECYCLE_DONE[action].format(name))


def _delete_unstarted(root: Path, names: list[str]) -> None:
    if _locked_out("lifecycle"):
        return
    deleted = []
    for name in names:
        try:
            archive.delete_run(Run(root / name))
            job_manager().forget(name)
            deleted.append(name)
        except Exception as e:  # _failed re-raises what is not a user error
            _failed("lifecycle", e)
    if deleted:
        _flash("lifecycle", "success", f"Deleted {len(deleted)} run(s) that never trained: {', '.join(deleted)}.")


def never_started(row: dict[str, Any]) -> bool:
    """A run with nothing to show: no step logged, and not waiting or training."""
    return not row.get("step") and row.get("state") not in ACTIVE_STATES


def lifecycle_section(root: Path, rows: list[dict[str, Any]]) -> None:
    """Stop what trains or waits, resume what was stopped, interrupted or failed; list runs that never started."""
    actionable = [r for r in rows if r.get("state") in ACTIVE_STATES
                  or (r.get("state") in RESUMABLE_STATES and not never_started(r))]
    unstarted = [r["name"] for r in rows if never_started(r)]
    if not actionable and not unstarted:
        return
    st.subheader("Stop and resume")
    _show_flash("lifecycle")
    for r in actionable:
        name, state = r["name"], r["state"]
        c1, c2, c3 = st.columns([2, 3, 2], vertical_alignment="center")  # room for "Resume" at 800 px
        c1.markdown(f"**{name}**")
        c2.caption(f"{state} at step {r.get('step') or 0:,}" + (f": {r['message']}" if r.get("message") else ""))
        if state in ACTIVE_STATES:
            c3.button("Stop", key=f"runs_stop_{name}", on_click=_lifecycle, args=("stop", name), icon=":material/stop:",
                      **change_kwargs("Save a checkpoint and stop (a queued run leaves the queue)"))
        else:
            c3.button("Resume", key=f"runs_resume_{name}", on_click=_lifecycle, args=("resume", name),
                      icon=":material/play_arrow:", **change_kwargs("Continue from the latest checkpoint, same curve"))
    if unstarted:
        with st.expander(f"Never trained ({len(unstarted)}): no step was logged", expanded=False):
            st.write(", ".join(unstarted))
            st.button("Delete these runs", key="runs_delete_unstarted", on_click=_delete_unstarted,
                      args=(root, unstarted), icon=":material/delete:",
                      **change_kwargs("They hold no curve and no checkpoint: nothing is lost"))


def default_overlay(rows: list[dict[str, Any]], k: int = 2) -> list[str]:
    """The newest runs that have something to draw (newest first, as the rows are)."""
    return [r["name"] for r in rows if r.get("step")][:k]


# --------------------------------------------------------------------------- ablation
def ablation_figure(arms: list[compare.Arm]) -> go.Figure:
    """Each arm's validation curve, averaged over its seeds (one thin line per seed behind it)."""
    fig = go.Figure()
    palette = ["#555555", *PALETTE]  # the baseline in grey, the arms in the loss charts' colours
    for i, arm in enumerate(arms):
        color = palette[i % len(palette)]
        for curve in arm.curves.values():
            fig.add_trace(go.Scatter(x=[s for s, _ in curve], y=[v for _, v in curve], mode="lines",
                                     line={"color": color, "width": 1}, opacity=0.3, showlegend=False,
                                     hoverinfo="skip"))
        mean = arm.mean_curve()
        fig.add_trace(go.Scatter(x=[s for s, _ in mean], y=[v for _, v in mean], mode="lines+markers",
                                 name=arm.label, line={"color": color, "width": 3 if not arm.changes else 2}))
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="step",
                      yaxis_title="validation loss (nats/token)", legend={"orientation": "h", "y": -0.2},
                      uirevision="keep")
    return fig


def ablation_section(runs: list[Run]) -> None:
    """Runs that differ from a chosen baseline in one knob: their curves and the change in final loss."""
    st.subheader("Ablation: what one knob changes")
    flats = compare.flat_configs(runs)  # every config read once for both questions below
    candidates = compare.baselines(flats)
    if not candidates:
        st.caption("Appears when runs differ from each other in exactly one knob (seeds aside): train the same "
                   "config twice with one change, or run `python -m genai_core bench --recipes --out runs`.")
        return
    preferred = next((n for n in candidates if "classic" in n), candidates[0])
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    baseline = c1.selectbox("Baseline run", candidates, index=candidates.index(preferred), key="runs_ablation_base",
                            help="Its seeds form the baseline; every run that differs from it in one knob "
                                 "(runs of other seeds grouped) is an arm.")
    several = c2.toggle("Several knobs", key="runs_ablation_many",
                        help="Also show runs that differ from the baseline in more than one knob (e.g. a recipe).")
    arms = compare.ablation(flats, baseline, max_changes=99 if several else 1)
    base = arms[0]
    arm_rows = [{"arm": a.label, "seeds": len(a.runs),
              "final val loss": _mean_std(a.mean, a.std),
              "change": None if a.mean is None or base.mean is None or not a.changes else a.mean - base.mean,
              "runs": ", ".join(a.runs)} for a in arms]
    table(pd.DataFrame(arm_rows), hide_index=True, key="runs_ablation_table", column_config={
        "change": st.column_config.NumberColumn("change vs baseline", format="%+.4f",
                                                help="Mean final validation loss minus the baseline's (lower is "
                                                     "better); compare it with the spread over seeds")})
    st.plotly_chart(ablation_figure(arms), key="runs_ablation_chart")


def _mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


# --------------------------------------------------------------------------- page
# How often the runs table re-reads the folder while a run trains or waits (a resumed run reads `running`
# within this, without Refresh).
LIVE_EVERY_S = 3.0


def any_active(rows: list[dict[str, Any]]) -> bool:
    return any(r.get("state") in ACTIVE_STATES for r in rows)


def live_runs_table(root: Path, runs: list[Run], rows: list[dict[str, Any]], broken: list[tuple[str, str]],
                    ) -> None:
    """The runs table, re-read from the disk on every tick of its fragment (the page's first draw uses what
    the page read); when the last active run ends, the whole page is drawn again to stop the ticking."""
    if not st.session_state.pop("runs_page_read", False):  # a tick of the fragment alone: read the disk again
        runs = list_runs(root)
        rows, broken = compare.summary_rows(runs)
    runs_table(runs, rows, broken)
    if not any_active(rows) and st.session_state.get("runs_table_was_active"):
        st.session_state["runs_table_was_active"] = False
        st.rerun()
    st.session_state["runs_table_was_active"] = any_active(rows)


def runs_table(runs: list[Run], rows: list[dict[str, Any]], broken: list[tuple[str, str]]) -> None:
    """Every run as a row (QA scores right after the status), the lineage tree, and the runs that cannot be read."""
    head, refresh = st.columns([3, 1], vertical_alignment="bottom")
    head.subheader(f"All runs ({len(runs)})")
    refresh.button("Refresh",
                   icon=":material/refresh:", help="Re-read the runs folder (runs in progress change as they train)")
    if rows:
        # QA scores right after the status, where they are seen without scrolling.
        columns = dict(TABLE_COLUMNS)
        qa = qa_columns(rows)
        columns = {**{k: columns[k] for k in ("name", "state", "task", "parent")}, **qa, **columns}
        frame = numeric_blanks(pd.DataFrame(rows).reindex(columns=list(columns)), columns)
        table(frame, hide_index=True, column_config=columns, key="runs_table")
        if not qa:
            st.caption("No QA scores yet: evaluate a run on the Evaluate page and they appear here as columns.")
        lineage = lineage_lines(rows)
        if lineage:
            with st.expander("Lineage: which run started from which", expanded=True):
                st.markdown("\n".join(lineage))
    elif not runs:
        st.info("No runs yet: train one on the Train page, or import a run archive below.", icon=":material/info:")
    for name, reason in broken:
        st.error(f"Run {name} cannot be read: {reason}", icon=":material/block:")


def compare_curves(root: Path, rows: list[dict[str, Any]]) -> None:
    """Loss curves of the chosen runs, overlaid."""
    names = [r["name"] for r in rows]
    st.subheader("Compare loss curves")
    # Sanitised before the widget exists: a run deleted or renamed elsewhere must not linger in the selection.
    if COMPARE not in st.session_state:
        st.session_state[COMPARE] = default_overlay(rows)
    st.session_state[COMPARE] = [n for n in st.session_state[COMPARE] if n in names and
                                 any(r["name"] == n and r.get("step") for r in rows)]
    drawable = [r["name"] for r in rows if r.get("step")]
    chosen = st.multiselect("Runs to overlay", drawable, key=COMPARE,
                            help="Solid: training loss; dotted with markers: validation loss.")
    c1, c2 = st.columns(2)
    x = c1.radio("x axis", list(X_AXES), format_func=lambda k: X_AXES[k], horizontal=True, key="runs_x")
    smoothing = c2.slider("Smoothing of the training loss", 0.0, 0.99, 0.0, 0.01, key="runs_smoothing",
                          help="Exponential moving average, as TensorBoard's slider (0 = raw)")
    log_y = c2.toggle("Log scale", key="runs_log", help="Logarithmic loss axis")
    if chosen:
        series = {n: Run(root / n).metrics() for n in chosen}
        title = "Loss of " + ", ".join(chosen) if len(chosen) <= 3 else f"Loss of {len(chosen)} runs"
        st.plotly_chart(loss_figure(series, x=x, title=title, smoothing=smoothing, log_y=log_y), key="runs_loss")
    else:
        st.caption("Pick one or more runs to draw their curves.")


def hyperparameters_vs_results(rows: list[dict[str, Any]]) -> None:
    """A parallel-coordinates chart of the knobs against the best validation loss or a QA score."""
    st.subheader("Hyperparameters vs results")
    targets = {"best_val_loss": "best val loss (nats/token)"}
    scores = sorted({k for r in rows for k in compare.qa_score_keys(r, "f1")})
    targets.update({key: f"QA {name} F1 (%)" for key, name in scores})
    target = "best_val_loss"
    if st.session_state.get("runs_target") not in targets:
        st.session_state.pop("runs_target", None)  # a score that is gone (run deleted) must not linger
    if len(targets) > 1:  # QA scores exist: let the person judge the hyperparameters on answers instead
        target = st.selectbox("Judge runs by", list(targets), format_func=targets.__getitem__, key="runs_target",
                              help="Validation loss, or the F1 of the latest saved QA evaluation (Evaluate page)")
    scored = [r for r in rows if r.get(target) is not None and r[target] == r[target]]  # NaN != NaN
    if len(scored) >= 2:
        st.plotly_chart(parcoords_figure(scored, target, targets[target]), key="runs_parcoords")
        st.caption("One line per run, darker where the result is better (lower loss, higher score). Drag along "
                   "an axis to highlight the runs in a range; drag a label to reorder the axes.")
    elif scored:
        # One line on axes plotly pads around a single value (1.8 to 2.2 layers, dropout from -1) says nothing.
        st.caption("This chart compares runs: it appears once two runs have a result to compare.")
    else:
        st.caption("No run has a validation loss yet." if target == "best_val_loss" else "No run has this score yet.")


def manage_section(root: Path, runs: list[Run], readable_names: list[str]) -> None:
    """Share (HTML report, zip), rename or delete one run."""
    st.subheader("Share and manage a run")
    all_names = [r.name for r in runs]
    if st.session_state.get(FOCUS) not in all_names:
        st.session_state[FOCUS] = all_names[0]
    focus = st.selectbox("Run", all_names, key=FOCUS)
    run = Run(root / focus)
    status = run.status()
    active = status.get("state") in ACTIVE_STATES
    readable = focus in readable_names
    st.caption(f"Status: **{status.get('state', 'created')}**" + (f" — {status['message']}" if status.get("message")
                                                                   else ""))
    _show_flash("manage")
    share, rename, delete = st.tabs(["Share", "Rename", "Delete"])
    with share:
        c1, c2 = st.columns(2)
        # Callables: the report (~5 MB with plotly.js) and the zip are built only when clicked.
        c1.download_button("HTML report", data=lambda: report.html_report(run), file_name=f"{focus}-report.html",
                           mime="text/html", icon=":material/description:", on_click="ignore", disabled=not readable,
                           key="runs_dl_report")
        c1.caption("One file that opens offline: final metrics, loss curves, samples and the configuration.")
        c2.download_button("Run as .zip", data=lambda: archive.export_run(run), file_name=f"{focus}.zip",
                           mime="application/zip", icon=":material/folder_zip:", on_click="ignore", key="runs_dl_zip")
        c2.caption("Config, tokenizer, metrics, samples, status and the latest checkpoint: import it on another "
                   "playground to resume, compare or chat.")
    with rename:
        if active:
            st.info(f"{focus} is {status['state']}: stop it on the Train page before renaming it.",
                    icon=":material/hourglass_top:")
        st.text_input("New name", value=focus, key=f"rename_to_{focus}", max_chars=MAX_RUN_NAME,
                      help="1-80 letters, digits, '.', '_' or '-', starting with a letter or digit")
        st.button("Rename", on_click=_rename, args=(root, focus), disabled=active or not can_change(),
                  key="runs_rename")
    with delete:
        if active:
            st.info(f"{focus} is {status['state']}: stop it on the Train page before deleting it.",
                    icon=":material/hourglass_top:")
        confirm = st.checkbox(f"Yes, delete {focus} with all its checkpoints and logs (this cannot be undone)",
                              key=f"delete_confirm_{focus}", disabled=active)
        st.button("Delete run", type="primary", on_click=_delete, args=(root, focus), key="runs_delete",
                  disabled=active or not confirm or not can_change(),
                  icon=":material/delete:")


def import_section(root: Path) -> None:
    """Import a run archive exported from a playground (checked before anything is written)."""
    st.subheader("Import a run")
    upload_key = f"runs_upload_{st.session_state.get(UPLOAD_GEN, 0)}"
    upload = st.file_uploader("Run archive (.zip exported from a playground)", type=["zip"], key=upload_key,
                              disabled=not can_change(),
                     help="Checked before anything is written: only run files, no pickles, size limits, weights that "
                          "match the config.")
    st.text_input("Name (optional)", key="import_name", placeholder="default: the exported run's name",
                  help="A name that is taken gets a -2, -3, ... suffix")
    st.button("Import", on_click=_import, args=(root, upload_key), key="runs_import",
              icon=":material/upload:", disabled=upload is None or not can_change())
    _show_flash("import")


st.title("Runs")
st.caption("Compare runs, see which hyperparameters matter, and share a run as a report or a zip.")
runs_folder = runs_root()
all_runs = list_runs(runs_folder)
summary, unreadable = compare.summary_rows(all_runs)
st.session_state["runs_page_read"] = True
st.fragment(live_runs_table, run_every=LIVE_EVERY_S if any_active(summary) else None)(runs_folder, all_runs,
                                                                                       summary, unreadable)
if summary:
    lifecycle_section(runs_folder, summary)
    compare_curves(runs_folder, summary)
    hyperparameters_vs_results(summary)
    ablation_section(all_runs)
if all_runs:
    manage_section(runs_folder, all_runs, [r["name"] for r in summary])
import_section(runs_folder)
