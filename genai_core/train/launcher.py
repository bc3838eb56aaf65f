"""Training in its own OS process: the runs folder's on-disk queue and the scheduler that serves it.

A run with `train.runner: process` is queued by writing its folder (config.json, and status.json saying
`queued`, with no owning process). The queue *is* those folders, oldest `queued_at` first; nothing lives
only in a server's memory, so a restarted server, a second server on the same folder, or no server at all
see the same queue.

    queue_run(run, config)     # status queued (ownerless), then make sure a scheduler is up
    ensure_scheduler(root)     # start `python -m genai_core scheduler` detached unless one is alive
    stop_run(run)              # queued: leave the queue; running: SIGTERM (it checkpoints and stops)

The scheduler (`serve`) is one detached process per runs folder and machine (it holds a file lock for its
life, so a second one exits at once). Every second, under the queue lock, it starts each queued run whose
devices are free, as `python -m genai_core train --out RUN --from-saved` (or under `torchrun` for several
GPUs), in its own process, its output in the run's `train.log`. It records how each child ended (a process
killed outright reads `interrupted`, "possibly out of memory" for SIGKILL), and exits when nothing is queued
or training. Which devices are busy is read from the disk (runs `running` with a live pid), so a run
orphaned by a killed scheduler still holds its device. Each scheduler has a keeper (`queue_keeper.py`, a bare
interpreter waiting on its pid) that restarts it if it dies while runs still wait. One run per device: the
CPU is one device, each GPU is one (a single-GPU run takes any free GPU through CUDA_VISIBLE_DEVICES).

The lock is `fcntl.flock`: POSIX machines with a local (or flock-honouring) runs folder. Across machines,
use the Ray runner (`ray_jobs.py`), which leaves the scheduling to Ray.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from genai_core.config import RunConfig, child_env
from genai_core.errors import GenAIError
from genai_core.files import file_lock
from genai_core.runs.folder import Run
from genai_core.runs.status import process_alive, process_token, writer_of
from genai_core.train.job_status import parent_not_ready

log = logging.getLogger(__name__)

QUEUE_FOLDER = ".queue"
"""Under the runs folder: the locks and the scheduler's own log (a dot folder, so it is never listed as a run)."""
POLL_S = 1.0
"""How often the scheduler looks at the queue and its children."""
MEMORY_FRACTION = 0.85
"""Default ceiling of a training process's memory, as a fraction of the machine's: past it the run fails with
"out of memory" instead of the kernel's OOM killer picking a victim (the server, another run)."""

_spawned: list[subprocess.Popen[bytes]] = []  # schedulers this process started, reaped so none lingers as a zombie


# --------------------------------------------------------------------------- locks
def queue_lock(root: Path) -> Any:
    """The lock under which a queued run is started or taken out of the queue (never both)."""
    return file_lock(Path(root) / QUEUE_FOLDER / "queue.lock")


def scheduler_lock(root: Path) -> Any:
    """The lock the one scheduler of `root` holds for its life: on the runs folder itself, so that removing or
    replacing `.queue` cannot let a second scheduler in."""
    return file_lock(Path(root), blocking=False)


# --------------------------------------------------------------------------- memory
def memory_limit_bytes() -> int | None:
    """The data-segment ceiling a training process sets itself: $GENAI_MEMORY_LIMIT_GB (0 = none), else
    `MEMORY_FRACTION` of the machine's memory."""
    env = os.environ.get("GENAI_MEMORY_LIMIT_GB", "").strip()
    if env:
        try:
            gb = float(env)
        except ValueError:
            raise GenAIError(f"GENAI_MEMORY_LIMIT_GB must be a number of GB, not {env!r}") from None
        return int(gb * 2**30) if gb > 0 else None
    return int(psutil.virtual_memory().total * MEMORY_FRACTION)


def apply_memory_limit(device: str) -> None:
    """Cap this process's memory (RLIMIT_DATA), so that exhausting it raises a catchable out-of-memory error
    (the run then fails with that message) rather than waking the kernel's OOM killer. CPU training only:
    CUDA maps large writable host regions that such a limit would refuse, and a GPU's own OOM is catchable."""
    if device not in ("cpu", "auto"):
        return
    if device == "auto":
        import torch

        if torch.cuda.is_available() or torch.backends.mps.is_available():
            return
    limit = memory_limit_bytes()
    if limit is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


# --------------------------------------------------------------------------- queue
def queue_run(run: Run, config: RunConfig, message: str, **note: Any) -> None:
    """Put a run folder in the on-disk queue and make sure a scheduler serves it. The queue's folder is made
    usable first: a run is never left queued where no scheduler could start."""
    folder = run.path.parent / QUEUE_FOLDER
    try:
        folder.mkdir(exist_ok=True)
        with file_lock(folder / "queue.lock"):
            pass
    except OSError as e:
        raise GenAIError(f"cannot queue {run.name}: the queue's folder {folder} is not usable ({e}); remove "
                         "what is in its place") from None
    run.write_status("queued", message, runner="process", queued_at=time.time(), **note)
    ensure_scheduler(run.path.parent)


def heal_queue(root: Path) -> bool:
    """Restart the scheduler of `root` if runs wait in its queue with none serving them (it was killed, or its
    machine restarted). Whatever is still alive calls this: a trainer as it exits, a CLI following a queued run,
    the next CLI command, any page. Returns True if one was started."""
    root = Path(root)
    if not (root / QUEUE_FOLDER).is_dir() or not any(startable(r) for r in queued_runs(root)):
        return False
    return ensure_scheduler(root)


def queued_runs(root: Path) -> list[Run]:
    """The process runs waiting in `root`'s queue, first in first out."""
    found: list[tuple[float, str, Run]] = []
    for path in Path(root).iterdir() if Path(root).is_dir() else ():
        if path.name.startswith(".") or not path.is_dir():
            continue
        raw = Run(path).read_status_raw()
        if raw.get("state") == "queued" and raw.get("runner") == "process":
            found.append((float(raw.get("queued_at") or 0.0), path.name, Run(path)))
    return [r for _, _, r in sorted(found, key=lambda x: x[:2])]


def busy_devices(root: Path) -> set[str]:
    """Devices held by runs of `root` that are training on this machine right now (from their status)."""
    busy: set[str] = set()
    for path in Path(root).iterdir() if Path(root).is_dir() else ():
        if path.name.startswith(".") or not path.is_dir():
            continue
        st = Run(path).status()
        if st.get("state") == "running" and process_alive(st):
            busy.update(st.get("devices") or [_device_of(str(st.get("device") or "cpu"))])
    return busy


def _device_of(device: str) -> str:
    """`cuda` -> `cuda:0`; `cpu`, `mps`, `cuda:N` unchanged."""
    return "cuda:0" if device == "cuda" else device


def stop_run(run: Run) -> str:
    """Stop a process run: take it out of the queue, or SIGTERM its training process (which saves a checkpoint
    and writes `stopped` within a step). Returns what was done, for the caller to show."""
    with queue_lock(run.path.parent):
        st = run.status()
        if st.get("state") == "queued":
            run.write_status("stopped", "removed from the queue")
            return "removed from the queue"
    if st.get("state") != "running":
        raise GenAIError(f"run {run.name!r} is not running or queued (it is {st.get('state')})")
    if not process_alive(st):
        raise GenAIError(f"run {run.name!r}: its training process has ended")
    if st.get("host") not in (None, _host()):
        raise GenAIError(f"run {run.name!r} trains on {st.get('host')}; stop it there")
    # Said on disk first: a process signalled before it can catch the signal ends without writing `stopped`,
    # and the scheduler then knows the person asked for it.
    owner = {k: st[k] for k in ("pid", "host", "started") if k in st}
    run.write_status("running", str(st.get("message", "")), owner=owner, stop_requested=True)
    os.kill(int(st["pid"]), signal.SIGTERM)
    return "stopping: it saves a checkpoint after the current step"


def _host() -> str:
    return str(process_token()["host"])


# --------------------------------------------------------------------------- the scheduler
def ensure_scheduler(root: Path) -> bool:
    """Start the scheduler of `root` (detached: it outlives this process) unless one is alive.
    Returns True if one was started. Two callers racing may start two; the second exits on its lock."""
    root = Path(root).absolute()
    for p in list(_spawned):
        if p.poll() is not None:
            _spawned.remove(p)
    with scheduler_lock(root) as free:
        if not free:
            return False
    (root / QUEUE_FOLDER).mkdir(exist_ok=True)  # removed by hand, perhaps: its locks and log live there
    with open(root / QUEUE_FOLDER / "scheduler.log", "ab") as out:  # the child has its own copy of the descriptor
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "genai_core", "scheduler", "--runs-dir", str(root)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=child_env(),
            start_new_session=True,  # not in the server's process group: a Ctrl-C or kill of the server spares it
        )
        # Its keeper restarts it if it dies while runs wait (queue_keeper.py), from its first instant: a
        # scheduler killed while still importing, or between two launches, leaves no one else alive to do it.
        keeper = subprocess.Popen(
            [sys.executable, "-m", "genai_core.train.queue_keeper", str(root), str(scheduler.pid)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True,
        )
        _spawned.extend((scheduler, keeper))
    return True


def train_command(run: Run, config: RunConfig) -> list[str]:
    """The command that trains a queued run folder: the CLI, under torchrun when it spans several GPUs."""
    cli = ["-m", "genai_core", "train", "--out", str(run.path), "--from-saved"]
    if config.train.gpus > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={config.train.gpus}", *cli]
    return [sys.executable, *cli]


def _devices_for(config: RunConfig, busy: set[str]) -> list[str] | None:
    """The devices a run would take now, or None if they are not free (one run per device)."""
    from genai_core.devices import resolve_device

    dev = resolve_device(config.train.device)
    if dev.type == "cuda":
        import torch

        if config.train.device == "cuda" and dev.index is not None:
            wanted = [f"cuda:{dev.index}"]
        else:
            wanted = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        free = [d for d in wanted if d not in busy]
        return free[:config.train.gpus] if len(free) >= config.train.gpus else None
    return None if dev.type in busy else [dev.type]


class _Child:
    def __init__(self, run: Run, proc: subprocess.Popen[bytes], devices: list[str], started_at: float) -> None:
        self.run, self.proc, self.devices, self.started_at = run, proc, devices, started_at


def serve(root: Path, *, poll_s: float = POLL_S) -> None:
    """The scheduler's loop (see the module docstring). Returns at once if another scheduler serves `root`."""
    root = Path(root).absolute()
    while True:
        with scheduler_lock(root) as mine:
            if not mine:
                return
            children: list[_Child] = []
            while True:
                with queue_lock(root):
                    for child in [c for c in children if c.proc.poll() is not None]:
                        children.remove(child)
                        _record_exit(child)
                    waiting = _start_ready(root, children)
                    last_look = time.time()
                if not children and not waiting:
                    break
                time.sleep(poll_s)
        # A run queued between that last look and the lock's release found a scheduler still holding it, so
        # nobody started one for it: look again now that the lock is free.
        if not any(startable(r) and float(r.read_status_raw().get("queued_at") or 0) >= last_look - 1
                   for r in queued_runs(root)):
            return


def startable(run: Run) -> bool:
    """A queued run whose parent (if any) lets it start: what is worth starting a scheduler for."""
    try:
        return parent_not_ready(run.config()) is None
    except GenAIError:
        return True  # the scheduler will fail it with the reason


def _start_ready(root: Path, children: list[_Child]) -> bool:
    """Under the queue lock: start every queued run whose devices are free. Returns whether runs still wait
    for something that will happen without anyone acting (a busy device, a parent still training)."""
    busy = busy_devices(root) | {d for c in children for d in c.devices}
    blocked: set[str] = set()  # device kinds whose first queued run could not start: no overtaking it
    waiting = False
    for run in queued_runs(root):
        holder = writer_of(run.path)
        if holder is not None and process_alive(holder):
            # Launched by a scheduler killed before it could say so: the trainer runs, so record it as running.
            devices = [_device_of(str(run.read_status_raw().get("device") or "cpu"))]
            run.write_status("running", "training (its launch was recorded late)", devices=devices,
                             owner={k: holder[k] for k in ("pid", "host", "started") if k in holder})
            busy.update(devices)
            continue
        try:
            config = run.config()
        except GenAIError as e:
            run.write_status("failed", f"cannot start: {e}")
            continue
        why = parent_not_ready(config)
        if why is not None:
            if run.read_status_raw().get("message") != why[0]:
                run.write_status("queued", why[0], waiting_for=why[1])
            waiting = waiting or why[2]
            continue
        kind = "cuda" if config.train.device in ("auto", "cuda") else config.train.device
        devices = None if kind in blocked else _devices_for(config, busy)
        if devices is None:
            blocked.add(kind)
            waiting = True
            continue
        children.append(_launch(run, config, devices))
        busy.update(devices)
    return waiting


def _launch(run: Run, config: RunConfig, devices: list[str]) -> _Child:
    env: dict[str, str] = {}
    if devices[0].startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = ",".join(d.split(":")[1] for d in devices)
    with open(run.log_path, "ab") as out:
        out.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} started on {', '.join(devices)}\n".encode())
        out.flush()
        proc = subprocess.Popen(train_command(run, config), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=child_env(**env))
    owner = {"pid": proc.pid, "host": _host(), "started": round(psutil.Process(proc.pid).create_time(), 2)}
    started_at = time.time()
    run.write_status("running", "starting its training process", owner=owner, devices=devices,
                     started_at=started_at)
    return _Child(run, proc, devices, started_at)


def _record_exit(child: _Child) -> None:
    """A child ended: if it left no final state (killed, crashed in native code), say how it ended."""
    code = child.proc.returncode
    raw = child.run.read_status_raw()
    # Only a state this child left (its launch stamp; under torchrun the pid is rank 0's, not the child's): the
    # run may already be stopped, or queued again by a resume.
    if raw.get("state") != "running" or raw.get("started_at") != child.started_at:
        return
    if raw.get("stop_requested"):
        child.run.write_status("stopped", "stopped by request before training began", exit_code=code)
        return
    if code is not None and code < 0:
        sig = signal.Signals(-code).name
        why = f"the training process was killed ({sig})"
        if -code == signal.SIGKILL:
            why += ", possibly by the system running out of memory"
    else:
        why = f"the training process exited with code {code} (see {child.run.log_path.name})"
    child.run.write_status("interrupted", f"{why}; resume to continue from the last checkpoint", exit_code=code)
