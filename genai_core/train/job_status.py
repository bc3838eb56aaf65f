"""What a run looks like to the UI while it trains: `JobStatus` snapshots and the live buffer behind them.

A job of this process's `JobManager` feeds a `LiveLog` from the Trainer's events (so the UI need not re-read
files every second); a run trained by another process or by Ray is read from its folder (`disk_status`).
Either way the disk stays the source of truth for the state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai_core.config import RunConfig
from genai_core.runs.folder import Run
from genai_core.runs.status import ACTIVE_STATES, PARENT_READY, runner_of
from genai_core.train import ray_jobs
from genai_core.train.trainer import TrainEvent

LIVE_ROWS = 2000
"""Metric rows kept in memory per job: the whole curve of most runs at the default log interval."""
ETA_WINDOW = 64
"""Recent steps whose wall-clock times give the ETA (long enough to average over an evaluation)."""


def effective_status(run: Run) -> dict[str, Any]:
    """The run's status from disk: `Run.status()` reads a dead process's queue or run as interrupted, and a Ray
    run that its job's end left behind is recorded as interrupted (`ray_jobs.reconcile`)."""
    return ray_jobs.reconcile(run, run.status())


def parent_not_ready(config: RunConfig) -> tuple[str, str, bool] | None:
    """Why a fine-tune may not start yet, or None when it may: (the message its status shows, the parent's name,
    whether the parent is still on its way). A fine-tune never starts from a half-trained parent: it waits while
    the parent is queued or running, and is held while the parent is stopped, failed or interrupted, until it is
    resumed and completes. Every runner (thread, process, Ray) and the Home page read this one rule."""
    if config.parent is None:
        return None
    parent = Run(config.parent)
    state = str(effective_status(parent).get("state", "missing")) if parent.exists() else "missing"
    if state == PARENT_READY:
        return None
    if state in ACTIVE_STATES:
        return f"waiting for {parent.name} to complete (it is {state})", parent.name, True
    if state == "missing":
        return f"waiting for {parent.name}, which no longer exists: stop this run", parent.name, False
    return f"waiting for {parent.name}, which was {state}: resume it (or stop this run)", parent.name, False


def disk_live(run: Run, st: dict[str, Any]) -> dict[str, Any]:
    """The live fields of a run trained by another process, read from its folder: the latest losses, rate and
    sample, and an ETA from the training time of the recent logged steps."""
    rows = run.metrics()[-ETA_WINDOW:]
    samples = run.samples()
    last = rows[-1] if rows else {}
    vals = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
    step = max(int(st.get("step") or 0), int(last.get("step") or 0)) if (rows or st.get("step")) else None
    total = st.get("total_steps")
    eta = None
    timed = [r for r in rows if r.get("elapsed_s") is not None and r.get("step") is not None]
    if st.get("state") == "running" and len(timed) >= 2 and total and step is not None:
        (s0, e0), (s1, e1) = (timed[0]["step"], timed[0]["elapsed_s"]), (timed[-1]["step"], timed[-1]["elapsed_s"])
        if s1 > s0:
            eta = max(0.0, (int(total) - step) * (e1 - e0) / (s1 - s0))
    return {"step": step, "total_steps": total, "train_loss": last.get("train_loss"),
            "val_loss": vals[-1] if vals else None, "lr": last.get("lr"), "tokens_per_s": last.get("tokens_per_s"),
            "eta_s": eta, "sample": samples[-1].get("text") if samples else None,
            "sample_step": samples[-1].get("step") if samples else None}


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one run for the UI: disk state plus the live fields of a job of this manager.

    `state` and `message` come from the run's status.json (see `effective_status`); the only
    exception is the moment between a fresh job leaving the queue and the run folder being
    re-created by `trainer.train`, which reads `running` / "preparing data" instead of nothing.
    Live fields are None for runs this manager has not run (they are then taken from status.json
    where it has them: `step`, `total_steps`).
    """

    name: str
    state: str
    """queued | running | completed | stopped | failed | interrupted | created."""
    message: str = ""
    device: str | None = None
    """Queue the job runs in (`cpu`, `cuda:0`, ...); None for runs this manager does not know."""
    here: bool = False
    """The job is queued or running in this manager (so `stop` can act on it)."""
    resume: bool = False
    """The job continues from a checkpoint (submitted by `resume`)."""
    queue_position: int | None = None
    """1 = next to start on its device; None when not queued here."""
    phase: str = ""
    """What the training thread is doing: `preparing data: ...`, `training`, `stopping`, the final state."""
    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    """Mean training loss of the last logged interval."""
    val_loss: float | None = None
    """Latest validation loss."""
    lr: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    """Seconds to the end, from the wall-clock time of recent steps (evaluations included)."""
    sample: str | None = None
    sample_step: int | None = None
    notices: tuple[str, ...] = ()
    """Notices of the trainer (e.g. warmup shortened)."""
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    """The error that ended the job, as the training thread saw it (status.json has it too)."""
    runner: str = "thread"
    """Where it trains: `thread` (this process), `process` (its own, started by the scheduler) or `ray`."""
    backend_state: str | None = None
    """Ray's state of the run's job (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED) for a Ray run."""

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.state in ACTIVE_STATES

    @property
    def progress(self) -> float | None:
        """Fraction of the steps done, 0..1 (None before the step count is known)."""
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)


class LiveLog:
    """The live buffer of one job, fed by the Trainer's events in the training thread.

    Every read and write holds one lock, and readers get copies, so the UI thread can poll it at
    any moment. It mirrors the tail of metrics.jsonl: on `start` it is loaded from the file (after a
    resume truncated it), then every `log` event appends the row the trainer also wrote to disk.
    """

    def __init__(self, run: Run, max_rows: int = LIVE_ROWS) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._rows: deque[dict[str, Any]] = deque(maxlen=max_rows)
        self._ticks: deque[tuple[float, int]] = deque(maxlen=ETA_WINDOW)
        self._notices: deque[str] = deque(maxlen=20)
        self._f: dict[str, Any] = {"phase": "queued", "step": None, "total_steps": None, "train_loss": None,
                                   "val_loss": None, "lr": None, "tokens_per_s": None, "sample": None,
                                   "sample_step": None}

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self._f["phase"] = phase

    def progress(self, fraction: float, message: str) -> None:
        """`progress` callback of data preparation (tokenizing a corpus that is not cached yet)."""
        self.set_phase(f"preparing data: {message} ({fraction:.0%})" if fraction < 1 else "building the model")

    def __call__(self, ev: TrainEvent) -> None:
        """Trainer callback: cheap, never does I/O except once at `start`."""
        if ev.kind == "start":
            # The trainer has truncated the logs to the checkpoint on resume: the file is the curve so far.
            tail = self._run.metrics()[-(self._rows.maxlen or LIVE_ROWS):]
            with self._lock:
                self._rows.clear()
                self._rows.extend(tail)
                self._ticks.clear()
                self._ticks.append((time.monotonic(), ev.step))
                self._f.update(phase="training", step=ev.step, total_steps=ev.data.get("total_steps"))
                if tail:
                    self._f.update(train_loss=tail[-1].get("train_loss"), lr=tail[-1].get("lr"),
                                   tokens_per_s=tail[-1].get("tokens_per_s"))
                    vals = [r["val_loss"] for r in tail if r.get("val_loss") is not None]
                    self._f["val_loss"] = vals[-1] if vals else None
            return
        with self._lock:
            f = self._f
            if ev.kind == "step":
                self._ticks.append((time.monotonic(), ev.step))
                f.update(step=ev.step, lr=ev.data.get("lr"), total_steps=ev.data.get("total_steps", f["total_steps"]))
            elif ev.kind == "log":
                row = {k: v for k, v in ev.data.items() if k != "total_steps"}
                self._rows.append(row)
                f.update(train_loss=row.get("train_loss"), tokens_per_s=row.get("tokens_per_s"))
                if row.get("val_loss") is not None:
                    f["val_loss"] = row["val_loss"]
            elif ev.kind == "eval":
                f["val_loss"] = ev.data.get("val_loss")
            elif ev.kind == "sample":
                f.update(sample=ev.data.get("text"), sample_step=ev.step)
            elif ev.kind == "notice":
                self._notices.append(str(ev.data.get("message", "")))
            elif ev.kind == "end":
                f.update(step=ev.step, phase=str(ev.data.get("state", "ended")))

    def release_rows(self) -> None:
        """Drop the buffered rows once the job has ended (readers then go to metrics.jsonl)."""
        with self._lock:
            self._rows.clear()

    def rows(self) -> list[dict[str, Any]]:
        """Copies of the buffered metric rows, oldest first."""
        with self._lock:
            return [dict(r) for r in self._rows]

    def snapshot(self) -> dict[str, Any]:
        """The live fields, with `eta_s` computed from the recent step times."""
        with self._lock:
            snap = dict(self._f)
            snap["notices"] = tuple(self._notices)
            ticks = list(self._ticks)
        snap["eta_s"] = None
        step, total = snap["step"], snap["total_steps"]
        if snap["phase"] == "training" and len(ticks) >= 2 and step is not None and total:
            (t0, s0), (t1, s1) = ticks[0], ticks[-1]
            if s1 > s0:
                snap["eta_s"] = max(0.0, (total - step) * (t1 - t0) / (s1 - s0))
        return snap


def disk_status(run: Run, st: dict[str, Any] | None = None) -> JobStatus:
    """Status of a run this process does not train, live fields read from its folder."""
    st = effective_status(run) if st is None else st
    state = str(st.get("state", "created"))
    live = disk_live(run, st)
    devices = st.get("devices")
    return JobStatus(
        name=run.name, state=state, message=str(st.get("message", "")),
        device=st.get("queue_device") if state == "queued" or not devices else ", ".join(devices),
        here=state in ACTIVE_STATES,
        phase=state, step=live["step"], total_steps=live["total_steps"], train_loss=live["train_loss"],
        val_loss=live["val_loss"], lr=live["lr"], tokens_per_s=live["tokens_per_s"], eta_s=live["eta_s"],
        sample=live["sample"], sample_step=live["sample_step"], queued_at=st.get("queued_at"),
        started_at=st.get("started_at"), finished_at=st.get("updated_at") if state not in ACTIVE_STATES else None,
        error=str(st.get("message")) if state == "failed" else None, runner=runner_of(st),
        backend_state=st.get("ray_state"),
    )


def remaining_seconds(config: RunConfig, path: Path, resume: bool) -> float | None:
    """Estimated seconds of a run's training (what is left of it, when resumed)."""
    from genai_core.train.estimates import estimate  # torch-heavy timing code: only when a queue is shown

    try:
        est = estimate(config, calibrate=False)
    except Exception:  # an estimate must never break the queue view
        return None
    if est.total_seconds is None or not est.total_steps:
        return None
    done = (Run(path).status().get("step") or 0) if resume else 0
    return est.total_seconds * max(0, est.total_steps - int(done)) / est.total_steps
