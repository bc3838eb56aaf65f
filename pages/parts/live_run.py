"""The Train page's live view: the run being trained (or the newest), its progress, curves and sample, Stop and
Resume, and the queue, redrawn by one periodic fragment."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from genai_core.config import RunConfig
from genai_core.errors import GenAIError
from genai_core.runs.folder import Run, list_runs
from genai_core.runs.status import ACTIVE_STATES, RESUMABLE_STATES
from genai_core.train.jobs import JobManager, JobStatus
from genai_core.units import format_rate, format_seconds
from pages import ui
from pages.parts.train_form import RUNNER_LABELS, anything_active

STATE_ICONS = {"queued": ":material/hourglass_top:", "running": ":material/directions_run:",
               "completed": ":material/check_circle:", "stopped": ":material/stop_circle:",
               "failed": ":material/error:", "interrupted": ":material/warning:", "created": ":material/fiber_new:",
               "pruned": ":material/content_cut:"}


def current_run(jm: JobManager) -> str | None:
    """The run the live view follows: the one this session acted on last, else running here, else next in the
    queue, else the last job of this process, else a run on disk that another process is training, else the
    newest run on disk."""
    followed = st.session_state.get(ui.FOLLOW)
    if followed and jm.run(followed).exists():
        return str(followed)
    active = jm.active()
    if active:
        return active[0].name
    queue = jm.queue()
    if queue:
        return queue[0].name
    jobs = jm.jobs()
    if jobs:
        # A job that trained beats one taken out of the queue before it started.
        return max(jobs, key=lambda j: (j.started_at is not None, j.finished_at or j.started_at or 0.0,
                                        j.queued_at or 0.0)).name
    runs = list_runs(ui.runs_root())
    for r in runs:
        if r.state in ACTIVE_STATES:
            return r.name
    return runs[0].name if runs else None


def _follow(name: str) -> None:
    st.session_state[ui.FOLLOW] = name


def show_run(name: str, waits: dict[str, float | None]) -> None:
    """State, progress, live metrics, the loss chart, the latest sample, and Stop / Resume of one run."""
    jobs = ui.job_manager()
    try:
        s: JobStatus = jobs.status(name)
    except GenAIError:
        st.caption(f"Run {name} is gone.")
        return
    run = jobs.run(name)
    rows = jobs.recent_metrics(name)
    cfg = _state_line(name, s, run, waits)
    _progress(s, rows[-1] if rows else {})
    status = run.read_status_raw()
    _live_metrics(s, rows, status)
    if rows:
        st.plotly_chart(ui.loss_figure({name: rows}, title=f"Loss of {name}"), width="stretch")
    else:
        st.caption("The loss curve appears after the first logged steps.")
    _latest_sample(s, run, is_qa=cfg is not None and cfg.task == "qa")
    for notice in s.notices:
        st.caption(f":material/info: {notice}")
    _where_it_trains(name, s, status)
    _stop_resume(name, s, run)


def _state_line(name: str, s: JobStatus, run: Run, waits: dict[str, float | None]) -> RunConfig | None:
    """The heading, the state with its message and queue place, and the run's config (None if unreadable)."""
    st.subheader(f"{STATE_ICONS.get(s.state, '')} {name}")
    line = f"**{s.state}**" + (f": {s.message}" if s.message else "")
    if s.queue_position:
        line += f" · position {s.queue_position} in the {s.device} queue"
        wait = waits.get(name) if not s.message.startswith("waiting for") else None
        if wait is not None:
            line += f", starts in about {format_seconds(wait)}"
    st.markdown(line)
    try:
        cfg: RunConfig | None = run.config()
    except GenAIError:  # a folder taken away mid-tick: the rest of the view still reads what is there
        cfg = None
    if cfg is not None and cfg.task == "qa" and cfg.parent is not None:
        st.caption(f"QA fine-tune of {cfg.parent.name}: the loss is on the answers only.")
    if s.state == "failed" and s.error and s.error != s.message:
        st.error(s.error, icon=":material/error:")
    return cfg


def _progress(s: JobStatus, last: dict[str, Any]) -> None:
    step = s.step if s.step is not None else last.get("step")
    text = f"step {step or 0:,} / {s.total_steps:,}" if s.total_steps else "waiting to start"
    if s.state == "running" and s.eta_s is not None:
        text += f" · about {format_seconds(s.eta_s)} left"
    elif s.state == "running" and s.phase and s.phase != "training":
        text += f" · {s.phase}"
    st.progress(s.progress or 0.0, text=text)


def _live_metrics(s: JobStatus, rows: list[dict[str, Any]], status: dict[str, Any]) -> None:
    """Losses, speed and learning rate (the live status first, else the last logged row), and the measured
    step time beside the estimate made before the start."""
    last = rows[-1] if rows else {}
    vals = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
    c = st.columns(4)
    train_loss = s.train_loss if s.train_loss is not None else last.get("train_loss")
    val_loss = s.val_loss if s.val_loss is not None else (vals[-1] if vals else None)
    tps = s.tokens_per_s if s.tokens_per_s is not None else last.get("tokens_per_s")
    lr_now = s.lr if s.lr is not None else last.get("lr")
    c[0].metric("Train loss", f"{train_loss:.3f}" if train_loss is not None else "–")
    c[1].metric("Validation loss", f"{val_loss:.3f}" if val_loss is not None else "–")
    c[2].metric("Tokens / s", f"{tps:,.0f}" if tps is not None else "–")
    c[3].metric("Learning rate", format_rate(lr_now))
    estimated, tokens_per_step = status.get("estimated_step_s"), status.get("tokens_per_step")
    if estimated and tps and tokens_per_step:
        measured = tokens_per_step / tps
        st.caption(f"Time per step: estimated {format_seconds(estimated)} before the start, measured "
                   f"{format_seconds(measured)} ({measured / estimated:.2f}x the estimate).")


def _latest_sample(s: JobStatus, run: Run, *, is_qa: bool) -> None:
    sample, sample_step = s.sample, s.sample_step
    if sample is None:
        samples = run.samples()
        if samples:
            sample, sample_step = samples[-1].get("text"), samples[-1].get("step")
    if sample:
        what = "Latest answer to the first validation question, beside the expected one" if is_qa else "Latest sample"
        st.caption(f"{what} (step {sample_step}):")
        st.code(sample, language=None, wrap_lines=True)


def _where_it_trains(name: str, s: JobStatus, status: dict[str, Any]) -> None:
    """For a run in its own process or on Ray: where, its Ray state, and its log."""
    if s.runner == "thread":
        return
    where = RUNNER_LABELS[s.runner].lower()
    if s.runner == "ray":
        state = s.backend_state or "state unknown"
        where += f" ({status.get('ray_address')}), job {status.get('ray_job')}: {state}"
    with st.expander(f"Trains on {where} · its log"):
        st.code(ui.job_manager().log(name, max_chars=6000) or "(nothing written yet)", language=None)


def _stop_resume(name: str, s: JobStatus, run: Run) -> None:
    jobs = ui.job_manager()
    row = st.container(horizontal=True)  # buttons as wide as their labels (narrow columns cut "Resume" at 800 px)
    if s.here and s.active and row.button("Stop", key="train_stop_run", disabled=not ui.can_change(),
                                          help="Saves a checkpoint, then stops; resume later.") and ui.presenter_only():
        st.session_state[ui.FOLLOW] = name  # its final state and Resume stay in view, whatever trains next
        with ui.user_errors():
            jobs.stop(name)
            st.rerun()
    resumable = s.state in RESUMABLE_STATES and not s.here and run.latest_checkpoint() is not None
    if resumable and row.button("Resume", key="train_resume_run", type="primary", disabled=not ui.can_change(),
                                help="Continue from the latest checkpoint: weights, optimizer and schedule.") \
            and ui.presenter_only():
        st.session_state[ui.FOLLOW] = name
        with ui.user_errors():
            jobs.resume(name)
            st.rerun()  # a full rerun switches the periodic refresh on
    if s.state in RESUMABLE_STATES and not resumable and not s.here:
        st.caption("No checkpoint was saved, so this run cannot be resumed; start it again.")


def show_queue(waits: dict[str, float | None]) -> None:
    queue = ui.job_manager().queue()
    if not queue:
        return
    st.markdown("**Queue**")

    def starts_in(q: JobStatus) -> str:
        if q.message.startswith("waiting for"):
            return q.message
        wait = waits.get(q.name)
        return f"in about {format_seconds(wait)}" if wait is not None else "after the runs ahead (length unknown)"

    ui.table([{"position": q.queue_position, "run": q.name, "starts": starts_in(q), "device": q.device,
                   "resume": q.resume} for q in queue], hide_index=True, width="stretch")
    if st.button("Clear the queue", key="train_clear_queue", disabled=not ui.can_change()) and ui.presenter_only():
        for q in queue:
            with ui.user_errors():
                ui.job_manager().stop(q.name)
        st.rerun()


def live_view(was_active: bool) -> None:
    """The one periodic fragment of the page: it re-finds the current run every tick (the next queued run
    takes over when one ends) and asks for a full rerun when everything has ended, to stop ticking."""
    t0 = time.perf_counter()
    name = current_run(ui.job_manager())
    if name is None:
        st.caption("No runs yet: set the knobs below and press Start.")
        return
    waits = ui.job_manager().queue_waits()  # once per tick, for the run shown and the queue table
    jm = ui.job_manager()
    others = list(dict.fromkeys(j.name for j in [*jm.active(), *jm.queue()] if j.name != name))
    if others:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.caption(f"Also training or queued: {', '.join(others)}.")
        c2.button(f"Show {others[0]}", key="train_show_other", on_click=_follow, args=(others[0],))
    show_run(name, waits)
    show_queue(waits)
    # How long a tick takes (a busy machine draws slowly): the refresh waits at least twice that, or the
    # chart would be redrawn before it was ever shown and stay greyed out as "stale".
    tick = st.session_state["train_tick_s"] = time.perf_counter() - t0
    if was_active and not anything_active():
        st.rerun()
    if was_active and 2 * tick > 1.5 * st.session_state.get("train_every", 1.0):
        st.rerun()  # a full run makes the fragment again, with a longer interval


def show_live_view(box: Any) -> None:
    """Draw the live view at the top of the page; it reruns every second while a job is queued or running.

    The fragment is made here, at the end of a full run, so that a run queued during this run (Start, the grid)
    switches the periodic refresh on at once.
    """
    live = anything_active()
    every = st.session_state["train_every"] = max(1.0, round(2 * st.session_state.get("train_tick_s", 0.0), 1))
    with box:
        st.fragment(live_view, run_every=every if live else None)(live)
        st.divider()
