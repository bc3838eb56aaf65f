"""Train: set the knobs, see what the run will cost, start it (or a grid of runs), and watch it learn live.

The page only gathers inputs, asks `genai_core` and draws. Numbers (parameters, memory, time) come from
`genai_core.estimates.estimate`; validation comes from the config models; training runs in the job
manager's background thread, which this page polls from one periodic fragment. What run to show is
found from the job manager and the disk, never from session_state, so a refresh or a second tab sees
the same run, and after a server restart a run that was training reads `interrupted` with Resume.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import streamlit as st
import torch
from pydantic import BaseModel, ValidationError

from genai_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from genai_core.corpus import open_corpus
from genai_core.errors import GenAIError, user_message
from genai_core.estimates import Estimate, estimate, format_bytes, format_seconds, warm_up
from genai_core.jobs import JobManager, JobStatus
from genai_core.runs import list_runs, slugify, validate_run_name
from genai_core.tokenstore import TokenStore, prepare_cached, store_key
from genai_core.training import token_cache_dir
from pages import ui

RESUMABLE = ("stopped", "interrupted", "failed")
STATE_ICONS = {"queued": "⏳", "running": "🏃", "completed": "✅", "stopped": "⏹️", "failed": "❌",
               "interrupted": "⚠️", "created": "🆕"}
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
    return token_cache_dir(ui.runs_root() / "_")


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


def seq_len_problem(seq_len: int, stats: dict[str, int] | None) -> str | None:
    """The trainer refuses windows longer than the smaller split; say so before it is started."""
    if stats is None or seq_len <= stats["max_seq_len"]:
        return None
    return (f"seq_len {seq_len} is too long for this corpus: the smaller split holds only "
            f"{stats['max_seq_len'] + 1:,} tokens; use seq_len ≤ {stats['max_seq_len']:,} or a larger corpus")


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


@st.cache_resource(show_spinner="Measuring this machine (once)…")
def estimator_warmed() -> bool:
    """Pay the process's one-time costs (optimizer imports, kernel setup, the device's throughput) before the
    first calibration; otherwise they land in the first timed steps and that estimate stays cached too slow."""
    warm_up()
    return True


# --------------------------------------------------------------------------- page
st.title("Train")
jm = ui.job_manager()
live_box = st.container()  # filled at the end, so a live run sits at the top of the page

data_cfg, source = data_choice()
stats: dict[str, int] | None = None
if source == "data page":
    assert data_cfg is not None
    st.caption(f"Corpus: **{Path(data_cfg.corpus).name}** ({data_cfg.tokenizer} tokenizer), chosen on the Data page.")
elif source == "demo":
    st.info("No corpus chosen yet: this page trains on the bundled demo corpus of fictional clinical cases "
            "(character-level). Pick your own text on the Data page.", icon="📚")
else:
    st.warning("No corpus chosen yet (and the bundled demo corpus is not installed): choose one on the "
               "Data page first.", icon="📚")
st.page_link("pages/data.py", label="Choose the corpus on the Data page", icon="📚")
if data_cfg is not None:
    with ui.user_errors():
        stats = corpus_stats(data_cfg)
    if stats is not None:
        records = f"{stats['records']:,} records · " if stats["records"] > 1 else ""
        st.caption(f"{records}{stats['train_tokens']:,} training / {stats['val_tokens']:,} validation tokens · "
                   f"vocabulary of {stats['vocab_size']:,} tokens")

# ----------------------------------------------------------------- knobs
def knob(label: str, section: type[BaseModel], field: str, **kw: Any) -> Any:
    """A number input for a config field: keyed by the field, help from its docstring, kept across pages."""
    return st.number_input(label, key=f"train_{field}", help=field_help(section, field), persist_state=PERSIST, **kw)


st.subheader("Model and training")
col_model, col_train, col_hw = st.columns(3)
M, T = ModelConfig, TrainConfig
with col_model:
    arch = st.radio("Architecture", ["gpt", "lstm"], key="train_arch", persist_state=PERSIST, horizontal=True,
                    format_func=lambda a: {"gpt": "GPT", "lstm": "LSTM"}[a], help=field_help(M, "arch"))
    is_gpt = arch == "gpt"
    d_model = knob("d_model", M, "d_model", min_value=1, value=128, step=16)
    n_heads = knob("Attention heads", M, "n_heads", min_value=1, value=4, step=1, disabled=not is_gpt)
    n_layers = knob("Layers", M, "n_layers", min_value=1, value=4, step=1)
    seq_len = knob("seq_len (context)", M, "seq_len", min_value=2, value=128, step=16)
    dropout = knob("Dropout", M, "dropout", min_value=0.0, max_value=0.95, value=0.0, step=0.05)
    pos_encoding = st.selectbox("Positional encoding", ["learned", "sinusoidal"], key="train_pos_encoding",
                                persist_state=PERSIST, disabled=not is_gpt, help=field_help(M, "pos_encoding"))
with col_train:
    length_mode = st.radio("Train for", ["steps", "epochs"], horizontal=True, key="train_length_mode",
                           persist_state=PERSIST)
    max_steps: int | None = None
    epochs: float | None = None
    if length_mode == "steps":
        max_steps = int(knob("Max steps", T, "max_steps", min_value=1, value=1000, step=100))
    else:
        epochs = float(knob("Epochs", T, "epochs", min_value=0.01, value=1.0, step=0.5))
    batch_size = knob("Batch size", T, "batch_size", min_value=1, value=16, step=4)
    # No bounds on the widget: the config says what is out of range, in the same words as the CLI.
    lr = knob("Learning rate", T, "lr", value=3e-3, step=5e-4, format="%.5f")
    warmup = knob("Warmup steps", T, "warmup_steps", min_value=0, value=100, step=50)
    seed = knob("Seed", T, "seed", min_value=0, value=0, step=1)
with col_hw:
    devices = ["auto", "cpu"]  # only the devices this machine has
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append("mps")
    device = st.selectbox("Device", devices, key="train_device", persist_state=PERSIST, help=field_help(T, "device"))
    precision = st.selectbox("Precision", ["auto", "fp32", "bf16", "fp16"], key="train_precision",
                             persist_state=PERSIST, help=field_help(T, "precision"))
    with st.expander("More training settings"):
        eval_interval = knob("Evaluate every N steps", T, "eval_interval", min_value=1, value=200, step=50)
        eval_batches = knob("Validation batches", T, "eval_batches", min_value=1, value=20, step=5)
        log_interval = knob("Log every N steps", T, "log_interval", min_value=1, value=10, step=5)
        grad_accum = knob("Gradient accumulation", T, "grad_accum_steps", min_value=1, value=1, step=1)
        weight_decay = knob("Weight decay", T, "weight_decay", min_value=0.0, value=0.1, step=0.05)
        threads = knob("CPU threads (0 = torch's default)", T, "num_threads", min_value=0, value=0, step=1)

# ----------------------------------------------------------------- the config, checked
class Problems:
    """Collects every reason the Start button is disabled; shown together right above it.

    It quacks like a container for `ui.user_errors(where)`, which reports a user error with `.error(...)`.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []

    def error(self, message: str, icon: str | None = None) -> None:
        self.messages.append(message)


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
        dropout=float(dropout), pos_encoding=pos_encoding,
        vocab_size=stats["vocab_size"] if stats else vocab_guess(data_cfg),
    )
with ui.user_errors(problems):
    train_cfg = TrainConfig(
        batch_size=int(batch_size), max_steps=max_steps, epochs=epochs, lr=float(lr), warmup_steps=int(warmup),
        seed=int(seed), device=device, precision=precision, eval_interval=int(eval_interval),
        eval_batches=int(eval_batches), log_interval=int(log_interval), grad_accum_steps=int(grad_accum),
        weight_decay=float(weight_decay), num_threads=int(threads) or None,
    )
if data_cfg is None:
    problems.error("There is no corpus to train on: choose one on the Data page.")
elif stats is None:
    problems.error("The corpus could not be read (see above): fix it or choose another on the Data page.")
if model_cfg is not None and (msg := seq_len_problem(model_cfg.seq_len, stats)):
    problems.error(msg)

est: Estimate | None = None
if model_cfg is not None and train_cfg is not None:
    # Timing real steps while a job trains would slow it down and time a busy machine: the estimate then
    # falls back on the measured device throughput.
    calibrate = not anything_active(jm)
    with ui.user_errors(problems):
        if calibrate:
            estimator_warmed()
        est = estimate(model_cfg, train=train_cfg, train_tokens=stats["train_tokens"] if stats else None,
                       calibrate=calibrate)
    if est is not None and not est.fits:
        problems.error(f"Will not fit in memory: {est.message}")

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
    st.caption(f"On {est.device} in {est.precision}. Time: {est.method}.")
    if est.message and est.fits:
        st.warning(est.message, icon="⚠️")
    with st.expander("Memory breakdown"):
        m = est.memory
        st.dataframe(
            [{"part": part, "size": format_bytes(size), "bytes": size} for part, size in (
                ("weights", m.weights), ("gradients", m.gradients), ("optimizer (AdamW moments)", m.optimizer),
                ("activations", m.activations), ("logits and loss", m.logits), ("backward workspace", m.workspace),
                ("allocator slack", m.allocator), ("framework runtime", m.runtime), ("peak (total)", m.total))],
            hide_index=True, width="stretch")
        st.caption(f"The peak is not the sum of the parts: gradients replace activations during the backward "
                   f"pass. Attention kernel assumed: {m.attention}. Free now: {format_bytes(m.available)}.")
else:
    st.caption("The estimate appears once the settings are valid.")

# ----------------------------------------------------------------- name and start
knob_name = (f"{arch}-d{int(d_model)}-L{int(n_layers)}" + (f"-h{int(n_heads)}" if is_gpt else "")
             + f"-T{int(seq_len)}-lr{float(lr):g}")
default_name = ui.unique_run_name(knob_name)
if st.session_state.pop("train_clear_name", False):
    # The last start used the typed name: empty the box so the page does not report it as taken.
    st.session_state["train_run_name"] = ""
name = st.text_input("Run name", key="train_run_name", persist_state=PERSIST, placeholder=default_name,
                     help="Leave empty for a name made from the knobs. Letters, digits, '.', '_' and '-'.").strip()
name = name or default_name
try:
    validate_run_name(name)
    if name in {j.name for j in jm.jobs() if j.active}:
        raise GenAIError(f"{name!r} is training now: type a new name (or clear the box) for another run")
    if (ui.runs_root() / name).exists():
        raise GenAIError(f"a run named {name!r} already exists: choose another name (or resume it)")
except GenAIError as e:
    problems.error(str(e))

config: RunConfig | None = None
if not problems.messages and model_cfg is not None and train_cfg is not None and data_cfg is not None:
    config = RunConfig(name=name, data=data_cfg, model=model_cfg, train=train_cfg)
for message in problems.messages:
    st.error(message, icon="🚫")

start_col, queue_col = st.columns([1, 3])
if start_col.button("Start training", type="primary", key="train_start", disabled=config is None):
    assert config is not None
    with ui.user_errors():
        started = jm.submit(config, name)
        if started.queue_position:
            st.toast(f"{name} is queued (position {started.queue_position}) behind the running job.")
        st.session_state["train_clear_name"] = True
        st.rerun()
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


with st.expander("Explore: train a grid of runs one after another"):
    st.caption("Pick up to two knobs and up to four values each; every combination becomes a run with the "
               "settings above, named after its values, and they train one after another.")
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
                problem = seq_len_problem(m.seq_len, stats) or ""
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
                 disabled=not grid_ok):
        with ui.user_errors():
            for run_name, cfg, _problem in plan:
                assert cfg is not None
                jm.submit(cfg, run_name)
            st.toast(f"Queued {len(plan)} runs.")


# ----------------------------------------------------------------- the live view
def show_run(name: str) -> None:
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
    st.markdown(line)
    if s.state == "failed" and s.error and s.error != s.message:
        st.error(s.error, icon="❌")

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
        st.caption(f"Latest sample (step {sample_step}):")
        st.code(sample, language=None, wrap_lines=True)
    for notice in s.notices:
        st.caption(f"ℹ️ {notice}")

    b1, b2, _ = st.columns([1, 1, 4])
    if s.here and s.active and b1.button("Stop", key="train_stop_run",
                                         help="Saves a checkpoint, then stops; resume later."):
        with ui.user_errors():
            jm.stop(name)
            st.rerun()
    resumable = s.state in RESUMABLE and not s.here and run.latest_checkpoint() is not None
    if resumable and b2.button("Resume", key="train_resume_run", type="primary",
                               help="Continue from the latest checkpoint: weights, optimizer and schedule."):
        with ui.user_errors():
            jm.resume(name)
            st.rerun()  # a full rerun switches the periodic refresh on
    if s.state in RESUMABLE and not resumable and not s.here:
        st.caption("No checkpoint was saved, so this run cannot be resumed; start it again.")


def show_queue() -> None:
    queue = jm.queue()
    if not queue:
        return
    st.markdown("**Queue**")
    st.dataframe([{"position": q.queue_position, "run": q.name, "device": q.device, "resume": q.resume}
                  for q in queue], hide_index=True, width="stretch")
    if st.button("Clear the queue", key="train_clear_queue"):
        for q in queue:
            with ui.user_errors():
                jm.stop(q.name)
        st.rerun()


live = anything_active(jm)


@st.fragment(run_every=1.0 if live else None)
def live_view(was_active: bool) -> None:
    """The one periodic fragment of the page: it re-finds the current run every tick (the next queued run
    takes over when one ends) and asks for a full rerun when everything has ended, to stop ticking."""
    name = current_run(jm)
    if name is None:
        st.caption("No runs yet: set the knobs below and press Start.")
        return
    show_run(name)
    show_queue()
    if was_active and not anything_active(jm):
        st.rerun()


with live_box:
    live_view(live)
    st.divider()
