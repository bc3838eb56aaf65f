"""The Train page's second form: fine-tune a finished run for question answering on a question/context/answer
file. The network and tokenizer are the parent's; `genai_core.qa.finetune.fine_tune_config` completes the
config the form gathers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from genai_core.clinical.demo import demo_qa_config
from genai_core.config import QA_HEADS, SUGGESTED_MAX_STEPS, DataConfig, ModelConfig, RunConfig, TrainConfig
from genai_core.errors import GenAIError
from genai_core.qa.finetune import fine_tune_config
from genai_core.qa.store import QA_FILE_TYPES, QAStore, prepare_qa, qa_store_key, question_kinds, read_qa_table
from genai_core.runs.folder import Run, list_runs
from genai_core.runs.status import PARENT_READY
from genai_core.train.estimates import Estimate, estimate
from pages import ui
from pages.parts.knobs import number_knob
from pages.parts.train_form import (
    PERSIST,
    Problems,
    anything_active,
    available_devices,
    field_help,
    literals,
    live_estimate,
    run_name_input,
    run_on_controls,
    submit,
)

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
    """Runs a fine-tune can start now, newest first: completed (`PARENT_READY`: a stopped one would hold its
    fine-tune until it is resumed and completes), with a checkpoint and a tokenizer."""
    found: dict[str, Run] = {}
    for run in list_runs(ui.runs_root()):
        try:
            if (run.state == PARENT_READY and run.latest_checkpoint() is not None
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
    parts += [label.lower() for head, label in HEADS.items() if getattr(m, head)]
    return " · ".join(parts)


HEADS = dict(zip(QA_HEADS, ("Copy head", "Span head", "Kind head"), strict=True))
"""The heads a fine-tune can add to a GPT parent (the engine's `QA_HEADS`), with their switches' labels."""
WHY_ADD = {
    "copy_head": "Worth it when answers are words copied from the context (names, doses, findings).",
    "span_head": "Answers become whole-word spans of the context (or 'not stated') with a probability, read off "
                 "in one pass; it trains beside the generated answer and lifts it too.",
    "kind_head": "Needs a `kind` column in the training file (the bundled splits have one); the Chat page shows "
                 "what each question was understood to ask.",
}


def head_toggles(parent_name: str, m: ModelConfig, preset: ModelConfig, kinds: list[str]) -> dict[str, Any]:
    """The heads' switches: kept when the parent has one, optional on a GPT without (on as in the demo's preset),
    absent from LSTM/GRU; the kind head only when the training file names `kinds` to learn. The chosen heads as
    `ModelConfig` fields, with the file's kinds when the kind head is on."""
    chosen: dict[str, Any] = {}
    for head, label in HEADS.items():
        kept = getattr(m, head)
        no_kinds = head == "kind_head" and not kinds
        if m.arch != "gpt":
            why = f"Not available: it reads the GPT's hidden states, and this parent is {m.arch.upper()}."
        elif no_kinds:
            why = "Not available: the training file has no `kind` column saying what each question asks."
        elif kept:
            why = "The parent has one, so the fine-tune keeps it (its trained weights are part of the parent)."
        else:
            why = f"The parent has none: switching it on adds one, untrained, that learns during the fine-tune. " \
                  f"{WHY_ADD[head]}"
        available = m.arch == "gpt" and not no_kinds
        # Keyed by parent (and, for the kind head, by whether the file has kinds), so each switch starts at that
        # parent's own setting.
        chosen[head] = st.toggle(label, value=kept or (available and getattr(preset, head)),
                                 key=f"qa_{head}_{parent_name}" + ("_none" if no_kinds else ""),
                                 disabled=kept or not available, help=f"{field_help(ModelConfig, head)}\n\n{why}")
    if chosen["kind_head"]:
        chosen["question_kinds"] = kinds  # read once per file version (qa_summary), not on every rerun
    return chosen


@st.cache_data(show_spinner=False, max_entries=32)
def _qa_summary(path: str, mtime_ns: int, size: int) -> tuple[int, list[str]]:
    table = read_qa_table(path)
    return len(table), question_kinds(table)


def qa_summary(path: Path) -> tuple[int, list[str]]:
    """Records of a QA file and the question kinds its `kind` column names, validated by the engine (type,
    encoding, the question/context/answer columns); cached per version of the file, which every rerun would
    otherwise parse again."""
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else (0, 0)
    return _qa_summary(str(path), *stamp)


def checked_qa_file(path: Path | None, what: str, problems: Problems) -> Path | None:
    """`path` when the engine reads it as a QA table (its size is said here), else None: the engine's reason
    is shown here, and Start says which file to fix."""
    if path is None:
        return None
    try:
        records, _ = qa_summary(path)
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
    cache = ui.token_cache()
    key = qa_store_key(cfg.data, tokenizer, cfg.model.seq_len, cfg.model.qa_layout)
    if not (cache / key / "meta.json").is_file():
        bar = st.progress(0.0, text="Tokenizing the QA examples with the parent's tokenizer (once; the run reuses it)…")
        try:
            prepare_qa(cfg.data, tokenizer, cfg.model.seq_len, cfg.model.qa_layout, cache,
                       progress=ui.progress_to(bar))
        finally:
            bar.empty()
    return _qa_store_stats(str(cache), key)


def finetune_form() -> None:
    """The fine-tune form: parent run, QA files, training knobs, estimate and Start (the live view is shared)."""
    preset = qa_preset()
    problems = Problems()
    st.caption("Teach a pretrained run to answer questions about a text. Each example reads `Context: text`, "
               "`Q: question`, `A: answer`; the loss is on the answer only, so the model learns to answer and "
               "then stop. The network and the tokenizer are the parent run's.")
    parent, parent_cfg = parent_section(problems)
    data_cfg = files_section(preset, problems)
    heads = heads_section(parent, parent_cfg, preset, data_cfg)
    stats = example_stats(parent, parent_cfg, data_cfg, problems)
    train_cfg, model_cfg = knobs_section(preset, heads, problems)
    effective: RunConfig | None = None
    if parent is not None and parent_cfg is not None and data_cfg is not None and train_cfg and model_cfg:
        with ui.user_errors(problems):
            # What will train: the parent's network with these heads and dropout (the engine's own completion).
            effective = fine_tune_config(RunConfig(task="qa", parent=parent.path, data=data_cfg, model=model_cfg,
                                                   train=train_cfg))
    est = estimate_section(effective, stats, problems)
    start_section(parent, effective, est, problems)


def parent_section(problems: Problems) -> tuple[Run | None, RunConfig | None]:
    """The run to start from, and its config."""
    st.subheader("Start from")
    parents = qa_parents()
    labels = {name: parent_label(run) for name, run in parents.items()}  # read from disk once, not per format
    parent_name = st.selectbox("Pretrained run", list(parents), index=None, key="qa_parent", persist_state=PERSIST,
                               format_func=labels.__getitem__,
                               placeholder="Choose the run to fine-tune",
                               help=f"{field_help(RunConfig, 'parent')} Completed runs: a stopped one is resumed "
                                    "to the end first (the Runs page), so a fine-tune never starts half-trained.")
    parent = parents.get(parent_name) if parent_name else None
    parent_cfg: RunConfig | None = None
    if not parents:
        st.info("No run to start from yet: a fine-tune starts from a completed run. Pretrain one first (Pretrain "
                "mode; a stopped one can be resumed on the Runs page), or train the clinical QA demo from the Home "
                "page.",
                icon=":material/science:")
        problems.error("There is no pretrained run to fine-tune yet: pretrain one first.")
    elif parent is None:
        problems.error("Choose the pretrained run to fine-tune (Start from).")
    else:
        with ui.user_errors(problems):
            parent_cfg = parent.config()
    if parent is not None and parent_cfg is not None:
        st.caption(f"Model (the parent's, read-only): {describe_model(parent_cfg)}")
    return parent, parent_cfg


def heads_section(parent: Run | None, parent_cfg: RunConfig | None, preset: RunConfig,
                  data_cfg: DataConfig | None) -> dict[str, Any]:
    """The switches of the heads the fine-tune adds (or keeps) on the parent's network, as `ModelConfig` fields."""
    if parent is None or parent_cfg is None:
        return {}
    st.subheader("Heads")
    kinds = qa_summary(Path(data_cfg.corpus))[1] if data_cfg is not None else []
    return head_toggles(parent.name, parent_cfg.model, preset.model, kinds)


def files_section(preset: RunConfig, problems: Problems) -> DataConfig | None:
    """The training and validation examples: bundled, uploaded, or held out of the training file."""
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
            upload = st.file_uploader("QA file", type=list(QA_FILE_TYPES), key="qa_upload",
                                      disabled=not ui.can_change(),
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
            val_fraction = number_knob("Share held out", DataConfig, "val_fraction", form="qa", value=val_fraction,
                                       step=0.05)
    data_cfg: DataConfig | None = None
    files_ok = train_path is not None and (val_source == "holdout" or val_path is not None)
    if files_ok:
        with ui.user_errors(problems):
            data_cfg = DataConfig(corpus=train_path, val_corpus=val_path if val_source == "bundled" else None,
                                  val_fraction=float(val_fraction))
    return data_cfg


def example_stats(parent: Run | None, parent_cfg: RunConfig | None, data_cfg: DataConfig | None,
                  problems: Problems) -> dict[str, Any] | None:
    """The examples tokenized as the run will see them (the parent decides the tokenizer and the window)."""
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
    return stats


def knobs_section(preset: RunConfig, heads: dict[str, Any],
                  problems: Problems) -> tuple[TrainConfig | None, ModelConfig | None]:
    """The fine-tune's training knobs, starting at the clinical demo's tuned values."""
    st.subheader("Training")
    d, T = preset.train, TrainConfig
    col_len, col_eval, col_hw = st.columns(3)
    with col_len:
        length_mode = st.radio("Train for", ["steps", "epochs"], horizontal=True, key="qa_length_mode",
                               persist_state=PERSIST, help="An epoch is one pass over the training examples.")
        max_steps: int | None = None
        epochs: float | None = None
        if length_mode == "steps":
            max_steps = int(number_knob("Max steps", T, "max_steps", form="qa",
                                        value=d.max_steps or SUGGESTED_MAX_STEPS, step=100))
        else:
            epochs = float(number_knob("Epochs", T, "epochs", form="qa", value=d.epochs or 1.0, step=0.5))
        batch_size = number_knob("Batch size", T, "batch_size", form="qa", value=d.batch_size, step=4)
        lr = number_knob("Learning rate", T, "lr", form="qa", value=d.lr, step=5e-4, format="%.5f")
        warmup = number_knob("Warmup steps", T, "warmup_steps", form="qa", value=d.warmup_steps, step=10)
        dropout = number_knob("Dropout", ModelConfig, "dropout", form="qa",
                          value=preset.model.dropout, step=0.05)
    with col_eval:
        eval_interval = number_knob("Evaluate every N steps", T, "eval_interval", form="qa", value=d.eval_interval,
                                step=50)
        eval_batches = number_knob("Validation batches", T, "eval_batches", form="qa", value=d.eval_batches, step=5)
        log_interval = number_knob("Log every N steps", T, "log_interval", form="qa", value=d.log_interval, step=5)
        seed = number_knob("Seed", T, "seed", form="qa", value=d.seed, step=1)
    with col_hw:
        device = st.selectbox("Device", available_devices(), key="qa_device", persist_state=PERSIST,
                              help=field_help(T, "device"))
        precision = st.selectbox("Precision", literals(T, "precision"), key="qa_precision",
                                 persist_state=PERSIST, help=field_help(T, "precision"))
        with st.expander("More training settings"):
            grad_accum = number_knob("Gradient accumulation", T, "grad_accum_steps", form="qa",
                                 value=d.grad_accum_steps, step=1)
            weight_decay = number_knob("Weight decay", T, "weight_decay", form="qa", value=d.weight_decay, step=0.05)
            threads = number_knob("CPU threads (0 = torch's default)", T, "num_threads", form="qa",
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
        model_cfg = ModelConfig(dropout=float(dropout), **heads)  # the rest comes from the parent
    return train_cfg, model_cfg


def estimate_section(effective: RunConfig | None, stats: dict[str, Any] | None,
                     problems: Problems) -> Estimate | None:
    """The estimate of the run as it will train; a fine-tune that will not fit disables Start."""
    windows = width = None
    est: Estimate | None = None
    if effective is not None:
        calibrate = not anything_active()  # as for pretraining: never time steps beside a running job
        with ui.user_errors(problems):
            # estimate() counts an epoch as train_tokens / (batch × seq_len) steps, while a QA epoch is one pass
            # over the examples: each example counts as one window of seq_len tokens here.
            windows = stats["train_examples"] * effective.model.seq_len if stats else None
            width = stats["mean_window_tokens"] if stats else None
            est = estimate(effective, train_tokens=windows, calibrate=calibrate, background=True,
                           window_tokens=width)
        if est is not None and est.fit_problem:
            problems.error(est.fit_problem)
    live_estimate(est, lambda: estimate(effective, train_tokens=windows, calibrate=False, window_tokens=width))
    if est is not None and effective is not None and stats:
        st.caption(f":material/info: Memory assumes examples that fill the {effective.model.seq_len}-token window; "
                   f"the time is for batches of about {stats['mean_window_tokens']:.0f} tokens, as QA batches are "
                   "padded only to their longest example.")
    return est


def start_section(parent: Run | None, effective: RunConfig | None, est: Estimate | None, problems: Problems) -> None:
    """The run name, every reason Start is disabled, and Start."""
    name = run_name_input("qa_run_name",
                          ui.unique_run_name(f"{parent.name}-qa" if parent is not None else "qa-finetune"),
                          "Leave empty for the parent's name + `-qa`. Letters, digits, '.', '_' and '-'.", problems)
    config = effective.model_copy(update={"name": name}) if effective is not None and not problems.messages else None
    for message in problems.messages:
        st.error(message, icon=":material/block:")
    if st.button("Start fine-tuning", type="primary", key="qa_start",
                 disabled=config is None or not ui.can_change()) and ui.presenter_only():
        assert config is not None
        submit(config, name, "qa_run_name", est)
