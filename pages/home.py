"""Home: what the playground does, the device it trains on, a one-click demo, and the runs so far."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from genai_core.config import RunConfig
from genai_core.demo import DEMO_MINUTES, demo_pretrain_config, demo_qa_config
from genai_core.devices import device_info
from genai_core.errors import GenAIError
from genai_core.jobs import JobManager, JobStatus
from genai_core.runs import list_runs
from pages import ui

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

# ----------------------------------------------------------------- one-click demo
# (Comments, not docstrings: Streamlit's magic would write a bare string on the page.)
DEMO_NAMES = ("demo-qa-pretrain", "demo-qa")  # run names of the two stages; ui.unique_run_name adds -2, -3, ...


def demo_presets() -> tuple[RunConfig, RunConfig]:
    """The engine's clinical QA demo (`genai_core.demo`); the fine-tune's parent is a placeholder here, read
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


def queue_demo(jm: JobManager) -> None:
    """Queue both stages: the fine-tune waits behind its parent in the device's queue (first in, first out)."""
    pretrain_name = ui.unique_run_name(DEMO_NAMES[0])
    jm.submit(demo_pretrain_config(), pretrain_name)
    try:
        jm.submit(demo_qa_config(parent=jm.run(pretrain_name).path), ui.unique_run_name(DEMO_NAMES[1]))
    except GenAIError:
        jm.stop(pretrain_name)  # half a demo would train for minutes to no end
        raise


st.subheader("Try it")
jm = ui.job_manager()
pretrain, fine_tune = demo_presets()
pm = pretrain.model
tokens = "BPE tokens" if pretrain.data.tokenizer == "bpe" else "characters"
st.write(
    f"**Train the clinical QA demo**: a {pm.arch.upper()} ({pm.n_layers} layers, d_model {pm.d_model}, a context of "
    f"{pm.seq_len} {tokens}{', with a copy head' if pm.copy_head else ''}) first reads the bundled fictional case "
    f"reports ({pretrain.train.max_steps:,} steps), then learns to answer questions about a case "
    f"({fine_tune.train.max_steps:,} steps). About "
    f"{DEMO_MINUTES} minutes on a 2-core CPU; the Train page shows both runs learn, one after the other."
)
st.write(
    "Afterwards, the **Chat** page answers questions about a clinical case you paste, and the **Evaluate** page "
    "scores the model on questions it never saw."
)
active = demo_jobs(jm)
missing = [p for p in (pretrain.data.corpus, fine_tune.data.corpus, fine_tune.data.val_corpus)
           if p is not None and not Path(p).is_file()]
if active:  # one click is enough: a second would only queue the same two runs again
    st.page_link("pages/train.py", icon="🏋️",
                 label=f"The demo is training ({' → '.join(j.name for j in active)}): watch it on the Train page")
elif missing:
    st.button("Train the clinical QA demo", key="home_demo", disabled=True)
    st.caption(f"The demo's bundled data is not installed: {', '.join(str(p) for p in missing)}.")
elif st.button("Train the clinical QA demo", key="home_demo", type="primary", icon="🚀"):
    with ui.user_errors():
        queue_demo(jm)
        st.switch_page("pages/train.py")
c1, c2, _ = st.columns([1, 1, 2])
c1.page_link("pages/chat.py", label="Chat", icon="💬")
c2.page_link("pages/evaluate.py", label="Evaluate", icon="🎯")

# ----------------------------------------------------------------- runs so far
runs = list_runs(ui.runs_root())
st.subheader("Runs")
if runs:
    st.dataframe([r.summary() for r in runs], hide_index=True, width="stretch")
else:
    st.caption("No runs yet.")
