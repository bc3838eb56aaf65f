"""Home: what the playground does, the device it trains on, a one-click demo, and the runs so far."""

from __future__ import annotations

import streamlit as st

from genai_core.devices import device_info
from genai_core.runs import list_runs
from pages import ui

st.title("GenAI Playground")
st.write(
    "Train a small language model from scratch on your own text, watch it learn live, and talk to it. "
    "Bring a corpus, set the knobs, and the engine trains a GPT or an LSTM on this machine's GPU or CPU. "
    "Compare runs side by side to see which hyperparameters matter."
)

info = device_info()
if info["device"] == "cuda":
    st.info(f"Training device: **{info['name']}**, {info['memory_gb']} GB GPU memory")
else:
    st.info(f"Training device: **{info['name']}**, {info['ram_gb']} GB RAM, {info['cpu_threads']} torch threads")

# ----------------------------------------------------------------- one-click demo
st.subheader("Try it")
demo_data = ui.demo_data_config()
shape = ui.DEMO_SHAPE
st.write(
    f"Train a character-level GPT ({shape['n_layers']} layers, d_model {shape['d_model']}, context "
    f"{shape['seq_len']} characters, {shape['max_steps']:,} steps) on the bundled corpus of fictional clinical "
    "cases. It takes about two minutes on a laptop CPU; the Train page shows the loss falling and the samples "
    "turning into words as it learns."
)
demo_jobs = [j.name for j in ui.job_manager().jobs() if j.active and j.name.startswith(ui.DEMO_NAME)]
if demo_jobs:  # one click is enough: a second would only queue the same run again
    st.page_link("pages/train.py", label=f"The demo ({demo_jobs[0]}) is training: watch it on the Train page",
                 icon="🏋️")
elif demo_data is None:
    st.button("Train the demo corpus", key="home_demo", disabled=True)
    st.caption("The demo corpus (assets/corpora/clinical_cases.csv) is not installed.")
elif st.button("Train the demo corpus", key="home_demo", type="primary", icon="🚀"):
    with ui.user_errors():
        ui.job_manager().submit(ui.demo_preset(demo_data), ui.unique_run_name(ui.DEMO_NAME))
        st.switch_page("pages/train.py")

# ----------------------------------------------------------------- runs so far
runs = list_runs(ui.runs_root())
st.subheader("Runs")
if runs:
    st.dataframe([r.summary() for r in runs], hide_index=True, width="stretch")
else:
    st.caption("No runs yet.")
