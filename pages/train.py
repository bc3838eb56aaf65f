"""Train: set the knobs, see what the run will cost, start it (or a grid of runs), and watch it learn live.

The page only gathers inputs, asks `genai_core` and draws. Numbers (parameters, memory, time) come from
`genai_core.train.estimates.estimate`; validation comes from the config models; training runs in the job
manager's background thread, which this page polls from one periodic fragment. What run to show is
found from the job manager and the disk, never from session_state, so a refresh or a second tab sees
the same run, and after a server restart a run that was training reads `interrupted` with Resume.

Two forms share the live view: pretraining (a new model on a corpus) and fine-tuning for QA (a finished run,
its network and tokenizer, on a question/context/answer file; the engine's `fine_tune_config` completes it).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import streamlit as st
import torch
from pydantic import BaseModel, ValidationError

from genai_core.clinical.demo import demo_qa_config
from genai_core.config import (
    RECIPES,
    SUGGESTED_MAX_STEPS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    recipe_values,
)
from genai_core.data.corpus import open_corpus
from genai_core.data.tokenstore import TokenStore, prepare_cached, seq_len_problem, store_key
from genai_core.errors import GenAIError, user_message
from genai_core.generate.qa import QAStore, prepare_qa, qa_store_key, read_qa_table
from genai_core.runs.folder import RESUMABLE_STATES, Run, list_runs, slugify, token_cache_dir, validate_run_name
from genai_core.train import ray_jobs
from genai_core.train.estimates import Estimate, estimate
from genai_core.train.jobs import JobManager, JobStatus
from genai_core.train.trainer import fine_tune_config
from genai_core.units import format_bytes, format_seconds
from pages import ui

STATE_ICONS = {"queued": ":material/hourglass_top:", "running": ":material/directions_run:",
               "completed": ":material/check_circle:", "stopped": ":material/stop_circle:",
               "failed": ":material/error:", "interrupted": ":material/warning:", "created": ":material/fiber_new:"}
# Knobs the Explore grid can vary: name -> (config section, value type).
EXPLORABLE: dict[str, tuple[str, type]] = {
    "d_model": ("model", int), "n_layers": ("model", int), "n_heads": ("model", int), "seq_len": ("model", int),
    "dropout": ("model", float), "lr": ("train", float), "batch_size": ("train", int),
    "warmup_steps": ("train", int), "weight_decay": ("train", float),
}
MAX_EXPLORE_KNOBS, MAX_EXPLORE_VALUES = 2, 4
PERSIST = "session"  # knob values survive a visit to another page (the Data page, say) and back


def field_help(model: type[BaseModel], name: str) -> str | None:
    """The config field's docstring: one source for the CLI's --help and the app's help icons."""
    return model.model_fields[name].description


def _literals(model: type[BaseModel], name: str) -> list[str]:
    """The choices of a Literal config field, the default first (as the CLI derives them)."""
    choices = [str(c) for c in get_args(model.model_fields[name].annotation)]
    default = model.model_fields[name].default
    return sorted(choices, key=lambda c: c != default)


def si(value: float, unit: str) -> str:
    """`1.2e10, "FLOP"` -> `12.0 GFLOP` (display only)."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def value_label(v: float) -> str:
    """How a knob value reads in a run name: `64`, `0.003`, `1e-05`."""
    return str(v) if isinstance(v, int) else f"{v:g}"


# --------------------------------------------------------------------------- the corpus
def data_choice() -> tuple[DataConfig | None, str]:
    """The Data page's choice, else the bundled demo corpus; with where it came from."""
    choice = ui.load_data_choice()
    if choice is not None:
        return choice, "data page"
    demo = ui.demo_data_config()
    return (demo, "demo") if demo is not None else (None, "none")


def token_cache() -> Path:
    # The folder where the trainer looks for prepared corpora: preparing here once serves every run after.
    return token_cache_dir(ui.runs_root())


@st.cache_data(show_spinner=False, max_entries=16)
def _store_stats(cache: str, key: str) -> dict[str, int]:
    """What the knobs depend on (vocabulary, split sizes) of a prepared store; `key` changes with the file."""
    store = TokenStore(Path(cache) / key)
    return {"vocab_size": store.tokenizer.vocab_size, "train_tokens": len(store.train),
            "val_tokens": len(store.val), "max_seq_len": store.max_seq_len(), "records": store.stats.records}


def corpus_stats(cfg: DataConfig) -> dict[str, int]:
    """Tokenize the corpus once (with a progress bar), then read its statistics from the cache."""
    open_corpus(cfg.corpus, cfg.text_column)  # a missing or unreadable file is a user error, said here
    cache = token_cache()
    key = store_key(cfg)
    if not (cache / key / "meta.json").is_file():
        bar = st.progress(0.0, text="Tokenizing the corpus (once; every run reuses it)…")
        prepare_cached(cfg, cache, progress=lambda f, msg: bar.progress(min(1.0, max(0.0, f)), text=msg))
        bar.empty()
    return _store_stats(str(cache), key)


# --------------------------------------------------------------------------- which run to show
def current_run(jm: JobManager) -> str | None:
    """The run the live view follows: running here, else next in the queue, else the last job of this
    process, else a run on disk that another process is training, else the newest run on disk."""
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
        if r.state in ("running", "queued"):
            return r.name
    return runs[0].name if runs else None


def anything_active(jm: JobManager) -> bool:
    return bool(jm.active() or jm.queue())


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


# --------------------------------------------------------------------------- the form, checked
class Problems:
    """Collects every reason the Start button is disabled; shown together right above it.

    It quacks like a container for `ui.user_errors(where)`, which reports a user error with `.error(...)`.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []

    def error(self, message: str, icon: str | None = None) -> None:
        self.messages.append(message)


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
        started = jm.submit(config, name, note=note)
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
    if name in {j.name for j in jm.jobs() if j.active}:
        return f"{name!r} is training now: type a new name (or clear the box) for another run"
    if (ui.runs_root() / name).exists():
        return f"a run named {name!r} already exists: choose another name (or resume it)"
    return None


def training_path(est: Estimate) -> str:
    """Which code path the run takes: device, precision, threads and compilation, in words."""
    precision = {"bf16": "bf16 autocast", "fp16": "fp16 autocast with loss scaling", "fp32": "fp32"}[est.precision]
    threads = f", {est.threads} CPU thread{'s' if est.threads != 1 else ''}" if est.threads else ""
    compiled = ", compiled with torch.compile" if est.compiled else ", eager (not compiled)"
    return f"{est.device}, {precision}{threads}{compiled}"


def show_estimate(est: Estimate | None) -> None:
    """Parameters, memory, FLOPs and time of the run the form describes (or why there is none yet)."""
    st.subheader("Estimate")
    if est is not None:
        c = st.columns(3) + st.columns(3)  # two rows: six metrics in one row cut values off at laptop widths
        c[0].metric("Parameters", f"{est.params:,}", help="Trainable parameters (tied weights counted once).")
        c[1].metric("Peak memory", format_bytes(est.memory.total),
                    help=f"Free now: {format_bytes(est.memory.available)}. The peak happens at "
                         f"{est.memory.peak_phase}; see the breakdown below.")
        c[2].metric("FLOPs per step", si(est.flops_per_step, "FLOP"),
                    help=f"{si(est.flops_per_token, 'FLOP')} per token")
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
            st.dataframe(
                [{"part": part, "size": format_bytes(size), "bytes": size} for part, size in (
                    ("weights", m.weights), ("gradients", m.gradients), ("optimizer state", m.optimizer),
                    ("activations", m.activations), ("logits and loss", m.logits), ("backward workspace", m.workspace),
                    ("allocator slack", m.allocator), ("framework runtime", m.runtime), ("peak (total)", m.total))],
                hide_index=True, width="stretch")
            st.caption(f"The peak is not the sum of the parts: gradients replace activations during the backward "
                       f"pass. Attention kernel assumed: {m.attention}. Free now: {format_bytes(m.available)}.")
    else:
        st.caption("The estimate appears once the settings are valid.")


# --------------------------------------------------------------------------- the live view
def show_run(name: str, waits: dict[str, float | None]) -> None:
    """State, progress, live metrics, the loss chart, the latest sample, and Stop / Resume of one run."""
    try:
        s: JobStatus = jm.status(name)
    except GenAIError:
        st.caption(f"Run {name} is gone.")
        return
    run = jm.run(name)
    rows = jm.recent_metrics(name)
    last = rows[-1] if rows else {}
    vals = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
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
    is_qa = cfg is not None and cfg.task == "qa"
    if cfg is not None and cfg.task == "qa" and cfg.parent is not None:
        st.caption(f"QA fine-tune of {cfg.parent.name}: the loss is on the answers only.")
    if s.state == "failed" and s.error and s.error != s.message:
        st.error(s.error, icon=":material/error:")

    step = s.step if s.step is not None else last.get("step")
    text = f"step {step or 0:,} / {s.total_steps:,}" if s.total_steps else "waiting to start"
    if s.state == "running" and s.eta_s is not None:
        text += f" · about {format_seconds(s.eta_s)} left"
    elif s.state == "running" and s.phase and s.phase != "training":
        text += f" · {s.phase}"
    st.progress(s.progress or 0.0, text=text)

    c = st.columns(4)
    train_loss = s.train_loss if s.train_loss is not None else last.get("train_loss")
    val_loss = s.val_loss if s.val_loss is not None else (vals[-1] if vals else None)
    tps = s.tokens_per_s if s.tokens_per_s is not None else last.get("tokens_per_s")
    lr_now = s.lr if s.lr is not None else last.get("lr")
    c[0].metric("Train loss", f"{train_loss:.3f}" if train_loss is not None else "–")
    c[1].metric("Validation loss", f"{val_loss:.3f}" if val_loss is not None else "–")
    c[2].metric("Tokens / s", f"{tps:,.0f}" if tps is not None else "–")
    c[3].metric("Learning rate", f"{lr_now:.2e}" if lr_now is not None else "–")
    status = run.read_status_raw()
    estimated, tokens_per_step = status.get("estimated_step_s"), status.get("tokens_per_step")
    if estimated and tps and tokens_per_step:
        measured = tokens_per_step / tps
        st.caption(f"Time per step: estimated {format_seconds(estimated)} before the start, measured "
                   f"{format_seconds(measured)} ({measured / estimated:.2f}x the estimate).")

    if rows:
        st.plotly_chart(ui.loss_figure({name: rows}, title=f"Loss of {name}"), width="stretch")
    else:
        st.caption("The loss curve appears after the first logged steps.")

    sample, sample_step = s.sample, s.sample_step
    if sample is None:
        samples = run.samples()
        if samples:
            sample, sample_step = samples[-1].get("text"), samples[-1].get("step")
    if sample:
        what = "Latest answer to the first validation question, beside the expected one" if is_qa else "Latest sample"
        st.caption(f"{what} (step {sample_step}):")
        st.code(sample, language=None, wrap_lines=True)
    for notice in s.notices:
        st.caption(f":material/info: {notice}")
    if s.runner != "thread":
        where = RUNNER_LABELS[s.runner].lower()
        if s.runner == "ray":
            state = s.backend_state or "state unknown"
            where += f" ({status.get('ray_address')}), job {status.get('ray_job')}: {state}"
        with st.expander(f"Trains on {where} · its log"):
            st.code(jm.log(name, max_chars=6000) or "(nothing written yet)", language=None)

    b1, b2, _ = st.columns([1, 1, 4])
    if s.here and s.active and b1.button("Stop", key="train_stop_run", disabled=not ui.can_change(),
                                         help="Saves a checkpoint, then stops; resume later."):
        with ui.user_errors():
            jm.stop(name)
            st.rerun()
    resumable = s.state in RESUMABLE_STATES and not s.here and run.latest_checkpoint() is not None
    if resumable and b2.button("Resume", key="train_resume_run", type="primary", disabled=not ui.can_change(),
                               help="Continue from the latest checkpoint: weights, optimizer and schedule."):
        with ui.user_errors():
            jm.resume(name)
            st.rerun()  # a full rerun switches the periodic refresh on
    if s.state in RESUMABLE_STATES and not resumable and not s.here:
        st.caption("No checkpoint was saved, so this run cannot be resumed; start it again.")


def show_queue(waits: dict[str, float | None]) -> None:
    queue = jm.queue()
    if not queue:
        return
    st.markdown("**Queue**")

    def starts_in(q: JobStatus) -> str:
        if q.message.startswith("waiting for"):
            return q.message
        wait = waits.get(q.name)
        return f"in about {format_seconds(wait)}" if wait is not None else "after the runs ahead (length unknown)"

    st.dataframe([{"position": q.queue_position, "run": q.name, "starts": starts_in(q), "device": q.device,
                   "resume": q.resume} for q in queue], hide_index=True, width="stretch")
    if st.button("Clear the queue", key="train_clear_queue", disabled=not ui.can_change()):
        for q in queue:
            with ui.user_errors():
                jm.stop(q.name)
        st.rerun()


def live_view(was_active: bool) -> None:
    """The one periodic fragment of the page: it re-finds the current run every tick (the next queued run
    takes over when one ends) and asks for a full rerun when everything has ended, to stop ticking."""
    t0 = time.perf_counter()
    name = current_run(jm)
    if name is None:
        st.caption("No runs yet: set the knobs below and press Start.")
        return
    waits = jm.queue_waits()  # once per tick, for the run shown and the queue table
    show_run(name, waits)
    show_queue(waits)
    # How long a tick takes (a busy machine draws slowly): the refresh waits at least twice that, or the
    # chart would be redrawn before it was ever shown and stay greyed out as "stale".
    tick = st.session_state["train_tick_s"] = time.perf_counter() - t0
    if was_active and not anything_active(jm):
        st.rerun()
    if was_active and 2 * tick > 1.5 * st.session_state.get("train_every", 1.0):
        st.rerun()  # a full run makes the fragment again, with a longer interval


def show_live_view() -> None:
    """Draw the live view at the top of the page; it reruns every second while a job is queued or running.

    The fragment is made here, at the end of a full run, so that a run queued during this run (Start, the grid)
    switches the periodic refresh on at once.
    """
    live = anything_active(jm)
    every = st.session_state["train_every"] = max(1.0, round(2 * st.session_state.get("train_tick_s", 0.0), 1))
    with live_box:
        st.fragment(live_view, run_every=every if live else None)(live)
        st.divider()


# --------------------------------------------------------------------------- fine-tuning for QA
MODES = {"lm": "Pretrain (next token)", "qa": "Fine-tune for QA"}
PARENT_STATES = ("completed", "stopped")  # a run still training has no final weights to start from
QA_FILE_TYPES = ["csv", "tsv", "jsonl", "ndjson", "parquet"]  # what genai_core.generate.qa.read_qa_table reads
QA_TRAIN_SOURCES = {"bundled": "Bundled clinical QA set", "upload": "Upload a file"}
QA_VAL_SOURCES = {"bundled": "Bundled validation set", "holdout": "Hold out part of the training file"}


def qa_preset() -> RunConfig:
    """The clinical QA demo's fine-tune (`genai_core.clinical.demo`): its bundled files and tuned knobs are the form's
    defaults. The parent is a placeholder; the form's own choice replaces it."""
    return demo_qa_config(parent=Path("parent"))


def qa_uploads_dir() -> Path:
    # Apart from the Data page's uploads, whose Recent files list offers corpora, not QA tables.
    return ui.playground_dir() / "qa-uploads"


def qa_parents() -> dict[str, Run]:
    """Runs a fine-tune can start from, newest first: completed or stopped, with a checkpoint and a tokenizer."""
    found: dict[str, Run] = {}
    for run in list_runs(ui.runs_root()):
        try:
            if (run.state in PARENT_STATES and run.latest_checkpoint() is not None
                    and run.tokenizer_path.is_file()):
                run.config()  # the shape is read from it: a damaged one is not offered
                found[run.name] = run
        except GenAIError:  # a damaged run folder is left out rather than breaking the page
            continue
    return found


def parent_label(run: Run) -> str:
    cfg = run.config()
    kind = "QA fine-tune" if cfg.task == "qa" else "pretrained"
    return f"{run.name} ({kind}, {run.state})"


def describe_model(cfg: RunConfig) -> str:
    """`GPT · d_model 128 · 4 layers · 4 heads · context 256 tokens · BPE tokenizer (1,024 tokens) · copy head`."""
    m = cfg.model
    parts = [m.arch.upper(), f"d_model {m.d_model}", f"{m.n_layers} layers"]
    if m.arch == "gpt":
        parts.append(f"{m.n_heads} heads")
    tokenizer = "BPE" if cfg.data.tokenizer == "bpe" else "character"
    parts += [f"context {m.seq_len} tokens", f"{tokenizer} tokenizer ({m.vocab_size:,} tokens)"]
    if m.copy_head:
        parts.append("copy head")
    return " · ".join(parts)


def copy_head_toggle(parent_name: str, m: ModelConfig) -> bool:
    """The copy-head switch: kept when the parent has one, optional on a GPT without, absent from LSTM/GRU."""
    if m.copy_head:
        why = "The parent has one, so the fine-tune keeps it (its trained weights are part of the parent)."
    elif m.arch == "gpt":
        why = ("The parent has none: switching it on adds one, untrained, that learns during the fine-tune. "
               "Worth it when answers are words copied from the context (names, doses, findings).")
    else:
        why = f"Not available: it attends over the context, which needs a GPT parent (this one is {m.arch.upper()})."
    # Keyed by parent, so the switch starts at each parent's own setting.
    return st.toggle("Copy head", value=m.copy_head, key=f"qa_copy_head_{parent_name}",
                     disabled=m.copy_head or m.arch != "gpt",
                     help=f"{field_help(ModelConfig, 'copy_head')}\n\n{why}")


@st.cache_data(show_spinner=False, max_entries=32)
def _qa_records(path: str, mtime_ns: int, size: int) -> int:
    return len(read_qa_table(path))


def qa_records(path: Path) -> int:
    """Records of a QA file, validated by the engine (type, encoding, the question/context/answer columns);
    cached per version of the file, which every rerun would otherwise parse again."""
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else (0, 0)
    return _qa_records(str(path), *stamp)


def checked_qa_file(path: Path | None, what: str, problems: Problems) -> Path | None:
    """`path` when the engine reads it as a QA table (its size is said here), else None: the engine's reason
    is shown here, and Start says which file to fix."""
    if path is None:
        return None
    try:
        records = qa_records(path)
    except GenAIError as e:
        st.error(str(e), icon=":material/block:")
        problems.error(f"The {what} cannot be used (see above): fix it or choose another file.")
        return None
    st.caption(f"{path.name}: {records:,} records")
    return path


@st.cache_data(show_spinner=False, max_entries=16)
def _qa_store_stats(cache: str, key: str) -> dict[str, Any]:
    store = QAStore(Path(cache) / key)
    stats = store.meta["stats"]
    return {"train_examples": store.examples("train"), "val_examples": store.examples("val"),
            "mean_example_tokens": store.mean_example_tokens, "mean_window_tokens": store.mean_window_tokens(),
            "left_out": sum(sum(stats[split]["skipped"].values()) for split in ("train", "val"))}


def qa_stats(cfg: RunConfig) -> dict[str, Any]:
    """Tokenize the QA examples with the parent's tokenizer once (with a progress bar), into the cache the
    trainer reads, so the run starts training at once; then their counts come from the cache."""
    assert cfg.parent is not None  # RunConfig requires one for task="qa"
    tokenizer = Run(cfg.parent).tokenizer_path
    cache = token_cache()
    key = qa_store_key(cfg.data, tokenizer, cfg.model.seq_len)
    if not (cache / key / "meta.json").is_file():
        bar = st.progress(0.0, text="Tokenizing the QA examples with the parent's tokenizer (once; the run reuses it)…")
        try:
            prepare_qa(cfg.data, tokenizer, cfg.model.seq_len, cache,
                       progress=lambda f, msg: bar.progress(min(1.0, max(0.0, f)), text=msg))
        finally:
            bar.empty()
    return _qa_store_stats(str(cache), key)


def qa_knob(label: str, section: type[BaseModel], field: str, **kw: Any) -> Any:
    """A number input as the pretraining knobs, under a key of its own: each form keeps its own values. No
    bounds here: the config's own say what is out of range (Start stays disabled with its message)."""
    return st.number_input(label, key=f"qa_{field}", help=field_help(section, field), persist_state=PERSIST, **kw)


def qa_mode() -> None:
    """The fine-tune form: parent run, QA files, training knobs, estimate and Start (the live view is shared)."""
    preset = qa_preset()
    problems = Problems()
    st.caption("Teach a pretrained run to answer questions about a text. Each example reads `Q: question`, "
               "`Context: text`, `A: answer`; the loss is on the answer only, so the model learns to answer and "
               "then stop. The network and the tokenizer are the parent run's.")

    # ------------------------------------------------------------- the parent
    st.subheader("Start from")
    parents = qa_parents()
    labels = {name: parent_label(run) for name, run in parents.items()}  # read from disk once, not per format
    parent_name = st.selectbox("Pretrained run", list(parents), index=None, key="qa_parent", persist_state=PERSIST,
                               format_func=labels.__getitem__,
                               placeholder="Choose the run to fine-tune",
                               help=f"{field_help(RunConfig, 'parent')} Completed or stopped runs with a checkpoint.")
    parent = parents.get(parent_name) if parent_name else None
    parent_cfg: RunConfig | None = None
    copy_head = False
    if not parents:
        st.info("No run to start from yet: a fine-tune needs a completed or stopped run with a checkpoint. Pretrain "
                "one first (Pretrain mode), or train the clinical QA demo from the Home page.",
                icon=":material/science:")
        problems.error("There is no pretrained run to fine-tune yet: pretrain one first.")
    elif parent is None:
        problems.error("Choose the pretrained run to fine-tune (Start from).")
    else:
        with ui.user_errors(problems):
            parent_cfg = parent.config()
    if parent is not None and parent_cfg is not None:
        st.caption(f"Model (the parent's, read-only): {describe_model(parent_cfg)}")
        copy_head = copy_head_toggle(parent.name, parent_cfg.model)

    # ------------------------------------------------------------- the QA files
    st.subheader("Question-answer data")
    col_train_file, col_val_file = st.columns(2)
    train_path: Path | None = None
    val_path: Path | None = None
    val_fraction = DataConfig.model_fields["val_fraction"].default
    with col_train_file:
        train_source = st.radio("Training examples", list(QA_TRAIN_SOURCES), format_func=QA_TRAIN_SOURCES.get,
                                key="qa_train_source", persist_state=PERSIST, horizontal=True,
                                help="A table with question, context and answer columns (.csv, .tsv, .jsonl or "
                                     ".parquet), the answer copied from the context.")
        if train_source == "bundled":
            train_path = preset.data.corpus
            st.caption(":material/science: Synthetic: questions about fictional clinical cases, no real patient data.")
        else:
            upload = st.file_uploader("QA file", type=QA_FILE_TYPES, key="qa_upload", disabled=not ui.can_change(),
                                      help="Columns question, context and answer; one example per row.")
            if upload is None:
                problems.error("Upload a QA file with question, context and answer columns, or use the bundled set.")
            else:
                try:
                    train_path = ui.spill_upload(upload, qa_uploads_dir())
                except GenAIError as e:
                    st.error(str(e), icon=":material/block:")
                    problems.error("The uploaded file cannot be used (see above).")
        train_path = checked_qa_file(train_path, "training file", problems)
    with col_val_file:
        val_source = st.radio("Validation examples", list(QA_VAL_SOURCES), format_func=QA_VAL_SOURCES.get,
                              key="qa_val_source", persist_state=PERSIST, horizontal=True,
                              help="Scored at every evaluation (validation loss, the live sample); never trained on.")
        if val_source == "bundled":
            val_path = checked_qa_file(preset.data.val_corpus, "validation file", problems)
            if train_source == "upload":
                st.caption("Your examples are validated on the bundled clinical questions: hold out part of your "
                           "file instead unless it asks about the same kind of text.")
        else:
            val_fraction = qa_knob("Share held out", DataConfig, "val_fraction", value=val_fraction, step=0.05)
    data_cfg: DataConfig | None = None
    files_ok = train_path is not None and (val_source == "holdout" or val_path is not None)
    if files_ok:
        with ui.user_errors(problems):
            data_cfg = DataConfig(corpus=train_path, val_corpus=val_path if val_source == "bundled" else None,
                                  val_fraction=float(val_fraction))
    stats: dict[str, Any] | None = None
    if parent is not None and parent_cfg is not None and data_cfg is not None:
        # The parent decides how text is tokenized and the window: the examples are counted as the run will see them.
        with ui.user_errors():
            stats = qa_stats(fine_tune_config(RunConfig(task="qa", parent=parent.path, data=data_cfg)))
        if stats is None:
            problems.error("The QA examples could not be prepared (see above).")
        else:
            left_out = (f" · {stats['left_out']:,} left out (empty, or the answer would not fit the "
                        f"{parent_cfg.model.seq_len}-token window)" if stats["left_out"] else "")
            st.caption(f"{stats['train_examples']:,} training and {stats['val_examples']:,} validation examples "
                       f"with {parent.name}'s tokenizer, {stats['mean_example_tokens']:.0f} tokens each on "
                       f"average{left_out}")

    # ------------------------------------------------------------- the knobs
    st.subheader("Training")
    d, T = preset.train, TrainConfig
    col_len, col_eval, col_hw = st.columns(3)
    with col_len:
        length_mode = st.radio("Train for", ["steps", "epochs"], horizontal=True, key="qa_length_mode",
                               persist_state=PERSIST, help="An epoch is one pass over the training examples.")
        max_steps: int | None = None
        epochs: float | None = None
        if length_mode == "steps":
            max_steps = int(qa_knob("Max steps", T, "max_steps", value=d.max_steps or SUGGESTED_MAX_STEPS, step=100))
        else:
            epochs = float(qa_knob("Epochs", T, "epochs", value=d.epochs or 1.0, step=0.5))
        batch_size = qa_knob("Batch size", T, "batch_size", value=d.batch_size, step=4)
        lr = qa_knob("Learning rate", T, "lr", value=d.lr, step=5e-4, format="%.5f")
        warmup = qa_knob("Warmup steps", T, "warmup_steps", value=d.warmup_steps, step=10)
        dropout = qa_knob("Dropout", ModelConfig, "dropout",
                          value=preset.model.dropout, step=0.05)
    with col_eval:
        eval_interval = qa_knob("Evaluate every N steps", T, "eval_interval", value=d.eval_interval,
                                step=50)
        eval_batches = qa_knob("Validation batches", T, "eval_batches", value=d.eval_batches, step=5)
        log_interval = qa_knob("Log every N steps", T, "log_interval", value=d.log_interval, step=5)
        seed = qa_knob("Seed", T, "seed", value=d.seed, step=1)
    with col_hw:
        device = st.selectbox("Device", available_devices(), key="qa_device", persist_state=PERSIST,
                              help=field_help(T, "device"))
        precision = st.selectbox("Precision", _literals(T, "precision"), key="qa_precision",
                                 persist_state=PERSIST, help=field_help(T, "precision"))
        with st.expander("More training settings"):
            grad_accum = qa_knob("Gradient accumulation", T, "grad_accum_steps",
                                 value=d.grad_accum_steps, step=1)
            weight_decay = qa_knob("Weight decay", T, "weight_decay", value=d.weight_decay, step=0.05)
            threads = qa_knob("CPU threads (0 = torch's default)", T, "num_threads",
                              value=d.num_threads or 0, step=1)
        run_on = run_on_controls("qa", device)

    train_cfg: TrainConfig | None = None
    with ui.user_errors(problems):
        train_cfg = TrainConfig(
            batch_size=int(batch_size), max_steps=max_steps, epochs=epochs, lr=float(lr), warmup_steps=int(warmup),
            seed=int(seed), device=device, precision=precision, eval_interval=int(eval_interval),
            eval_batches=int(eval_batches), log_interval=int(log_interval), grad_accum_steps=int(grad_accum),
            weight_decay=float(weight_decay), num_threads=int(threads) or None, **run_on,
        )
    model_cfg: ModelConfig | None = None
    with ui.user_errors(problems):
        model_cfg = ModelConfig(dropout=float(dropout), copy_head=copy_head)  # the rest comes from the parent
    effective: RunConfig | None = None
    if parent is not None and parent_cfg is not None and data_cfg is not None and train_cfg and model_cfg:
        with ui.user_errors(problems):
            # What will train: the parent's network with this copy head and dropout (the engine's own completion).
            effective = fine_tune_config(RunConfig(task="qa", parent=parent.path, data=data_cfg, model=model_cfg,
                                                   train=train_cfg))

    # ------------------------------------------------------------- the estimate
    est: Estimate | None = None
    if effective is not None:
        calibrate = not anything_active(jm)  # as for pretraining: never time steps beside a running job
        with ui.user_errors(problems):
            # estimate() counts an epoch as train_tokens / (batch × seq_len) steps, while a QA epoch is one pass
            # over the examples: each example counts as one window of seq_len tokens here.
            windows = stats["train_examples"] * effective.model.seq_len if stats else None
            width = stats["mean_window_tokens"] if stats else None
            est = estimate(effective, train_tokens=windows, calibrate=calibrate, background=True,
                           window_tokens=width)
        if est is not None and not est.fits:
            problems.error(f"Will not fit in memory: {est.message}")
    live_estimate(est, lambda: estimate(effective, train_tokens=windows, calibrate=False, window_tokens=width))
    if est is not None and effective is not None and stats:
        st.caption(f":material/info: Memory assumes examples that fill the {effective.model.seq_len}-token window; "
                   f"the time is for batches of about {stats['mean_window_tokens']:.0f} tokens, as QA batches are "
                   "padded only to their longest example.")

    # ------------------------------------------------------------- name and start
    name = run_name_input("qa_run_name",
                          ui.unique_run_name(f"{parent.name}-qa" if parent is not None else "qa-finetune"),
                          "Leave empty for the parent's name + `-qa`. Letters, digits, '.', '_' and '-'.", problems)
    config = effective.model_copy(update={"name": name}) if effective is not None and not problems.messages else None
    for message in problems.messages:
        st.error(message, icon=":material/block:")
    if st.button("Start fine-tuning", type="primary", key="qa_start",
                 disabled=config is None or not ui.can_change()):
        assert config is not None
        submit(config, name, "qa_run_name", est)


# --------------------------------------------------------------------------- page
st.title("Train")
jm = ui.job_manager()
live_box = st.container()  # filled at the end, so a live run sits at the top of the page

mode = st.segmented_control(
    "What to train", list(MODES), default="lm", required=True, format_func=MODES.get, key="train_mode",
    persist_state=PERSIST,
    help="Pretrain: a new model learns the language of a corpus by predicting the next token. Fine-tune for QA: "
         "a pretrained run learns to answer questions about a given text.")
if mode == "qa":
    qa_mode()
    show_live_view()
    st.stop()  # the rest of the page is the pretraining form

data_cfg, source = data_choice()
stats: dict[str, int] | None = None
if source == "data page":
    assert data_cfg is not None
    st.caption(f"Corpus: **{Path(data_cfg.corpus).name}** ({data_cfg.tokenizer} tokenizer), chosen on the Data page.")
elif source == "demo":
    st.info("No corpus chosen yet: this page trains on the bundled demo corpus of fictional clinical cases "
            "(character-level). Pick your own text on the Data page.", icon=":material/menu_book:")
else:
    st.warning("No corpus chosen yet (and the bundled demo corpus is not installed): choose one on the "
               "Data page first.", icon=":material/menu_book:")
st.page_link("pages/data.py", label="Choose the corpus on the Data page", icon=":material/menu_book:")
if data_cfg is not None:
    with ui.user_errors():
        stats = corpus_stats(data_cfg)
    if stats is not None:
        records = f"{stats['records']:,} records · " if stats["records"] > 1 else ""
        st.caption(f"{records}{stats['train_tokens']:,} training / {stats['val_tokens']:,} validation tokens · "
                   f"vocabulary of {stats['vocab_size']:,} tokens")

# ----------------------------------------------------------------- knobs
def knob(label: str, section: type[BaseModel], field: str, **kw: Any) -> Any:
    """A number input for a config field: keyed by the field, help from its docstring, kept across pages, and
    starting at the config's default (unless `value` is given for a field the config leaves open)."""
    if f"train_{field}" in st.session_state:
        kw.pop("value", None)  # set by a recipe (or earlier): a default beside it would make Streamlit warn
    else:
        kw.setdefault("value", widget_value(field, section.model_fields[field].default))
    return st.number_input(label, key=f"train_{field}", help=field_help(section, field), persist_state=PERSIST, **kw)


def switch(label: str, field: str, **kw: Any) -> bool:
    """A checkbox for a boolean model field, defaulting to the config's value (or what a recipe set)."""
    key = f"train_{field}"
    if key not in st.session_state:
        kw["value"] = bool(ModelConfig.model_fields[field].default)
    return bool(st.checkbox(label, key=key, persist_state=PERSIST, help=field_help(ModelConfig, field), **kw))


OFF_AS_ZERO = {"logit_softcap": 0.0, "num_threads": 0}
"""Number inputs whose config value None (off; for threads: automatic) reads 0 in the widget."""


def widget_value(field: str, value: Any) -> Any:
    """A config value as its widget holds it (see OFF_AS_ZERO)."""
    return OFF_AS_ZERO[field] if value is None and field in OFF_AS_ZERO else value


def apply_recipe() -> None:
    """Fill the architecture and optimizer knobs from the chosen recipe (the person may change them after)."""
    recipe = st.session_state.get("train_recipe") or "modern"
    for section in ("model", "train"):
        for field, value in recipe_values(recipe, section).items():
            st.session_state[f"train_{field}"] = widget_value(field, value)


MODEL_KNOBS = ("arch", "d_model", "n_heads", "n_layers", "seq_len", "dropout", "pos_encoding", "norm", "mlp",
               "qk_norm", "tie_embeddings", "zero_init", "logit_softcap")
TRAIN_KNOBS = ("batch_size", "optimizer", "lr", "muon_lr", "warmup_steps", "seed", "device", "precision",
               "eval_interval", "eval_batches", "log_interval", "grad_accum_steps", "weight_decay", "num_threads",
               "checkpoint_seconds")
PREFILLED = "train_prefilled_from"
COMPILE_CHOICES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


def knob_state(cfg: RunConfig) -> dict[str, Any]:
    """The pretraining form's widget values that give `cfg` back."""
    out: dict[str, Any] = {f"train_{f}": widget_value(f, getattr(cfg.model, f)) for f in MODEL_KNOBS}
    out.update({f"train_{f}": widget_value(f, getattr(cfg.train, f)) for f in TRAIN_KNOBS})
    out["train_compile"] = next(k for k, v in COMPILE_CHOICES.items() if v == cfg.train.compile)
    if cfg.train.max_steps is not None:
        out.update(train_length_mode="steps", train_max_steps=cfg.train.max_steps)
    else:
        out.update(train_length_mode="epochs", train_epochs=cfg.train.epochs)
    recipe = next((r for r in RECIPES if all(getattr(getattr(cfg, sec), f) == v for sec in ("model", "train")
                                             for f, v in recipe_values(r, sec).items())), None)
    out["train_recipe"] = recipe or "modern"
    return out


def prefill_from_last_run() -> None:
    """Once per browser session, before the widgets exist: a new session starts from the knobs of the newest
    pretraining run (labelled as such), not from scratch."""
    if st.session_state.get("train_prefill_checked"):
        return
    st.session_state["train_prefill_checked"] = True
    if any(f"train_{f}" in st.session_state for f in MODEL_KNOBS + TRAIN_KNOBS):
        return  # this session has set knobs already
    for run in list_runs(ui.runs_root()):
        try:
            cfg = run.config()
        except GenAIError:  # a damaged folder: try the next one
            continue
        if cfg.task == "lm":
            st.session_state.update(knob_state(cfg))
            if cfg.train.device not in available_devices():
                st.session_state["train_device"] = "auto"
            st.session_state[PREFILLED] = run.name
            return


def reset_to_recipe() -> None:
    """Forget every knob of this session and take the chosen recipe's values and the config's defaults."""
    recipe = st.session_state.get("train_recipe") or "modern"
    for f in (*MODEL_KNOBS, *TRAIN_KNOBS, "max_steps", "epochs", "length_mode", "compile"):
        st.session_state.pop(f"train_{f}", None)
    st.session_state.pop(PREFILLED, None)
    st.session_state["train_recipe"] = recipe
    apply_recipe()


prefill_from_last_run()
st.subheader("Model and training")
if prefilled := st.session_state.get(PREFILLED):
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    c1.caption(f"Knobs pre-filled from the last run, **{prefilled}**.")
    c2.button("Reset to the recipe's defaults", key="train_reset_knobs", on_click=reset_to_recipe,
              icon=":material/restart_alt:")
st.segmented_control(
    "Recipe", list(RECIPES), required=True, key="train_recipe", persist_state=PERSIST,
    # A default beside a value the session already holds (pre-filled) would make Streamlit warn.
    **({} if "train_recipe" in st.session_state else {"default": "modern"}),
    on_change=apply_recipe, format_func={"modern": "Modern (RoPE, QK-norm, ReLU², Muon)",
                                         "classic": "Classic (nanoGPT / GPT-2)"}.get,
    help="Fills the architecture details and the optimizer below; change any of them after. Modern is the "
         "default and learns about 3x faster per CPU-minute here; classic is nanoGPT's recipe, kept to compare.")
col_model, col_train, col_hw = st.columns(3)
M, T = ModelConfig, TrainConfig
with col_model:
    arch = st.radio("Architecture", _literals(M, "arch"), key="train_arch", persist_state=PERSIST, horizontal=True,
                    format_func=str.upper, help=field_help(M, "arch"))
    is_gpt = arch == "gpt"
    # No bounds on the widgets and no defaults typed here: config.py gives both, and says what is out of
    # range in the same words as the CLI (Start stays disabled with the reason shown).
    d_model = knob("d_model", M, "d_model", step=16)
    n_heads = knob("Attention heads", M, "n_heads", step=1, disabled=not is_gpt)
    n_layers = knob("Layers", M, "n_layers", step=1)
    seq_len = knob("seq_len (context)", M, "seq_len", step=16)
    dropout = knob("Dropout", M, "dropout", step=0.05)
    pos_encoding = st.selectbox("Positional encoding", _literals(M, "pos_encoding"), key="train_pos_encoding",
                                persist_state=PERSIST, disabled=not is_gpt, help=field_help(M, "pos_encoding"))
    with st.expander("Architecture details", expanded=False):
        norm = st.selectbox("Normalisation", _literals(M, "norm"), key="train_norm", persist_state=PERSIST,
                            disabled=not is_gpt, help=field_help(M, "norm"))
        mlp = st.selectbox("MLP activation", _literals(M, "mlp"), key="train_mlp", persist_state=PERSIST,
                           disabled=not is_gpt, help=field_help(M, "mlp"))
        qk_norm = switch("QK-norm", "qk_norm", disabled=not is_gpt)
        tie = switch("Tie input and output embeddings", "tie_embeddings")
        zero_init = switch("Zero-initialised output projections", "zero_init", disabled=not is_gpt)
        softcap = knob("Logit soft-cap (0 = off)", M, "logit_softcap", step=5.0, disabled=not is_gpt)
with col_train:
    length_mode = st.radio("Train for", ["steps", "epochs"], horizontal=True, key="train_length_mode",
                           persist_state=PERSIST)
    max_steps: int | None = None
    epochs: float | None = None
    if length_mode == "steps":
        max_steps = int(knob("Max steps", T, "max_steps", value=SUGGESTED_MAX_STEPS, step=100))
    else:
        epochs = float(knob("Epochs", T, "epochs", value=1.0, step=0.5))  # RunConfig's default length
    batch_size = knob("Batch size", T, "batch_size", step=4)
    optimizer = st.selectbox("Optimizer", _literals(T, "optimizer") if is_gpt else ["adamw"], key="train_optimizer",
                             persist_state=PERSIST, help=field_help(T, "optimizer"),
                             format_func={"muon": "Muon + AdamW", "adamw": "AdamW"}.get)
    lr = knob("Learning rate (AdamW)", T, "lr", step=5e-4, format="%.5f")
    muon_lr = knob("Learning rate (Muon)", T, "muon_lr", step=0.005, format="%.4f", disabled=optimizer != "muon")
    warmup = knob("Warmup steps", T, "warmup_steps", step=10)
    seed = knob("Seed", T, "seed", step=1)
with col_hw:
    device = st.selectbox("Device", available_devices(), key="train_device", persist_state=PERSIST,
                          help=field_help(T, "device"))
    precision = st.selectbox("Precision", _literals(T, "precision"), key="train_precision",
                             persist_state=PERSIST, help=field_help(T, "precision"))
    run_on = run_on_controls("train", device)
    with st.expander("More training settings"):
        eval_interval = knob("Evaluate every N steps", T, "eval_interval", step=50)
        eval_batches = knob("Validation batches", T, "eval_batches", step=5)
        log_interval = knob("Log every N steps", T, "log_interval", step=5)
        grad_accum = knob("Gradient accumulation", T, "grad_accum_steps", step=1)
        weight_decay = knob("Weight decay", T, "weight_decay", step=0.05)
        threads = knob("CPU threads (0 = the cores free at the start)", T, "num_threads", step=1)
        checkpoint_seconds = knob("Checkpoint at least every N seconds (0 = by steps only)", T,
                                  "checkpoint_seconds", step=30.0)
        compile_choice = st.selectbox("torch.compile", list(COMPILE_CHOICES), key="train_compile",
                                      persist_state=PERSIST, help=field_help(T, "compile"))

# ----------------------------------------------------------------- the config, checked
def vocab_guess(data: DataConfig | None) -> int:
    """Vocabulary of the estimate before the corpus is tokenized (the trainer sets the real one)."""
    if data is not None and data.tokenizer == "bpe":
        return data.vocab_size
    return int(ModelConfig.model_fields["vocab_size"].default)


problems = Problems()
model_cfg: ModelConfig | None = None
train_cfg: TrainConfig | None = None
with ui.user_errors(problems):
    model_cfg = ModelConfig(
        arch=arch, d_model=int(d_model), n_heads=int(n_heads), n_layers=int(n_layers), seq_len=int(seq_len),
        dropout=float(dropout), pos_encoding=pos_encoding, norm=norm, mlp=mlp, qk_norm=qk_norm,
        tie_embeddings=tie, zero_init=zero_init, logit_softcap=float(softcap) or None,
        vocab_size=stats["vocab_size"] if stats else vocab_guess(data_cfg),
    )
with ui.user_errors(problems):
    train_cfg = TrainConfig(
        batch_size=int(batch_size), max_steps=max_steps, epochs=epochs, lr=float(lr), warmup_steps=int(warmup),
        optimizer=optimizer if is_gpt else "adamw", muon_lr=float(muon_lr),
        seed=int(seed), device=device, precision=precision, eval_interval=int(eval_interval),
        eval_batches=int(eval_batches), log_interval=int(log_interval), grad_accum_steps=int(grad_accum),
        weight_decay=float(weight_decay), num_threads=int(threads) or None,
        compile=COMPILE_CHOICES[compile_choice], checkpoint_seconds=float(checkpoint_seconds), **run_on,
    )
if data_cfg is None:
    problems.error("There is no corpus to train on: choose one on the Data page.")
elif stats is None:
    problems.error("The corpus could not be read or prepared (see above): fix it or choose another on the Data page.")
if model_cfg is not None and stats is not None and (msg := seq_len_problem(model_cfg.seq_len, stats["max_seq_len"])):
    problems.error(msg)

est: Estimate | None = None
if model_cfg is not None and train_cfg is not None:
    # Timing real steps while a job trains would slow it down and time a busy machine: the estimate then
    # falls back on the measured device throughput.
    calibrate = not anything_active(jm)
    with ui.user_errors(problems):
        est = estimate(model_cfg, train=train_cfg, train_tokens=stats["train_tokens"] if stats else None,
                       calibrate=calibrate, runs_root=ui.runs_root(), background=True)
    if est is not None and not est.fits:
        problems.error(f"Will not fit in memory: {est.message}")

live_estimate(est, lambda: estimate(model_cfg, train=train_cfg, calibrate=False, runs_root=ui.runs_root(),
                                    train_tokens=stats["train_tokens"] if stats else None))

# ----------------------------------------------------------------- name and start
knob_name = (f"{arch}-d{int(d_model)}-L{int(n_layers)}" + (f"-h{int(n_heads)}" if is_gpt else "")
             + f"-T{int(seq_len)}-lr{float(lr):g}")
name = run_name_input("train_run_name", ui.unique_run_name(knob_name),
                      "Leave empty for a name made from the knobs. Letters, digits, '.', '_' and '-'.", problems)

config: RunConfig | None = None
if not problems.messages and model_cfg is not None and train_cfg is not None and data_cfg is not None:
    config = RunConfig(name=name, data=data_cfg, model=model_cfg, train=train_cfg)
for message in problems.messages:
    st.error(message, icon=":material/block:")

start_col, queue_col = st.columns([1, 3])
if start_col.button("Start training", type="primary", key="train_start",
                    disabled=config is None or not ui.can_change()):
    assert config is not None
    submit(config, name, "train_run_name", est)
if anything_active(jm):
    queue_col.caption("One run trains per device at a time; a new start waits in the queue.")


# ----------------------------------------------------------------- explore a grid
def parse_values(raw: str, kind: type) -> list[Any]:
    """`"64, 128"` -> `[64, 128]`: up to four distinct values of the knob's type."""
    parts = [p for p in re.split(r"[,\s;]+", raw.strip()) if p]
    try:
        values = [kind(float(p)) if kind is int and float(p).is_integer() else kind(p) for p in parts]
    except ValueError:
        raise GenAIError(f"could not read {raw!r} as {kind.__name__} values separated by commas") from None
    values = list(dict.fromkeys(values))
    if len(values) > MAX_EXPLORE_VALUES:
        raise GenAIError(f"give at most {MAX_EXPLORE_VALUES} values per knob (got {len(values)})")
    return values


with st.expander("Explore: train a grid of runs"):
    together = ("they train in parallel on the Ray cluster, each reserving as many CPUs as its torch threads "
                "(one unless set above)" if run_on["runner"] == "ray" else
                "they train one after another on this machine (one run per device)")
    st.caption("Pick up to two knobs and up to four values each; every combination becomes a run with the "
               f"settings above, named after its values; {together}.")
    knobs = st.multiselect("Knobs to vary", list(EXPLORABLE), max_selections=MAX_EXPLORE_KNOBS,
                           key="train_explore_knobs", persist_state=PERSIST)
    prefix = st.text_input("Name prefix", value="explore", key="train_explore_prefix",
                           persist_state=PERSIST).strip() or "explore"
    grid_ok = bool(knobs) and model_cfg is not None and train_cfg is not None and data_cfg is not None
    axes: list[list[Any]] = []
    for k in knobs:
        raw = st.text_input(f"Values of {k}", key=f"train_explore_values_{k}", persist_state=PERSIST,
                            placeholder="e.g. 64, 128, 256")
        with ui.user_errors():
            vals = parse_values(raw, EXPLORABLE[k][1])
            if vals:  # nothing typed yet is not an error, just an incomplete grid
                axes.append(vals)
    grid_ok = grid_ok and len(axes) == len(knobs)
    plan: list[tuple[str, RunConfig | None, str]] = []  # (name, config, problem)
    if grid_ok:
        assert model_cfg is not None and train_cfg is not None and data_cfg is not None
        for combo in itertools.product(*axes):
            over = dict(zip(knobs, combo, strict=True))
            run_name = slugify("-".join([prefix, *(f"{k}-{value_label(v)}" for k, v in over.items())]))
            problem = ""
            cfg: RunConfig | None = None
            try:
                m = ModelConfig(**{**model_cfg.model_dump(), **{k: v for k, v in over.items()
                                                                if EXPLORABLE[k][0] == "model"}})
                t = TrainConfig(**{**train_cfg.model_dump(), **{k: v for k, v in over.items()
                                                                if EXPLORABLE[k][0] == "train"}})
                cfg = RunConfig(name=run_name, data=data_cfg, model=m, train=t)
                problem = (seq_len_problem(m.seq_len, stats["max_seq_len"]) if stats else None) or ""
                if (ui.runs_root() / run_name).exists():
                    problem = "a run of this name exists (change the prefix)"
            except (ValidationError, GenAIError) as e:
                problem = user_message(e) or str(e)
            plan.append((run_name, cfg, problem))
        rows = []
        for run_name, cfg, problem in plan:
            row: dict[str, Any] = {"run": run_name, "params": None, "estimated time": None, "problem": problem}
            if cfg is not None and not problem:
                try:
                    e = estimate(cfg, train_tokens=stats["train_tokens"] if stats else None, calibrate=False)
                    row.update(params=e.params, **{"estimated time": format_seconds(e.total_seconds)})
                    if not e.fits:
                        row["problem"] = e.message
                except GenAIError as err:
                    row["problem"] = str(err)
            rows.append(row)
        st.dataframe(rows, hide_index=True, width="stretch")
        grid_ok = all(not r["problem"] for r in rows)
    if st.button(f"Queue {len(plan)} runs" if plan else "Queue the grid", key="train_explore_start",
                 disabled=not grid_ok or not ui.can_change()):
        with ui.user_errors():
            for run_name, cfg, _problem in plan:
                assert cfg is not None
                jm.submit(cfg, run_name)
            st.toast(f"Queued {len(plan)} runs.")

show_live_view()
