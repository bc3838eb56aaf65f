"""The argparse tree: one small function per subcommand, one flag per config field.

Every configuration flag maps to one field of the pydantic configs in `config.py` and takes its
choices, default and help text from that field; a flag that is not given is not passed at all
(argparse.SUPPRESS), so the defaults live in one place. `_add_field` records which flag set which
field (`options.FLAGS`), so validation errors can name the flag.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, get_args

from pydantic import BaseModel

from genai_core.cli.options import FLAGS, PROG, SECTIONS
from genai_core.cli.prepare_train import cmd_prepare, cmd_scheduler, cmd_train
from genai_core.cli.runs_bench_demo import cmd_bench, cmd_demo_qa, cmd_runs
from genai_core.cli.sample_eval import cmd_eval, cmd_sample
from genai_core.cli.sweep_cmd import cmd_sweep
from genai_core.clinical.synthetic import add_parser as _add_generate_corpus_parser
from genai_core.config import RECIPES, AnswerMethod, DataConfig, ModelConfig, RunConfig, SampleConfig, TrainConfig

if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


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
_RUN_HELP = "Run folder: a bare name is looked up under $GENAI_RUNS_DIR (default ./runs), anything else is a path."


def _field_help(model: type[BaseModel], field: str, *, prefix: str = "", show_default: bool = True) -> str:
    """A flag's help: the field's description (after `prefix`) and its default."""
    info = model.model_fields[field]
    text = (info.description or "").strip()
    if prefix:
        text = f"{prefix} {text}" if text else prefix
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if show_default and default not in (None, "", []) and not isinstance(default, bool):
        text += f" (default: {default})"
    return text.replace("%", "%%")  # argparse %-formats help strings


def _choices(model: type[BaseModel], field: str) -> list[str]:
    """The values a Literal field allows, as a flag's choices."""
    return [str(c) for c in get_args(model.model_fields[field].annotation)]


def _add_field(group: Any, flag: str, section: str, field: str, *, prefix: str = "", **kwargs: Any) -> None:
    """A flag for one config field: absent from the namespace unless given, help from the docstring."""
    model = SECTIONS[section]
    is_switch = kwargs.get("action") in ("store_true", "store_false")
    kwargs.setdefault("help", _field_help(model, field, prefix=prefix, show_default=not is_switch))
    group.add_argument(flag, dest=f"{section}__{field}", default=argparse.SUPPRESS, **kwargs)
    FLAGS[(section, field)] = flag


def _add_data_args(p: argparse.ArgumentParser, *, corpus_required: bool) -> None:
    """The `data` group: the corpus and how it is cleaned, tokenized and split (DataConfig)."""
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
    """The `model` group and the GPT's architecture details (ModelConfig)."""
    g = p.add_argument_group("model")
    _add_field(g, "--arch", "model", "arch", choices=_choices(ModelConfig, "arch"))
    _add_field(g, "--d-model", "model", "d_model", type=int, metavar="N")
    _add_field(g, "--n-heads", "model", "n_heads", type=int, metavar="N")
    _add_field(g, "--n-layers", "model", "n_layers", type=int, metavar="N")
    _add_field(g, "--seq-len", "model", "seq_len", type=int, metavar="N")
    _add_field(g, "--dropout", "model", "dropout", type=float, metavar="P")
    _add_field(g, "--pos-encoding", "model", "pos_encoding", choices=_choices(ModelConfig, "pos_encoding"))
    _add_field(g, "--copy-head", "model", "copy_head", action="store_true")
    _add_field(g, "--span-head", "model", "span_head", action="store_true")
    _add_field(g, "--span-lookahead", "model", "span_lookahead", type=int, metavar="N")
    _add_field(g, "--kind-head", "model", "kind_head", action="store_true")
    _add_field(g, "--qa-layout", "model", "qa_layout", choices=_choices(ModelConfig, "qa_layout"))
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
    """The `training` group: length, optimizer, schedule, logging, checkpoints, runner and device (TrainConfig)."""
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
    _add_field(g, "--muon-precision", "train", "muon_precision", choices=_choices(TrainConfig, "muon_precision"))
    _add_field(g, "--compile", "train", "compile", action=argparse.BooleanOptionalAction)
    _add_field(g, "--threads", "train", "num_threads", type=int, metavar="N")
    _add_field(g, "--seed", "train", "seed", type=int, metavar="N")


def _softcap_arg(text: str) -> float | None:
    """--logit-softcap: a number, or 'off' for none."""
    if text.lower() in ("off", "none", "0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None


def _seed_arg(text: str) -> int | None:
    """--seed of `sample`: an integer, or 'random' for fresh randomness."""
    if text.lower() in ("random", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'random', got {text!r}") from None


def _device_arg(p: argparse.ArgumentParser | Any) -> None:
    """--device of the commands that load a run (sample, eval)."""
    p.add_argument("--device", default="auto", choices=_choices(TrainConfig, "device"),
                   help=_field_help(TrainConfig, "device"))


class _Parser(argparse.ArgumentParser):
    """argparse with usage mistakes on one line, as every other mistake (not the whole usage text)."""

    def error(self, message: str) -> NoReturn:
        if "expected one argument" in message:
            message += " (a value that starts with '-' is written as --flag=-value)"
        self.exit(2, f"error: {message}; usage: {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one subparser per command, each with its handler as `handler`."""
    parser = _Parser(
        prog=PROG,
        description="Train small language models (GPT, LSTM or GRU) from scratch, sample from them and evaluate them.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The order here is the order of `--help`'s command list.
    for add in (_add_prepare, _add_train, _add_sweep, _add_scheduler, _add_sample, _add_eval, _add_runs, _add_bench,
                _add_generate_corpus_parser, _add_demo_qa):
        add(sub)
    return parser


def _add_prepare(sub: Subparsers) -> None:
    """`prepare`: the data flags, where the store goes, and --json."""
    p = sub.add_parser("prepare", help="tokenize a corpus into a token store and print its statistics",
                       description="Tokenize a corpus into a token store (train.bin, val.bin, tokenizer.json, "
                                   "meta.json) and print records, characters, tokens per split and vocabulary size.")
    _add_data_args(p, corpus_required=True)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="Folder of the token store (replaced if it already holds one).")
    p.add_argument("--json", action="store_true", help="Print the statistics as JSON.")
    p.set_defaults(handler=cmd_prepare)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """A run config's flags (data, --recipe, model, training): `train`'s, and the fixed part of a `sweep`."""
    _add_data_args(p, corpus_required=False)
    p.add_argument("--recipe", choices=list(RECIPES), default=argparse.SUPPRESS,
                   help="Fill the GPT's architecture and optimizer knobs from a recipe (flags given beside it win): "
                        "modern (the defaults: RoPE, QK-norm, ReLU^2, Muon) or classic (nanoGPT's GPT-2 recipe: "
                        "learned positions, LayerNorm, GELU, AdamW).")
    _add_model_args(p)
    _add_train_args(p)


def _add_train(sub: Subparsers) -> None:
    """`train`: data, recipe, model and training flags, the QA fine-tune's and the run folder's."""
    p = sub.add_parser(
        "train", help="train a model into a run folder (or resume one)",
        description="Train a model and record everything in a run folder: config.json, metrics.jsonl, "
                    "samples.jsonl, status.json and checkpoints. Prints one line per logged step. "
                    "Ctrl-C stops after the current step and saves a checkpoint (resume with --resume); "
                    "a second Ctrl-C aborts. Under torchrun every process trains (DDP) and rank 0 prints.",
        epilog="Defaults are those of the configuration (genai_core/config.py); flags not given are not passed.",
    )
    _add_config_args(p)
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
    p.set_defaults(handler=cmd_train, parser=p)


def _add_sweep(sub: Subparsers) -> None:
    """`sweep`: the space, the search's settings, and every `train` flag for the fixed part of the config."""
    from genai_core.explore.settings import SweepSettings

    p = sub.add_parser(
        "sweep", help="search knobs with trials trained as runs, losing trials stopped early",
        description="Train the trials of a search space as runs named SWEEP-tNN in the runs folder (each in its own "
                    "process, queued one per device), with Optuna choosing each trial's knobs and stopping trials "
                    "that fall behind at the evaluation steps. Prints a line per trial as it changes, then the best "
                    "trial, the compute early stopping saved and which knobs mattered. Ctrl-C stops the trials "
                    "(each saves a checkpoint); --resume carries on.",
        epilog='The space file maps a knob to choices or a range: {"lr": {"low": 1e-4, "high": 1e-2, "log": true}, '
               '"d_model": [64, 128], "n_layers": {"low": 1, "high": 4}}. Flags not given take the config defaults.',
    )
    _add_config_args(p)
    g = p.add_argument_group("sweep")
    g.add_argument("--space", metavar="FILE.json", help="The search space (see below).")
    g.add_argument("--out", required=True, metavar="SWEEP",
                   help="The sweep's folder: a bare name is <runs folder>/.sweeps/NAME; its trials are NAME-tNN.")
    g.add_argument("--resume", action="store_true", help="Continue the sweep in --out (its saved space and config).")
    fields = SweepSettings.model_fields
    g.add_argument("--trials", type=int, default=fields["trials"].default, metavar="N",
                   help=f"{_field_help(SweepSettings, 'trials')}")
    g.add_argument("--budget-minutes", type=float, metavar="M", help=_field_help(SweepSettings, "budget_minutes"))
    g.add_argument("--parallel", type=int, default=fields["parallel"].default, metavar="P",
                   help=_field_help(SweepSettings, "parallel"))
    g.add_argument("--sampler", choices=_choices(SweepSettings, "sampler"), default=fields["sampler"].default,
                   help=_field_help(SweepSettings, "sampler"))
    g.add_argument("--pruner", choices=_choices(SweepSettings, "pruner"), default=fields["pruner"].default,
                   help=_field_help(SweepSettings, "pruner"))
    g.add_argument("--sweep-seed", type=int, default=0, metavar="S", help=_field_help(SweepSettings, "seed"))
    g.add_argument("--seed-reruns", type=int, default=0, metavar="K", help=_field_help(SweepSettings, "seed_reruns"))
    p.set_defaults(handler=cmd_sweep, parser=p)


def _add_scheduler(sub: Subparsers) -> None:
    """`scheduler`: the runs folder it serves."""
    p = sub.add_parser(
        "scheduler", help="start the queued process runs of a runs folder (the app starts it)",
        description="Serve the runs folder's queue of `runner: process` runs: start each in its own process when its "
                    "device is free (one run per device), record how it ended, and exit when the queue is empty. "
                    "At most one scheduler serves a runs folder on a machine (a file lock); the app starts one "
                    "whenever runs are queued and none is alive.")
    p.add_argument("--runs-dir", required=True, metavar="DIR", help="The runs folder to serve.")
    p.set_defaults(handler=cmd_scheduler)


def _add_sample(sub: Subparsers) -> None:
    """`sample`: the run, the prompt, and the decoding and beam search flags."""
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
    p.set_defaults(handler=cmd_sample)


def _add_eval(sub: Subparsers) -> None:
    """`eval`: the run, perplexity options, and the question answering flags."""
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
                   # Literal, not perplexity.DEFAULT_MAX_TOKENS: that import pulls in torch (a test keeps them equal).
                   help="Count at most N predicted tokens, from the start (default: 2,000,000).")
    p.add_argument("--batch-size", type=int, metavar="N", help="Windows per forward pass (default: automatic).")
    g = p.add_argument_group("question answering")
    g.add_argument("--qa", metavar="PATH", help="Score question answering on this .csv (columns question, context "
                                                "and answer) instead of measuring perplexity.")
    g.add_argument("--predictions", metavar="OUT.csv", help="With --qa: write every question's prediction to this "
                                                            "CSV (question, answer, prediction, em, f1, rougeL).")
    g.add_argument("--limit", type=int, metavar="N", help="With --qa: answer only the first N questions.")
    g.add_argument("--method", choices=get_args(AnswerMethod), default="auto",
                   help="With --qa: 'span' answers with the span head (a whole-word span of the context or "
                        "'not stated'), 'generate' decodes the answer; 'auto' (default) uses the span head when "
                        "the run has one.")
    _device_arg(p)
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    p.set_defaults(handler=cmd_eval)


def _add_runs(sub: Subparsers) -> None:
    """`runs`: which folder to list, and --json."""
    p = sub.add_parser("runs", help="list runs as a table", description="List run folders, newest first.")
    p.add_argument("--root", metavar="DIR", help="Folder holding the runs (default: $GENAI_RUNS_DIR or ./runs).")
    p.add_argument("--json", action="store_true", help="Print the run summaries as JSON.")
    p.set_defaults(handler=cmd_runs)


def _add_bench(sub: Subparsers) -> None:
    """`bench`: speed benchmark options, and the recipes benchmark's."""
    p = sub.add_parser("bench", help="measure this machine: data, training and generation speed",
                       description="Benchmark tokenization, training throughput and generation on this machine.")
    p.add_argument("--json", action="store_true", help="Print the results as JSON.")
    p.add_argument("--quick", action="store_true", help="A short version (seconds instead of minutes).")
    p.add_argument("--train-steps", type=int, metavar="N", help="Training steps to time.")
    p.add_argument("--corpus-mb", type=float, metavar="N", help="Size of the synthetic corpus, in MB.")
    p.add_argument("--paths", action="store_true",
                   help="Time every compute path here instead (autocast and Muon's Newton-Schulz in fp32 and bf16, "
                        "1 thread or every core, generation) and show which one auto picks (~2 minutes; --quick: "
                        "~30 s).")
    g = p.add_argument_group("recipes", "With --recipes: the classic and modern training recipes on Shakespeare "
                                        "(2,000 steps each), then each knob alone on classic (500 steps, 3 seeds); "
                                        "about 30 minutes on 2 CPU cores (--quick: about 3).")
    g.add_argument("--recipes", action="store_true", help="Benchmark the training recipes instead.")
    p.add_argument("--sweep", action="store_true",
                   help="Benchmark sweeps instead: a 27-cell space on Shakespeare as a full grid, then TPE and random "
                        "search with early stopping; best loss found against compute (~15 minutes on 2 cores; "
                        "--quick: ~2; --train-steps: a trial's steps, 400 by default). --out keeps the runs.")
    p.add_argument("--ray", action="store_true",
                   help="With --sweep: time one 6-trial sweep on a local Ray cluster of one node, then of two "
                        "(1 CPU each, started here; needs ray[default]) and print the speed-up (~8 minutes).")
    g.add_argument("--no-ablation", action="store_true", help="With --recipes: the two recipes only (about 8 minutes).")
    g.add_argument("--out", metavar="DIR", help="Keep the benchmark's run folders here (default: a temporary folder); "
                                                "a folder under the runs folder shows them on the Runs page.")
    p.set_defaults(handler=cmd_bench)


def _add_demo_qa(sub: Subparsers) -> None:
    """`demo-qa`: where the two runs go, their steps, and --json."""
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
    p.set_defaults(handler=cmd_demo_qa)
