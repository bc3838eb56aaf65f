"""Train: set the knobs, see what a run will cost, start it and watch it learn live (grids and sweeps: Explore).

The page only gathers inputs, asks `genai_core` and draws. Numbers (parameters, memory, time) come from
`genai_core.train.estimates.estimate`; validation comes from the config models; training runs in the job
manager (its own process by default), which this page polls from one periodic fragment. What run to show is
found from the job manager and the disk, never from session_state, so a refresh or a second tab sees
the same run, and after a server restart a run that was training reads `interrupted` with Resume.

Two forms share the live view: pretraining (a new model on a corpus) and fine-tuning for QA (a finished run,
its network and tokenizer, on a question/context/answer file; the engine's `fine_tune_config` completes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from genai_core.config import (
    RECIPES,
    SUGGESTED_MAX_STEPS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    recipe_values,
    with_recipe,
)
from genai_core.data.tokenstore import seq_len_problem
from genai_core.errors import GenAIError
from genai_core.runs.folder import list_runs
from genai_core.train.estimates import Estimate, estimate
from pages import ui
from pages.parts.finetune_form import finetune_form
from pages.parts.knobs import KNOB_FIELDS, draw_group, number_knob, state_value
from pages.parts.live_run import show_live_view
from pages.parts.train_form import (
    PERSIST,
    Problems,
    anything_active,
    available_devices,
    corpus_stats,
    field_help,
    literals,
    live_estimate,
    run_name_input,
    run_on_controls,
    submit,
)

MODES = {"lm": "Pretrain (next token)", "qa": "Fine-tune for QA"}


# --------------------------------------------------------------------------- the corpus
def corpus_section() -> tuple[DataConfig | None, dict[str, int] | None]:
    """The corpus the run trains on (the Data page's choice, else the demo corpus) and its statistics."""
    data_cfg, source = ui.data_choice()
    stats: dict[str, int] | None = None
    if source == "data page":
        assert data_cfg is not None
        st.caption(f"Corpus: **{Path(data_cfg.corpus).name}** ({data_cfg.tokenizer} tokenizer), chosen on the "
                   "Data page.")
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
    return data_cfg, stats


def apply_recipe() -> None:
    """Fill the architecture and optimizer knobs from the chosen recipe (the person may change them after)."""
    recipe = st.session_state.get("train_recipe") or "modern"
    for section in ("model", "train"):
        for field, value in recipe_values(recipe, section).items():
            st.session_state[f"train_{field}"] = state_value(field, value)


PREFILLED = "train_prefilled_from"




def knob_state(cfg: RunConfig) -> dict[str, Any]:
    """The pretraining form's widget values that give `cfg` back."""
    out = {f"train_{f}": state_value(f, getattr(getattr(cfg, section), f))
           for section, fields in KNOB_FIELDS.items() for f in fields}
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
    if any(f"train_{f}" in st.session_state for fields in KNOB_FIELDS.values() for f in fields):
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
    """Every knob back to the chosen recipe's values and the config's defaults. Each widget's value is set, not
    forgotten: a forgotten key resets the server's value while the browser keeps showing (and later sends back)
    the old one, so knobs, estimate, run name and the trained config would disagree."""
    recipe = st.session_state.get("train_recipe") or "modern"
    defaults = RunConfig.model_validate(with_recipe(
        {"data": {"corpus": "unused.txt"}, "train": {"max_steps": SUGGESTED_MAX_STEPS}}, recipe))
    st.session_state.pop(PREFILLED, None)
    st.session_state.pop("train_epochs", None)
    st.session_state.update(knob_state(defaults))
    st.session_state["train_recipe"] = recipe


def vocab_guess(data: DataConfig | None) -> int:
    """Vocabulary of the estimate before the corpus is tokenized (the trainer sets the real one)."""
    if data is not None and data.tokenizer == "bpe":
        return data.vocab_size
    return int(ModelConfig.model_fields["vocab_size"].default)


def recipe_controls() -> None:
    """The recipe choice (and the reset to it when the knobs were pre-filled from the last run)."""
    prefill_from_last_run()
    st.subheader("Model and training")
    if prefilled := st.session_state.get(PREFILLED):
        st.caption(f"Knobs pre-filled from the last run, **{prefilled}**.")  # the button below: at 800 px a
        st.button("Reset to the recipe's defaults", key="train_reset_knobs", on_click=reset_to_recipe,  # column
                  icon=":material/restart_alt:")  # beside the caption cut its label
    st.segmented_control(
        "Recipe", list(RECIPES), required=True, key="train_recipe", persist_state=PERSIST,
        # A default beside a value the session already holds (pre-filled) would make Streamlit warn.
        **({} if "train_recipe" in st.session_state else {"default": "modern"}),
        on_change=apply_recipe, format_func={"modern": "Modern (RoPE, QK-norm, ReLU², Muon)",
                                             "classic": "Classic (nanoGPT / GPT-2)"}.get,
        help="Fills the architecture details and the optimizer below; change any of them after. Modern is the "
             "default and learns about 3x faster per CPU-minute here; classic is nanoGPT's recipe, kept to compare.")


def model_knobs() -> dict[str, Any]:
    """The model column, as ModelConfig fields."""
    drawn: dict[str, Any] = {"arch": st.radio("Architecture", literals(ModelConfig, "arch"), key="train_arch",
                                              persist_state=PERSIST, horizontal=True, format_func=str.upper,
                                              help=field_help(ModelConfig, "arch"))}
    # No bounds on the widgets and no defaults typed here: config.py gives both, and says what is out of
    # range in the same words as the CLI (Start stays disabled with the reason shown).
    draw_group("model", drawn)
    with st.expander("Architecture details", expanded=False):
        draw_group("details", drawn)
    return drawn


def length_and_optimizer_knobs(arch: str) -> dict[str, Any]:
    """The training column (length, batch, optimizer, learning rates, warmup, seed), as TrainConfig fields."""
    length_mode = st.radio("Train for", ["steps", "epochs"], horizontal=True, key="train_length_mode",
                           persist_state=PERSIST)
    values: dict[str, Any] = {"max_steps": None, "epochs": None}
    if length_mode == "steps":
        values["max_steps"] = int(number_knob("Max steps", TrainConfig, "max_steps", value=SUGGESTED_MAX_STEPS,
                                              step=100))
    else:  # RunConfig's default length
        values["epochs"] = float(number_knob("Epochs", TrainConfig, "epochs", value=1.0, step=0.5))
    values.update(draw_group("training", {"arch": arch}))
    return values


def hardware_knobs() -> dict[str, Any]:
    """The hardware column (device, precision, where it runs, the rarer settings), as TrainConfig fields."""
    values = draw_group("hardware", {})
    values.update(run_on_controls("train", values["device"]))
    with st.expander("More training settings"):
        values.update(draw_group("more", {}))
    return values


# --------------------------------------------------------------------------- the config, checked
def checked_configs(model_values: dict[str, Any], train_values: dict[str, Any], data_cfg: DataConfig | None,
                    stats: dict[str, int] | None,
                    problems: Problems) -> tuple[ModelConfig | None, TrainConfig | None]:
    """The knobs as validated configs; every reason they cannot train yet goes to `problems`."""
    model_cfg: ModelConfig | None = None
    train_cfg: TrainConfig | None = None
    with ui.user_errors(problems):
        model_cfg = ModelConfig(**model_values, vocab_size=stats["vocab_size"] if stats else vocab_guess(data_cfg))
    with ui.user_errors(problems):
        train_cfg = TrainConfig(**train_values)
    if data_cfg is None:
        problems.error("There is no corpus to train on: choose one on the Data page.")
    elif stats is None:
        problems.error("The corpus could not be read or prepared (see above): fix it or choose another on the "
                       "Data page.")
    elif model_cfg is not None and (msg := seq_len_problem(model_cfg.seq_len, stats["max_seq_len"])):
        problems.error(msg)
    return model_cfg, train_cfg


def estimate_section(model_cfg: ModelConfig | None, train_cfg: TrainConfig | None, stats: dict[str, int] | None,
                     problems: Problems) -> Estimate | None:
    """The estimate panel; a run that will not fit disables Start."""
    est: Estimate | None = None
    train_tokens = stats["train_tokens"] if stats else None
    if model_cfg is not None and train_cfg is not None:
        # Timing real steps while a job trains would slow it down and time a busy machine: the estimate then
        # falls back on the measured device throughput.
        with ui.user_errors(problems):
            est = estimate(model_cfg, train=train_cfg, train_tokens=train_tokens, calibrate=not anything_active(),
                           runs_root=ui.runs_root(), background=True)
        if est is not None and est.fit_problem:
            problems.error(est.fit_problem)
    live_estimate(est, lambda: estimate(model_cfg, train=train_cfg, calibrate=False, runs_root=ui.runs_root(),
                                        train_tokens=train_tokens))
    return est


def start_section(model_values: dict[str, Any], train_values: dict[str, Any], data_cfg: DataConfig | None,
                  model_cfg: ModelConfig | None, train_cfg: TrainConfig | None, est: Estimate | None,
                  problems: Problems) -> None:
    """The run name (made from the knobs unless typed), every reason Start is disabled, and Start."""
    m = model_values
    knob_name = (f"{m['arch']}-d{m['d_model']}-L{m['n_layers']}" + (f"-h{m['n_heads']}" if m["arch"] == "gpt" else "")
                 + f"-T{m['seq_len']}-lr{train_values['lr']:g}")
    name = run_name_input("train_run_name", ui.unique_run_name(knob_name),
                          "Leave empty for a name made from the knobs. Letters, digits, '.', '_' and '-'.", problems)
    config: RunConfig | None = None
    if not problems.messages and model_cfg is not None and train_cfg is not None and data_cfg is not None:
        config = RunConfig(name=name, data=data_cfg, model=model_cfg, train=train_cfg)
    for message in problems.messages:
        st.error(message, icon=":material/block:")
    start_col, queue_col = st.columns([1, 3])
    if start_col.button("Start training", type="primary", key="train_start",
                        disabled=config is None or not ui.can_change()) and ui.presenter_only():
        assert config is not None
        submit(config, name, "train_run_name", est)
    if anything_active():
        queue_col.caption("One run trains per device at a time; a new start waits in the queue.")


# --------------------------------------------------------------------------- explore
def explore_link(data_cfg: DataConfig | None, model_cfg: ModelConfig | None, train_cfg: TrainConfig | None) -> None:
    """Grids and searches live on the Explore page: this form's settings go there as what every trial shares."""
    ready = data_cfg is not None and model_cfg is not None and train_cfg is not None
    if st.button("Sweep knobs around these settings", key="train_to_explore", icon=":material/travel_explore:",
                 disabled=not ready, help="Opens Explore with this form's settings as what every trial shares: a grid "
                 "of values, or a search that stops losing trials early.") and ready:
        st.session_state[ui.SWEEP_BASE] = RunConfig(data=data_cfg, model=model_cfg, train=train_cfg).model_dump(
            mode="json")
        st.switch_page("pages/explore.py")


# --------------------------------------------------------------------------- page
def pretrain_form() -> None:
    """The pretraining form: corpus, knobs, the checked config with its estimate, Start, and the way to a sweep."""
    data_cfg, stats = corpus_section()
    recipe_controls()
    col_model, col_train, col_hw = st.columns(3)
    with col_model:
        model_values = model_knobs()
    with col_train:
        train_values = length_and_optimizer_knobs(model_values["arch"])
    with col_hw:
        hardware = hardware_knobs()
    train_values.update(hardware)
    problems = Problems()
    model_cfg, train_cfg = checked_configs(model_values, train_values, data_cfg, stats, problems)
    est = estimate_section(model_cfg, train_cfg, stats, problems)
    start_section(model_values, train_values, data_cfg, model_cfg, train_cfg, est, problems)
    explore_link(data_cfg, model_cfg, train_cfg)


st.title("Train")
live_box = st.container()  # filled at the end, so a live run sits at the top of the page
mode = st.segmented_control(
    "What to train", list(MODES), default="lm", required=True, format_func=MODES.get, key="train_mode",
    persist_state=PERSIST,
    help="Pretrain: a new model learns the language of a corpus by predicting the next token. Fine-tune for QA: "
         "a pretrained run learns to answer questions about a given text.")
if mode == "qa":
    finetune_form()
else:
    pretrain_form()
show_live_view(live_box)
