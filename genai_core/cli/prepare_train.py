"""`prepare` (a corpus into a token store), `train` (a new, resumed or queued run) and `scheduler`.

The preflight checks catch what would fail at the start of training before a run folder is created
or replaced, so a mistake leaves nothing half-made behind; torch is imported only after them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genai_core.cli.console import StopOnCtrlC, TrainPrinter, kv_lines, note, terminal_progress, world
from genai_core.cli.options import EXIT_INTERRUPTED, FLAGS, PROG, existing_run, given, run_path, validated
from genai_core.config import DataConfig, RunConfig, with_recipe
from genai_core.errors import GenAIError
from genai_core.units import format_seconds

if TYPE_CHECKING:
    from genai_core.train.trainer import TrainResult


def cmd_prepare(args: argparse.Namespace) -> int:
    """`prepare`: tokenize the corpus into --out and print the store's statistics."""
    values = given(args, "data")
    cfg: DataConfig = validated(DataConfig, values, "data")
    out = Path(args.out)
    # prepare() replaces its output folder wholesale: never let a typo point it at someone's files.
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "meta.json").is_file())):
        raise GenAIError(f"{out} exists and is not a token store; choose another --out (it would be replaced)")
    from genai_core.data.corpus import check_corpus

    check_corpus(cfg.corpus, cfg.text_column)  # a bad file is reported before torch is even imported
    from genai_core.data.tokenstore import prepare

    with terminal_progress() as progress:
        store = prepare(cfg, out, progress=progress)
    stats = store.stats
    if args.json:
        print(json.dumps({"path": str(out), "tokenizer": store.tokenizer.kind, **stats.__dict__,
                          "tokens": stats.tokens}))
        return 0
    print(kv_lines([
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


def cmd_train(args: argparse.Namespace) -> int:
    """`train`: a new run from the flags, a run resumed with its saved config, or a queued run's saved config."""
    sections = {s: given(args, s) for s in ("data", "model", "train")}
    rank, _ = world()
    main_rank = rank == 0
    if args.from_saved:
        path = run_path(args.out)
        config, args.resume = _saved_preflight(path)
        if main_rank:  # a scheduler's child: the queue must outlive a scheduler killed while this one trained
            try:
                return _train_here(config, path, args, main_rank=main_rank)
            finally:
                from genai_core.train.launcher import heal_queue

                heal_queue(path.parent)
    elif args.resume:
        ignored = [FLAGS[(s, f)] for s, fields in sections.items() for f in fields]
        path = run_path(args.out)
        config = _resume_preflight(path, ignored)
        if config is None:
            return 0
    else:
        config = config_from_flags(args, sections)
        path = run_path(args.out)  # after validation: resolving a run name imports torch
        _new_run_preflight(config, path, overwrite=args.overwrite)
        if config.train.runner != "thread":
            return _queue_and_follow(config, path, replace=args.overwrite)
    return _train_here(config, path, args, main_rank=main_rank)


def config_from_flags(args: argparse.Namespace, sections: dict[str, dict[str, Any]]) -> RunConfig:
    """The validated config of a new run: the given flags over the config's defaults (and --recipe's values)."""
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
        top["parent"] = existing_run(args.parent).path.absolute()
    values: dict[str, Any] = {**top, **sections}
    if "recipe" in args:
        values = with_recipe(values, args.recipe)
    return validated(RunConfig, values)


def _train_here(config: RunConfig, path: Path, args: argparse.Namespace, *, main_rank: bool) -> int:
    """Train in this process (every process under torchrun); rank 0 prints the steps and how it ended."""
    from genai_core.train import trainer
    from genai_core.train.distributed import distributed
    from genai_core.train.launcher import apply_memory_limit

    apply_memory_limit(config.train.device)
    stop = threading.Event()
    with (distributed(config.train.device), StopOnCtrlC(stop, announce=main_rank),
          terminal_progress(main_rank) as progress):
        result = trainer.train(config, path, resume=args.resume, overwrite=args.overwrite,
                               callbacks=[TrainPrinter(main_rank)], stop_event=stop, progress=progress)
    code = 0 if result.state == "completed" else EXIT_INTERRUPTED
    if main_rank:
        _print_outcome(result, args.out)
    return code


def _print_outcome(result: TrainResult, out: str) -> None:
    """How a training run ended: its steps, time and best validation loss, or how to continue it."""
    s = result.run.summary()
    step = int(result.run.status().get("step") or s["step"])  # metrics lag behind a stop by up to log_interval
    if result.state == "completed":
        best = s.get("best_val_loss")
        val = f"; best val loss {best:.4f} (perplexity {s['best_val_ppl']:.2f})" if best is not None else ""
        print(f"completed {step:,} steps in {format_seconds(s['elapsed_s'])}{val}", flush=True)
        print(f"run folder: {result.run.path}", flush=True)
    else:
        print(f"stopped at step {step:,}; checkpoint saved. Continue with: "
              f"{PROG} train --out {shlex.quote(out)} --resume", flush=True)


def _queue_and_follow(config: RunConfig, path: Path, *, replace: bool) -> int:
    """Hand a new run to the runs folder's scheduler or to Ray, then print its progress until it ends. The run
    does not depend on this command: Ctrl-C stops it (a checkpoint is saved) rather than leaving it unwatched."""
    from genai_core.runs.folder import Run
    from genai_core.train import launcher
    from genai_core.train.jobs import SCHEDULER_CHECK_S, JobManager

    jm = JobManager(path.parent)
    st = jm.submit(config, path.name, replace=replace)
    where = "the Ray cluster at " + str(config.train.ray_address) if config.train.runner == "ray" else "its own process"
    print(f"queued {path.name} to train in {where}; its folder: {path}", flush=True)
    printed, healed_at = 0, time.monotonic()
    try:
        while True:
            st = jm.status(path.name)
            if st.state == "queued" and time.monotonic() - healed_at > SCHEDULER_CHECK_S:
                launcher.heal_queue(path.parent)  # a follower keeps its queue served if the scheduler dies
                healed_at = time.monotonic()
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
    from genai_core.runs.status import is_run_folder

    if not is_run_folder(path):
        raise GenAIError(f"{path} is not a run folder (no config.json)")
    run = Run(path)
    return run.config(), run.latest_checkpoint() is not None


def cmd_scheduler(args: argparse.Namespace) -> int:
    """`scheduler`: serve the runs folder's queue of process runs until it is empty."""
    from genai_core.train.launcher import serve

    serve(Path(args.runs_dir))
    return 0


def _resume_preflight(path: Path, ignored: list[str]) -> RunConfig | None:
    """The saved config of a run that can be resumed, or None (after saying so) if it is already complete."""
    from genai_core.runs.status import busy_message, is_run_folder

    if not is_run_folder(path):
        raise GenAIError(f"cannot resume: {path} is not a run folder (no config.json)")
    from genai_core.devices import resolve_device, resolve_precision
    from genai_core.runs.folder import Run

    run = Run(path)
    if ignored and world()[0] == 0:
        note(f"--resume continues with the run's saved config; ignoring {', '.join(ignored)}")
    status = run.status()
    if status.get("state") == "running":
        raise GenAIError(busy_message(run.name, status))
    if status.get("state") == "queued":
        by = "the runs folder's scheduler" if status.get("runner") == "process" else (
            "Ray" if status.get("runner") == "ray" else f"process {status.get('pid')}")
        raise GenAIError(f"run {run.name} is queued to train (held by {by}); it resumes when its turn comes, or "
                         "stop it first to resume it here")
    config = run.config()
    if status.get("state") == "completed":
        if world()[0] == 0:
            total = status.get("total_steps") or status.get("step")
            print(f"run {run.name} is already complete ({status.get('step')}/{total} steps); nothing to do. "
                  "Start a longer run with a new --out to train further.", flush=True)
        return None
    if run.latest_checkpoint() is None:
        raise GenAIError(f"cannot resume {run.name}: it has no checkpoint yet; start it again with --overwrite")
    resolve_precision(config.train.precision, resolve_device(config.train.device))
    from genai_core.train.jobs import check_cap_for

    check_cap_for(path.parent, config, run)
    return config


def _new_run_preflight(config: RunConfig, path: Path, *, overwrite: bool) -> None:
    """Catch what would fail at the start of training before a run folder is created (or replaced),
    so a mistake leaves no half-made run behind and never marks an existing run as failed."""
    from genai_core.data.corpus import check_corpus

    if config.task == "lm":
        check_corpus(config.data.corpus, config.data.text_column)  # cheap, and before torch is imported
    from genai_core.devices import resolve_device, resolve_precision
    from genai_core.runs.folder import Run, validate_run_name
    from genai_core.runs.status import busy_message

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
        if (status := run.status()).get("state") == "running":
            raise GenAIError(busy_message(run.name, status))
    resolve_precision(config.train.precision, resolve_device(config.train.device))
    from genai_core.train.estimates import estimate
    from genai_core.train.jobs import check_cap_for

    check_cap_for(path.parent, config, Run(path) if overwrite else None)

    problem = estimate(config, calibrate=False).fit_problem  # the Train page's refusal, word for word
    if problem:
        raise GenAIError(problem[0].lower() + problem[1:])
    if world()[1] > 1:
        return  # under torchrun rank 0 prepares the data inside train(), behind a barrier
    if config.task == "qa":
        from genai_core.qa.finetune import fine_tune_config
        from genai_core.qa.store import read_qa_table

        fine_tune_config(config)  # the parent exists and has weights
        for f in (config.data.corpus, config.data.val_corpus):
            if f is not None:
                read_qa_table(f, max_rows=5)
        return  # the QA examples are tokenized by train(), with the parent's tokenizer
    from genai_core.data.tokenstore import prepare_cached

    with terminal_progress() as progress:
        store = prepare_cached(config.data, Run(path).token_cache, progress)
    store.check_seq_len(config.model.seq_len, knob="--seq-len")

