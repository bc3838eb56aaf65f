"""Shared UI helpers of the playground's pages: the one process-wide job manager, error display,
the persisted data choice, and the plotly figures every page draws the same way.

Pages gather inputs, call `genai_core` and draw; anything two pages need lives here. Nothing here
does training maths: numbers come from the engine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import plotly.graph_objects as go
import streamlit as st
from pydantic import ValidationError
from streamlit.runtime.uploaded_file_manager import UploadedFile

from genai_core.clinical.demo import DEMO_CORPUS
from genai_core.config import APP_RUNNER, ASSETS_DIR, PRESENTER_ENV, DataConfig, RunnerKind
from genai_core.errors import CorpusError, GenAIError, user_message
from genai_core.files import atomic_write_bytes, atomic_write_json, check_runs_cap
from genai_core.runs.folder import downsample_rows, free_run_name, runs_dir, slugify, token_cache_dir
from genai_core.train.jobs import JobManager
from genai_core.units import format_bytes


def _leave_legacy_pages_mode() -> None:
    """If a fresh server's first request was a page URL, hand control back to app.py's navigation.

    Streamlit (1.67) decides once per process whether the app uses the legacy `pages/` folder mode:
    yes when `pages/` exists, until `st.navigation` runs. A first request for `/train` therefore runs
    pages/train.py alone, with every file of pages/ in the sidebar. Every page imports this module,
    so clearing the flag and rerunning makes app.py's `st.navigation` serve the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_legacy_pages_mode()

ASSETS = ASSETS_DIR  # the engine's: one place says where the bundled data lives
MAX_POINTS = 2000  # plotly figures re-sent every second must stay small (streamlit #6510)


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    """The single JobManager of this server process, shared by every session and tab. Runs that do not choose
    where they train get their own process (`APP_RUNNER`; $GENAI_RUNNER overrides it, as the tests do)."""
    runner = os.environ.get("GENAI_RUNNER") or APP_RUNNER
    if runner not in get_args(RunnerKind):
        raise GenAIError(f"GENAI_RUNNER must be one of {', '.join(get_args(RunnerKind))}, not {runner!r}")
    return JobManager(runs_dir(), default_runner=runner)  # type: ignore[arg-type]  # checked just above


def runs_root() -> Path:
    return ensure_dir(runs_dir().resolve())


def token_cache() -> Path:
    """The runs folder's cache of prepared corpora, where the trainer looks: preparing here serves every run."""
    return token_cache_dir(runs_root())


def ensure_dir(path: Path) -> Path:
    """`path`, created if it can be: on a read-only or full disk the pages still draw (browsing and chatting
    need no writes), and the first real write says what is wrong (`user_errors`)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    return path


def playground_dir() -> Path:
    """Where the app keeps its own state on disk (uploads, the current data choice)."""
    return ensure_dir(runs_root() / ".playground")


@contextmanager
def user_errors(where: Any = None) -> Iterator[None]:
    """Show an error a person caused as `st.error` (in `where`, e.g. a column or container); never a traceback.

    Bugs are not swallowed: anything that is not a user error propagates to Streamlit.
    """
    try:
        yield
    except Exception as e:  # MemoryError included; a bug (no user message) propagates
        msg = user_message(e)
        if msg is None:
            raise
        (where or st).error(msg, icon=":material/block:")


# --------------------------------------------------------------------------- data choice on disk
def save_data_choice(cfg: DataConfig) -> None:
    """Remember the corpus and tokenizer chosen on the Data page (disk, so a new tab or restart keeps it)."""
    atomic_write_json(playground_dir() / "data.json", json.loads(cfg.model_dump_json()))
    st.session_state["data_choice"] = cfg


def load_data_choice() -> DataConfig | None:
    if isinstance(st.session_state.get("data_choice"), DataConfig):
        return st.session_state["data_choice"]
    p = playground_dir() / "data.json"
    if not p.is_file():
        return None
    try:
        cfg = DataConfig.model_validate_json(p.read_text(encoding="utf-8"))
    except (ValidationError, OSError):
        return None
    if not Path(cfg.corpus).is_file():
        return None
    st.session_state["data_choice"] = cfg
    return cfg


def progress_to(bar: Any) -> Callable[[float, str], None]:
    """An engine progress callback (fraction, message) drawing into `st.progress` bar `bar`."""
    return lambda fraction, message: bar.progress(min(1.0, max(0.0, fraction)), text=message)


# --------------------------------------------------------------------------- uploads
def spill_upload(upload: UploadedFile, folder: Path) -> Path:
    """Write an upload (held in memory) to `folder` once, and return its path.

    It lands in a subfolder named by a content hash, under the sanitised original name: nothing the browser
    sends can steer the path, the engine's messages name the file as the person knows it, and the same
    bytes always land on the same file, which keeps its token-store cache valid.
    """
    if not can_change():  # the uploader is disabled in viewer mode; a forged upload message still lands here
        raise GenAIError(LOCKED_HELP + ".")
    name = Path(upload.name).name
    limit_mb = int(st.get_option("server.maxUploadSize"))
    if upload.size > limit_mb << 20:
        raise CorpusError(f"{name} is {format_bytes(upload.size)}, over the upload limit of {limit_mb:,} MB "
                          "(server.maxUploadSize in .streamlit/config.toml)")
    spilled: dict[str, str] = st.session_state.setdefault("spilled_uploads", {})
    done = spilled.get(upload.file_id)
    if done and Path(done).is_file():
        return Path(done)  # every rerun sees the same upload: hash and write it only once
    check_runs_cap(runs_root(), upload.size)  # uploads live under the runs folder and count against its cap
    with upload.getbuffer() as buf:  # a view of the upload's bytes: no second copy of a big file in memory
        digest = hashlib.sha256(buf).hexdigest()[:12]
        path = folder / digest / f"{slugify(Path(name).stem)[:60]}{Path(name).suffix.lower()}"
        if not (path.is_file() and path.stat().st_size == upload.size):
            atomic_write_bytes(path, buf)  # type: ignore[arg-type]
    spilled[upload.file_id] = str(path)
    return path


# --------------------------------------------------------------------------- figures
def downsample(rows: list[dict[str, Any]], limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    """At most about `limit` points per figure (the engine's `downsample_rows`)."""
    return downsample_rows(rows, limit)


X_AXES = {"step": "step", "tokens": "tokens seen", "elapsed_s": "training time (s)"}


PALETTE = ["#3b6ea5", "#d1495b", "#66a182", "#edae49", "#8d6a9f", "#00798c", "#30638e", "#a05195"]
"""Colours of the runs in every chart, in order."""


def loss_figure(series: dict[str, list[dict[str, Any]]], *, x: str = "step", title: str = "Loss",
                smoothing: float = 0.0, log_y: bool = False, height: int = 380) -> go.Figure:
    """Train (solid) and validation (dotted, markers) loss of one or more runs against `x`.

    `series` maps a run name to its metric rows. Smoothing is an exponential moving average of the
    train loss (as TensorBoard's slider), applied before downsampling.
    """
    fig = go.Figure()
    palette = PALETTE
    for i, (name, rows) in enumerate(series.items()):
        color = palette[i % len(palette)]
        label = "" if len(series) == 1 else f"{name} · "
        train = [r for r in rows if r.get("train_loss") is not None]
        ys = _ema([r["train_loss"] for r in train], smoothing)
        pts = downsample([{**r, "_y": y} for r, y in zip(train, ys, strict=True)])
        fig.add_trace(go.Scatter(x=[r.get(x) for r in pts], y=[r["_y"] for r in pts], mode="lines",
                                 name=f"{label}train", line={"color": color, "width": 2}))
        val = downsample([r for r in rows if r.get("val_loss") is not None])
        if val:
            fig.add_trace(go.Scatter(x=[r.get(x) for r in val], y=[r["val_loss"] for r in val],
                                     mode="lines+markers", name=f"{label}validation",
                                     line={"color": color, "dash": "dot"}, marker={"size": 6}))
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      xaxis_title=X_AXES.get(x, x), yaxis_title="cross-entropy loss (nats/token)",
                      legend={"orientation": "h", "y": -0.2}, uirevision="keep")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def _ema(values: list[float], alpha: float) -> list[float]:
    if alpha <= 0 or not values:
        return values
    out, acc = [], values[0]
    for v in values:
        acc = alpha * acc + (1 - alpha) * v
        out.append(acc)
    return out


# --------------------------------------------------------------------------- the run a session follows
SWEEP_BASE = "explore_base"
"""The Train page's settings (a RunConfig as JSON) handed to Explore as what every trial of a sweep shares."""
FOLLOW = "train_follow"
"""The run this browser session started, stopped or resumed on the Train page: the live view stays on it (its
final state and its Resume) rather than jumping to whichever run the queue starts next. Starting the demo from
Home forgets it: the live view then follows what trains."""


# --------------------------------------------------------------------------- viewer mode
LOCKED_HELP = "Viewer mode: enter the presenter's password in the sidebar to do this"


def presenter_password() -> str | None:
    """The presenter's password, from the environment or Streamlit's secrets (None: no viewer mode)."""
    password = os.environ.get(PRESENTER_ENV, "")
    if not password:
        try:
            password = str(st.secrets.get("presenter_password", "") or "")
        except Exception:  # no secrets file at all: Streamlit raises rather than returning nothing
            password = ""
    return password or None


def can_change() -> bool:
    """Whether this session may write to the runs folder: start, stop, delete, import, upload, prepare, evaluate
    (always, unless viewer mode is on and the presenter has not unlocked this session)."""
    return presenter_password() is None or bool(st.session_state.get("presenter_unlocked"))


def presenter_only() -> bool:
    """The check at the top of every action that writes: True if this session may (see `can_change`), else an
    error saying why. A disabled widget stops honest clicks only; a forged widget message reaches the action."""
    if can_change():
        return True
    st.error(LOCKED_HELP + ".", icon=":material/lock:")
    return False


class GuessBudget:
    """Password guesses allowed to this server process, all sessions together (a token bucket): `burst` at once,
    then one every `every_s` seconds. A reload or a new tab is a new session, so a per-session count would be no
    limit at all; the presenter who mistypes waits seconds, a script guessing waits hours."""

    def __init__(self, burst: int = 5, every_s: float = 10.0) -> None:
        self.burst, self.every_s = burst, every_s
        self.tokens, self.at = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Spend one guess: 0.0 if allowed, else the seconds until the next one is."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) / self.every_s)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) * self.every_s


@st.cache_resource
def guess_budget() -> GuessBudget:
    """The one guess budget of this server process (`st.cache_resource`: shared by every session, kept across
    reruns and reloads)."""
    return GuessBudget()


def change_kwargs(help_text: str | None = None, *, disabled: bool = False) -> dict[str, Any]:
    """Keyword arguments that disable a changing widget in viewer mode, with the reason as its help (a widget's
    own `help` and `disabled` go through here, never beside it: twice is a TypeError)."""
    if can_change():
        return {"disabled": disabled, **({"help": help_text} if help_text else {})}
    return {"disabled": True, "help": LOCKED_HELP}


def _unlock() -> None:
    typed = str(st.session_state.get("presenter_typed", ""))
    st.session_state["presenter_typed"] = ""
    st.session_state["presenter_wrong"] = ""
    if not typed:
        return
    wait = guess_budget().take()
    if wait:
        st.session_state["presenter_wrong"] = (f"Too many password attempts on this server: try again in "
                                               f"{math.ceil(wait)} s.")
        return
    password = presenter_password() or ""
    ok = bool(password) and hmac.compare_digest(typed.encode(), password.encode())
    st.session_state["presenter_unlocked"] = ok
    if not ok:
        st.session_state["presenter_wrong"] = "That is not the presenter's password."


def _lock() -> None:
    st.session_state["presenter_unlocked"] = False


NARROW_SCREEN_CSS = """<style>
[data-testid="stMetricValue"] { font-size: clamp(1.25rem, 2.4vw, 2.25rem); }
</style>"""
"""Metric values shrink with the window: at a fixed 2.25 rem, three metrics side by side cut their values
("4.0 GF…") on an 800 px screen with the sidebar open."""


def narrow_screen_style() -> None:
    """The app's one style rule (app.py draws it on every page)."""
    st.html(NARROW_SCREEN_CSS)


def presenter_sidebar() -> None:
    """In viewer mode: the sidebar says so and takes the presenter's password (per browser session)."""
    if presenter_password() is None:
        return
    with st.sidebar:
        if st.session_state.get("presenter_unlocked"):
            st.caption(":material/lock_open: Presenter: training, evaluating, deleting, importing and uploading "
                       "are open in this browser session.")
            st.button("Lock again (viewer mode)", on_click=_lock, key="presenter_lock")
            return
        st.caption(":material/visibility: **Viewer mode**: browse, compare runs and chat. Training, evaluating, "
                   "deleting, importing and uploading need the presenter's password.")
        st.text_input("Presenter password", type="password", key="presenter_typed", on_change=_unlock)
        if st.session_state.get("presenter_wrong"):
            st.error(st.session_state["presenter_wrong"], icon=":material/block:")


# --------------------------------------------------------------------------- run tables
TABLE_COLUMNS = {  # the labels every runs table uses (Train page names, human numbers)
    "name": st.column_config.TextColumn("Run", pinned=True),
    "state": st.column_config.TextColumn("Status"),
    "task": st.column_config.TextColumn("Task", help="lm: pretrained on text; qa: fine-tuned to answer questions"),
    "parent": st.column_config.TextColumn("Started from", help="The run whose weights this run started from"),
    "arch": st.column_config.TextColumn("Architecture"),
    "params": st.column_config.NumberColumn("Parameters", format="compact"),
    "d_model": st.column_config.NumberColumn("d_model"),
    "n_layers": st.column_config.NumberColumn("Layers"),
    "n_heads": st.column_config.NumberColumn("Heads"),
    "seq_len": st.column_config.NumberColumn("Context (tokens)"),
    "batch_size": st.column_config.NumberColumn("Batch"),
    "lr": st.column_config.NumberColumn("Learning rate", format="%.1e"),
    "optimizer": st.column_config.TextColumn("Optimizer"),
    "pos_encoding": st.column_config.TextColumn("Positions"),
    "dropout": st.column_config.NumberColumn("Dropout", format="%.2f"),
    "tokenizer": st.column_config.TextColumn("Tokenizer"),
    "best_val_loss": st.column_config.NumberColumn("Best val loss (nats/token)", format="%.4f"),
    "best_val_ppl": st.column_config.NumberColumn("Best val perplexity", format="%.2f"),
    "heldout_ppl": st.column_config.NumberColumn(
        "Held-out perplexity", format="%.2f",
        help="Exact perplexity over the whole validation split, when measured (Evaluate page or `eval`)"),
    "train_loss": st.column_config.NumberColumn("Last train loss", format="%.4f"),
    "step": st.column_config.NumberColumn("Steps", format="%,d"),
    "tokens": st.column_config.NumberColumn("Tokens seen", format="compact"),
    "elapsed_s": st.column_config.NumberColumn("Training time (s)", format="%.1f"),
    "message": st.column_config.TextColumn("Message"),
}


def readable_summaries(runs: list[Any]) -> list[dict[str, Any]]:
    """`Run.summary()` of each run that can be read (a damaged one is left out; the Runs page names it)."""
    out = []
    for run in runs:
        try:
            out.append(run.summary())
        except Exception as e:  # a damaged run must not take a page down; a bug still raises
            if user_message(e) is None:
                raise
    return out


MISSING_SHOWN = "–"
"""What a table shows for a missing value (Streamlit's default is the word "None")."""


def table(data: Any, **kwargs: Any) -> Any:
    """`st.dataframe` with a missing value shown as a dash: every table of the app draws through here."""
    return st.dataframe(data, placeholder=MISSING_SHOWN, **kwargs)


def numeric_blanks(frame: Any, columns: dict[str, Any]) -> Any:
    """Number columns as numbers, a missing value blank (not the word "None")."""
    import pandas as pd

    for name, column in columns.items():
        if name in frame and column.get("type_config", {}).get("type") == "number":
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def runs_table(rows: list[dict[str, Any]], fields: list[str], *, key: str) -> None:
    """A table of run summaries with the shared labels and formats, scrolling inside its own frame."""
    import pandas as pd

    columns = {f: TABLE_COLUMNS[f] for f in fields if f in TABLE_COLUMNS}
    frame = numeric_blanks(pd.DataFrame(rows).reindex(columns=list(columns)), columns)
    table(frame, hide_index=True, column_config=columns, key=key, width="stretch")


# --------------------------------------------------------------------------- run names and the demo corpus
def unique_run_name(base: str) -> str:
    """`base`, or `base-2`, `base-3`, ...: the first name with neither a run folder nor a live job here."""
    return free_run_name(runs_root(), slugify(base), taken={j.name for j in job_manager().jobs() if j.active})


def data_choice() -> tuple[DataConfig | None, str]:
    """What the Train and Explore pages train on: the Data page's choice, else the bundled demo corpus; with
    where it came from ("data page", "demo" or "none")."""
    choice = load_data_choice()
    if choice is not None:
        return choice, "data page"
    demo = demo_data_config()
    return (demo, "demo") if demo is not None else (None, "none")


def demo_data_config() -> DataConfig | None:
    """The bundled demo corpus (`genai_core.clinical.demo.DEMO_CORPUS`) as a character-level data choice, what the
    Train page pretrains on while no corpus is chosen; None while the file is not there."""
    return DataConfig(corpus=DEMO_CORPUS, tokenizer="char") if DEMO_CORPUS.is_file() else None
