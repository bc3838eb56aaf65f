"""Pieces both Train forms share (pretraining and the QA fine-tune): help texts and choices read from the config
models, the corpus's statistics, where a run trains, its name, the Start checks and the estimate panel (the Explore
page's grid uses the corpus statistics and the estimate's timing too)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import streamlit as st
import torch
from pydantic import BaseModel

from genai_core.config import DataConfig, RunConfig, TrainConfig
from genai_core.data.corpus import check_corpus
from genai_core.data.tokenstore import TokenStore, prepare_cached, store_key
from genai_core.errors import GenAIError
from genai_core.runs.folder import validate_run_name
from genai_core.train import ray_jobs
from genai_core.train.estimates import Estimate
from genai_core.units import format_bytes, format_seconds, format_si
from pages import ui

PERSIST = "session"  # knob values survive a visit to another page (the Data page, say) and back


def field_help(model: type[BaseModel], name: str) -> str | None:
    """The config field's docstring: one source for the CLI's --help and the app's help icons."""
    return model.model_fields[name].description


def literals(model: type[BaseModel], name: str) -> list[str]:
    """The choices of a Literal config field, the default first (as the CLI derives them)."""
    choices = [str(c) for c in get_args(model.model_fields[name].annotation)]
    default = model.model_fields[name].default
    return sorted(choices, key=lambda c: c != default)


def anything_active() -> bool:
    """Whether a run of this server trains or waits in its queue."""
    jobs = ui.job_manager()
    return bool(jobs.active() or jobs.queue())


class Problems:
    """Collects every reason the Start button is disabled; shown together right above it.

    It quacks like a container for `ui.user_errors(where)`, which reports a user error with `.error(...)`.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []

    def error(self, message: str, icon: str | None = None) -> None:
        self.messages.append(message)


@st.cache_data(show_spinner=False, max_entries=16)
def _store_stats(cache: str, key: str) -> dict[str, int]:
    """What the knobs depend on (vocabulary, split sizes) of a prepared store; `key` changes with the file."""
    store = TokenStore(Path(cache) / key)
    return {"vocab_size": store.tokenizer.vocab_size, "train_tokens": len(store.train),
            "val_tokens": len(store.val), "max_seq_len": store.max_seq_len(), "records": store.stats.records}


def corpus_stats(cfg: DataConfig) -> dict[str, int]:
    """Tokenize the corpus once (with a progress bar), then read its statistics from the cache."""
    check_corpus(cfg.corpus, cfg.text_column)  # a missing or unreadable file is a user error, said here
    cache = ui.token_cache()
    key = store_key(cfg)
    if not (cache / key / "meta.json").is_file():
        if not ui.can_change():  # a visitor's page view must not tokenize a corpus into the runs folder
            raise GenAIError("This corpus is not prepared yet: the presenter prepares it on the Data page.")
        bar = st.progress(0.0, text="Tokenizing the corpus (once; every run reuses it)…")
        prepare_cached(cfg, cache, progress=ui.progress_to(bar))
        bar.empty()
    return _store_stats(str(cache), key)


def available_devices() -> list[str]:
    """The device choices of this machine: `auto`, `cpu`, and the accelerators torch sees."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


RUNNER_LABELS = {"process": "This machine, in its own process", "thread": "This machine, inside the app's server",
                 "ray": "A Ray cluster"}


def run_on_controls(prefix: str, device: str) -> dict[str, Any]:
    """Where the run trains: `TrainConfig.runner` (the app's default first: its own process, which survives the
    server) and what that runner needs (the Ray address; GPUs per run where there are several)."""
    first = ui.job_manager().default_runner
    choices = [first, *(r for r in RUNNER_LABELS if r != first)]
    if not ray_jobs.available():
        choices.remove("ray")
    runner = st.selectbox("Run on", choices, key=f"{prefix}_runner", persist_state=PERSIST,
                          format_func=RUNNER_LABELS.get, help=field_help(TrainConfig, "runner"))
    out: dict[str, Any] = {"runner": runner}
    if runner == "ray":
        address = st.text_input("Ray dashboard address", key=f"{prefix}_ray_address", persist_state=PERSIST,
                                value=ray_jobs.default_address(), placeholder="http://head-node:8265",
                                help=field_help(TrainConfig, "ray_address")).strip()
        out["ray_address"] = address or None
    gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    if runner == "process" and gpus > 1:
        out["gpus"] = int(st.number_input(f"GPUs for this run (of {gpus})", min_value=1, max_value=gpus, value=1,
                                          key=f"{prefix}_gpus", persist_state=PERSIST,
                                          help=field_help(TrainConfig, "gpus")))
    return out


def run_name_input(key: str, default: str, help_text: str, problems: Problems) -> str:
    """The run-name box: empty means `default`; a name that cannot be used is added to `problems`."""
    if st.session_state.pop(f"{key}_clear", False):
        # The last start used the typed name: empty the box so the page does not report it as taken.
        st.session_state[key] = ""
    name = st.text_input("Run name", key=key, persist_state=PERSIST, placeholder=default, help=help_text).strip()
    name = name or default
    if name_problem := run_name_problem(name):
        problems.error(name_problem)
    return name


def submit(config: RunConfig, name: str, name_key: str, est: Estimate | None = None) -> None:
    """Start (or queue) the run, empty the name box on the next run, and redraw with the live view. The
    estimate goes into the run's status, to be shown beside the measured speed once it trains."""
    note = {"estimated_step_s": est.seconds_per_step, "estimated_total_s": est.total_seconds} if est else None
    with ui.user_errors():
        started = ui.job_manager().submit(config, name, note=note)
        st.session_state[ui.FOLLOW] = name
        if started.queue_position:
            st.toast(f"{name} is queued (position {started.queue_position}) behind the running job.")
        st.session_state[f"{name_key}_clear"] = True
        st.rerun()


def run_name_problem(name: str) -> str | None:
    """Why a new run cannot be called `name` (invalid, training now, or taken on disk), or None."""
    try:
        validate_run_name(name)
    except GenAIError as e:
        return str(e)
    if name in {j.name for j in ui.job_manager().jobs() if j.active}:
        return f"{name!r} is training now: type a new name (or clear the box) for another run"
    if (ui.runs_root() / name).exists():
        return f"a run named {name!r} already exists: choose another name (or resume it)"
    return None


def training_path(est: Estimate) -> str:
    """Which code path the run takes: device, precision (and why), Muon's precision, threads and compilation."""
    precision = {"bf16": "bf16 autocast", "fp16": "fp16 autocast with loss scaling", "fp32": "fp32"}[est.precision]
    precision += f" ({est.precision_why})"
    muon = ""
    if est.muon_precision:
        why = "" if est.muon_precision_why == est.precision_why else f" ({est.muon_precision_why})"
        muon = f", Muon in {est.muon_precision}{why}"
    threads = f", {est.threads} CPU thread{'s' if est.threads != 1 else ''}" if est.threads else ""
    compiled = ", compiled with torch.compile" if est.compiled else ", eager (not compiled)"
    return f"{est.device}, {precision}{muon}{threads}{compiled}"


def show_estimate(est: Estimate | None) -> None:
    """Parameters, memory, FLOPs and time of the run the form describes (or why there is none yet)."""
    st.subheader("Estimate")
    if est is not None:
        c = st.columns(3) + st.columns(3)  # two rows: six metrics in one row cut values off at laptop widths
        c[0].metric("Parameters", f"{est.params:,}", help="Trainable parameters (tied weights counted once).")
        c[1].metric("Peak memory", format_bytes(est.memory.total),
                    help=f"Free now: {format_bytes(est.memory.available)}. The peak happens at "
                         f"{est.memory.peak_phase}; see the breakdown below.")
        c[2].metric("FLOPs per step", format_si(est.flops_per_step, "FLOP"),
                    help=f"{format_si(est.flops_per_token, 'FLOP')} per token")
        c[3].metric("Time per step", format_seconds(est.seconds_per_step),
                    help=f"{est.tokens_per_second:,.0f} tokens/s")
        c[4].metric("Time per epoch", format_seconds(est.seconds_per_epoch),
                    help=f"{est.steps_per_epoch:,} steps per epoch" if est.steps_per_epoch else None)
        c[5].metric("Total time", format_seconds(est.total_seconds),
                    help=f"{est.total_steps:,} steps, evaluations and samples included" if est.total_steps else None)
        timing = "timing a few real steps in the background…" if est.pending else est.method
        st.caption(f"Runs on: {training_path(est)}. Time: {timing}.")
        if est.message and est.fits:
            st.warning(est.message, icon=":material/warning:")
        with st.expander("Memory breakdown"):
            m = est.memory
            ui.table(
                [{"part": part, "size": format_bytes(size), "bytes": size} for part, size in (
                    ("weights", m.weights), ("gradients", m.gradients), ("optimizer state", m.optimizer),
                    ("activations", m.activations), ("logits and loss", m.logits), ("backward workspace", m.workspace),
                    ("allocator slack", m.allocator), ("framework runtime", m.runtime), ("peak (total)", m.total))],
                hide_index=True, width="stretch")
            st.caption(f"The peak is not the sum of the parts: gradients replace activations during the backward "
                       f"pass. Attention kernel assumed: {m.attention}. Free now: {format_bytes(m.available)}.")
    else:
        st.caption("The estimate appears once the settings are valid.")


def live_estimate(est: Estimate | None, again: Callable[[], Estimate]) -> None:
    """The estimate, shown at once; while real steps are timed in the background it redraws every second
    (`again` re-asks the engine, which then returns the timed figure) instead of holding the page back.
    It redraws itself only, never the whole page: a full rerun started here when the timing lands would swallow
    a click on Start made in that moment (seen in the browser test)."""
    def draw() -> None:
        shown = est
        if est is not None and est.pending:
            try:
                shown = again()
            except GenAIError:
                shown = est
        show_estimate(shown)

    st.fragment(draw, run_every=1.0 if est is not None and est.pending else None)()
