"""Command line: `python -m genai_core prepare | train | sample | eval | runs | bench`.

Every configuration flag maps to one field of the pydantic configs in `config.py`, and a flag that
is not given is not passed at all (argparse.SUPPRESS), so the defaults and help texts live in one
place. Errors a person caused print one `error:` line and exit with code 2; bugs keep their
traceback (exit 1).

Heavy modules (torch, pandas) are imported inside the command handlers, so `--help` and argument
errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, get_args

from pydantic import BaseModel, ValidationError

from genai_core.clinical.synthetic import add_parser as _add_generate_corpus_parser
from genai_core.config import RECIPES, DataConfig, ModelConfig, RunConfig, SampleConfig, TrainConfig, with_recipe
from genai_core.errors import GenAIError, user_message
from genai_core.units import format_count, format_seconds

if TYPE_CHECKING:
    from genai_core.runs.folder import Run
    from genai_core.train.trainer import TrainEvent

PROG = "python -m genai_core"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"

_SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataConfig, "model": ModelConfig, "train": TrainConfig, "sample": SampleConfig,
}
# (section, field) -> flag, filled while the parser is built; turns `train.lr` back into `--lr` in messages.
_FLAGS: dict[tuple[str, str], str] = {}

_EXAMPLES = f"""\
examples:
  {PROG} prepare --corpus data/shakespeare.txt --out /tmp/store
  {PROG} train --corpus data/shakespeare.txt --max-steps 2000 --out shakespeare
  {PROG} train --out shakespeare --resume
  {PROG} sample --run shakespeare --prompt "ROMEO:" --max-new-tokens 300
  {PROG} eval --run shakespeare --json
  {PROG} eval --run clinical-qa --qa assets/qa/test.csv --predictions test-predictions.csv
  {PROG} runs

A bare run name (no slash) means a folder under $GENAI_RUNS_DIR (default ./runs).
Errors you can fix print one 'error:' line and exit with status 2."""


# --------------------------------------------------------------------------- parser
def _field_help(model: type[BaseModel], field: str, *, prefix: str = "", show_default: bool = True) -> str:
    info = model.model_fields[field]
    text = (info.description or "").strip()
    if prefix:
        text = f"{prefix} {text}" if text else prefix
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if show_default and default not in (None, "", []) and not isinstance(default, bool):
        text += f" (default: {default})"
    return text.replace("%", "%%")  # argparse %-formats help strings


def _choices(model: type[BaseModel], field: str) -> list[str]:
    return [str(c) for c in get_args(model.model_fields[field].annotation)]


def _add_field(group: Any, flag: str, section: str, field: str, *, prefix: str = "", **kwargs: Any) -> None:
    """A flag for one config field: absent from the namespace unless given, help from the docstring."""
    model = _SECTIONS[section]
    is_switch = kwargs.get("action") in ("store_true", "store_false")
    kwargs.setdefault("help", _field_help(model, field, prefix=prefix, show_default=not is_switch))
    group.add_argument(flag, dest=f"{section}__{field}", default=argparse.SUPPRESS, **kwargs)
    _FLAGS[(section, field)] = flag


def _add_data_args(p: argparse.ArgumentParser, *, corpus_required: bool) -> None:
    g = p.add_argument_group("data")
    _add_field(g, "--corpus", "data", "corpus", metavar="PATH", required=corpus_required)
    _add_field(g, "--text-column", "data", "text_column", metavar="C")
    _add_field(g, "--tokenizer", "data", "tokenizer", choices=_choices(DataConfig, "tokenizer"))
    _add_field(g, "--vocab-size", "data", "vocab_size", type=int, metavar="N")
    _add_field(g, "--lowercase", "data", "lowercase", action="store_true")
    desc = DataConfig.model_fields["normalize_whitespace"].description or ""
    _add_field(g, "--no-normalize-whitespace", "data", "normalize_whitespace", action="store_false",
               help=f"Keep whitespace exactly as in the file. By default: {desc[:1].lower()}{desc[1:]}")
    _add_field(g, "--val-fraction", "data", "val_fraction", type=float, metavar="F")
    _add_field(g, "--max-records", "data", "max_records", type=int, metavar="N")
    _add_field(g, "--split-seed", "data", "seed", type=int, metavar="N")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    _add_field(g, "--arch", "model", "arch", choices=_choices(ModelConfig, "arch"))
    _add_field(g, "--d-model", "model", "d_model", type=int, metavar="N")
    _add_field(g, "--n-heads", "model", "n_heads", type=int, metavar="N")
    _add_field(g, "--n-layers", "model", "n_layers", type=int, metavar="N")
    _add_field(g, "--seq-len", "model", "seq_len", type=int, metavar="N")
    _add_field(g, "--dropout", "model", "dropout", type=float, metavar="P")
    _add_field(g, "--pos-encoding", "model", "pos_encoding", choices=_choices(ModelConfig, "pos_encoding"))
    _add_field(g, "--copy-head", "model", "copy_head", action="store_true")
    g = p.add_argument_group("architecture details (GPT)", "Each knob's default is the modern recipe's; "
                                                            "--recipe classic sets nanoGPT's GPT-2 values.")
    _add_field(g, "--norm", "model", "norm", choices=_choices(ModelConfig, "norm"))
    _add_field(g, "--qk-norm", "model", "qk_norm", action=argparse.BooleanOptionalAction)
    _add_field(g, "--mlp", "model", "mlp", choices=_choices(ModelConfig, "mlp"))
    _add_field(g, "--tie-embeddings", "model", "tie_embeddings", action=argparse.BooleanOptionalAction)
    _add_field(g, "--zero-init", "model", "zero_init", action=argparse.BooleanOptionalAction)
    _add_field(g, "--logit-softcap", "model", "logit_softcap", type=_softcap_arg, metavar="CAP",
               help=_field_help(ModelConfig, "logit_softcap") + " 'off' turns it off.")
    _add_field(g, "--no-bias", "model", "bias", action="store_false",
               help="No biases in linear layers and LayerNorms (by default they have them).")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    _add_field(g, "--batch-size", "train", "batch_size", type=int, metavar="N")
    _add_field(g, "--grad-accum", "train", "grad_accum_steps", type=int, metavar="N")
    length = g.add_mutually_exclusive_group()
    _add_field(length, "--epochs", "train", "epochs", type=float, metavar="E",
               help=_field_help(TrainConfig, "epochs") + " (default: 1 epoch unless --max-steps is given)")
    _add_field(length, "--max-steps", "train", "max_steps", type=int, metavar="N")
    _add_field(g, "--optimizer", "train", "optimizer", choices=_choices(TrainConfig, "optimizer"))
    _add_field(g, "--lr", "train", "lr", type=float, metavar="LR")
    _add_field(g, "--muon-lr", "train", "muon_lr", type=float, metavar="LR")
    _add_field(g, "--min-lr-ratio", "train", "min_lr_ratio", type=float, metavar="R")
    _add_field(g, "--warmup-steps", "train", "warmup_steps", type=int, metavar="N")
    _add_field(g, "--weight-decay", "train", "weight_decay", type=float, metavar="W")
    _add_field(g, "--grad-clip", "train", "grad_clip", type=float, metavar="G")
    _add_field(g, "--eval-interval", "train", "eval_interval", type=int, metavar="N")
    _add_field(g, "--eval-batches", "train", "eval_batches", type=int, metavar="N")
    _add_field(g, "--log-interval", "train", "log_interval", type=int, metavar="N")
    _add_field(g, "--sample-tokens", "train", "sample_tokens", type=int, metavar="N")
    _add_field(g, "--checkpoint-interval", "train", "checkpoint_interval", type=int, metavar="N")
    _add_field(g, "--checkpoint-seconds", "train", "checkpoint_seconds", type=float, metavar="S")
    _add_field(g, "--runner", "train", "runner", choices=_choices(TrainConfig, "runner"),
               help=_field_help(TrainConfig, "runner") + " From the CLI, `process` and `ray` queue the run and "
                    "follow it here (Ctrl-C stops it); the default trains in this process.")
    _add_field(g, "--ray-address", "train", "ray_address", metavar="URL")
    _add_field(g, "--gpus", "train", "gpus", type=int, metavar="N")
    _add_field(g, "--device", "train", "device", choices=_choices(TrainConfig, "device"))
    _add_field(g, "--precision", "train", "precision", choices=_choices(TrainConfig, "precision"))
    _add_field(g, "--compile", "train", "compile", action=argparse.BooleanOptionalAction)
    _add_field(g, "--threads", "train", "num_threads", type=int, metavar="N")
    _add_field(g, "--seed", "train", "seed", type=int, metavar="N")


def _softcap_arg(text: str) -> float | None:
    if text.lower() in ("off", "none", "0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None


def _seed_arg(text: str) -> int | None:
    if text.lower() in ("random", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'random', got {text!r}") from None


def _device_arg(p: argparse.ArgumentParser | Any) -> None:
    p.add_argument("--device", default="auto", choices=_choices(TrainConfig, "device"),
                   help=_field_help(TrainConfig, "device"))


_RUN_HELP = "Run folder: a bare name is looked up under $GENAI_RUNS_DIR (default ./runs), anything else is a path."


class _Parser(argparse.ArgumentParser):
    """argparse with usage mistakes on one line, as every other mistake (not the whole usage text)."""

    def error(self, message: str) -> NoReturn:
        if "expected one argument" in message:
            message += " (a value that starts with '-' is written as --flag=-value)"
        self.exit(2, f"error: {message}; usage: {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train small language models (GPT, LSTM or GRU) from scratch, sample from them and evaluate them.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="tokenize a corpus into a token store and print its statistics",
                       description="Tokenize a corpus into a token store (train.bin, val.bin, tokenizer.json, "
                                   "meta.json) and print records, characters, tokens per split and vocabulary size.")
    _add_data_args(p, corpus_required=True)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="Folder of the token store (replaced if it already holds one).")
    p.add_argument("--json", action="store_true", help="Print the statistics as JSON.")
    p.set_defaults(handler=_cmd_prepare)

    p = sub.add_parser(
        "train", help="train a model into a run folder (or resume one)",
        description="Train a model and record everything in a run folder: config.json, metrics.jsonl, "
                    "samples.jsonl, status.json and checkpoints. Prints one line per logged step. "
                    "Ctrl-C stops after the current step and saves a checkpoint (resume with --resume); "
                    "a second Ctrl-C aborts. Under torchrun every process trains (DDP) and rank 0 prints.",
        epilog="Defaults are those of the configuration (genai_core/config.py); flags not given are not passed.",
    )
    _add_data_args(p, corpus_required=False)
    p.add_argument("--recipe", choices=list(RECIPES), default=argparse.SUPPRESS,
                   help="Fill the GPT's architecture and optimizer knobs from a recipe (flags given beside it win): "
                        "modern (the defaults: RoPE, QK-norm, ReLU^2, Muon) or classic (nanoGPT's GPT-2 recipe: "
                        "learned positions, LayerNorm, GELU, AdamW).")
    _add_model_args(p)
    _add_train_args(p)
    g = p.add_argument_group("question-answering fine-tune")
    g.add_argument("--task", choices=_choices(RunConfig, "task"), default=argparse.SUPPRESS,
                   help=_field_help(RunConfig, "task") + " With qa, --corpus is the QA training file.")
    g.add_argument("--parent", metavar="RUN_DIR", default=argparse.SUPPRESS,
                   help=_field_help(RunConfig, "parent") + " " + _RUN_HELP)
    _add_field(g, "--val-corpus", "data", "val_corpus", metavar="PATH")
    g = p.add_argument_group("run folder")
    g.add_argument("--out", required=True, metavar="RUN_DIR", help=_RUN_HELP)
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="Continue the run from its latest checkpoint with its saved config (only --out is needed).")
    mode.add_argument("--overwrite", action="store_true", help="Replace an existing run folder of that name.")
    mode.add_argument("--from-saved", action="store_true",
                      help="Train the run folder as its saved config.json says: from its latest checkpoint if it "
                           "has one, else from the start (how the app's scheduler and Ray jobs start a queued run).")
    p.set_defaults(handler=_cmd_train, parser=p)

    p = sub.add_parser(
        "scheduler", help="start the queued process runs of a runs folder (the app starts it)",
        description="Serve the runs folder's queue of `runner: process` runs: start each in its own process when its "
                    "device is free (one run per device), record how it ended, and exit when the queue is empty. "
                    "At most one scheduler serves a runs folder on a machine (a file lock); the app starts one "
                    "whenever runs are queued and none is alive.")
    p.add_argument("--runs-dir", required=True, metavar="DIR", help="The runs folder to serve.")
    p.set_defaults(handler=_cmd_scheduler)

    p = sub.add_parser("sample", help="generate text from a trained run",
                       description="Generate a continuation of a prompt with the run's latest checkpoint, "
                                   "streamed to stdout. Notes about the prompt (cropping, unknown characters) "
                                   "go to stderr.")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help=_RUN_HELP)
    p.add_argument("--prompt", default="", metavar="TEXT",
                   help="Text to continue (default: empty, which starts a new record).")
    p.add_argument("--echo", action="store_true", help="Print the prompt before the continuation.")
    g = p.add_argument_group("decoding")
    _add_field(g, "--max-new-tokens", "sample", "max_new_tokens", type=int, metavar="N")
    _add_field(g, "--temperature", "sample", "temperature", type=float, metavar="T")
    _add_field(g, "--top-k", "sample", "top_k", type=int, metavar="K")
    _add_field(g, "--top-p", "sample", "top_p", type=float, metavar="P")
    _add_field(g, "--repetition-penalty", "sample", "repetition_penalty", type=float, metavar="R")
    _add_field(g, "--stop", "sample", "stop", action="append", metavar="S",
               help=_field_help(SampleConfig, "stop") + " Repeatable.")
    _add_field(g, "--no-stop-at-end", "sample", "stop_at_end", action="store_false",
               help="Keep generating past the end-of-text token (by default generation stops there).")
    _add_field(g, "--seed", "sample", "seed", type=_seed_arg, metavar="N",
               help="Seed of the sampling randomness, or 'random' for fresh randomness each time "
                    f"(default: {SampleConfig.model_fields['seed'].default}).")
    g = p.add_argument_group("beam search", "With --beams, the n best continuations are printed with their "
                                            "scores instead of a streamed sample.")
    _add_field(g, "--beams", "sample", "num_beams", type=int, metavar="N",
               help="Decode with beam search of this width (1 = greedy) and print the best hypotheses, each "
                    "with its log-probability and length-penalised score.")
    _add_field(g, "--length-penalty", "sample", "length_penalty", type=float, metavar="A")
    _add_field(g, "--num-return", "sample", "num_return", type=int, metavar="N")
    _device_arg(p)
    p.set_defaults(handler=_cmd_sample)

    p = sub.add_parser(
        "eval", help="exact validation loss and perplexity of a run, or its question answering scores",
        description="Mean next-token loss and perplexity of the run's latest checkpoint over consecutive, "
                    "non-overlapping windows of seq_len (every token predicted once). Without --corpus: the "
                    "run's own validation split. With --corpus: the whole file (both splits), tokenized with "
                    "the run's tokenizer and cleaning options. With --qa: answer every question of a "
                    "question,context[,answer] file greedily and score the answers (exact match, token F1, "
                    "ROUGE-L, in percent); without an answer column the questions are answered, not scored. "
                    "Results are saved in the run folder (eval/).",
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help=_RUN_HELP)
    p.add_argument("--corpus", metavar="PATH", help="Evaluate on all of this file instead of the validation split.")
    p.add_argument("--text-column", metavar="C",
                   help="Text column of a tabular --corpus (default: the run's column when present, else 'text').")
    p.add_argument("--max-tokens", type=int, metavar="N",
                   # Literal, not evaluation.DEFAULT_MAX_TOKENS: that import pulls in torch (a test keeps them equal).
                   help="Count at most N predicted tokens, from the start (default: 2,000,000).")
    p.add_argument("--batch-size", type=int, metavar="N", help="Windows per forward pass (default: automatic).")
    g = p.add_argument_group("question answering")
    g.add_argument("--qa", metavar="PATH", help="Score question answering on this .csv (columns question, context "
                                                "and answer) instead of measuring perplexity.")
    g.add_argument("--predictions", metavar="OUT.csv", help="With --qa: write every question's prediction to this "
                                                            "CSV (question, answer, prediction, em, f1, rougeL).")
    g.add_argument("--limit", type=int, metavar="N", help="With --qa: answer only the first N questions.")
    _device_arg(p)
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    p.set_defaults(handler=_cmd_eval)

    p = sub.add_parser("runs", help="list runs as a table", description="List run folders, newest first.")
    p.add_argument("--root", metavar="DIR", help="Folder holding the runs (default: $GENAI_RUNS_DIR or ./runs).")
    p.add_argument("--json", action="store_true", help="Print the run summaries as JSON.")
    p.set_defaults(handler=_cmd_runs)

    p = sub.add_parser("bench", help="measure this machine: data, training and generation speed",
                       description="Benchmark tokenization, training throughput and generation on this machine.")
    p.add_argument("--json", action="store_true", help="Print the results as JSON.")
    p.add_argument("--quick", action="store_true", help="A short version (seconds instead of minutes).")
    p.add_argument("--train-steps", type=int, metavar="N", help="Training steps to time.")
    p.add_argument("--corpus-mb", type=float, metavar="N", help="Size of the synthetic corpus, in MB.")
    g = p.add_argument_group("recipes", "With --recipes: the classic and modern training recipes on Shakespeare "
                                        "(2,000 steps each), then each knob alone on classic (500 steps, 3 seeds); "
                                        "about 30 minutes on 2 CPU cores (--quick: about 3).")
    g.add_argument("--recipes", action="store_true", help="Benchmark the training recipes instead.")
    g.add_argument("--no-ablation", action="store_true", help="With --recipes: the two recipes only (about 8 minutes).")
    g.add_argument("--out", metavar="DIR", help="Keep the benchmark's run folders here (default: a temporary folder); "
                                                "a folder under the runs folder shows them on the Runs page.")
    p.set_defaults(handler=_cmd_bench)
    _add_generate_corpus_parser(sub)

    p = sub.add_parser("demo-qa", help="the clinical QA demo: pretrain, fine-tune for QA, score",
                       description="Pretrain a GPT with a copy head on the bundled synthetic case reports "
                                   "(DIR/pretrain), fine-tune it for question answering (DIR/qa, linked to its "
                                   "parent), then score it on the test split (values never seen in QA training) "
                                   "and the test-unseen-phrasing split. About 10 minutes on a 2-core CPU.")
    p.add_argument("--out", required=True, metavar="DIR", help="Folder that receives the two runs.")
    p.add_argument("--pretrain-steps", type=int, metavar="N", help="Pretraining steps (default: the preset's).")
    p.add_argument("--qa-steps", type=int, metavar="N", help="Fine-tuning steps (default: the preset's).")
    p.add_argument("--no-eval", action="store_true", help="Skip the scoring at the end.")
    p.add_argument("--overwrite", action="store_true", help="Replace DIR/pretrain and DIR/qa if they exist.")
    p.add_argument("--json", action="store_true", help="Print the final report as JSON.")
    p.set_defaults(handler=_cmd_demo_qa)
    return parser


# --------------------------------------------------------------------------- helpers
def _given(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The fields of one config section that were given on the command line."""
    prefix = f"{section}__"
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}


def _describe_invalid(err: ValidationError, section: str | None = None) -> str:
    """Like errors.describe_validation_error, but naming the flag (`--lr`) instead of the field path."""
    parts = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        if section:
            loc = (section, *loc)
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        flag = _FLAGS.get((loc[0], loc[1])) if len(loc) >= 2 else None
        if flag:
            got = e.get("input")
            shown = f" (got {got!r})" if isinstance(got, int | float | str) and not isinstance(got, bool) else ""
            parts.append(f"{flag}: {msg}{shown}")
        else:
            rest = loc[1:] if loc and loc[0] in _SECTIONS else loc
            parts.append(f"{'.'.join(rest)}: {msg}" if rest else msg)
    return "; ".join(parts)


def _validated(model: type[BaseModel], values: dict[str, Any], section: str | None = None) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as e:
        raise GenAIError(_describe_invalid(e, section)) from None


def _run_path(arg: str) -> Path:
    """A bare name means a folder under the runs root; anything with a separator is a path."""
    # Test the raw text: pathlib turns "./name" into "name", but "./name" clearly means a path.
    separators = [s for s in (os.sep, os.altsep) if s]
    if arg not in ("", ".", "..") and not any(s in arg for s in separators):
        from genai_core.runs.folder import runs_dir

        return runs_dir() / arg
    return Path(arg)


def _existing_run(arg: str) -> Run:
    path = _run_path(arg)
    if not (path / "config.json").is_file() and (Path(arg) / "config.json").is_file():
        path = Path(arg)  # a run folder in the working directory, named without ./
    if not (path / "config.json").is_file():
        where = f" (bare names are looked up in {path.parent})" if path != Path(arg) else ""
        raise GenAIError(f"{arg} is not a run folder: there is no {path / 'config.json'}{where}")
    from genai_core.runs.folder import Run  # imports torch: only once the cheap checks have passed

    return Run(path)


def _world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, without importing torch."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def _kv_lines(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    return "\n".join([fmt(headers), *(fmt(r) for r in rows)])


def _jsonable(obj: Any) -> Any:
    """Strict JSON: non-finite floats become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


class _ProgressLine:
    """One self-overwriting progress line on stderr; only on a terminal, so logs and pipes stay clean."""

    def __init__(self) -> None:
        self.width = 0

    @classmethod
    def for_terminal(cls) -> _ProgressLine | None:
        return cls() if sys.stderr.isatty() else None

    def __call__(self, fraction: float, message: str) -> None:
        text = f"{100 * fraction:5.1f}%  {message}"[:100]
        sys.stderr.write("\r" + text.ljust(self.width))
        sys.stderr.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


def _close(progress: _ProgressLine | None) -> None:
    if progress is not None:
        progress.close()


# --------------------------------------------------------------------------- prepare
def _cmd_prepare(args: argparse.Namespace) -> int:
    values = _given(args, "data")
    cfg: DataConfig = _validated(DataConfig, values, "data")
    out = Path(args.out)
    # prepare() replaces its output folder wholesale: never let a typo point it at someone's files.
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "meta.json").is_file())):
        raise GenAIError(f"{out} exists and is not a token store; choose another --out (it would be replaced)")
    from genai_core.data.corpus import open_corpus

    open_corpus(cfg.corpus, cfg.text_column)  # a bad file is reported before torch is even imported
    from genai_core.data.tokenstore import prepare

    progress = _ProgressLine.for_terminal()
    try:
        store = prepare(cfg, out, progress=progress)
    finally:
        _close(progress)
    stats = store.stats
    if args.json:
        print(json.dumps({"path": str(out), "tokenizer": store.tokenizer.kind, **stats.__dict__,
                          "tokens": stats.tokens}))
        return 0
    print(_kv_lines([
        ("token store", str(out)),
        ("tokenizer", store.tokenizer.kind),
        ("records", f"{stats.records:,}"),
        ("characters", f"{stats.characters:,}"),
        ("train tokens", f"{stats.train_tokens:,}"),
        ("val tokens", f"{stats.val_tokens:,}"),
        ("vocab size", f"{stats.vocab_size:,}"),
        ("split", f"by {stats.split}"),
        ("seconds", f"{stats.seconds:.2f}"),
    ]))
    return 0


# --------------------------------------------------------------------------- train
class _TrainPrinter:
    """Turns trainer events into one compact line per log step (rank 0 only)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, ev: TrainEvent) -> None:
        if not self.enabled:
            return
        d = ev.data
        if ev.kind == "start":
            extra = f", resuming at step {ev.step:,}" if d.get("resumed") else ""
            world = f" x{d['world_size']} processes" if d.get("world_size", 1) > 1 else ""
            print(f"training: {d['params']:,} parameters, {d['total_steps']:,} steps "
                  f"({d['steps_per_epoch']:,} per epoch), {d['device']}{world} {d['precision']}{extra}", flush=True)
        elif ev.kind == "log":
            total = int(d.get("total_steps") or 0)
            parts = [f"step {ev.step:>{len(str(total))}}/{total}", f"loss {d['train_loss']:.4f}"]
            if d.get("val_loss") is not None:
                parts.append(f"val {d['val_loss']:.4f}")
            parts += [f"{d.get('tokens_per_s') or 0:,.0f} tok/s", f"lr {d['lr']:.2e}"]
            print(" | ".join(parts), flush=True)
        elif ev.kind == "notice":
            _note(str(d.get("message", "")))


class _StopOnCtrlC:
    """First Ctrl-C (or SIGTERM: how the app, the scheduler and Ray stop a run) asks the trainer to stop after the
    current step (it saves a checkpoint); a second aborts."""

    def __init__(self, event: threading.Event, announce: bool) -> None:
        self.event = event
        self.announce = announce
        self._previous: Any = None
        self._previous_term: Any = None
        self._installed = False

    def __enter__(self) -> _StopOnCtrlC:
        if threading.current_thread() is threading.main_thread():  # signal.signal only works there
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._previous_term = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)
            signal.signal(signal.SIGTERM, self._previous_term if self._previous_term is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        if self.announce:
            # os.write, not print: the handler can run while the main thread is inside a write to
            # stderr, and re-entering a buffered stream raises RuntimeError.
            os.write(2, b"\nstopping after the current step and saving a checkpoint (Ctrl-C again to abort)\n")


def _cmd_train(args: argparse.Namespace) -> int:
    sections = {s: _given(args, s) for s in ("data", "model", "train")}
    rank, _ = _world()
    main_rank = rank == 0
    if args.from_saved:
        path = _run_path(args.out)
        config, args.resume = _saved_preflight(path)
    elif args.resume:
        ignored = [_FLAGS[(s, f)] for s, fields in sections.items() for f in fields]
        path = _run_path(args.out)
        config = _resume_preflight(path, ignored)
        if config is None:
            return 0
    else:
        if "corpus" not in sections["data"]:
            args.parser.error("--corpus is required (or --resume to continue an existing run)")
        # Absolute, so that resume, eval and the app find the corpus from any working directory.
        sections["data"]["corpus"] = Path(sections["data"]["corpus"]).absolute()
        if "val_corpus" in sections["data"]:
            sections["data"]["val_corpus"] = Path(sections["data"]["val_corpus"]).absolute()
        top: dict[str, Any] = {}
        if "task" in args:
            top["task"] = args.task
        if "parent" in args:
            top["parent"] = _existing_run(args.parent).path.absolute()
        values: dict[str, Any] = {**top, **sections}
        if "recipe" in args:
            values = with_recipe(values, args.recipe)
        config = _validated(RunConfig, values)
        path = _run_path(args.out)  # after validation: resolving a run name imports torch
        _new_run_preflight(config, path, overwrite=args.overwrite)
        if config.train.runner != "thread":
            return _queue_and_follow(config, path, replace=args.overwrite)

    from genai_core.train import trainer
    from genai_core.train.launcher import apply_memory_limit

    apply_memory_limit(config.train.device)
    stop = threading.Event()
    with trainer.distributed(config.train.device), _StopOnCtrlC(stop, announce=main_rank):
        progress = _ProgressLine.for_terminal() if main_rank else None
        try:
            result = trainer.train(config, path, resume=args.resume, overwrite=args.overwrite,
                                    callbacks=[_TrainPrinter(main_rank)], stop_event=stop, progress=progress)
        finally:
            _close(progress)
    code = 0 if result.state == "completed" else EXIT_INTERRUPTED
    if not main_rank:
        return code
    s = result.run.summary()
    step = int(result.run.status().get("step") or s["step"])  # metrics lag behind a stop by up to log_interval
    if result.state == "completed":
        best = s.get("best_val_loss")
        val = f"; best val loss {best:.4f} (perplexity {s['best_val_ppl']:.2f})" if best is not None else ""
        print(f"completed {step:,} steps in {format_seconds(s['elapsed_s'])}{val}", flush=True)
        print(f"run folder: {result.run.path}", flush=True)
    else:
        print(f"stopped at step {step:,}; checkpoint saved. Continue with: "
              f"{PROG} train --out {shlex.quote(args.out)} --resume", flush=True)
    return code


def _queue_and_follow(config: RunConfig, path: Path, *, replace: bool) -> int:
    """Hand a new run to the runs folder's scheduler or to Ray, then print its progress until it ends. The run
    does not depend on this command: Ctrl-C stops it (a checkpoint is saved) rather than leaving it unwatched."""
    from genai_core.runs.folder import Run
    from genai_core.train.jobs import JobManager

    jm = JobManager(path.parent)
    st = jm.submit(config, path.name, replace=replace)
    where = "the Ray cluster at " + str(config.train.ray_address) if config.train.runner == "ray" else "its own process"
    print(f"queued {path.name} to train in {where}; its folder: {path}", flush=True)
    printed = 0
    try:
        while True:
            st = jm.status(path.name)
            rows = Run(path).metrics()
            for row in rows[printed:]:
                val = f" | val {row['val_loss']:.4f}" if row.get("val_loss") is not None else ""
                print(f"step {row['step']}/{st.total_steps or '?'} | loss {row['train_loss']:.4f}{val}", flush=True)
            printed = len(rows)
            if not st.active:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        jm.stop(path.name)
        print(f"stopping {path.name}: it saves a checkpoint; continue with "
              f"{PROG} train --out {shlex.quote(str(path))} --resume", flush=True)
        return EXIT_INTERRUPTED
    print(f"{path.name}: {st.state}" + (f" ({st.message})" if st.message else ""), flush=True)
    return 0 if st.state == "completed" else EXIT_INTERRUPTED if st.state in ("stopped", "interrupted") else 1


def _saved_preflight(path: Path) -> tuple[RunConfig, bool]:
    """(config, resume) of a run folder created by a queue: its saved config, resumed when it has a checkpoint."""
    from genai_core.runs.folder import Run

    if not (path / "config.json").is_file():
        raise GenAIError(f"{path} is not a run folder (no config.json)")
    run = Run(path)
    return run.config(), run.latest_checkpoint() is not None


def _cmd_scheduler(args: argparse.Namespace) -> int:
    from genai_core.train.launcher import serve

    serve(Path(args.runs_dir))
    return 0


def _resume_preflight(path: Path, ignored: list[str]) -> RunConfig | None:
    """The saved config of a run that can be resumed, or None (after saying so) if it is already complete."""
    if not (path / "config.json").is_file():
        raise GenAIError(f"cannot resume: {path} is not a run folder (no config.json)")
    from genai_core.devices import resolve_device, resolve_precision
    from genai_core.runs.folder import Run

    run = Run(path)
    if ignored and _world()[0] == 0:
        _note(f"--resume continues with the run's saved config; ignoring {', '.join(ignored)}")
    status = run.status()
    if status.get("state") == "running":
        raise GenAIError(f"run {run.name} is being trained right now (process {status.get('pid')}); "
                         "stop that process first")
    config = run.config()
    if status.get("state") == "completed":
        if _world()[0] == 0:
            total = status.get("total_steps") or status.get("step")
            print(f"run {run.name} is already complete ({status.get('step')}/{total} steps); nothing to do. "
                  "Start a longer run with a new --out to train further.", flush=True)
        return None
    if run.latest_checkpoint() is None:
        raise GenAIError(f"cannot resume {run.name}: it has no checkpoint yet; start it again with --overwrite")
    resolve_precision(config.train.precision, resolve_device(config.train.device))
    return config


def _new_run_preflight(config: RunConfig, path: Path, *, overwrite: bool) -> None:
    """Catch what would fail at the start of training before a run folder is created (or replaced),
    so a mistake leaves no half-made run behind and never marks an existing run as failed."""
    from genai_core.data.corpus import open_corpus

    if config.task == "lm":
        open_corpus(config.data.corpus, config.data.text_column)  # cheap, and before torch is imported
    from genai_core.devices import resolve_device, resolve_precision
    from genai_core.runs.folder import Run, validate_run_name

    validate_run_name(path.name)
    if path.exists() and not path.is_dir():
        raise GenAIError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        run = Run(path)
        if not overwrite:
            raise GenAIError(f"run folder {path} already exists; continue it with --resume, replace it with "
                             "--overwrite, or choose another --out")
        if not run.exists():  # --overwrite deletes the folder: only ever a run folder
            raise GenAIError(f"refusing to overwrite {path}: it is not a run folder")
        if run.state == "running":
            raise GenAIError(f"run {run.name} is being trained right now (process {run.status().get('pid')}); "
                             "stop it before overwriting")
    resolve_precision(config.train.precision, resolve_device(config.train.device))
    if _world()[1] > 1:
        return  # under torchrun rank 0 prepares the data inside train(), behind a barrier
    if config.task == "qa":
        from genai_core.generate.qa import read_qa_table
        from genai_core.train.trainer import fine_tune_config

        fine_tune_config(config)  # the parent exists and has weights
        for f in (config.data.corpus, config.data.val_corpus):
            if f is not None:
                read_qa_table(f, max_rows=5)
        return  # the QA examples are tokenized by train(), with the parent's tokenizer
    from genai_core.data.tokenstore import prepare_cached

    progress = _ProgressLine.for_terminal()
    try:
        store = prepare_cached(config.data, Run(path).token_cache, progress)
    finally:
        _close(progress)
    store.check_seq_len(config.model.seq_len, knob="--seq-len")


# --------------------------------------------------------------------------- sample
_SAMPLING_ONLY = ("temperature", "top_k", "top_p", "seed")
_BEAM_ONLY = ("length_penalty", "num_return")


def _cmd_sample(args: argparse.Namespace) -> int:
    given = _given(args, "sample")
    beam = "num_beams" in given
    if beam and given.get("num_return", 1) > given["num_beams"] > 0:  # in the flags' words, not the fields'
        raise GenAIError(f"--num-return ({given['num_return']}) cannot exceed --beams ({given['num_beams']})")
    if not beam and any(k in given for k in _BEAM_ONLY):
        raise GenAIError(f"{', '.join(_FLAGS[('sample', k)] for k in _BEAM_ONLY if k in given)} "
                         "needs --beams (beam search)")
    cfg: SampleConfig = _validated(SampleConfig, given, "sample")
    run = _existing_run(args.run)
    from genai_core.generate.sampling import Sampler

    sampler = Sampler.from_run(run, device=args.device)
    if beam:
        ignored = [_FLAGS[("sample", k)] for k in _SAMPLING_ONLY if k in given]
        if ignored:
            _note(f"beam search is deterministic: ignoring {', '.join(ignored)}")
        return _print_beams(sampler, args, cfg)
    generation = sampler.stream(args.prompt, cfg)
    for warning in generation.info.warnings():
        _note(warning)
    out = sys.stdout
    last = ""
    if args.echo and args.prompt:
        out.write(args.prompt)
        last = args.prompt[-1]
    for piece in generation:
        if piece:
            out.write(piece)
            out.flush()
            last = piece[-1]
    if last != "\n":
        out.write("\n")
    out.flush()
    return 0


def _print_beams(sampler: Any, args: argparse.Namespace, cfg: SampleConfig) -> int:
    """The n best hypotheses of a beam search, best first: a header line with the scores, then the text."""
    result = sampler.beam_search(args.prompt, cfg)
    for warning in result.info.warnings():
        _note(warning)
    out = sys.stdout
    for rank, h in enumerate(result.hypotheses, 1):
        out.write(f"#{rank}  score {h.score:.4f}  log-prob {h.logprob:.4f}  {h.length} tokens  "
                  f"({h.finish_reason})\n")
        text = (args.prompt if args.echo else "") + h.text
        out.write(text if text.endswith("\n") else text + "\n")
    out.flush()
    return 0


# --------------------------------------------------------------------------- eval
def _cmd_eval(args: argparse.Namespace) -> int:
    if args.qa is None:
        given = [flag for flag, v in (("--predictions", args.predictions), ("--limit", args.limit)) if v is not None]
        if given:
            raise GenAIError(f"{' and '.join(given)}: only used with --qa (question answering); add --qa FILE.csv")
    else:
        given = [flag for flag, v in (("--corpus", args.corpus), ("--text-column", args.text_column),
                                      ("--max-tokens", args.max_tokens), ("--batch-size", args.batch_size))
                 if v is not None]
        if given:
            raise GenAIError(f"{', '.join(given)}: perplexity options, not used with --qa; leave them out")
        if args.limit is not None and args.limit < 1:
            raise GenAIError(f"--limit must be at least 1 (got {args.limit})")
        return _cmd_eval_qa(args)
    run = _existing_run(args.run)
    from genai_core.evaluate.perplexity import evaluate_run

    progress = _ProgressLine.for_terminal()
    try:
        res = evaluate_run(run, corpus=args.corpus, max_tokens=args.max_tokens, device=args.device,
                           text_column=args.text_column, batch_size=args.batch_size, progress=progress)
    finally:
        _close(progress)
    if args.json:
        print(json.dumps(_jsonable(res), indent=2))
        return 0
    for note in res["notes"]:
        _note(note)
    tokens = f"{res['tokens']:,}" + (f" (of {res['available_tokens']:,})" if res["truncated"] else "")
    rows = [
        ("run", res["run"]),
        ("checkpoint", f"step {res['checkpoint_step']:,}"),
        ("data", res["source"]),
        ("tokens", tokens),
        ("val loss" if res["split"] == "val" else "loss", f"{res['loss']:.4f}"),
        ("perplexity", f"{res['perplexity']:.2f}"),
        ("bits/token", f"{res['bits_per_token']:.3f}"),
    ]
    if res["unknown_fraction"] is not None:
        rows.append(("unknown", f"{res['unknown_fraction']:.2%} of tokens"))
    rows.append(("saved", res["saved_to"]))
    print(_kv_lines(rows))
    return 0


def _cmd_eval_qa(args: argparse.Namespace) -> int:
    run = _existing_run(args.run)
    from genai_core.evaluate.perplexity import evaluate_qa

    progress = _ProgressLine.for_terminal()
    try:
        res = evaluate_qa(run, args.qa, limit=args.limit, predictions_path=args.predictions, device=args.device,
                          progress=progress)
    finally:
        _close(progress)
    res.pop("predictions")  # every row is in the CSV files (predictions_file, --predictions), not on screen
    if args.json:
        print(json.dumps(_jsonable(res), indent=2))
        return 0
    for note in res["notes"]:
        _note(note)
    questions = f"{res['rows']:,}" + (f" (of {res['available_rows']:,})" if res["truncated"] else "")
    rows = [("run", res["run"]), ("checkpoint", f"step {res['checkpoint_step']:,}"), ("data", res["file"]),
            ("questions", questions)]
    m = res["metrics"]
    if m is not None:
        rows += [("exact match", f"{m['exact_match']:.2f} %"), ("F1", f"{m['f1']:.2f} %"),
                 ("ROUGE-L", f"{m['rougeL']:.2f} %")]
    rows += [("from context", f"{res['in_context']:.1f} % of answers are spans of their context"),
             ("saved", res["saved_to"])]
    if args.predictions:
        rows.append(("predictions", args.predictions))
    print(_kv_lines(rows))
    if res["by_kind"]:
        print("\nby question kind (percent):")
        print(_table(["KIND", "N", "EM", "F1", "ROUGE-L"],
                     [[k, f"{v['count']:,}", f"{v['exact_match']:.1f}", f"{v['f1']:.1f}", f"{v['rougeL']:.1f}"]
                      for k, v in res["by_kind"].items()], right={1, 2, 3, 4}))
    if res["worst"]:
        print("\nworst answers (lowest F1):")
        for w in res["worst"][:5]:
            print(f"  Q: {w['question']}\n     expected {w['expected']!r}, predicted {w['predicted']!r} "
                  f"(F1 {w['f1']:.1f})")
    return 0


# --------------------------------------------------------------------------- runs
def _cmd_runs(args: argparse.Namespace) -> int:
    from genai_core.runs.folder import list_runs, runs_dir

    root = Path(args.root) if args.root else runs_dir()
    if args.root and not root.is_dir():
        raise GenAIError(f"{root} is not a folder")
    rows: list[dict[str, Any]] = []
    for run in list_runs(root):
        try:
            rows.append(run.summary())
        except (GenAIError, OSError) as e:  # one broken folder must not hide the others
            rows.append({"name": run.name, "state": "broken", "message": str(e)})
    if args.json:
        print(json.dumps(_jsonable(rows), indent=2))
        return 0
    if not rows:
        print(f"no runs in {root}")
        return 0
    headers = ["NAME", "STATE", "ARCH", "PARAMS", "STEP", "TRAIN", "BEST VAL", "PPL", "TOKENIZER"]
    table = [[
        str(r["name"]), str(r.get("state") or "-"), str(r.get("arch") or "-"), format_count(r.get("params")),
        f"{r.get('step', 0) or 0:,}", _num(r.get("train_loss"), ".4f"), _num(r.get("best_val_loss"), ".4f"),
        _num(r.get("best_val_ppl"), ".2f"), str(r.get("tokenizer") or "-"),
    ] for r in rows]
    print(_table(headers, table, right={3, 4, 5, 6, 7}))
    return 0


# --------------------------------------------------------------------------- bench
def _cmd_bench(args: argparse.Namespace) -> int:
    if args.recipes:
        from genai_core.bench.recipes import main

        main(args.out, json_output=args.json, quick=args.quick, steps=args.train_steps, ablation=not args.no_ablation)
        return 0
    from genai_core.bench.speed import run_bench  # another module's heavy imports: only when asked for

    run_bench(json_output=args.json, quick=args.quick, train_steps=args.train_steps, corpus_mb=args.corpus_mb)
    return 0


def _cmd_demo_qa(args: argparse.Namespace) -> int:
    for name, value in (("--pretrain-steps", args.pretrain_steps), ("--qa-steps", args.qa_steps)):
        if value is not None and value < 1:
            raise GenAIError(f"{name} must be at least 1 (got {value})")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise GenAIError(f"{out} exists and is not a folder")
    if not args.overwrite:
        taken = [str(out / n) for n in ("pretrain", "qa") if (out / n).exists()]
        if taken:
            raise GenAIError(f"{' and '.join(taken)} already exist(s); use --overwrite or another --out")
    from genai_core.clinical import demo

    steps = {k: v for k, v in (("pretrain_steps", args.pretrain_steps), ("qa_steps", args.qa_steps)) if v}
    stop = threading.Event()
    with _StopOnCtrlC(stop, announce=True):
        report = demo.run_demo_qa(out, **steps, evaluate=() if args.no_eval else demo.EVAL_SPLITS,
                                  overwrite=args.overwrite, callbacks=[_TrainPrinter(not args.json)],
                                  stop_event=stop, log=lambda m: None if args.json else print(f"== {m}", flush=True))
    result = {"pretrain": str(report.pretrain), "qa": str(report.qa),
              "minutes": {k: round(v, 2) for k, v in report.minutes.items()},
              "scores": {split: r["metrics"] for split, r in report.scores.items()},
              "abstention": {split: r.get("abstention") for split, r in report.scores.items()},
              "by_kind": {split: {k: m["exact_match"] for k, m in r.get("by_kind", {}).items()}
                          for split, r in report.scores.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for split, metrics in result["scores"].items():
        ab = result["abstention"][split] or {}
        line = ", ".join(f"{k} {v:.1f}" for k, v in metrics.items() if v is not None)
        if ab.get("abstained") is not None:
            line += f" | said not stated on {ab['abstained']:.1f}% of {ab['unanswerable']} unanswerable"
        if ab.get("false_abstention") is not None:
            line += f" | not stated on {ab['false_abstention']:.1f}% of {ab['answerable']} answerable"
        print(f"{split}: {line}")
        kinds = result["by_kind"][split]
        if kinds:
            print("  exact match by kind: " + ", ".join(f"{k} {v:.0f}" for k, v in kinds.items()))
    print("minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in result["minutes"].items()))
    print(f"runs: {report.pretrain} -> {report.qa}")
    return 0


# --------------------------------------------------------------------------- entry point
def _user_error(exc: BaseException) -> str | None:
    """The one-line message for an error a person caused, or None for a bug."""
    msg = user_message(exc)  # a full or read-only disk included (errors.storage_message)
    if msg is None and isinstance(exc, OSError) and exc.filename is not None:
        msg = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    if msg is None:
        return None
    return " ".join(msg.splitlines()) or type(exc).__name__


def _print_error(message: str) -> None:
    sys.stdout.flush()
    rank, world = _world()
    who = f"[rank {rank}] " if world > 1 and rank else ""
    print(f"error: {who}{message}", file=sys.stderr, flush=True)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except SystemExit as e:  # --help and usage errors: return the status so main() always returns
        return _exit_code(e.code)
    except KeyboardInterrupt:
        _print_error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error. Point stdout at devnull so the
        # interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        message = _user_error(exc)
        if message is None:
            raise
        _print_error(message)
        return EXIT_USER_ERROR
