"""Training: AdamW + warmup/cosine, clipping, accumulation, AMP, eval, samples, checkpoints, resume.

The trainer talks to the outside only through events (minGPT style): a callback receives a
`TrainEvent` for every step, log line, evaluation, sample, checkpoint and the end, and a
`threading.Event` asks it to stop. It knows nothing about any UI. Everything it learns goes to
the run folder as it happens, so a crash loses at most the steps since the last checkpoint.

Under `torchrun` the same code runs DistributedDataParallel (NCCL on GPUs, gloo on CPU); rank 0
alone writes the run folder.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from genai_core.config import RunConfig, SampleConfig
from genai_core.data.tokenstore import TokenStore, prepare_cached
from genai_core.devices import (
    Choice,
    autocast,
)
from genai_core.errors import GenAIError, TrainingError, user_message
from genai_core.files import RunsCapReached, atomic_write_text
from genai_core.generate.qa import answer_config
from genai_core.generate.sampling import Sampler
from genai_core.model import count_parameters, load_state, state_for_save, unwrap
from genai_core.models import build_model
from genai_core.qa.finetune import fine_tune_config, init_from_parent, serve_targets
from genai_core.qa.reader import QAGPT
from genai_core.qa.store import QAStore, prepare_qa
from genai_core.runs.folder import Run, run_writer
from genai_core.train.distributed import dist_info
from genai_core.train.optim import Optimizers, TrainStep, lr_at, make_optimizer
from genai_core.train.run_paths import auto_paths, compile_choice, run_device


@dataclass
class TrainEvent:
    """What happened: kind is start | step | log | eval | sample | checkpoint | notice | end."""

    kind: str
    step: int
    data: dict[str, Any] = field(default_factory=dict)


Callback = Callable[[TrainEvent], None]


@dataclass
class _Setup:
    """What the training loop reads and never changes, built once by `Trainer._setup`."""

    device: torch.device
    precision: str
    paths: dict[str, Choice]
    """The run's autocast and Newton-Schulz precisions, and why (`Trainer._auto_paths`)."""
    threads: int
    params: int
    model: torch.nn.Module
    """The bare model: evaluation, samples and checkpoints use it."""
    fwd_model: torch.nn.Module
    """What the training step runs: the model, wrapped in DDP across ranks and compiled when asked."""
    opt: Optimizers
    names: dict[int, str]
    """Parameter names by id: the keys of the optimizer state in a checkpoint."""
    train_step: TrainStep
    compiled: bool
    total: int
    warmup: int
    steps_per_epoch: int
    tokens_per_step: int
    eval_specs: list[np.ndarray]


@dataclass
class _Progress:
    """The loop's counters. A checkpoint saves the first five and a resume restores them; the last three are
    the clocks of the log interval and of checkpoints by time."""

    rng: np.random.Generator
    step: int = 0
    elapsed: float = 0.0
    run_loss: float = 0.0
    run_count: int = 0
    last_log_step: int = 0
    interval_train_time: float = 0.0
    last_save: float = 0.0


class Trainer:
    """Trains `config` on a prepared `store`, writing to `run`."""

    def __init__(self, config: RunConfig, run: Run, store: TokenStore, *, callbacks: Iterable[Callback] = (),
                 stop_event: threading.Event | None = None, resume: bool = False) -> None:
        self.config = config
        self.run = run
        self.store = store
        self.callbacks: list[Callback] = list(callbacks)
        self.stop_event = stop_event or threading.Event()
        self.resume = resume
        self.dist = dist_info()
        self.started = time.time()  # a stop request (`Run.request_stop`) from before this is not for this trainer
        self.cap_reached: str | None = None
        """Set when a checkpoint was refused by the runs folder's cap: the run then stops, keeping the last one."""

    def emit(self, kind: str, at_step: int, **data: Any) -> None:
        ev = TrainEvent(kind, at_step, data)
        for cb in self.callbacks:
            try:
                cb(ev)
            except Exception:  # an observer's bug must not kill a training run
                traceback.print_exc()

    # ------------------------------------------------------------------ main loop
    def fit(self) -> str:
        """Train to the end or until stopped. Returns the final state (completed/stopped)."""
        # torch's thread count is process-wide: a run's setting must not outlive it (the app's
        # server, its chat and its estimates share the process).
        threads = torch.get_num_threads()
        try:
            return self._fit()
        finally:
            torch.set_num_threads(threads)

    def _fit(self) -> str:
        """Set up, then train step by step; after a step come, when due, the log row (with an evaluation),
        a sample and a checkpoint, in that order. A stop request saves a checkpoint and ends the loop."""
        t, main = self.config.train, self.dist.is_main
        s, p = self._setup()
        self._announce(s, p)
        p.last_save = time.monotonic()
        ckpt_every = t.checkpoint_interval or t.eval_interval
        sample_every = t.sample_interval or t.eval_interval
        final_state = "completed"
        s.fwd_model.train()
        p.last_log_step = p.step
        while p.step < s.total:
            if self._should_stop():
                final_state = "stopped"
                break
            lr, grad_norm = self._step(s, p)
            is_last = p.step == s.total
            is_eval = p.step % t.eval_interval == 0 or is_last
            if p.step % t.log_interval == 0 or is_eval:
                self._log(s, p, lr, grad_norm, evaluate=is_eval)
            if main and (p.step % sample_every == 0 or is_last) and t.sample_tokens:
                self._record_sample(s, p)
            self._checkpoint_if_due(s, p, ckpt_every, is_last)
            if self.cap_reached is not None:
                final_state = "stopped"
                break
        if final_state == "stopped" and self.cap_reached is None:
            self._save(s, p, "stop")
        if main:
            message = "stopped by request" if final_state == "stopped" else "finished"
            if self.cap_reached is not None:
                kept = self.run.latest_checkpoint()
                message = (f"{self.cap_reached}; resume to continue from "
                           f"{f'step {Run.step_of(kept)}' if kept else 'the start'}")
            self.run.write_status(final_state, message, step=p.step, total_steps=s.total)
        self.emit("end", p.step, state=final_state, total_steps=s.total)
        return final_state

    # ------------------------------------------------------------------ setting up
    def _setup(self) -> tuple[_Setup, _Progress]:
        """Device, model, optimizer and schedule; the state restored from a checkpoint (or the parent's
        weights, for a fine-tune); the training step and the fixed evaluation batches."""
        cfg, t, d = self.config, self.config.train, self.dist
        device, threads = run_device(cfg.train, d)
        recorded = (self.run.read_status_raw().get("auto_paths") or {}) if self.resume else {}
        paths = auto_paths(cfg.train, cfg.model.d_model, recorded, device,
                           lambda message: self.emit("notice", 0, message=message))
        precision = paths["precision"].value
        torch.manual_seed(t.seed)
        model = build_model(cfg.model, qa=cfg.task == "qa").to(device)
        if isinstance(self.store, QAStore):
            self.store.qa_model = isinstance(model, QAGPT)  # else a recurrent model: next-token ids as targets
        self.model = model  # observers (tests, tools) may inspect the live model
        n_params = count_parameters(model)
        opt = make_optimizer(model, cfg, device, muon_precision=paths["muon_precision"].value)
        names = {id(p): n for n, p in model.named_parameters()}

        seq_len = cfg.model.seq_len
        spe = self.store.steps_per_epoch(t.batch_size, seq_len, t.grad_accum_steps, d.world)
        total = t.max_steps if t.max_steps is not None else max(1, math.ceil(t.epochs * spe))
        warmup = self._warmup(total)
        tokens_per_step = self.store.tokens_per_step(t.batch_size, seq_len, t.grad_accum_steps, d.world)

        progress = _Progress(rng=np.random.default_rng([t.seed, d.rank]))
        scaler_state = None
        if self.resume:
            scaler_state = self._restore(model, opt, names, device, progress)
        elif cfg.parent is not None:
            init_from_parent(model, Run(cfg.parent))

        ddp_model: torch.nn.Module = model
        if d.world > 1:
            ddp_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        compiled = compile_choice(cfg, recorded, device, total)
        fwd_model = torch.compile(ddp_model) if compiled else ddp_model
        train_step = TrainStep(fwd_model, opt, t, device, precision,
                               ddp=ddp_model if isinstance(ddp_model, DDP) else None)
        if self.resume:
            train_step.load_scaler_state(scaler_state)

        # Seeded by the data split, not the training seed: runs that differ only in their seed are scored
        # on the same windows, so their curves (and a seed spread) compare like with like.
        eval_rng = np.random.default_rng([cfg.data.seed, 1_000_003])
        eval_specs = self.store.eval_specs(t.eval_batches, t.batch_size, seq_len, eval_rng)
        setup = _Setup(device=device, precision=precision, paths=paths, threads=threads, params=n_params, model=model,
                       fwd_model=fwd_model, opt=opt, names=names, train_step=train_step, compiled=compiled,
                       total=total, warmup=warmup, steps_per_epoch=spe, tokens_per_step=tokens_per_step,
                       eval_specs=eval_specs)
        return setup, progress

    def _warmup(self, total: int) -> int:
        """The warmup steps, shortened (with a notice) when they would not end before the run does."""
        t = self.config.train
        warmup = t.warmup_steps
        if warmup >= total:
            warmup = total // 10
            self.emit("notice", 0, message=f"warmup_steps ({t.warmup_steps}) is not shorter than the run "
                                           f"({total} steps); using {warmup} warmup steps")
        return warmup

    def _restore(self, model: torch.nn.Module, opt: Optimizers, names: dict[int, str], device: torch.device,
                 p: _Progress) -> dict[str, Any] | None:
        """Load the latest checkpoint into the model, the optimizer, the counters and the random generators,
        and cut the logs back to it; returns the gradient scaler's state (for `TrainStep`)."""
        model_sd, opt_sd, state = self.run.load_checkpoint()
        load_state(model, model_sd)
        opt.load_state_tensors(names, opt_sd)
        p.step = int(state["step"])
        p.elapsed = float(state.get("elapsed_s", 0.0))
        p.run_loss, p.run_count = float(state.get("run_loss", 0.0)), int(state.get("run_count", 0))
        rank = self.dist.rank
        p.rng.bit_generator.state = state["rng"][rank] if isinstance(state["rng"], list) else state["rng"]
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(torch.tensor(state["cuda_rng"], dtype=torch.uint8))
        scaler_state = state.get("scaler")
        if self.dist.is_main:
            self.run.truncate_logs(p.step)
        return scaler_state

    def _announce(self, s: _Setup, p: _Progress) -> None:
        """Status `running` on disk and the `start` event, with what the run trains on and how long."""
        t, d = self.config.train, self.dist
        info = {"params": s.params, "total_steps": s.total, "steps_per_epoch": s.steps_per_epoch,
                "device": str(s.device), "precision": s.precision, "tokens_per_step": s.tokens_per_step,
                "train_tokens": self.store.train_tokens, "world_size": d.world, "threads": s.threads,
                "compile": s.compiled, "optimizer": t.optimizer,
                "auto_paths": {**{k: asdict(c) for k, c in s.paths.items()},
                               "compile": {"value": s.compiled, "why": "resolve_compile's measured rule"}}}
        if t.optimizer == "muon" and self.config.model.arch == "gpt":
            info["muon_precision"] = s.paths["muon_precision"].value
        if d.is_main:
            self.run.write_status("running", "training", **info, step=p.step, started_step=p.step)
        self.emit("start", p.step, **info, resumed=self.resume)

    # ------------------------------------------------------------------ one step and what follows it
    def _step(self, s: _Setup, p: _Progress) -> tuple[float, Any]:
        """One optimizer step (forward, backward, update: `TrainStep`); returns its learning rate and gradient
        norm. Raises TrainingError when the loss is no longer finite."""
        t = self.config.train
        t0 = time.perf_counter()
        scale = lr_at(p.step, 1.0, s.warmup, s.total, t.min_lr_ratio)
        lr = t.lr * scale
        result = s.train_step(lambda: self.store.batch("train", t.batch_size, self.config.model.seq_len, p.rng,
                                                       s.device), scale)
        p.step += 1
        loss_val = result.loss.item()
        if not math.isfinite(loss_val):
            raise TrainingError(
                f"the loss became {loss_val} at step {p.step}: training diverged; lower the learning rate "
                f"(now {t.lr:g}), raise warmup_steps or enable gradient clipping. "
                "The last good checkpoint is kept."
            )
        p.run_loss += loss_val
        p.run_count += 1
        dt = time.perf_counter() - t0
        p.elapsed += dt
        p.interval_train_time += dt
        self.emit("step", p.step, loss=loss_val, lr=lr, total_steps=s.total, epoch=self._epoch(s, p), dt=dt)
        return lr, result.grad_norm

    def _epoch(self, s: _Setup, p: _Progress) -> float:
        """Epochs of training data seen so far (fractional)."""
        return p.step * s.tokens_per_step / max(self.store.train_tokens, 1)

    def _log(self, s: _Setup, p: _Progress, lr: float, grad_norm: Any, *, evaluate: bool) -> None:
        """One metrics row for the steps since the last row: the mean training loss across ranks and the
        training rate (evaluations and samples left out); with `evaluate`, the validation loss too."""
        tps = (p.step - p.last_log_step) * s.tokens_per_step / max(p.interval_train_time, 1e-9)
        train_loss = self._mean_across_ranks(p.run_loss, p.run_count, s.device)
        row = {"step": p.step, "epoch": round(self._epoch(s, p), 6), "tokens": p.step * s.tokens_per_step,
               "elapsed_s": round(p.elapsed, 3), "train_loss": train_loss,
               "lr": lr, "tokens_per_s": round(tps, 1),
               "grad_norm": None if grad_norm is None else float(grad_norm)}
        p.run_loss, p.run_count = 0.0, 0
        p.last_log_step, p.interval_train_time = p.step, 0.0
        if evaluate:
            row.update(self._timed_evaluation(s, p))
        if self._agree(self.dist.is_main and not self.run.exists()):
            self.run.check_still_here()  # raises on the main rank; the others end with it
            raise TrainingError("the run folder was deleted while it trained")
        if self.dist.is_main:
            self.run.append_metrics(row)
            self.run.heartbeat(step=p.step, total_steps=s.total)
        self.emit("log", p.step, **row, total_steps=s.total)

    def _timed_evaluation(self, s: _Setup, p: _Progress) -> dict[str, float]:
        """Validation loss and perplexity (an `eval` event); its time counts in the elapsed time."""
        te = time.perf_counter()
        val_loss = self.evaluate(s.model, s.eval_specs, s.device, s.precision)
        val_ppl = math.exp(min(val_loss, 50.0))
        p.elapsed += time.perf_counter() - te
        self.emit("eval", p.step, val_loss=val_loss, val_ppl=val_ppl)
        return {"val_loss": val_loss, "val_ppl": val_ppl}

    def _record_sample(self, s: _Setup, p: _Progress) -> None:
        """A sample for the live view, appended to samples.jsonl (rank 0 only); its time counts in the elapsed
        time."""
        ts = time.perf_counter()
        text = self.sample(s.model, s.device)
        p.elapsed += time.perf_counter() - ts
        self.run.append_sample({"step": p.step, "text": text})
        self.emit("sample", p.step, text=text)

    def _checkpoint_if_due(self, s: _Setup, p: _Progress, every: int, is_last: bool) -> None:
        """Save every `every` steps and at the end; in between, once `checkpoint_seconds` of wall-clock time
        have passed since the last save (decided by all ranks together: a save is a collective)."""
        t = self.config.train
        if p.step % every == 0 or is_last:
            reason = "interval" if not is_last else "final"
        elif self._agree(t.checkpoint_seconds > 0 and time.monotonic() - p.last_save >= t.checkpoint_seconds):
            reason = "time"
        else:
            return
        self._save(s, p, reason)
        p.last_save = time.monotonic()
        if self._agree(self.cap_reached is not None) and self.cap_reached is None:  # the main rank's refusal
            self.cap_reached = "the runs folder reached its cap"

    def _save(self, s: _Setup, p: _Progress, reason: str) -> None:
        """A checkpoint of the model, the optimizer and everything a resume needs to continue exactly."""
        rng_states = self._gather_rng(p.rng)  # a collective: every rank takes part
        if not self.dist.is_main:
            return
        state = {
            "step": p.step, "elapsed_s": p.elapsed, "tokens": p.step * s.tokens_per_step,
            "run_loss": p.run_loss, "run_count": p.run_count,
            "rng": rng_states, "torch_rng": torch.get_rng_state().tolist(),
            "cuda_rng": torch.cuda.get_rng_state().tolist() if s.device.type == "cuda" else None,
            "reason": reason,
        }
        if s.train_step.scaler_state() is not None:
            state["scaler"] = s.train_step.scaler_state()
        try:
            path = self.run.save_checkpoint(p.step, state_for_save(s.model), s.opt.state_tensors(s.names), state)
        except RunsCapReached as e:
            self.cap_reached = str(e)
            self.emit("notice", p.step, message=f"{e}: stopping, with the last checkpoint kept")
            return
        self.emit("checkpoint", p.step, path=str(path), reason=reason)

    # ------------------------------------------------------------------ across ranks
    def _should_stop(self) -> bool:
        return self._agree(self.stop_event.is_set()
                           or (self.dist.is_main and self.run.stop_requested(self.started)))

    def _agree(self, flag: bool) -> bool:
        """True on every rank when it is true on any: decisions that lead to a collective (stopping, a save)
        must be taken by all processes together, even when their clocks or signals differ."""
        if self.dist.world > 1 and dist.is_initialized():
            t = torch.tensor([1.0 if flag else 0.0])
            if dist.get_backend() == "nccl":
                t = t.cuda()
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag

    def _mean_across_ranks(self, total: float, count: int, device: torch.device) -> float:
        """Mean of a per-rank running sum: the loss of the whole (global) batch, not rank 0's share."""
        if self.dist.world > 1 and dist.is_initialized():
            t = torch.tensor([total, float(count)], dtype=torch.float64,
                             device=device if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(t)
            total, count = float(t[0]), int(t[1])
        return total / max(count, 1)

    def _gather_rng(self, rng: np.random.Generator) -> Any:
        state = rng.bit_generator.state
        if self.dist.world > 1 and dist.is_initialized():
            out: list[Any] = [None] * self.dist.world
            dist.all_gather_object(out, state)  # JSON-able dicts between our own ranks
            return out
        return state

    # ------------------------------------------------------------------ evaluation and samples
    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, specs: list[np.ndarray], device: torch.device, precision: str) -> float:
        """Mean validation loss over the fixed evaluation batches (sharded across ranks)."""
        was_training = model.training
        model.eval()
        total = torch.zeros(2, device=device, dtype=torch.float64)
        for i in range(self.dist.rank, len(specs), self.dist.world):
            b = self.store.eval_batch(specs[i], self.config.model.seq_len, device)
            with autocast(device, precision):
                _, loss = model(b.x, b.targets)
            total[0] += loss.double()
            total[1] += 1
        if self.dist.world > 1 and dist.is_initialized():
            dist.all_reduce(total)
        model.train(was_training)
        return float(total[0] / total[1].clamp_min(1))

    def sample(self, model: torch.nn.Module, device: torch.device) -> str:
        """A short sample for the live view: text from the start of a record (or of the validation text);
        for a QA fine-tune, the greedy answer to the first validation question beside the expected one."""
        raw = unwrap(model)
        was_training = raw.training
        tok = self.store.tokenizer
        ids, expected = self.store.sample_prompt()
        prompt = tok.decode(ids)
        sampler = Sampler(raw, tok, device)
        if expected is None:
            text = sampler.generate(prompt, SampleConfig(max_new_tokens=self.config.train.sample_tokens, seed=0,
                                                         stop_at_end=False))
            text = prompt + text
        else:  # the question, the answer and the expected answer: the context is long and always the same
            answer = sampler.generate(prompt, answer_config())
            text = f"{prompt.split(chr(10), 1)[0]}\nA: {answer.strip()}\n(expected: {expected})"
        raw.train(was_training)
        return text


# --------------------------------------------------------------------------- entry point
@dataclass
class TrainResult:
    run: Run
    state: str
    message: str = ""


def setup_run(config: RunConfig, out: Path | str, *, resume: bool = False, overwrite: bool = False,
              progress: Callable[[float, str], None] | None = None) -> tuple[RunConfig, Run, TokenStore]:
    """Prepare the token store, check the config against it, then create (or reopen) the run folder.

    Everything that can be refused is checked before the folder is written, so a mistake leaves no
    half-made run behind. The vocabulary size is taken from the tokenizer.
    """
    d = dist_info()
    run = Run(out)
    if resume:
        if not run.exists():
            raise GenAIError(f"cannot resume: {run.path} is not a run folder")
        if run.latest_checkpoint() is None:
            raise GenAIError(f"cannot resume {run.name}: it has no checkpoint yet; start it again instead")
        config = run.config()
    else:
        run.check_creatable(overwrite)
    cache = run.token_cache
    tokenizer_path = None
    if config.task == "qa":
        if resume:
            tokenizer_path = run.tokenizer_path
        else:
            config = fine_tune_config(config)
            tokenizer_path = Run(config.parent).tokenizer_path

    def prepare(report: Callable[[float, str], None] | None) -> TokenStore | QAStore:
        if tokenizer_path is not None:
            return prepare_qa(config.data, tokenizer_path, config.model.seq_len, config.model.qa_layout, cache, report)
        return prepare_cached(config.data, cache, report)

    if d.world > 1 and dist.is_initialized():
        if d.is_main:
            store = prepare(progress)
        dist.barrier()  # rank 0 tokenizes once; the others open its store
        if not d.is_main:
            store = prepare(None)
    else:
        store = prepare(progress)
    tok = store.tokenizer
    if isinstance(store, TokenStore):
        store.check_seq_len(config.model.seq_len)
    if resume:
        if config.model.vocab_size != tok.vocab_size:
            raise GenAIError(f"cannot resume {run.name}: the corpus now gives {tok.vocab_size} tokens, "
                             f"the run was trained with {config.model.vocab_size}")
        serve_targets(store, config)
        return config, run, store
    config = config.model_copy(update={"model": config.model.model_copy(update={"vocab_size": tok.vocab_size})})
    serve_targets(store, config)
    config = RunConfig.model_validate(config.model_dump(exclude_unset=True))  # defaults stay defaults
    if d.is_main:
        run = Run.create(out, config, overwrite=overwrite)
        config = run.config()
        tok.save(run.tokenizer_path)
    return config, run, store


def _folder_going(run: Run, grace_s: float = 0.5) -> bool:
    """The run's config is gone, or goes within `grace_s`: a deletion that removed a write's temporary file
    first may not have reached config.json yet."""
    deadline = time.monotonic() + grace_s
    while run.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def train(config: RunConfig, out: Path | str, *, resume: bool = False, overwrite: bool = False,
          callbacks: Iterable[Callback] = (), stop_event: threading.Event | None = None,
          progress: Callable[[float, str], None] | None = None) -> TrainResult:
    """Prepare data, train and record everything in the run folder `out`.

    User errors (bad corpus, impossible config, divergence, out of memory) are written to
    status.json as `failed` with their message and re-raised as GenAIError; bugs are written with
    their traceback to error.log and re-raised unchanged.
    """
    run = Run(out)
    d = dist_info()
    owns_folder = False  # only a run this call created or resumed may be marked failed
    try:
        # One writer per run folder: a second start or resume of a run in training is refused before it writes.
        with run_writer(run.path) if d.is_main else nullcontext():
            config, run, store = setup_run(config, out, resume=resume, overwrite=overwrite, progress=progress)
            owns_folder = True
            trainer = Trainer(config, run, store, callbacks=callbacks, stop_event=stop_event, resume=resume)
            state = trainer.fit()
        return TrainResult(run, state, run.status().get("message", ""))
    except BaseException as e:
        if owns_folder and isinstance(e, FileNotFoundError) and _folder_going(run):
            # The folder went while a write was under way (between the trainer's check and the write): the
            # write's missing temporary file is not the story.
            raise run.deleted_while_training() from e
        msg = user_message(e)
        if isinstance(e, KeyboardInterrupt):
            msg = "interrupted from the keyboard; resume to continue"
        if d.is_main and run.exists() and owns_folder:
            try:
                if msg is None:
                    atomic_write_text(run.path / "error.log", traceback.format_exc())
                run.write_status("failed" if not isinstance(e, KeyboardInterrupt) else "interrupted",
                                 msg or f"internal error: {type(e).__name__}: {e} (see error.log)")
            except OSError:  # a full or read-only disk: the error that got here is the one to report
                pass
        if msg is not None and not isinstance(e, (GenAIError, KeyboardInterrupt)):
            raise GenAIError(msg) from e
        raise
