"""Background training jobs: one run at a time per device, the others queued first-in first-out.

A `JobManager` is what the app (and a Python shell) uses to train without blocking: `submit` creates
the run folder at once with status `queued`, so a refresh, another tab or another process sees it.
Where it then trains is the config's `train.runner`:

- `thread`: a worker thread per device of this manager trains its queue with `trainer.train`;
- `process`: the run waits in the runs folder's on-disk queue and the scheduler (`launcher.py`) trains it
  in its own OS process, so it outlives this process;
- `ray`: a Ray job (`ray_jobs.py`).

The reading methods (`status`, `jobs`, `active`, `queue`, `recent_metrics`) merge the three: thread jobs
from memory, the others from their folders (so a restarted server re-attaches to runs still training).

    jm = JobManager()                      # runs_dir() by default
    jm.submit(config, "tiny-gpt")          # starts now, or queues behind the device's current job
    jm.status("tiny-gpt")                  # state from disk, live step/loss/ETA/sample from memory
    jm.stop("tiny-gpt")                    # running: checkpoint and stop; queued: leave the queue
    jm.resume("tiny-gpt")                  # continue a stopped/interrupted/failed run from its checkpoint
    jm.wait("tiny-gpt", timeout=60)
    jm.shutdown()                          # also runs at interpreter exit

The disk stays the source of truth: the live buffer of a job (the last metric rows, the latest
sample, step times for the ETA) only spares the UI from re-reading files every second. If the
process dies, `Run.status()` turns its `running` runs into `interrupted` by checking the pid, this
module does the same for the `queued` ones, and `resume` carries on from the last checkpoint.

The training threads never touch streamlit; the app holds one manager per process
(`st.cache_resource`) and polls `status` / `recent_metrics` from a fragment.

This module holds the manager (queues, lock, worker threads, the runs handed elsewhere); what a snapshot
and the live buffer hold is `job_status.py`, and what a worker thread does with one job is `thread_jobs.py`.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import threading
import time
import weakref
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from genai_core.config import RunConfig, RunnerKind
from genai_core.data.corpus import check_corpus
from genai_core.devices import resolve_device
from genai_core.errors import GenAIError
from genai_core.files import check_runs_cap, folder_bytes, runs_cap_bytes
from genai_core.qa.store import read_qa_table
from genai_core.runs.folder import KEEP_CHECKPOINTS, Run, list_runs, runs_dir, validate_run_name
from genai_core.runs.status import ACTIVE_STATES, runner_of, writer_of
from genai_core.train import launcher, ray_jobs
from genai_core.train.counts import checkpoint_bytes
from genai_core.train.job_status import (
    LIVE_ROWS,
    JobStatus,
    LiveLog,
    disk_live,
    disk_status,
    effective_status,
    remaining_seconds,
)
from genai_core.train.thread_jobs import ThreadJob, next_ready, run_thread_job

log = logging.getLogger(__name__)

SCHEDULER_CHECK_S = 5.0
"""How often the polling of the pages (and a CLI following a queued run) may look for queued process runs that no
scheduler serves."""
ATEXIT_TIMEOUT_S = 20.0
"""How long interpreter exit waits for running jobs to save their stop checkpoint."""


def device_key(device: str) -> str:
    """The queue a run waits in: `cpu`, `mps` or `cuda:N` (raises GenAIError if the device is absent).

    A bare `cuda` means device 0 here because the CUDA current device is per thread, and a fresh
    worker thread starts on device 0, which is where the Trainer's `torch.device("cuda")` will land.
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"cuda:{dev.index or 0}"
    return dev.type


# Managers still alive, shut down at interpreter exit (weak, so a dropped manager is not kept alive).
_MANAGERS: weakref.WeakSet[JobManager] = weakref.WeakSet()


def projected_bytes(config: RunConfig, run: Run | None) -> int:
    """Disk a run will still take: its checkpoints at their peak (KEEP_CHECKPOINTS + 1, from the config), less
    what its checkpoints folder holds now."""
    have = folder_bytes(run.checkpoints_path) if run is not None else 0
    return max(0, (KEEP_CHECKPOINTS + 1) * checkpoint_bytes(config.model, config.train) - have)


def check_cap_for(root: Path, config: RunConfig, run: Run | None) -> None:
    """Refuse a start or resume that the runs folder's cap cannot hold: besides what `root` holds now, every run
    that trains or waits there will still write its `projected_bytes`, this one too. `run` is the folder this
    start reuses (a resume, or a replaced run)."""
    if runs_cap_bytes() is None:
        return
    adding = projected_bytes(config, run)
    for other in list_runs(root):
        if other.state in ACTIVE_STATES and (run is None or other.name != run.name):
            try:
                adding += projected_bytes(other.config(), other)
            except GenAIError:  # a damaged config: that run will not train to write anything
                continue
    check_runs_cap(root, adding)


class JobManager:
    """Thread-safe queue of training jobs, one running job per device, each in a daemon worker thread.

    All public methods may be called from any thread. A worker thread exists only while its
    device has work; it runs `trainer.train` itself, and any exception (the run's status.json
    then says `failed` with the message) is caught so that the next queued job still starts.
    Torch's thread count is left to `config.train.num_threads` (which the Trainer applies).
    """

    def __init__(self, runs_root: Path | str | None = None, *, live_rows: int = LIVE_ROWS,
                 default_runner: RunnerKind = "thread") -> None:
        # Absolute, so that the run folders stay the same whatever the working directory becomes later.
        self.runs_root = Path(runs_root if runs_root is not None else runs_dir()).absolute()
        self.default_runner = default_runner
        """The runner of a submitted config that does not choose one (`train.runner` left at its default)."""
        self._live_rows = live_rows
        self._lock = threading.Lock()
        self._queues: dict[str, deque[ThreadJob]] = {}
        self._running: dict[str, ThreadJob] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._jobs: dict[str, ThreadJob] = {}  # latest job per name, finished ones included (for their live fields)
        # Runs this manager handed to the scheduler or Ray (in order): they are listed with its jobs after they
        # end, as thread jobs are. Live ones of any server are found on disk (`_detached_runs`).
        self._detached: dict[str, None] = {}
        self._scheduler_checked = 0.0
        self._closed = False
        _MANAGERS.add(self)

    def __repr__(self) -> str:
        return f"JobManager({str(self.runs_root)!r})"

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def run(self, name: str) -> Run:
        """Handle on the run folder `name` under this manager's root."""
        return Run(self.runs_root / validate_run_name(name))

    # ------------------------------------------------------------------ submitting
    def submit(self, config: RunConfig, name: str, *, replace: bool = False,
               note: dict[str, Any] | None = None) -> JobStatus:
        """Create run `name` with status `queued`, then start it on its device or queue it there.

        Refuses a name that is already queued or running here, or whose folder exists (unless
        `replace`, which deletes a run that is neither running nor queued and starts it afresh).
        The device and the corpus are checked now, so mistakes show at once rather than as a
        failed job later. `note` goes into the run's status.json with it (e.g. the estimate it was started
        with, which the app shows beside the measured speed).
        """
        validate_run_name(name)
        config = self._with_default_runner(config)
        # A Ray run's device is the node's business: this machine may have no GPU where the cluster has many.
        device = "ray" if config.train.runner == "ray" else device_key(config.train.device)
        if config.task == "qa":
            read_qa_table(config.data.corpus, max_rows=5)
            if config.data.val_corpus is not None:
                read_qa_table(config.data.val_corpus, max_rows=5)
            # The parent may still be queued here (a pretrain queued just before its fine-tune, as the
            # Home page's demo does): it must exist now, and have weights when this job starts.
            if not Run(config.parent).exists():
                raise GenAIError(f"parent run {config.parent} not found")
        else:
            check_corpus(config.data.corpus, config.data.text_column)
        if not config.name:
            config = config.model_copy(update={"name": name})
        check_cap_for(self.runs_root, config, Run(self.runs_root / name) if replace else None)
        with self._lock:
            self._check_open()
            self._check_not_here(name)
            run = Run(self.runs_root / name)
            if run.path.exists() and any(run.path.iterdir()):
                if not replace:
                    raise GenAIError(f"a run named {name!r} already exists in {self.runs_root}; "
                                     "choose another name, or resume or replace it")
                st = effective_status(run)
                if st.get("state") in ACTIVE_STATES:
                    raise GenAIError(f"cannot replace run {name!r}: it is {st['state']} in another process")
                shutil.rmtree(run.path)
            Run.create(run.path, config)
            if config.train.runner != "thread":
                try:
                    return self._queue_detached(run, config, device, f"waiting for {device}", **(note or {}))
                except GenAIError:  # e.g. the Ray cluster is unreachable: leave no half-made run behind
                    shutil.rmtree(run.path, ignore_errors=True)
                    raise
            job = ThreadJob(name, run.path, device, config, resume=False, live=LiveLog(run, self._live_rows))
            self._enqueue(job, run, f"waiting for {device}", **(note or {}))
            return self._status_of(job, run)

    def _with_default_runner(self, config: RunConfig) -> RunConfig:
        """`config` with this manager's default runner when it does not choose one itself."""
        if "runner" in config.train.model_fields_set or config.train.runner == self.default_runner:
            return config
        return config.model_copy(update={"train": config.train.model_copy(update={"runner": self.default_runner})})

    def _queue_detached(self, run: Run, config: RunConfig, device: str, message: str, **note: Any) -> JobStatus:
        """Caller holds the lock: hand the run to the runs folder's scheduler (runner process) or to Ray."""
        self._jobs.pop(run.name, None)
        self._detached.pop(run.name, None)
        self._detached[run.name] = None
        if config.train.runner == "ray":
            ray_jobs.submit_run(run, config, "waiting for Ray to place it on a node", queue_device="ray", **note)
        else:
            launcher.queue_run(run, config, message, queue_device=device, **note)
        return disk_status(run)

    def resume(self, name: str) -> JobStatus:
        """Queue a stopped, interrupted or failed run again to continue from its latest checkpoint.

        The trainer restores weights, optimizer, step, RNG and schedule, and truncates the logs to the
        checkpoint, so the curve and the learning-rate schedule continue where they were saved.
        """
        with self._lock:
            self._check_open()
            self._check_not_here(name)
            run = self.run(name)
            if not run.exists():
                raise GenAIError(f"no run named {name!r} in {self.runs_root}")
            st = effective_status(run)
            state = st.get("state")
            if state in ACTIVE_STATES:
                where = "in another process" if runner_of(st) == "thread" else "already"
                raise GenAIError(f"run {name!r} is {state} {where}")
            if state == "completed":
                raise GenAIError(f"run {name!r} has already completed ({st.get('step', '?')} steps); "
                                 "start a new run to train for longer")
            if run.latest_checkpoint() is None:
                raise GenAIError(f"cannot resume run {name!r}: it has no checkpoint yet; start it again "
                                 "(replace it) or under a new name")
            config = self._with_default_runner(run.config())  # a run saved before runners existed: ours
            device = "ray" if config.train.runner == "ray" else device_key(config.train.device)
            check_cap_for(self.runs_root, config, run)
            if config.train.runner != "thread":
                return self._queue_detached(run, config, device, f"waiting for {device} (to resume)")
            job = ThreadJob(name, run.path, device, config, resume=True, live=LiveLog(run, self._live_rows))
            self._enqueue(job, run, f"waiting for {device} (to resume)")
            return self._status_of(job, run)

    def _check_open(self) -> None:
        if self._closed:
            raise GenAIError("the job manager has been shut down; create a new one")

    def _check_not_here(self, name: str) -> None:
        """Caller holds the lock."""
        job = self._jobs.get(name)
        if job is not None and not job.done.is_set():
            where = "running" if job in self._running.values() else "queued"
            raise GenAIError(f"a run named {name!r} is already {where}")

    def _enqueue(self, job: ThreadJob, run: Run, message: str, **note: Any) -> None:
        """Caller holds the lock: mark the run queued on disk, queue it, make sure a worker serves it."""
        # The pid token lets a later process tell a dead queue from a live one (see effective_status).
        run.write_status("queued", message, runner="thread", queued_at=job.queued_at, **note)
        self._detached.pop(job.name, None)
        self._jobs.pop(job.name, None)  # re-insert so that jobs() lists in order of (re)submission
        self._jobs[job.name] = job
        self._queues.setdefault(job.device, deque()).append(job)
        self._start_worker(job.device)

    def _start_worker(self, device: str) -> None:
        """Caller holds the lock: make sure a worker thread serves `device`'s queue."""
        worker = self._workers.get(device)
        if worker is None or not worker.is_alive():
            worker = threading.Thread(target=self._work, args=(device,), name=f"genai-jobs[{device}]", daemon=True)
            self._workers[device] = worker
            worker.start()

    # ------------------------------------------------------------------ stopping
    def stop(self, name: str) -> JobStatus:
        """Running: ask it to stop (within one step it saves a checkpoint, then reads `stopped`).
        Queued: take it out of the queue (`stopped`, "removed from the queue")."""
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and not job.done.is_set():
                queue = self._queues.get(job.device, deque())
                if job in queue:
                    queue.remove(job)
                    self._finish_unstarted(job, "removed from the queue")
                else:
                    job.stop_event.set()
                    job.live.set_phase("stopping")
                return self._status_of(job, Run(job.path))
        run = self.run(name)
        if not run.path.is_dir():
            raise GenAIError(f"no run named {name!r} in {self.runs_root}")
        st = effective_status(run)
        runner = runner_of(st)
        if st.get("state") in ACTIVE_STATES and runner != "thread":
            (ray_jobs.stop_run if runner == "ray" else launcher.stop_run)(run)
            return disk_status(run)
        if st.get("state") == "running" and writer_of(run.path) is not None:
            run.request_stop()  # its trainer (a CLI, another server's thread) sees it at its next step
            return disk_status(run)
        if st.get("state") in ACTIVE_STATES:
            raise GenAIError(f"run {name!r} is {st['state']} in another process (pid {st.get('pid')}); stop it there")
        raise GenAIError(f"run {name!r} is not running or queued (it is {st.get('state')})")

    def _finish_unstarted(self, job: ThreadJob, message: str) -> None:
        """Caller holds the lock and has taken `job` out of its queue."""
        run = Run(job.path)
        if run.path.is_dir():  # writing would re-create a folder someone deleted
            run.write_status("stopped", message)
        job.live.set_phase("stopped")
        job.finished_at = time.time()
        job.done.set()

    def shutdown(self, stop_running: bool = True, timeout: float | None = 30.0) -> bool:
        """Refuse new jobs, take queued ones out of the queue (`stopped`) and wait for the workers.

        With `stop_running`, running jobs are asked to stop (each saves a checkpoint, so they can be
        resumed); otherwise they are left to finish. Returns True if every worker ended within
        `timeout` seconds (a job still preparing a large corpus only stops at its first step).
        """
        with self._lock:
            self._closed = True
            for queue in self._queues.values():
                while queue:
                    self._finish_unstarted(queue.popleft(), "removed from the queue: the job manager shut down")
            if stop_running:
                for job in self._running.values():
                    job.stop_event.set()
                    job.live.set_phase("stopping")
            workers = list(self._workers.values())
        _MANAGERS.discard(self)
        deadline = None if timeout is None else time.monotonic() + timeout
        for w in workers:
            w.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in workers)

    # ------------------------------------------------------------------ the worker
    def _work(self, device: str) -> None:
        """Worker thread of one device: run its queue to the end, then go away."""
        me = threading.current_thread()
        while True:
            with self._lock:
                queue = self._queues.get(device)
                job = next_ready(queue) if queue else None
                if job is None:
                    # Nothing that may start (empty, or only runs waiting for a parent that is not done).
                    # Leaving under the lock: a submit after this point sees no worker and starts one.
                    if self._workers.get(device) is me:
                        del self._workers[device]
                    return
                queue.remove(job)
                job.started_at = time.time()
                job.live.set_phase("starting")
                self._running[device] = job
            try:
                run_thread_job(job)
            except BaseException:  # a bug here must not strand the rest of the queue
                log.exception("job %s: unexpected error in the job worker", job.name)
            finally:
                with self._lock:
                    job.finished_at = time.time()
                    if self._running.get(device) is job:
                        del self._running[device]
                job.done.set()
                # Readers of an ended job go to metrics.jsonl: a long-lived app must not hoard every curve.
                job.live.release_rows()
                self._wake_waiting(device)

    def _wake_waiting(self, finished_on: str) -> None:
        """After a job ends, start workers for other devices' queues whose runs may now be ready (a parent
        that trained on another device)."""
        with self._lock:
            if self._closed:
                return
            for device, queue in self._queues.items():
                if device != finished_on and queue and device not in self._workers:
                    self._start_worker(device)

    def forget(self, name: str) -> None:
        """Drop what this manager remembers of a finished job (after its folder is renamed or deleted)."""
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and job.done.is_set():
                del self._jobs[name]
            self._detached.pop(name, None)

    # ------------------------------------------------------------------ runs trained elsewhere
    def _detached_runs(self) -> list[tuple[Run, dict[str, Any]]]:
        """Runs handed to the scheduler or Ray that are queued or running now (by whichever server handed them
        over, so a restarted server re-attaches), and every run this manager handed over; by queueing time."""
        found: list[tuple[float, Run, dict[str, Any]]] = []
        try:
            paths = list(self.runs_root.iterdir())
        except OSError:
            return []
        for path in paths:
            if path.name.startswith(".") or not path.is_dir():
                continue
            run = Run(path)
            raw = run.read_status_raw()
            if runner_of(raw) == "thread":
                continue
            if raw.get("state") in ACTIVE_STATES or path.name in self._detached:
                found.append((float(raw.get("queued_at") or 0.0), run, effective_status(run)))
        found.sort(key=lambda x: (x[0], x[1].name))
        self._keep_queue_moving([(r, st) for _, r, st in found])
        return [(r, st) for _, r, st in found]

    def _keep_queue_moving(self, runs: list[tuple[Run, dict[str, Any]]]) -> None:
        """The scheduler exits when its queue is empty and is started again by the next submit; should it have
        died (killed with its machine's session), the app's polling starts a new one for runs that can go."""
        if time.monotonic() - self._scheduler_checked < SCHEDULER_CHECK_S:
            return
        self._scheduler_checked = time.monotonic()
        if any(st.get("state") == "queued" and st.get("runner") == "process" and launcher.startable(r)
               for r, st in runs):
            launcher.ensure_scheduler(self.runs_root)

    def log(self, name: str, max_chars: int = 20_000) -> str:
        """The tail of the output of a run's own training process (runner process: `train.log`; Ray: the job's
        log as Ray keeps it); empty for thread runs, whose events the live view shows."""
        run = self.run(name)
        runner = runner_of(run.read_status_raw())
        if runner == "ray":
            return ray_jobs.job_log(run, max_chars)
        try:
            with open(run.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - max_chars))
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------------ reading
    def status(self, name: str) -> JobStatus:
        """State of run `name` from disk, with the live fields when it is a job of this manager."""
        with self._lock:
            job = self._jobs.get(name)
        run = Run(job.path) if job is not None else self.run(name)
        if job is None and not run.path.is_dir():
            raise GenAIError(f"no run named {name!r} in {self.runs_root}")
        return self._status_of(job, run) if job is not None else disk_status(run)

    def _status_of(self, job: ThreadJob, run: Run) -> JobStatus:
        """Snapshot of a job of this manager. Takes no lock (submit/resume/stop call it holding one)."""
        position = self._queue_position(job)
        st = effective_status(run)
        state, message = str(st.get("state", "created")), str(st.get("message", ""))
        running_here = job.started_at is not None and not job.done.is_set()
        if running_here and state in ("created", "queued"):
            state, message = "running", "preparing data"  # the window before train() re-creates the run
        snap = job.live.snapshot()
        if not running_here:
            snap["eta_s"] = None
        return JobStatus(
            name=job.name, state=state, message=message, device=job.device, here=not job.done.is_set(),
            resume=job.resume, queue_position=position, phase=snap["phase"],
            step=snap["step"] if snap["step"] is not None else st.get("step"),
            total_steps=snap["total_steps"] if snap["total_steps"] is not None else st.get("total_steps"),
            train_loss=snap["train_loss"], val_loss=snap["val_loss"], lr=snap["lr"],
            tokens_per_s=snap["tokens_per_s"], eta_s=snap["eta_s"], sample=snap["sample"],
            sample_step=snap["sample_step"], notices=snap["notices"], queued_at=job.queued_at,
            started_at=job.started_at, finished_at=job.finished_at, error=job.error,
        )

    def _queue_position(self, job: ThreadJob) -> int | None:
        # deque iteration while another thread mutates it raises RuntimeError; copy it atomically
        # (list(deque) is a single C call under the GIL).
        queue = list(self._queues.get(job.device, ()))
        return queue.index(job) + 1 if job in queue else None

    def jobs(self) -> list[JobStatus]:
        """Every job of this manager (queued, running, finished), in order of submission, then the runs handed
        to the scheduler or Ray: those this manager handed over and any queued or running now."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [self._status_of(j, Run(j.path)) for j in jobs] + [disk_status(r, st)
                                                                  for r, st in self._detached_runs()]

    def queue(self, device: str | None = None) -> list[JobStatus]:
        """Queued jobs in the order they will start (per device; all devices when None); runs queued for the
        scheduler or Ray follow, oldest first."""
        with self._lock:
            jobs = [j for d, q in sorted(self._queues.items()) if device in (None, d) for j in q]
        mine = [self._status_of(j, Run(j.path)) for j in jobs]
        theirs: list[JobStatus] = []
        positions: dict[str, int] = {}
        for r, st in self._detached_runs():
            queue = str(st.get("queue_device") or "")
            if st.get("state") == "queued" and device in (None, queue):
                positions[queue] = positions.get(queue, 0) + 1
                theirs.append(replace(disk_status(r, st), queue_position=positions[queue]))
        return mine + theirs

    def queue_waits(self) -> dict[str, float | None]:
        """Seconds until each queued job starts (None when unknown): what is left of the device's running job
        (its live ETA) plus the estimated time of every job ahead of it (`estimates.estimate`, nothing timed
        anew). A job waiting for its parent, or behind a job whose length is unknown, reads None."""
        with self._lock:
            queues = {d: [(j.name, j.config, j.path, j.resume, j.live.snapshot()["phase"].startswith("waiting for"))
                          for j in q]
                      for d, q in self._queues.items()}
            running = {d: (j.live.snapshot()["eta_s"], j.config, j.path, j.resume) for d, j in self._running.items()}
        # The scheduler's queue (runner process) is served the same way, one run per device; Ray's is Ray's.
        for run, st in self._detached_runs():
            device = str(st.get("queue_device") or "")
            if st.get("runner") != "process" or not device:
                continue
            if st.get("state") == "running":
                eta = disk_live(run, st)["eta_s"]
                running.setdefault(device, (eta, None, run.path, False))
            elif st.get("state") == "queued":
                try:
                    cfg = run.config()
                except GenAIError:
                    continue
                queues.setdefault(device, []).append(
                    (run.name, cfg, run.path, run.latest_checkpoint() is not None, bool(st.get("waiting_for"))))
        waits: dict[str, float | None] = {}
        for device, queue in queues.items():
            ahead: float | None = 0.0
            if device in running:
                eta, cfg, path, resume = running[device]
                ahead = eta if eta is not None or cfg is None else remaining_seconds(cfg, path, resume)
            for name, cfg, path, resume, waiting in queue:
                waits[name] = None if waiting else ahead
                own = None if waiting else remaining_seconds(cfg, path, resume)
                ahead = None if ahead is None or (own is None and not waiting) else ahead + (own or 0.0)
        return waits


    def active(self) -> list[JobStatus]:
        """The running jobs (at most one per device), then the runs training in their own process or on Ray."""
        with self._lock:
            jobs = [self._running[d] for d in sorted(self._running)]
        return [self._status_of(j, Run(j.path)) for j in jobs] + [
            disk_status(r, st) for r, st in self._detached_runs() if st.get("state") == "running"]

    def recent_metrics(self, name: str) -> list[dict[str, Any]]:
        """The last metric rows of run `name` (up to `live_rows`): from memory while it is queued or
        running here, else from metrics.jsonl. The whole curve is always `Run.metrics()`."""
        with self._lock:
            job = self._jobs.get(name)
        if job is not None and not job.done.is_set():
            return job.live.rows()
        run = Run(job.path) if job is not None else self.run(name)
        return run.metrics()[-self._live_rows:]

    def wait(self, name: str, timeout: float | None = None) -> JobStatus:
        """Block until job `name` of this manager, or a run handed to the scheduler or Ray by any manager, has
        ended; its final status.

        Raises TimeoutError if it is still queued or running after `timeout` seconds. A run trained by another
        process's thread is returned as it is on disk, without waiting.
        """
        with self._lock:
            job = self._jobs.get(name)
        detached = job is None and runner_of(self.run(name).read_status_raw()) != "thread"
        if job is not None and not job.done.wait(timeout):
            st = self._status_of(job, Run(job.path))
            raise TimeoutError(f"run {name!r} is still {st.state} (step {st.step}) after {timeout} s")
        if detached:
            deadline = None if timeout is None else time.monotonic() + timeout
            while (st := self.status(name)).active:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"run {name!r} is still {st.state} (step {st.step}) after {timeout} s")
                self._detached_runs()  # keeps the scheduler alive while we wait, as the app's polling does
                time.sleep(0.2)
        return self.status(name)


def _shutdown_all() -> None:
    """At interpreter exit, stop running jobs cleanly so that each leaves a resumable checkpoint."""
    for manager in list(_MANAGERS):
        try:
            manager.shutdown(stop_running=True, timeout=ATEXIT_TIMEOUT_S)
        except Exception:  # exit must go on whatever happens
            log.exception("shutting down %r", manager)


atexit.register(_shutdown_all)
