"""What one worker thread of a `JobManager` does with a job: pick the next job that may start, train it with
`trainer.train`, and make sure its run folder ends with a final state whatever happens.

The manager (`jobs.py`) owns the queues, the lock and the threads; the functions here touch one job and its
run folder only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from genai_core.config import RunConfig
from genai_core.errors import GenAIError
from genai_core.runs.folder import Run, run_writer
from genai_core.train import trainer
from genai_core.train.job_status import LiveLog, parent_not_ready
from genai_core.train.trainer import TrainEvent

log = logging.getLogger(__name__)

_TERMINAL = ("completed", "stopped", "failed", "interrupted")


@dataclass(eq=False)
class ThreadJob:
    """A queued, running or finished job of a `JobManager`, trained by one of its worker threads.

    Only its worker thread writes `started_at`, `finished_at` and `error`; other threads read them
    as single attributes (atomic under the GIL) and learn that the job ended from `done`.
    """

    name: str
    path: Path
    device: str
    config: RunConfig
    resume: bool
    live: LiveLog
    queued_at: float = field(default_factory=time.time)
    stop_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None


def next_ready(queue: deque[ThreadJob]) -> ThreadJob | None:
    """Called with the manager's lock held: the first queued job whose parent (if any) has completed.

    A fine-tune must never start from a half-trained parent: while the parent is queued or running it
    waits its turn; when the parent was stopped, failed or interrupted, it is held, says so on disk,
    and starts once the parent is resumed and completes (or leaves when the person stops it).
    """
    for job in list(queue):
        held = None if job.resume else parent_not_ready(job.config)
        if held is None:
            return job
        why, parent_name, _ = held
        job.live.set_phase(why)
        run = Run(job.path)
        if run.path.is_dir() and run.read_status_raw().get("message") != why:
            run.write_status("queued", why, queued_at=job.queued_at, waiting_for=parent_name)
    return None


def run_thread_job(job: ThreadJob) -> None:
    """Train one job in this thread; the run folder ends with a final state whatever happens. A run that another
    trainer holds (a CLI resume, another server) is refused before anything is written to it."""
    run = Run(job.path)
    if not run.path.is_dir():
        job.error = "the run folder was deleted while the job was queued"
        job.live.set_phase("removed")
        return
    try:
        with run_writer(run.path):
            _run_held(job, run)
    except GenAIError as e:
        if job.error is None:  # refused by the lock: the run is someone else's, its status theirs to write
            job.error = str(e)
            job.live.set_phase("refused")


def _run_held(job: ThreadJob, run: Run) -> None:
    if job.stop_event.is_set():  # stopped between leaving the queue and starting: nothing to save
        run.write_status("stopped", "stopped before it started")
        job.live.set_phase("stopped")
        return
    stamps = {"queued_at": job.queued_at, "started_at": job.started_at}
    if job.resume:
        run.write_status("running", "preparing to resume", **stamps)
    wrote_running = job.resume

    def on_progress(fraction: float, message: str) -> None:
        # Data preparation can take minutes on a big corpus: say on disk that this process is on it.
        nonlocal wrote_running
        job.live.progress(fraction, message)
        if not wrote_running and run.config_path.is_file():
            wrote_running = True
            run.write_status("running", "preparing data", **stamps)

    def on_event(ev: TrainEvent) -> None:
        if ev.kind == "start":
            run.write_status("running", "training", **stamps)

    job.live.set_phase("preparing data")
    try:
        trainer.train(job.config, job.path, resume=job.resume, callbacks=[job.live, on_event],
                       stop_event=job.stop_event, progress=on_progress)
    except GenAIError as e:
        job.error = str(e) or type(e).__name__
    except Exception as e:  # train() has written failed + error.log; keep the worker alive
        job.error = f"internal error: {type(e).__name__}: {e}"
        log.exception("job %s failed", job.name)
    finally:
        ensure_final_status(run, job)


def ensure_final_status(run: Run, job: ThreadJob) -> None:
    """If training ended without a final state on disk (an error before the run folder existed,
    or a bug outside train's own handler), write `failed` so the run never looks alive."""
    if not run.path.is_dir():
        return
    raw = run.read_status_raw()
    state = raw.get("state")
    if state in _TERMINAL:
        if job.error is None and state == "failed":
            job.error = str(raw.get("message", ""))
        job.live.set_phase(str(state))
        return
    msg = job.error or "training ended without recording a final state"
    job.error = msg
    run.write_status("failed", msg)
    job.live.set_phase("failed")
