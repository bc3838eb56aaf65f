"""A run is a folder; the disk is the source of truth.

Layout of `runs/<name>/`:
    config.json        RunConfig
    tokenizer.json     the tokenizer (char or BPE)
    status.json        state (running/completed/stopped/failed/interrupted), message, pid, heartbeat
    metrics.jsonl      one JSON object per logged step; evaluation lines add val_loss / val_ppl
    samples.jsonl      periodic sample text
    train.log          output of the run's own training process (runner process; see launcher.py)
    checkpoints/step_XXXXXXXX/{model,optimizer}.safetensors + state.json
    checkpoints/latest  name of the newest complete checkpoint
    eval/              saved evaluations (perplexity-<data>.json, qa-<file>.json), see evaluation.py

Every file is written to a temporary name and renamed into place (rename is atomic on POSIX), and a
checkpoint directory is complete before `latest` points at it, so a kill at any moment leaves the
previous checkpoint loadable. Nothing is ever unpickled: tensors are safetensors, the rest is JSON.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genai_core.config import RunConfig
from genai_core.errors import CheckpointError, GenAIError, TrainingError
from genai_core.files import (
    atomic_write_json,
    atomic_write_text,
    check_runs_cap,
    file_lock,
    json_safe,
    read_json,
    staged_folder,
)
from genai_core.runs.status import (
    ACTIVE_STATES,
    RUN_CONFIG,
    State,
    busy_message,
    holder_words,
    is_run_folder,
    next_status,
    process_alive,
    process_token,
    runner_of,
    writer_lock_path,
    writer_of,
)

MAX_RUN_NAME = 80
"""Longest run name: a folder name every OS and zip tool takes, with room for `-seed2` and `-t00` suffixes."""
_NAME_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_RUN_NAME - 1}}}$")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
KEEP_CHECKPOINTS = 2
LOG_NAME = "train.log"
"""Output of a run's own training process (runner process), in its folder."""


def runs_dir() -> Path:
    """Root folder of runs: `$GENAI_RUNS_DIR` or ./runs."""
    return Path(os.environ.get("GENAI_RUNS_DIR") or "runs")


def token_cache_dir(runs_folder: Path) -> Path:
    """The runs folder's cache of prepared corpora (`.tokens/<key>`), shared by every run in it: a corpus is
    tokenized once, by the Data page, the Train page or the first run that needs it."""
    return Path(runs_folder).resolve() / ".tokens"


def validate_run_name(name: str) -> str:
    """Accept names that are safe as a single folder name on every OS; explain anything else."""
    if name.split(".")[0].upper() in _RESERVED:
        raise GenAIError(f"invalid run name {name!r}: {name.split('.')[0].upper()} is a reserved device name on "
                         "Windows (run names are safe as folder names on every OS); choose another")
    if not _NAME_RE.match(name) or name.endswith(".") or ".." in name:
        raise GenAIError(
            f"invalid run name {name!r}: use 1-{MAX_RUN_NAME} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no spaces or slashes)"
        )
    return name


def slugify(text: str) -> str:
    """Turn any text into a valid run name (used for names built from hyperparameter values)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    s = re.sub(r"-{2,}", "-", s).replace("..", ".")
    return (s or "run")[:MAX_RUN_NAME]


def free_run_name(root: Path, wanted: str, taken: Collection[str] = ()) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`, ... (trimmed to `MAX_RUN_NAME`): the first with no folder under `root`
    and not in `taken` (names of jobs that have no folder yet)."""
    name, n = wanted, 1
    while name in taken or (Path(root) / name).exists():
        n += 1
        suffix = f"-{n}"
        name = wanted[: MAX_RUN_NAME - len(suffix)] + suffix
    return name


# --------------------------------------------------------------------------- the run folder
STALE_TEMP_S = 60.0
"""Age from which a temporary file or staged folder in a run folder is a killed write's leftover."""


def _is_temporary(p: Path) -> bool:
    """A temporary file of `atomic_write_*` (`.NAME.xxxx.tmp`) or a folder of `staged_folder` (`.NAME.xxxx`)."""
    return p.name.startswith(".") and (p.name.endswith(".tmp") or p.is_dir())


_writers: dict[str, int] = {}  # lock path -> the thread of this process that holds it (run_writer nests there)
_writers_lock = threading.Lock()


@contextmanager
def run_writer(run_path: Path) -> Iterator[None]:
    """Be the one process training the run folder `run_path` for the block, or raise GenAIError naming the holder.

    An exclusive `flock` on `writer_lock_path`, taken before anything is written and held for the whole run,
    whoever starts it (a thread of the app, the scheduler's process, Ray, the CLI, a second server). The kernel
    releases it when its holder dies, so a killed trainer never leaves its run locked. flock locks an open file,
    so two threads of one process exclude each other too; the thread that holds it may enter again (the job
    runner holds it around `train`, which takes it too)."""
    lock = writer_lock_path(run_path)
    key, me = str(lock.resolve()), threading.get_ident()
    with _writers_lock:
        nested = _writers.get(key) == me
    if nested:
        yield
        return
    # A lock that cannot be made (a read-only or full disk) raises its OSError: the caller names it as it names any
    # storage error (`errors.storage_message`).
    with file_lock(lock, blocking=False) as mine:
        if not mine:
            raise GenAIError(busy_message(Path(run_path).name, writer_of(run_path)))
        with _writers_lock:
            _writers[key] = me
        try:
            # Written in place, never replaced: a new file at this path would be a second lock beside the held one.
            lock.write_text(json.dumps({**process_token(), "thread": me}), encoding="utf-8")
            Run(run_path).remove_leftovers()  # the one writer now: what a killed one left half-written goes
            yield
        finally:
            with _writers_lock:
                _writers.pop(key, None)


class Run:
    """Handle on one run folder. Cheap to create; every read goes to disk."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # -- identity
    @property
    def name(self) -> str:
        return self.path.name

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def token_cache(self) -> Path:
        """Where this run's corpus is tokenized: its runs folder's shared cache."""
        return token_cache_dir(self.path.resolve().parent)

    @property
    def config_path(self) -> Path:
        return self.path / RUN_CONFIG

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / LOG_NAME

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.jsonl"

    @property
    def checkpoints_path(self) -> Path:
        return self.path / "checkpoints"

    @property
    def eval_path(self) -> Path:
        """Saved evaluations: eval/perplexity-<data>.json and eval/qa-<file>.json (`genai_core.evaluate.perplexity`)."""
        return self.path / "eval"

    def exists(self) -> bool:
        return is_run_folder(self.path)

    @property
    def stop_request_path(self) -> Path:
        return self.path / "stop.request"

    def request_stop(self) -> None:
        """Ask whoever trains the run, in any process of this machine or another sharing the folder, to save a
        checkpoint and stop: the trainer looks for this file at every step (a signal reaches only a process of
        its own, and a thread of another server not at all)."""
        atomic_write_json(self.stop_request_path, {**process_token(), "at": time.time()})

    def stop_requested(self, since: float) -> bool:
        """A stop was requested at or after `since` (an older request was meant for an earlier trainer)."""
        try:
            return self.stop_request_path.stat().st_mtime >= since
        except OSError:
            return False

    def check_still_here(self) -> None:
        """Raise if the folder was deleted under a trainer: writing on would re-create a folder with no
        config.json, invisible to the app and to `runs`, that nobody could stop or delete."""
        if not self.exists():
            raise self.deleted_while_training()

    def deleted_while_training(self) -> TrainingError:
        return TrainingError(f"the run folder {self.path} was deleted while it trained: training stopped and "
                             "wrote nothing back")

    # -- config
    @classmethod
    def create(cls, path: Path | str, config: RunConfig, *, overwrite: bool = False) -> Run:
        run = cls(path)
        run.check_creatable(overwrite)
        if overwrite and run.path.exists() and not run._is_placeholder():
            shutil.rmtree(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        if not config.name:
            config = config.model_copy(update={"name": run.name})
        run.save_config(config)
        return run

    def _is_placeholder(self) -> bool:
        """A folder with a config and a status but nothing trained (the job manager writes one at submit; the
        scheduler adds the training process's log before the process starts). A write's temporary file, or one
        a killed process left behind, does not make it more than that."""
        if not self.path.is_dir():
            return False
        names = {p.name for p in self.path.iterdir() if not _is_temporary(p)}
        return names <= {RUN_CONFIG, "status.json", LOG_NAME}

    def remove_leftovers(self, older_than_s: float = STALE_TEMP_S) -> list[Path]:
        """Delete what killed writes left in the folder and its checkpoints: `atomic_write_*` temporary files and
        `staged_folder` folders older than `older_than_s` (a live write takes milliseconds). The trainer calls it
        holding the run's writer lock. Returns what it removed."""
        removed: list[Path] = []
        now = time.time()
        for folder in (self.path, self.checkpoints_path):
            if not folder.is_dir():
                continue
            for p in folder.iterdir():
                try:
                    if not _is_temporary(p) or now - p.lstat().st_mtime < older_than_s:
                        continue
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    removed.append(p)
                except OSError:  # gone already, or not ours to remove: leave it
                    continue
        return removed

    def check_creatable(self, overwrite: bool = False) -> None:
        """Refuse a bad name, an existing run (unless `overwrite`), and ever deleting a folder that is not a run."""
        validate_run_name(self.name)
        if not self.path.exists() or not any(self.path.iterdir()) or self._is_placeholder():
            return
        if not overwrite:
            raise GenAIError(f"run folder {self.path} already exists; resume it or choose another name")
        if not self.config_path.is_file():
            raise GenAIError(f"{self.path} exists and is not a run folder; refusing to overwrite it")

    def save_config(self, config: RunConfig) -> None:
        atomic_write_text(self.config_path, config.model_dump_json(indent=2))

    def config(self) -> RunConfig:
        if not self.config_path.is_file():
            raise CheckpointError(f"{self.path} is not a run folder (no config.json)")
        try:
            return RunConfig.from_saved(self.config_path.read_text(encoding="utf-8"))
        except Exception as e:
            raise CheckpointError(f"{self.config_path} is not a valid run config: {e}") from None

    def tokenizer(self):
        from genai_core.data.tokenization import load_tokenizer

        return load_tokenizer(self.tokenizer_path)

    # -- status
    def write_status(self, state: State, message: str = "", *, owner: dict[str, Any] | None = None,
                     **extra: Any) -> None:
        """Record the run's state (`runs.status.next_status`: the rules of a change of state, and who owns an
        active run: this process, or `owner`, a `process_token`)."""
        data = next_status(self.read_status_raw(), state, message, extra, owner)
        atomic_write_json(self.path / "status.json", data, make_parent=False)  # Run.create made the folder

    def heartbeat(self, **extra: Any) -> None:
        """Progress of a running run (step, total), keeping what its status says it is doing."""
        self.write_status("running", str(self.read_status_raw().get("message", "")), **extra)

    def read_status_raw(self) -> dict[str, Any]:
        try:
            data = read_json(self.path / "status.json")
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, CheckpointError):
            return {}

    def status(self) -> dict[str, Any]:
        """Status as stored, except that a run whose writer lock is held reads `running` (with the holder as its
        owner) whatever its file says, `running` left by a dead process reads `interrupted`, and a damaged file
        reads `interrupted` with "status damaged: ...; resume or delete" (never a run silently gone)."""
        damaged = None
        try:
            data = read_json(self.path / "status.json")
            if not isinstance(data, dict):
                raise CheckpointError(f"{self.path / 'status.json'} does not hold a status")
        except FileNotFoundError:
            data = {"state": "created", "message": ""}
        except CheckpointError as e:
            damaged, data = str(e), {}
        ownerless = data.get("state") == "queued" and runner_of(data) != "thread"
        if damaged is None and data.get("state") in ACTIVE_STATES and (ownerless or process_alive(data)):
            return data
        holder = writer_of(self.path)  # the lock, not the file, says who trains it (the file may lag or lie)
        if holder and process_alive(holder):
            owner = {k: holder[k] for k in ("pid", "host", "started") if k in holder}
            words = f"trained by {holder_words(holder)}"
            return {**data, **owner, "state": "running",
                    "message": f"status damaged ({damaged}); {words}" if damaged else data.get("message") or words}
        if damaged is not None:
            return {"state": "interrupted", "message": f"status damaged: {damaged}; resume or delete",
                    "damaged": True}
        if data.get("state") not in ACTIVE_STATES:
            return data
        message = ("the process training this run ended unexpectedly; resume to continue"
                   if data["state"] == "running" else
                   "it was queued by a process that has ended; resume it if it has a checkpoint, "
                   "otherwise start it again")
        return {**data, "state": "interrupted", "message": message}

    @property
    def state(self) -> str:
        return str(self.status().get("state", "created"))

    # -- metrics
    def append_metrics(self, row: dict[str, Any]) -> None:
        line = json.dumps(json_safe(row), allow_nan=False)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def append_sample(self, row: dict[str, Any]) -> None:
        with open(self.samples_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        return list(_read_jsonl(self.metrics_path))

    def samples(self) -> list[dict[str, Any]]:
        return list(_read_jsonl(self.samples_path))

    def truncate_logs(self, step: int) -> None:
        """Drop log lines after `step` (used on resume so the curve continues without a fork)."""
        for p in (self.metrics_path, self.samples_path):
            if p.exists():
                kept = [r for r in _read_jsonl(p) if int(r.get("step", 0)) <= step]
                atomic_write_text(p, "".join(json.dumps(r) + "\n" for r in kept))

    # -- checkpoints
    def latest_checkpoint(self) -> Path | None:
        """The checkpoint `checkpoints/latest` names; if that pointer is missing or damaged (binary bytes, a
        name that is not a checkpoint), the newest complete checkpoint folder (each is complete by the time
        it has its final name, see `save_checkpoint`)."""
        pointer = self.checkpoints_path / "latest"
        if pointer.is_file():
            try:
                name = pointer.read_bytes()[:64].decode("utf-8").strip()
            except (UnicodeDecodeError, OSError):
                name = ""
            ckpt = self.checkpoints_path / name
            if re.fullmatch(r"step_\d{8}", name) and (ckpt / "state.json").is_file():
                return ckpt
        if not self.checkpoints_path.is_dir():
            return None
        complete = sorted(p for p in self.checkpoints_path.glob("step_*")
                          if re.fullmatch(r"step_\d{8}", p.name) and (p / "state.json").is_file())
        return complete[-1] if complete else None

    def save_checkpoint(
        self,
        step: int,
        model_state: dict[str, torch.Tensor],
        optimizer_state: dict[str, torch.Tensor],
        state: dict[str, Any],
    ) -> Path:
        """Write a complete checkpoint directory, then point `latest` at it, then prune old ones. Raises
        RunsCapReached, writing nothing, when the checkpoint would take the runs folder (this run's parent)
        past its cap."""
        self.check_still_here()
        tensors = (*model_state.values(), *optimizer_state.values())
        check_runs_cap(self.path.parent, sum(t.numel() * t.element_size() for t in tensors))
        self.checkpoints_path.mkdir(exist_ok=True)
        name = f"step_{step:08d}"
        final = self.checkpoints_path / name
        with staged_folder(final, fsync=True) as tmp:
            save_file(_contiguous(model_state), str(tmp / "model.safetensors"), metadata={"step": str(step)})
            save_file(_contiguous(optimizer_state), str(tmp / "optimizer.safetensors"))
            (tmp / "state.json").write_text(json.dumps(state, default=_json_default), encoding="utf-8")
        atomic_write_text(self.checkpoints_path / "latest", name, make_parent=False)
        self._prune_checkpoints(keep=name)
        return final

    def _prune_checkpoints(self, keep: str) -> None:
        ckpts = sorted(p for p in self.checkpoints_path.glob("step_*") if p.is_dir())
        for p in ckpts[:-KEEP_CHECKPOINTS]:
            if p.name != keep:
                shutil.rmtree(p, ignore_errors=True)
        for p in self.checkpoints_path.glob(".step_*"):  # debris of an interrupted write
            shutil.rmtree(p, ignore_errors=True)

    @staticmethod
    def step_of(checkpoint: Path) -> int:
        """The training step a checkpoint folder (`step_00000078`) was saved at."""
        return int(Path(checkpoint).name.removeprefix("step_"))

    def load_checkpoint(
        self, ckpt: Path | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
        """Model tensors, optimizer tensors and trainer state of a checkpoint (the latest by default)."""
        ckpt = ckpt or self.latest_checkpoint()
        if ckpt is None:
            raise CheckpointError(f"run {self.name} has no checkpoint yet")
        try:
            model = load_file(str(ckpt / "model.safetensors"))
            opt_path = ckpt / "optimizer.safetensors"
            optim = load_file(str(opt_path)) if opt_path.exists() else {}
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"checkpoint {ckpt} is damaged or not a safetensors file: {e}") from None
        state = read_json(ckpt / "state.json")
        if not isinstance(state, dict):
            raise CheckpointError(f"checkpoint {ckpt} has a malformed state.json")
        return model, optim, state

    def load_weights(self) -> dict[str, torch.Tensor]:
        """Model weights of the latest checkpoint only (for sampling and evaluation)."""
        ckpt = self.latest_checkpoint()
        if ckpt is None:
            raise CheckpointError(f"run {self.name} has no checkpoint yet")
        try:
            return load_file(str(ckpt / "model.safetensors"))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"checkpoint {ckpt} is damaged or not a safetensors file: {e}") from None

    # -- saved evaluations
    def saved_evaluations(self) -> list[dict[str, Any]]:
        """Every readable result in eval/, newest first (a damaged file is skipped, not fatal)."""
        found = []
        for p in self.eval_path.glob("*.json"):
            try:
                data = read_json(p)
            except (FileNotFoundError, CheckpointError):
                continue
            if isinstance(data, dict):
                found.append({**data, "saved_to": str(p)})
        return sorted(found, key=lambda d: d["timestamp"] if isinstance(d.get("timestamp"), int | float) else 0,
                      reverse=True)

    # -- summary for tables
    def summary(self) -> dict[str, Any]:
        cfg = self.config()
        model = cfg.model
        if cfg.task == "qa" and cfg.parent is not None:
            # A fine-tune trains its parent's network (`qa.finetune.fine_tune_config`): a queued one's own config
            # still holds the defaults it was written with.
            try:
                model = Run(cfg.parent).config().model
            except GenAIError:
                pass
        st = self.status()
        rows = self.metrics()
        vals = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
        last = rows[-1] if rows else {}
        best = min(vals) if vals else None
        return {
            "name": self.name,
            "state": st.get("state"),
            "message": st.get("message", ""),
            "arch": model.arch,
            "params": st.get("params"),
            "d_model": model.d_model,
            "n_layers": model.n_layers,
            "n_heads": model.n_heads,
            "seq_len": model.seq_len,
            "batch_size": cfg.train.batch_size,
            "grad_accum_steps": cfg.train.grad_accum_steps,
            "lr": cfg.train.lr,
            "optimizer": cfg.train.optimizer,
            "pos_encoding": model.pos_encoding if model.arch == "gpt" else None,
            "dropout": cfg.model.dropout,
            "weight_decay": cfg.train.weight_decay,
            "tokenizer": cfg.data.tokenizer,
            # A stop saves a checkpoint between log rows: the status has the step it stopped at.
            "step": max(int(last.get("step", 0)), int(st.get("step") or 0)),
            "tokens": last.get("tokens", 0),
            "elapsed_s": last.get("elapsed_s", 0.0),
            "train_loss": last.get("train_loss"),
            "best_val_loss": best,
            "best_val_ppl": math.exp(best) if best is not None and best < 50 else None,
            "task": cfg.task,
            "parent": cfg.parent.name if cfg.parent else None,  # lineage: the run this one started from
            # Latest QA evaluation per file, flat (qa_<file>_f1 ...) so every table can show it as columns.
            **{f"qa_{r['name']}_{k}": r["metrics"].get(k) for r in reversed(self.saved_evaluations())
               if r.get("kind") == "qa" and r.get("name") and isinstance(r.get("metrics"), dict)
               for k in ("exact_match", "f1", "rougeL")},
        }


def list_runs(root: Path | None = None) -> list[Run]:
    """Run folders under `root` (default `runs_dir()`), newest first."""
    root = Path(root) if root else runs_dir()
    if not root.is_dir():
        return []
    found = [Run(p) for p in root.iterdir()
             if p.is_dir() and not p.name.startswith(".") and is_run_folder(p)]
    return sorted(found, key=lambda r: r.config_path.stat().st_mtime, reverse=True)


def downsample_rows(rows: list[dict[str, Any]], limit: int = 2000) -> list[dict[str, Any]]:
    """Every k-th row (always keeping the last) so a curve never carries more than about `limit` points."""
    if len(rows) <= limit:
        return rows
    k = -(-len(rows) // limit)
    out = rows[::k]
    if out[-1] is not rows[-1]:
        out.append(rows[-1])
    return out


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON-lines file; a torn last line (a write cut by a kill) is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                yield row


def _contiguous(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in d.items()}


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
