"""Home: what the playground does, the device it trains on, and the runs so far."""

from __future__ import annotations

import streamlit as st

from genai_core.devices import device_info
from genai_core.runs import list_runs
from pages.ui import runs_root

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

runs = list_runs(runs_root())
st.subheader("Runs")
if runs:
    st.dataframe([r.summary() for r in runs], hide_index=True, use_container_width=True)
else:
    st.caption("No runs yet.")
