"""Home: what the playground does, the device it trains on, a one-click demo, and the runs so far."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from genai_core.clinical.demo import demo_estimates, demo_pretrain_config, demo_qa_config
from genai_core.config import RunConfig
from genai_core.devices import device_info
from genai_core.errors import GenAIError
from genai_core.runs.folder import Run, list_runs
from genai_core.runs.status import ACTIVE_STATES, RESUMABLE_STATES
from genai_core.train.estimates import Estimate
from genai_core.train.job_status import parent_not_ready
from genai_core.train.jobs import JobManager, JobStatus
from genai_core.units import format_seconds
from pages import ui

# ----------------------------------------------------------------- one-click demo
# (Comments, not docstrings: Streamlit's magic would write a bare string on the page.)
DEMO_NAMES = ("demo-qa-pretrain", "demo-qa")  # run names of the two stages; ui.unique_run_name adds -2, -3, ...


def demo_presets() -> tuple[RunConfig, RunConfig]:
    """The engine's clinical QA demo (`genai_core.clinical.demo`); the fine-tune's parent is a placeholder here, read
    for its knobs and name only."""
    return demo_pretrain_config(), demo_qa_config(parent=Path("parent"))


def demo_jobs(jm: JobManager) -> list[JobStatus]:
    """The demo's queued or running jobs, found by the preset names their configs carry (not by run name,
    which a person may have chosen too)."""
    preset_names = {cfg.name for cfg in demo_presets()}
    found = []
    for job in jm.jobs():
        try:
            if job.active and jm.run(job.name).config().name in preset_names:
                found.append(job)
        except GenAIError:  # a folder deleted under a queued job: not the demo's concern
            continue
    return found


def demo_runs() -> dict[str, Run]:
    """The newest run folder of each demo stage on disk, by the preset name its config carries."""
    presets = [cfg.name for cfg in demo_presets()]
    found: dict[str, Run] = {}
    for run in list_runs(ui.runs_root()):  # newest first
        try:
            name = run.config().name
        except GenAIError:  # a damaged folder is not the demo's
            continue
        if name in presets and name not in found:
            found[name] = run
    return found


def held_by(jm: JobManager, name: str) -> bool | None:
    """For a queued run: None when nothing holds it, True when its parent is still on its way, False when its
    parent was stopped, failed or interrupted (it waits until someone resumes the parent)."""
    try:
        held = parent_not_ready(jm.run(name).config())
    except GenAIError:
        return None
    return None if held is None else held[2]


def resume_demo(jm: JobManager, found: dict[str, Run]) -> None:
    """Carry on the existing demo: resume (or start again) whichever stage has not completed. The fine-tune
    waits for its parent to complete (the job manager holds it until then)."""
    pre_cfg, qa_cfg = demo_presets()
    pre, qa = found.get(pre_cfg.name), found.get(qa_cfg.name)
    if pre is None:
        queue_demo(jm)
        return
    if pre.state != "completed":
        if pre.state in RESUMABLE_STATES and pre.latest_checkpoint() is not None:
            jm.resume(pre.name)
        else:
            jm.submit(demo_pretrain_config(), pre.name, replace=True)
    if qa is None:
        jm.submit(demo_qa_config(parent=pre.path), ui.unique_run_name(DEMO_NAMES[1]))
    elif qa.state in ACTIVE_STATES:
        pass  # queued behind its parent already: it starts when the pretraining completes
    elif qa.state != "completed":
        if qa.state in RESUMABLE_STATES and qa.latest_checkpoint() is not None:
            jm.resume(qa.name)
        else:
            jm.submit(demo_qa_config(parent=pre.path), qa.name, replace=True)


def restart_demo(jm: JobManager, found: dict[str, Run]) -> None:
    """Train both stages again from scratch, in the same run folders (a stage still queued is taken out first)."""
    for job in demo_jobs(jm):
        jm.stop(job.name)
    pre_cfg, qa_cfg = demo_presets()
    pre_name = found[pre_cfg.name].name if pre_cfg.name in found else ui.unique_run_name(DEMO_NAMES[0])
    qa_name = found[qa_cfg.name].name if qa_cfg.name in found else ui.unique_run_name(DEMO_NAMES[1])
    jm.submit(demo_pretrain_config(), pre_name, replace=True)
    jm.submit(demo_qa_config(parent=jm.run(pre_name).path), qa_name, replace=True)


def queue_demo(jm: JobManager) -> None:
    """Queue both stages: the fine-tune waits behind its parent in the device's queue (first in, first out)."""
    pretrain_name = ui.unique_run_name(DEMO_NAMES[0])
    jm.submit(demo_pretrain_config(), pretrain_name)
    try:
        jm.submit(demo_qa_config(parent=jm.run(pretrain_name).path), ui.unique_run_name(DEMO_NAMES[1]))
    except GenAIError:
        jm.stop(pretrain_name)  # half a demo would train for minutes to no end
        raise


def demo_duration(ests: list[Estimate]) -> str:
    """The demo's length on this machine, from the engine's estimate of both stages."""
    totals = [e.total_seconds for e in ests]
    if any(t is None for t in totals):
        return "Its length on this machine could not be estimated"
    busy = " (the machine is busy now: expect longer)" if any(e.busy_cores >= 0.5 for e in ests) else ""
    return f"About {format_seconds(sum(totals))} of training on this machine{busy}"


def describe_demo(pretrain: RunConfig, fine_tune: RunConfig) -> None:
    """What the demo trains and for how long; redrawn each second while its steps are timed in the background."""
    ests = demo_estimates(ui.runs_root(), background=True)
    pm = pretrain.model
    tokens = "BPE tokens" if pretrain.data.tokenizer == "bpe" else "characters"
    pending = any(e.pending for e in ests)
    pointing = ", pointing at each answer in the case" if fine_tune.model.span_head else ""
    st.write(
        f"**Train the clinical QA demo**: a {pm.arch.upper()} ({pm.n_layers} layers, d_model {pm.d_model}, a context "
        f"of {pm.seq_len} {tokens}{', with a copy head' if pm.copy_head else ''}) first reads the bundled fictional "
        f"case reports ({pretrain.train.max_steps:,} steps), then learns to answer questions about a case "
        f"({fine_tune.train.max_steps:,} steps{pointing}). {demo_duration(ests)}"
        f"{' (refining…)' if pending else ''}; the Train page shows both runs learn, one "
        "after the other."
    )
    # No full rerun when the timing lands: a rerun started here would swallow a click on the demo's buttons made
    # in that moment (as it did on the Train page). The ticking stops at the page's next full run.
    st.session_state["home_refining"] = pending


def introduction() -> None:
    """What the playground does, and the device it trains on."""
    st.title("GenAI Playground")
    st.write(
        "Train a small language model from scratch on your own text, watch it learn live, and talk to it. "
        "Bring a corpus, set the knobs, and the engine trains a GPT, an LSTM or a GRU on this machine's GPU or CPU. "
        "Compare runs side by side to see which hyperparameters matter."
    )

    info = device_info()
    if info["device"] == "cuda":
        st.info(f"Training device: **{info['name']}**, {info['memory_gb']} GB GPU memory")
    else:
        st.info(f"Training device: **{info['name']}**, {info['ram_gb']} GB RAM, {info['cpu_threads']} torch threads")


def demo_section() -> None:
    """The one-click clinical QA demo: what it trains and for how long, and start, resume or restart it."""
    st.subheader("Try it")
    jm = ui.job_manager()
    pretrain, fine_tune = demo_presets()
    with ui.user_errors():
        st.fragment(describe_demo, run_every=1.0 if st.session_state.get("home_refining", True) else None)(
            pretrain, fine_tune)
    st.write(
        "Afterwards, the **Chat** page answers questions about a clinical case you paste, and the **Evaluate** page "
        "scores the model on questions it never saw."
    )
    active = demo_jobs(jm)
    # The demo trains while one of its runs does, or is on its way to; a fine-tune held by a stopped pretraining is
    # not (it would wait forever): then the demo is paused, and Home offers to resume or restart it.
    training = [j for j in active if j.state == "running" or held_by(jm, j.name) in (None, True)]
    missing = [p for p in (pretrain.data.corpus, fine_tune.data.corpus, fine_tune.data.val_corpus)
               if p is not None and not Path(p).is_file()]
    if training:  # one click is enough: a second would only queue the same two runs again
        st.page_link("pages/train.py", icon=":material/fitness_center:",
                     label=f"The demo is training ({' → '.join(j.name for j in active)}): watch it on the Train page")
    elif missing:
        st.button("Train the clinical QA demo", key="home_demo", disabled=True)
        st.caption(f"The demo's bundled data is not installed: {', '.join(str(p) for p in missing)}.")
    elif found := demo_runs():
        # Clicking again must not start a second copy from scratch: open, carry on, or (asked for) restart.
        states = ", ".join(f"{run.name} {run.state}" for run in found.values())
        done = all(run.state == "completed" for run in found.values()) and len(found) == 2
        if active:
            st.caption(f"The demo is paused: {states}. The fine-tune starts once its pretraining has completed.")
        else:
            st.caption(f"The demo was trained here before: {states}.")
        # A row that wraps: in three columns the buttons' labels were cut at 800 px ("Restart it fr…").
        row = st.container(horizontal=True)
        if done:
            row.page_link("pages/chat.py", label="Open the trained demo in the Chat", icon=":material/chat:")
        elif row.button("Resume the demo", key="home_demo_resume", type="primary", icon=":material/play_arrow:",
                        **ui.change_kwargs()) and ui.presenter_only():
            with ui.user_errors():
                resume_demo(jm, found)
                st.session_state.pop(ui.FOLLOW, None)  # the Train page's live view: the demo that trains
                st.switch_page("pages/train.py")
        if row.button("Restart it from scratch", key="home_demo_restart", icon=":material/restart_alt:",
                      **ui.change_kwargs("Replaces the demo's runs (their curves and checkpoints) "
                                         "with a fresh training")) \
                and ui.presenter_only():
            with ui.user_errors():
                restart_demo(jm, found)
                st.session_state.pop(ui.FOLLOW, None)
                st.switch_page("pages/train.py")
    elif st.button("Train the clinical QA demo", key="home_demo", type="primary", icon=":material/rocket_launch:",
                   **ui.change_kwargs()) and ui.presenter_only():
        with ui.user_errors():
            queue_demo(jm)
            st.session_state.pop(ui.FOLLOW, None)
            st.switch_page("pages/train.py")
    c1, c2, _ = st.columns([1, 1, 2])
    c1.page_link("pages/chat.py", label="Chat", icon=":material/chat:")
    c2.page_link("pages/evaluate.py", label="Evaluate", icon=":material/target:")


def runs_section() -> None:
    """The runs so far."""
    runs = list_runs(ui.runs_root())
    st.subheader("Runs")
    if runs:
        ui.runs_table(ui.readable_summaries(runs), ["name", "state", "task", "arch", "params", "d_model", "n_layers",
                                                    "seq_len", "step", "best_val_loss", "elapsed_s"], key="home_runs")
    else:
        st.caption("No runs yet.")


introduction()
demo_section()
runs_section()
