"""A run's status (`status.json`): the states a run goes through, who owns it while it is active, and
`RunStatus`, the one description of what the file holds.

Every writer goes through `Run.write_status`, which makes the new status with `next_status` (the rules of a
change of state, written here once) and checks it against `RunStatus` (a misspelt or mistyped field fails
there, in tests, not later in a reader); `Run.status()` reads it back, with what the disk says about the owner
(a dead process's run reads `interrupted`). The file stays JSON that older and newer versions read: fields this
version does not know are kept.

Who moves a run from state to state:
- `queued`: the job manager (runner `thread`, owned by its process), `launcher.queue_run` (`process`: the runs
  folder's scheduler starts it), `ray_jobs.submit_run` (`ray`); a queued fine-tune says there whose
  completion it waits for (`waiting_for`).
- `running`: whoever starts the training (the job manager's thread, the scheduler as it launches the process),
  then the trainer itself (`Trainer._announce`, its heartbeats); a stop request is written on it
  (`stop_requested`) before the signal.
- `completed`, `stopped`, `failed`, `interrupted`: the trainer as it ends; the scheduler when a training
  process ended without saying (`exit_code`); the job manager or Ray when a queued run leaves its queue.
- `pruned`: a sweep, for a trial it stopped at a rung (`pruned_at`, `pruned_value`).
A resumable run goes back to `queued` or `running` on resume.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Literal

import psutil
from pydantic import BaseModel, ConfigDict

from genai_core.files import file_lock

State = Literal["running", "completed", "stopped", "failed", "interrupted", "queued", "pruned"]
ACTIVE_STATES = ("running", "queued")
"""A process is working on the run (training it, or holding it in a queue): what Stop acts on."""
RESUMABLE_STATES = ("stopped", "interrupted", "failed", "pruned")
"""States from which a run can be resumed (when it has a checkpoint); `pruned`: a sweep's trial stopped early
(`genai_core.explore.sweep`), trained on to see what it would have done."""
PARENT_READY = "completed"
"""The state a run must reach before a fine-tune starts from it: never from a half-trained parent (a stopped
one holds its fine-tunes until it is resumed and completes)."""
RUN_CONFIG = "config.json"
"""The file that makes a folder a run folder."""


class RunStatus(BaseModel):
    """What `status.json` holds. Only `state` and `message` are always there; the rest as the run's life
    wrote them."""

    model_config = ConfigDict(extra="allow")

    state: State | Literal["created"] = "created"
    """`created` (a folder without a status), then queued, running, and how it ended."""
    message: str = ""
    """What the run is doing, or why it ended, in words for a person."""
    updated_at: float | None = None
    # Who owns an active run: the training process (a running run, or one queued in a thread of this process).
    pid: int | None = None
    host: str | None = None
    started: float | None = None
    """The owner's creation time: with `pid`, tells a live owner from a reused pid (`process_alive`)."""
    # Where and when it trains.
    runner: Literal["thread", "process", "ray"] | None = None
    """Who trains it (`runner_of`: absent means `thread`)."""
    queue_device: str | None = None
    devices: list[str] | None = None
    queued_at: float | None = None
    started_at: float | None = None
    waiting_for: str | None = None
    """The parent run a queued fine-tune waits for."""
    stop_requested: bool | None = None
    exit_code: int | None = None
    """The training process's exit code, where the scheduler saw it end."""
    ray_address: str | None = None
    ray_job: str | None = None
    # Progress, and what the trainer resolved at its start (`Trainer._announce`).
    step: int | None = None
    total_steps: int | None = None
    started_step: int | None = None
    steps_per_epoch: int | None = None
    params: int | None = None
    device: str | None = None
    precision: str | None = None
    muon_precision: str | None = None
    optimizer: str | None = None
    compile: bool | None = None
    threads: int | None = None
    world_size: int | None = None
    tokens_per_step: int | None = None
    train_tokens: int | None = None
    auto_paths: dict[str, Any] | None = None
    """Each `auto` knob's value and why, resolved at the first start and kept on resume."""
    estimated_step_s: float | None = None
    estimated_total_s: float | None = None
    """The Train page's estimate at Start, shown beside the measured speed."""
    # A sweep's trials.
    sweep: str | None = None
    trial: int | None = None
    rerun_of: str | None = None
    pruned_at: int | None = None
    pruned_value: float | None = None


def checked_status(data: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """`data` (the whole new status) as `RunStatus` validates it; `written`, the fields a writer passed, must be
    `RunStatus` fields (a field of an older file is kept, a new misspelt one is a bug)."""
    unknown = sorted(set(written) - set(RunStatus.model_fields))
    if unknown:
        raise TypeError(f"not a RunStatus field: {', '.join(unknown)}")
    RunStatus.model_validate(data)
    return data


LEFT_BY_THE_LAST_LIFE = {"waiting_for": None, "stop_requested": False, "exit_code": None}
"""What a run that starts (enters `running` from another state) no longer has: a parent it waited for, a stop
request and an exit code of its previous training."""


def next_status(prev: dict[str, Any], state: State, message: str, fields: dict[str, Any],
                owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status after a change to `state`, from the previous one (`prev`, as on disk) and the `fields` its
    writer gives: those are kept, what the previous life left is reset on a start, and a `running` run, or one
    queued in a thread of its process, records its owner (`owner`, else this process): when the owner is gone,
    the run reads `interrupted`. A run queued on disk for the scheduler or Ray has no owner: it waits for
    whoever is up. Checked against `RunStatus`."""
    data = dict(prev)
    if state == "running" and prev.get("state") != "running":
        data.update(LEFT_BY_THE_LAST_LIFE)
    data.update(fields, state=state, message=message, updated_at=time.time())
    if state == "running" or (state == "queued" and runner_of(data) == "thread"):
        data.update(owner or process_token())
    return checked_status(data, fields)


def runner_of(status: dict[str, Any]) -> str:
    """Who trains a run, from its status: "thread" (the process that started it, and every run saved before
    runners existed), "process" (the runs folder's scheduler) or "ray"."""
    return str(status.get("runner", "thread"))


def is_run_folder(path: Path) -> bool:
    return (Path(path) / RUN_CONFIG).is_file()


def process_token() -> dict[str, Any]:
    """This process as the owner of a run: its pid, host and creation time."""
    p = psutil.Process()
    return {"pid": p.pid, "host": socket.gethostname(), "started": round(p.create_time(), 2)}


def process_alive(info: dict[str, Any]) -> bool:
    """Whether the process an owner record names still runs (another host's: assumed so, it cannot be asked)."""
    if info.get("host") not in (None, socket.gethostname()):
        return True  # another machine's run: we cannot tell, trust the file
    try:
        p = psutil.Process(int(info["pid"]))
        return abs(p.create_time() - float(info.get("started", 0))) < 1.0
    except (KeyError, ValueError, TypeError, psutil.Error):
        return False


WRITER_LOCKS = ".locks"
"""Folder of the runs folder holding one lock file per run being trained (`run_writer`)."""


def writer_lock_path(run_path: Path) -> Path:
    """The lock of the run folder `run_path`: beside it, not in it, so that overwriting or deleting the folder
    cannot take the lock away from its holder."""
    return Path(run_path).parent / WRITER_LOCKS / f"{Path(run_path).name}.lock"


def writer_of(run_path: Path) -> dict[str, Any] | None:
    """The process training `run_path` now (`process_token` fields), or None when no process holds its lock."""
    lock = writer_lock_path(run_path)
    if not lock.is_file():
        return None
    with file_lock(lock, blocking=False) as free:
        if free:
            return None
    try:
        holder = json.loads(lock.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        holder = {}
    return holder if isinstance(holder, dict) else {}


def busy_message(run_name: str, holder: dict[str, Any] | None) -> str:
    """The one message for a run that another process trains (the writer lock, a resume or an overwrite)."""
    return f"run {run_name} is being trained by {holder_words(holder)}: stop it there, or wait until it ends"


def holder_words(holder: dict[str, Any] | None) -> str:
    """Who holds a run's writer lock, in words for a message."""
    if not holder or "pid" not in holder:
        return "another process"
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        return f"another thread of this process (pid {holder['pid']})"
    where = "" if holder.get("host") == socket.gethostname() else f" on {holder.get('host')}"
    return f"process {holder['pid']}{where}"
