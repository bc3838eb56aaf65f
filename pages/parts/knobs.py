"""The pretraining form's knobs, each declared once (`KNOBS`): a `Knob` names a config field, its label and
where it is drawn; its default, bounds, choices and help come from the field in config.py. The Train page draws
them by group (`draw_group`); the recipe, the reset, the pre-fill from the last run and the run's config all read
the same table (`state_value`, `KNOB_FIELDS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import streamlit as st
from pydantic import BaseModel

from genai_core.config import ModelConfig, TrainConfig
from pages.parts.train_form import PERSIST, available_devices, field_help, literals

M, T = ModelConfig, TrainConfig
COMPILE_CHOICES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


@dataclass(frozen=True)
class Knob:
    """One Train-page widget for one config field, declared once in `KNOBS`: its default, bounds, choices and
    help come from the field in config.py, and the recipe, the reset, the pre-fill from the last run and the
    run's config all read it from there."""

    section: type[BaseModel]
    field: str
    label: str
    group: Literal["model", "details", "training", "hardware", "more"]
    """Where it is drawn: model, details (Architecture details), training, hardware, more (More training
    settings)."""
    step: int | float | None = None
    """A number input with this step (the value takes the step's type); None: a choice or a switch."""
    needs: Literal["gpt", "muon"] | None = None
    """`gpt`: only a GPT has it; `muon`: only the Muon optimizer uses it (the widget is disabled otherwise)."""
    off: int | float | None = None
    """The number that means None (off, or automatic) in the widget."""
    choices: dict[str, Any] | None = None
    """What the widget offers and the config value each stands for, where the field's own values would not do
    (None: the field's Literal choices, the default first)."""
    labels: dict[str, str] | None = None
    """How a choice reads, where its config value is not words."""
    format: str | None = None
    """A number input's printf-style format."""

    @property
    def key(self) -> str:
        return f"train_{self.field}"


KNOBS: tuple[Knob, ...] = (
    Knob(M, "d_model", "d_model", "model", step=16),
    Knob(M, "n_heads", "Attention heads", "model", step=1, needs="gpt"),
    Knob(M, "n_layers", "Layers", "model", step=1),
    Knob(M, "seq_len", "seq_len (context)", "model", step=16),
    Knob(M, "dropout", "Dropout", "model", step=0.05),
    Knob(M, "pos_encoding", "Positional encoding", "model", needs="gpt"),
    Knob(M, "norm", "Normalisation", "details", needs="gpt"),
    Knob(M, "mlp", "MLP activation", "details", needs="gpt"),
    Knob(M, "qk_norm", "QK-norm", "details", needs="gpt"),
    Knob(M, "tie_embeddings", "Tie input and output embeddings", "details"),
    Knob(M, "zero_init", "Zero-initialised output projections", "details", needs="gpt"),
    Knob(M, "logit_softcap", "Logit soft-cap (0 = off)", "details", step=5.0, needs="gpt", off=0.0),
    Knob(T, "batch_size", "Batch size", "training", step=4),
    Knob(T, "optimizer", "Optimizer", "training", labels={"muon": "Muon + AdamW", "adamw": "AdamW"}),
    Knob(T, "lr", "Learning rate (AdamW)", "training", step=5e-4, format="%.5f"),
    Knob(T, "muon_lr", "Learning rate (Muon)", "training", step=0.005, format="%.4f", needs="muon"),
    Knob(T, "warmup_steps", "Warmup steps", "training", step=10),
    Knob(T, "seed", "Seed", "training", step=1),
    Knob(T, "device", "Device", "hardware"),
    Knob(T, "precision", "Precision", "hardware"),
    Knob(T, "muon_precision", "Muon's Newton-Schulz precision", "hardware"),
    Knob(T, "eval_interval", "Evaluate every N steps", "more", step=50),
    Knob(T, "eval_batches", "Validation batches", "more", step=5),
    Knob(T, "log_interval", "Log every N steps", "more", step=5),
    Knob(T, "grad_accum_steps", "Gradient accumulation", "more", step=1),
    Knob(T, "weight_decay", "Weight decay", "more", step=0.05),
    Knob(T, "num_threads", "CPU threads (0 = the cores free at the start)", "more", step=1, off=0),
    Knob(T, "checkpoint_seconds", "Checkpoint at least every N seconds (0 = by steps only)", "more", step=30.0),
    Knob(T, "compile", "torch.compile", "more", choices=COMPILE_CHOICES),
)
"""Every knob of the pretraining form but the architecture (which decides what the others mean) and the
training length (steps or epochs), in the order drawn."""
KNOB_FIELDS = {"model": ("arch", *(k.field for k in KNOBS if k.section is M)),
               "train": tuple(k.field for k in KNOBS if k.section is T)}


def widget_value(k: Knob, value: Any) -> Any:
    """A config value as its widget holds it: the number that means None, or the label of a choice."""
    if k.choices is not None:
        return next(label for label, v in k.choices.items() if v == value)
    return k.off if value is None and k.off is not None else value


def state_value(field: str, value: Any) -> Any:
    """A config field's value as its widget holds it (the fields outside `KNOBS`, the architecture, as is)."""
    k = next((k for k in KNOBS if k.field == field), None)
    return value if k is None else widget_value(k, value)


def config_value(k: Knob, value: Any) -> Any:
    """A widget's value as the config takes it (the inverse of `widget_value`)."""
    if k.choices is not None:
        return k.choices[value]
    if k.step is None:
        return value
    value = type(k.step)(value)
    return None if k.off is not None and value == k.off else value


def draw(k: Knob, drawn: dict[str, Any]) -> Any:
    """Draw one knob (disabled when what it `needs` is not chosen in `drawn`, the values drawn before it), keyed
    by its field and kept across pages; returns its config value."""
    disabled = ((k.needs == "gpt" and drawn.get("arch") != "gpt")
                or (k.needs == "muon" and drawn.get("optimizer") != "muon"))
    kw: dict[str, Any] = {"key": k.key, "persist_state": PERSIST, "help": field_help(k.section, k.field),
                          "disabled": disabled}
    default = k.section.model_fields[k.field].default
    if k.step is not None or isinstance(default, bool):
        if k.key not in st.session_state:  # else set by a recipe or earlier: a default beside it makes Streamlit warn
            kw["value"] = widget_value(k, default)
        if k.step is None:
            return bool(st.checkbox(k.label, **kw))
        return config_value(k, st.number_input(k.label, step=k.step, **({"format": k.format} if k.format else {}),
                                               **kw))
    if k.labels is not None:
        kw["format_func"] = k.labels.get
    return config_value(k, st.selectbox(k.label, _options(k, drawn), **kw))


def _options(k: Knob, drawn: dict[str, Any]) -> list[Any]:
    """A choice knob's options, its default first (what Streamlit selects when nothing else was)."""
    if k.field == "device":
        return available_devices()
    if k.field == "optimizer" and drawn.get("arch") != "gpt":
        return ["adamw"]  # a recurrent model has no block matrices for Muon
    return list(k.choices) if k.choices is not None else literals(k.section, k.field)


def draw_group(group: str, drawn: dict[str, Any]) -> dict[str, Any]:
    """Draw the knobs of `group` in order, adding their values to `drawn`; returns the group's values."""
    values: dict[str, Any] = {}
    for k in KNOBS:
        if k.group == group:
            values[k.field] = drawn[k.field] = draw(k, drawn)
    return values


def number_knob(label: str, section: type[BaseModel], field: str, *, form: str = "train", **kw: Any) -> Any:
    """A number input outside `KNOBS` (the training length, the fine-tune form's knobs): keyed by its form and
    field (each form keeps its own values), help from the field's docstring. No bounds here: the config's own say
    what is out of range (Start stays disabled with its message)."""
    key = f"{form}_{field}"
    if key in st.session_state:
        kw.pop("value", None)  # set earlier: a default beside it would make Streamlit warn
    return st.number_input(label, key=key, help=field_help(section, field), persist_state=PERSIST, **kw)
