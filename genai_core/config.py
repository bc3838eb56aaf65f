"""Every knob in one place: validated configs for data, model, training and sampling.

Each field carries its docstring (pydantic turns it into the field's description, which the app
shows as help text). Validation happens here, at the boundary, so the engine below can trust what
it is given and a person gets a specific message naming the field.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout the engine runs from: child processes (training runs, probes, benchmarks) import it from here."""
ASSETS_DIR = REPO_ROOT / "assets"
"""Bundled data: the demo corpora and the synthetic clinical QA splits (assets/README.md says how they were made)."""
PRESENTER_ENV = "GENAI_PRESENTER_PASSWORD"
"""Set (or the secret `presenter_password`) to share a demo URL with a room: visitors browse, compare and chat;
everything that writes to the runs folder needs this password. No child process (scheduler, trainer, probe) sees it."""


def child_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child Python process: `base` (this one's by default) plus `extra`, this checkout
    importable first, and without the presenter's password (a trainer has no use for it, and a child's environment
    is readable by anything that can list its processes)."""
    env = {**(os.environ if base is None else base), **extra}
    env.pop(PRESENTER_ENV, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


Arch = Literal["gpt", "lstm", "gru"]
Task = Literal["lm", "qa"]
TokenizerKind = Literal["char", "bpe"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
MuonPrecision = Literal["auto", "fp32", "bf16"]
PosEncoding = Literal["rope", "learned", "sinusoidal"]
NormKind = Literal["layernorm", "rmsnorm"]  # layernorm first: as good here, and a fused kernel on CPU
MLPKind = Literal["relu2", "gelu"]
OptimizerKind = Literal["muon", "adamw"]
RunnerKind = Literal["thread", "process", "ray"]
QALayout = Literal["context-first", "question-first"]
QA_HEADS = ("copy_head", "span_head", "kind_head")
"""The `ModelConfig` heads a QA fine-tune adds to (or keeps on) its parent's GPT."""
AnswerMethod = Literal["auto", "span", "generate"]
"""How QA answers are made in evaluation: read off by the span head, generated, or the span head when the run has
one ("auto")."""
APP_RUNNER: RunnerKind = "process"
"""The app starts runs in their own process (a server restart or a crashing run then costs nothing); the Python
API and the CLI keep `TrainConfig.runner`'s default, a thread, or the process they run in."""
SUGGESTED_MAX_STEPS = 1000
"""What a form offers when the person chooses to train for a number of steps (a config left without a length
trains one epoch, `RunConfig`'s default)."""


MAX_SEED = 2**32 - 1
"""The largest seed: numpy's generators take no more, and torch's overflows past 2**63."""


class _Config(BaseModel):
    # allow_inf_nan=False: JSON cannot hold inf or nan (a saved config would read null and fail to load).
    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True, frozen=False, allow_inf_nan=False
    )


class DataConfig(_Config):
    """Where the text comes from and how it becomes token ids."""

    corpus: Path
    """Path of the corpus: .txt, .csv, .tsv, .jsonl or .parquet."""
    text_column: str | None = None
    """Column holding the text (tabular files). Default: `text` when present."""
    tokenizer: TokenizerKind = "char"
    """`char`: one token per character (with an unknown token); `bpe`: byte-level BPE trained on the corpus."""
    vocab_size: int = Field(default=1024, ge=64, le=65536)
    """Vocabulary size for BPE (ignored for char, whose vocabulary is the corpus's characters)."""
    lowercase: bool = False
    """Lowercase the text before tokenizing."""
    normalize_whitespace: bool = True
    """Collapse runs of spaces/tabs, unify line endings and trim trailing spaces."""
    val_fraction: float = Field(default=0.1, gt=0.0, lt=0.5)
    """Share held out for validation: whole records where the file has records, else the end of the text."""
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    """Seed of the train/validation split."""
    max_records: int | None = Field(default=None, ge=1)
    """Use only the first N records (for quick experiments on big corpora)."""
    val_corpus: Path | None = None
    """QA fine-tuning: a separate validation file (same columns); default: hold out val_fraction of the records."""


class ModelConfig(_Config):
    """The network: a GPT-style decoder, or an LSTM or GRU language model."""

    arch: Arch = "gpt"
    """`gpt`: decoder-only transformer; `lstm` / `gru`: recurrent baselines for comparison."""
    vocab_size: int = Field(default=256, ge=2, le=1 << 20)
    """Number of token ids; set from the tokenizer."""
    d_model: int = Field(default=128, ge=8, le=8192)
    """Width of the residual stream (embedding size)."""
    n_heads: int = Field(default=4, ge=1, le=128)
    """Attention heads per layer (GPT only); d_model must be divisible by it."""
    n_layers: int = Field(default=4, ge=1, le=96)
    """Number of transformer blocks (or stacked recurrent layers)."""
    seq_len: int = Field(default=64, ge=2, le=32768)
    """Context window in tokens: the length of each training example."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout probability on embeddings, attention and residual paths."""
    pos_encoding: PosEncoding = "rope"
    """GPT positions: `rope` rotates queries and keys by their position (RoFormer; attention sees relative
    position), `learned` adds a learned table (GPT-2), `sinusoidal` adds fixed sinusoids (Vaswani et al.)."""
    norm: NormKind = "layernorm"
    """GPT normalisation: `layernorm` (GPT-2) or `rmsnorm` (scales by the root mean square; no mean, no bias)."""
    qk_norm: bool = True
    """GPT: RMS-normalise each head's queries and keys before attention, which keeps attention logits bounded
    and lets the learning rate go higher."""
    mlp: MLPKind = "relu2"
    """GPT MLP activation: `gelu` (GPT-2) or `relu2`, the square of ReLU (Primer; sparser, learns faster)."""
    bias: bool = True
    """Use biases in linear layers and LayerNorms."""
    tie_embeddings: bool = True
    """Share the input embedding matrix with the output projection (saves vocab_size x d_model weights)."""
    zero_init: bool = False
    """GPT: start every block's output projections (and an untied head) at zero, so each block starts as the
    identity (modded-nanogpt); otherwise GPT-2's depth-scaled normal initialisation."""
    logit_softcap: float | None = Field(default=None, gt=0.0, le=1000.0)
    """GPT: bound the logits smoothly to (-cap, cap) with cap * tanh(logits / cap) (Gemma 2; e.g. 15); None = off."""
    copy_head: bool = False
    """GPT only: a pointer-generator copy head. The next-token distribution mixes the vocabulary softmax with
    an attention over the tokens already in the window, through a learned gate, so the model can copy a word
    out of the context even when it never saw it in training."""
    span_head: bool = False
    """GPT, QA fine-tuning: an extractive answer head. From the prompt's last position it points at the answer's
    first and last token in the context (start/end pointers, as in SQuAD readers), or at itself when the
    context does not hold the answer; trained beside the generated answer. Answers are then whole-word spans
    with a confidence, and "not stated" is a decision of its own."""
    span_lookahead: int = Field(default=3, ge=0, le=16)
    """GPT span head: how many tokens after each context token its start and end keys also read. A causal
    model's hidden state at a word has read only what comes before it, so the first word of "First-line
    treatment was Dexofloxacin" cannot tell whether it starts the answer or a lead-in to it; a few tokens ahead
    can. 0: the token alone (runs saved before this knob). The keys never read past the answer position."""
    kind_head: bool = False
    """GPT, QA fine-tuning: also learn what a question asks (age, drug, dose, …) from the QA file's `kind`
    column; the Chat page shows it as "understood as"."""
    qa_layout: QALayout = "context-first"
    """QA fine-tuning: how a question and its context are laid out in the prompt (`generate.inspection.QA_TEMPLATES`).
    `context-first` ("Context: …", then "Q: …", then "A:"): the context reads the same whatever the question,
    so a question worded in a new way changes only what is read at the answer position. `question-first` is the
    layout of runs fine-tuned before this knob; with it, every context token has read the question."""
    question_kinds: list[str] = Field(default_factory=list, max_length=256)
    """The question kinds the kind head tells apart, in its output order: filled in from the training file's
    `kind` column when the fine-tune starts (not a knob)."""

    @model_validator(mode="after")
    def _check_shape(self) -> ModelConfig:
        """QA heads only on a GPT; heads that divide d_model; an even head dimension under RoPE."""
        for head in QA_HEADS:
            if getattr(self, head) and self.arch != "gpt":
                raise ValueError(f"{head} needs the gpt architecture, not {self.arch}")
        if self.arch == "gpt" and self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}); "
                f"try n_heads in {_divisors(self.d_model)}"
            )
        if self.arch == "gpt" and self.pos_encoding == "rope" and self.head_dim % 2:
            raise ValueError(
                f"rope rotates pairs of dimensions, so the head dimension d_model / n_heads must be even, not "
                f"{self.head_dim}; change d_model or n_heads, or use pos_encoding learned or sinusoidal"
            )
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def _divisors(n: int, limit: int = 16) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


class TrainConfig(_Config):
    """How to optimise: batch, schedule, precision, logging cadence."""

    batch_size: int = Field(default=12, ge=1, le=4096)
    """Sequences per micro-batch (per process under torchrun)."""
    grad_accum_steps: int = Field(default=1, ge=1, le=1024)
    """Micro-batches accumulated into one optimizer step."""
    epochs: float | None = Field(default=None, gt=0, le=10_000)
    """Training length in epochs; one epoch = training tokens / (batch x seq_len x accumulation x processes) steps."""
    max_steps: int | None = Field(default=None, ge=1, le=10_000_000)
    """Training length in optimizer steps (instead of epochs)."""
    optimizer: OptimizerKind = "muon"
    """`muon`: Muon (momentum orthogonalised by Newton-Schulz iterations; Jordan et al. 2024) for the 2-D weight
    matrices inside the GPT's blocks, at `muon_lr`, and AdamW for the rest (embeddings, head, norms, biases)
    at `lr`; `adamw`: AdamW for everything (GPT-2, nanoGPT)."""
    lr: float = Field(default=3e-3, gt=0.0, le=1.0)
    """Peak learning rate of AdamW (with optimizer muon: of the parameters Muon does not take)."""
    muon_lr: float = Field(default=0.02, gt=0.0, le=1.0)
    """Peak learning rate of Muon's matrices (optimizer muon only); same warmup and decay as `lr`."""
    min_lr_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    """Final learning rate as a fraction of the peak, reached by the cosine decay."""
    warmup_steps: int = Field(default=30, ge=0)
    """Steps of linear warmup from 0 to the peak learning rate."""
    weight_decay: float = Field(default=0.1, ge=0.0, le=10.0)
    """AdamW weight decay, applied to weight matrices only (not biases, norms)."""
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    """AdamW first-moment decay."""
    beta2: float = Field(default=0.99, ge=0.0, lt=1.0)
    """AdamW second-moment decay."""
    grad_clip: float = Field(default=1.0, ge=0.0)
    """Clip the global gradient norm to this value (0 = off)."""
    eval_interval: int = Field(default=200, ge=1)
    """Evaluate validation loss every N steps (and at the end)."""
    eval_batches: int = Field(default=20, ge=1, le=10_000)
    """Batches per validation estimate (the same batches every time, so curves are comparable)."""
    log_interval: int = Field(default=10, ge=1)
    """Write a metrics line every N steps."""
    sample_interval: int = Field(default=0, ge=0)
    """Generate a short sample every N steps (0 = at each evaluation)."""
    sample_tokens: int = Field(default=120, ge=1, le=4096)
    """Length of the periodic samples."""
    checkpoint_interval: int = Field(default=0, ge=0)
    """Save a checkpoint every N steps (0 = at each evaluation). A stop always saves one."""
    checkpoint_seconds: float = Field(default=60.0, ge=0.0, le=86_400.0)
    """Also save a checkpoint when this many seconds have passed since the last one (0 = by steps only),
    so a crash or a killed process loses at most about this much training, however slow the steps are."""
    runner: RunnerKind = "thread"
    """Where the training runs. `thread`: a background thread of the calling process (the Python API, tests,
    a laptop). `process`: its own OS process, started detached by the runs folder's scheduler, so the run
    survives the app's server and a crash of the run cannot take the server down (the app's default).
    `ray`: a Ray job on the cluster at `ray_address`; the run folder must be on storage the cluster shares."""
    ray_address: str | None = None
    """The Ray cluster's dashboard address for `runner` ray, e.g. `http://head-node:8265` (Ray's Jobs API)."""
    gpus: int = Field(default=1, ge=1, le=64)
    """GPUs one run trains on (runner process, CUDA only): above 1 it is started with `torchrun
    --nproc_per_node` and trains with DDP."""
    device: DeviceName = "auto"
    """`auto` picks cuda, then mps, then cpu."""
    precision: Precision = "auto"
    """`auto`: bf16 on GPUs that support it, fp16 with loss scaling on older GPUs; on CPU bf16 autocast where a
    bf16 training step was measured faster on this machine (`genai_core.speed_probe`), else fp32. Resolved once
    at the run's first start and kept when it resumes."""
    muon_precision: MuonPrecision = "auto"
    """Precision of Muon's Newton-Schulz iteration (optimizer muon). `auto`: bf16 on CUDA and where bf16 matmuls
    were measured faster on this machine, fp32 elsewhere (a CPU without native bf16 runs bf16 matmuls 3-60x
    slower). Resolved once at the run's first start and kept when it resumes."""
    compile: bool | None = None
    """Compile the model with torch.compile (its first step takes ~30 s). None = auto: on for CPU pretraining
    runs of d_model >= 256 and >= 1,000 steps, where it was measured to win its compile time back (at
    d_model 256 after ~360 steps: `benchmarks/cpu_paths.py`); off for short runs, small models, QA
    fine-tunes (their batch lengths vary, which recompiles) and GPUs (not measured there yet)."""
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    """Seed of initialisation, batch order and dropout: equal seeds give equal runs on CPU."""
    num_threads: int | None = Field(default=None, ge=1, le=1024)
    """CPU threads for torch (None = the cores other programs leave free when the run starts; $GENAI_NUM_THREADS
    pins it)."""

    @model_validator(mode="after")
    def _one_length(self) -> TrainConfig:
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError("give either epochs or max_steps, not both")
        if self.runner == "ray" and not self.ray_address:
            raise ValueError("runner ray needs ray_address: the Ray dashboard's address, e.g. http://head-node:8265")
        if self.gpus > 1 and (self.runner != "process" or self.device not in ("auto", "cuda")):
            raise ValueError(f"gpus {self.gpus} trains one run over several GPUs with torchrun: "
                             "it needs runner process and device cuda (or auto)")
        return self


class RunConfig(_Config):
    """Everything that defines a run; saved as the run folder's config.json."""

    name: str = ""
    """Display name of the run (defaults to its folder name)."""
    task: Task = "lm"
    """`lm`: pretrain by next-token prediction on unlabeled text. `qa`: fine-tune for question answering on
    a file with question, context and answer columns: examples are `Context: …\nQ: …\nA: answer<end>`
    (`model.qa_layout`) and the loss is on the answer and its end marker only."""
    parent: Path | None = None
    """Run folder to start from: its weights and tokenizer (required for `qa`; the model shape is the
    parent's). The new run is linked to it (lineage on the Runs page)."""
    data: DataConfig
    """Corpus and tokenizer."""
    model: ModelConfig = ModelConfig()
    """Network shape."""
    train: TrainConfig = TrainConfig()
    """Optimisation."""

    @model_validator(mode="after")
    def _check_sections_together(self) -> RunConfig:
        """The rules that span sections: a fine-tune has a parent; Muon only on a GPT (a recurrent model left on
        the default optimizer gets AdamW); a validation corpus only for a fine-tune; one epoch when no length."""
        if self.task == "qa" and self.parent is None:
            raise ValueError("a qa fine-tune starts from a pretrained run: give parent (the run folder)")
        if self.train.optimizer == "muon" and self.model.arch != "gpt":
            if "optimizer" in self.train.model_fields_set:
                raise ValueError(f"optimizer muon is for the GPT's block matrices; the {self.model.arch} has none: "
                                 "use optimizer adamw")
            self.train = self.train.model_copy(update={"optimizer": "adamw"})  # the default is the GPT's
        if self.task == "lm" and self.data.val_corpus is not None:
            raise ValueError("data.val_corpus is used by qa fine-tuning only; an lm run holds out val_fraction")
        if self.train.epochs is None and self.train.max_steps is None:
            self.train = self.train.model_copy(update={"epochs": 1.0})
        return self

    @classmethod
    def from_saved(cls, text: str) -> RunConfig:
        """A config.json written by any version: a field it lacks takes its classic value (what the run was
        trained with before that knob existed), not today's default."""
        try:
            raw = json.loads(text)
        except ValueError:
            return cls.model_validate_json(text)  # raises pydantic's ValidationError, as for any bad config
        if isinstance(raw, dict):
            for section, values in LEGACY_VALUES.items():
                if isinstance(raw.get(section), dict):
                    raw[section] = {**values, **raw[section]}
        return cls.model_validate(raw)


_RECIPE_MODEL_LEGACY: dict[str, Any] = {"pos_encoding": "learned", "norm": "layernorm", "qk_norm": False,
                                        "mlp": "gelu", "zero_init": False, "logit_softcap": None}
LEGACY_VALUES: dict[str, dict[str, Any]] = {
    "model": {**_RECIPE_MODEL_LEGACY, "qa_layout": "question-first", "span_lookahead": 0},
    "train": {"optimizer": "adamw"},
}
"""What the knobs added after the first release meant before they existed (runs saved then still load the same)."""

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "modern": {
        "model": {f: ModelConfig.model_fields[f].default for f in _RECIPE_MODEL_LEGACY} | {"tie_embeddings": True},
        "train": {f: TrainConfig.model_fields[f].default
                  for f in ("optimizer", "lr", "muon_lr", "warmup_steps", "min_lr_ratio", "weight_decay")},
    },
    "classic": {
        "model": {**_RECIPE_MODEL_LEGACY, "tie_embeddings": True},
        "train": {"optimizer": "adamw", "lr": 1e-3, "muon_lr": TrainConfig.model_fields["muon_lr"].default,
                  "warmup_steps": 100, "min_lr_ratio": 0.1, "weight_decay": 0.1},
    },
}
"""Training recipes: the values each one gives the GPT knobs. `modern` is the configs' defaults, the best
combination measured on 2 CPU cores (`python -m genai_core bench --recipes`); `classic` is nanoGPT's
GPT-2 recipe, kept for comparison."""


def recipe_values(recipe: str, section: str) -> dict[str, Any]:
    """The values `recipe` sets in one config section (`model` or `train`)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return dict(RECIPES[recipe][section])


def with_recipe(values: dict[str, Any], recipe: str) -> dict[str, Any]:
    """RunConfig input (nested dicts) with `recipe`'s knobs filled in under the values already given.

    Recipes are GPT recipes: for an LSTM or GRU only their optimizer-independent training values apply."""
    out = dict(values)
    gpt = (values.get("model") or {}).get("arch", "gpt") == "gpt"
    for section in ("model", "train"):
        preset = recipe_values(recipe, section)
        if not gpt:
            preset = {k: v for k, v in preset.items() if section == "train" and k not in ("optimizer", "muon_lr")}
        out[section] = {**preset, **dict(values.get(section) or {})}
    return out


class SampleConfig(_Config):
    """Decoding knobs for generation."""

    max_new_tokens: int = Field(default=200, ge=1, le=100_000)
    """Stop after this many generated tokens."""
    temperature: float = Field(default=0.8, ge=0.0, le=10.0)
    """Softmax temperature; 0 means greedy (always the most likely token)."""
    top_k: int = Field(default=0, ge=0)
    """Keep only the k most likely tokens (0 = off)."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches p (at least one)."""
    repetition_penalty: float = Field(default=1.0, ge=1.0, le=10.0)
    """Divide positive logits (multiply negative ones) of tokens already present by this (CTRL-style)."""
    stop: list[str] = Field(default_factory=list)
    """Stop when any of these strings appears in the generated text (it is not included)."""
    stop_at_end: bool = True
    """Stop at the end-of-text token that separates records."""
    seed: int | None = Field(default=0, ge=0, le=MAX_SEED)
    """Seed of the sampling randomness (None = fresh randomness)."""
    num_beams: int = Field(default=1, ge=1, le=64)
    """Beam search (`Sampler.beam_search`) only: hypotheses kept at each step; 1 = greedy decoding. Beam search is
    deterministic: temperature, top-k, top-p and the seed do not apply to it."""
    length_penalty: float = Field(default=0.6, ge=0.0, le=5.0)
    """Beam search only: alpha of the GNMT length penalty (Wu et al. 2016). Hypotheses are ranked by
    log-probability / ((5 + length) / 6) ** alpha; 0 ranks by the raw log-probability, which favours short ones."""
    num_return: int = Field(default=1, ge=1, le=64)
    """Beam search only: how many of the best hypotheses to return (at most num_beams)."""

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        if any(s == "" for s in v):
            raise ValueError("stop strings must not be empty")
        return v

    @model_validator(mode="after")
    def _return_at_most_beams(self) -> SampleConfig:
        if self.num_return > self.num_beams:
            raise ValueError(f"num_return ({self.num_return}) cannot exceed num_beams ({self.num_beams}): "
                             "beam search returns at most one hypothesis per beam")
        return self


def steps_per_epoch(train_tokens: int, batch_size: int, seq_len: int, grad_accum: int = 1, world: int = 1) -> int:
    """Optimizer steps that see as many tokens as the training split holds (at least 1)."""
    return max(1, math.ceil(train_tokens / (batch_size * seq_len * grad_accum * world)))
