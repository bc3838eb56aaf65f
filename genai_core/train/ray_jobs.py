"""Runs as Ray jobs: past one machine, Ray schedules and the run folder (on shared storage) records.

Each run becomes one job of Ray's Jobs API, whose entrypoint is the same command the local scheduler uses
(`python -m genai_core train --out RUN --from-saved`): Ray places it on a node with the CPUs it reserves
(its torch threads, so cells of a grid never oversubscribe a node) and keeps it running whether or not the
app is up. The Jobs API over Ray Train's TorchTrainer because a run here is one process with its own
run folder, checkpoints and signals already; TorchTrainer would only pay off for one run spanning several
nodes, which a model of this size does not need.

The cluster's nodes need this package's requirements, the repository at the same path, and the runs folder
on a filesystem they share with the app (NFS or similar): the app reads the curves from the folder and asks
Ray only for the job's state and log. `ray` is optional: without it every other runner works.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from functools import lru_cache
from typing import Any

from genai_core.config import REPO_ROOT, RunConfig
from genai_core.errors import GenAIError
from genai_core.runs.folder import Run
from genai_core.runs.status import ACTIVE_STATES, process_alive, process_token

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
"""Ray job states after which nothing more will happen."""
STATE_CACHE_S = 2.0
"""How long a job state read from the cluster is reused (the live view polls every second)."""

_states: dict[str, tuple[float, str, str]] = {}


def available() -> bool:
    """Whether `ray` (with its Jobs API client) can be imported here."""
    try:
        import ray.job_submission  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=8)
def client(address: str) -> Any:
    """A Jobs API client of the cluster at `address` (its dashboard, e.g. http://head:8265)."""
    if not available():
        raise GenAIError("the Ray runner needs the ray package: pip install 'ray[default]'")
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address if "://" in address else f"http://{address}")
    except Exception as e:  # ConnectionError, or ray's RuntimeError with the HTTP details
        client.cache_clear()
        raise GenAIError(f"cannot reach the Ray cluster at {address}: {str(e).splitlines()[0][:200]}") from None


def default_address() -> str:
    """The Ray dashboard address offered by default: $GENAI_RAY_ADDRESS, else Ray's own $RAY_API_SERVER_ADDRESS."""
    return os.environ.get("GENAI_RAY_ADDRESS") or os.environ.get("RAY_API_SERVER_ADDRESS") or ""


def reserved_threads(config: RunConfig) -> int:
    """The CPUs a job reserves, and the torch threads it may use: the run's `num_threads`, else one."""
    return config.train.num_threads or 1


def submit_run(run: Run, config: RunConfig, message: str, **note: Any) -> str:
    """Queue a run folder as a Ray job; returns the job's submission id (kept in status.json)."""
    address = str(config.train.ray_address)
    threads = reserved_threads(config)
    python = os.environ.get("GENAI_RAY_PYTHON", "python")
    # exec: the training process replaces the shell, so Ray's stop signal reaches it (and it checkpoints).
    entrypoint = f"exec {shlex.quote(python)} -m genai_core train --out {shlex.quote(str(run.path))} --from-saved"

    job_id = f"genai-{run.name}-{time.time_ns() // 1_000_000}"
    try:
        client(address).submit_job(
            entrypoint=entrypoint, submission_id=job_id, entrypoint_num_cpus=threads,
            entrypoint_num_gpus=1 if config.train.device == "cuda" else 0,
            runtime_env={"env_vars": {"GENAI_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO_ROOT)}},
            metadata={"run": str(run.path)},
        )
    except GenAIError:
        raise
    except Exception as e:
        raise GenAIError(f"the Ray cluster at {address} refused the job: {str(e).splitlines()[0][:200]}") from None
    run.write_status("queued", message, runner="ray", ray_address=address, ray_job=job_id,
                     queued_at=time.time(), **note)
    return job_id


def job_state(run: Run, status: dict[str, Any] | None = None) -> tuple[str, str]:
    """(Ray's state of the run's job, its message); ("UNKNOWN", why) when the cluster cannot say."""
    st = status if status is not None else run.read_status_raw()
    job_id, address = st.get("ray_job"), st.get("ray_address")
    if not job_id or not address:
        return "UNKNOWN", "not a Ray run"
    cached = _states.get(job_id)
    if cached is not None and time.monotonic() - cached[0] < STATE_CACHE_S:
        return cached[1], cached[2]
    try:
        info = client(address).get_job_info(job_id)
        state, message = str(getattr(info.status, "value", info.status)), str(info.message or "")
    except Exception as e:  # the cluster is down or forgot the job: say so, never break the page
        state, message = "UNKNOWN", f"the Ray cluster at {address} does not answer: {str(e).splitlines()[0][:120]}"
    _states[job_id] = (time.monotonic(), state, message)
    return state, message


def reconcile(run: Run, status: dict[str, Any]) -> dict[str, Any]:
    """A Ray run's status as the app should show it: a job Ray has ended while the folder still reads queued
    or running (it failed before training, or was killed outright) is recorded as interrupted."""
    if status.get("runner") != "ray" or status.get("state") not in ACTIVE_STATES:
        return status
    state, message = job_state(run, status)
    if state not in TERMINAL:
        return {**status, "ray_state": state}
    again = run.read_status_raw()  # the training process may have written its final state meanwhile
    if again.get("state") not in ACTIVE_STATES:
        return {**again, "ray_state": state}
    why = f"the Ray job ended ({state}{': ' + message if message else ''}) before the run recorded its end"
    run.write_status("interrupted", f"{why}; resume to continue from the last checkpoint")
    return {**run.read_status_raw(), "ray_state": state}


def stop_run(run: Run) -> str:
    """Stop a Ray run: SIGTERM to its training process when it runs on this machine (it checkpoints), else
    Ray's own stop (SIGTERM to the job, then a kill after Ray's grace period)."""
    st = run.read_status_raw()
    if st.get("state") == "running" and st.get("host") == process_token()["host"] and process_alive(st):
        os.kill(int(st["pid"]), signal.SIGTERM)
        return "stopping: it saves a checkpoint after the current step"
    client(str(st["ray_address"])).stop_job(str(st["ray_job"]))
    _states.pop(str(st["ray_job"]), None)
    if st.get("state") == "queued":
        run.write_status("stopped", "removed from the Ray queue")
        return "removed from the Ray queue"
    return "stopping"


def job_log(run: Run, max_chars: int = 20_000) -> str:
    """The tail of the job's log as Ray keeps it (the training's own output)."""
    st = run.read_status_raw()
    try:
        text = str(client(str(st["ray_address"])).get_job_logs(str(st["ray_job"])))
    except Exception as e:
        return f"(the Ray cluster did not return the log: {str(e).splitlines()[0][:200]})"
    return text[-max_chars:]
