"""The job manager: FIFO queue per device, stop / resume, failures, names, live status, shutdown.

Every test trains real tiny models on a ~20 KB text in a fresh runs folder, and waits on events or
on observed state (never on a fixed sleep), so the order of things is checked, not assumed.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import english_like, tiny_config

from genai_core.config import RunConfig
from genai_core.errors import CorpusError, GenAIError
from genai_core.runs.folder import Run
from genai_core.train import trainer
from genai_core.train.jobs import JobManager, JobStatus

TIMEOUT = 60.0  # generous for a loaded 2-core machine; a healthy run of these tests takes seconds


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jobs-corpus") / "small.txt"
    path.write_text("\n".join(english_like(500, seed=3)) + "\n", encoding="utf-8")
    assert 15_000 < path.stat().st_size < 30_000
    return path


@pytest.fixture
def jm(tmp_path: Path) -> Iterator[JobManager]:
    manager = JobManager(tmp_path / "runs")
    try:
        yield manager
    finally:
        assert manager.shutdown(stop_running=True, timeout=30), "a worker thread did not end"
        assert not manager.active()


def cfg(corpus: Path, **train: Any) -> RunConfig:
    """tiny_config on the CPU (one queue, whatever the machine), with rare evaluations for long runs."""
    train.setdefault("device", "cpu")
    return tiny_config(corpus, **train)


def wait_until(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll a condition (the training thread advances on its own; there is nothing to join yet)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def steps(run: Run) -> list[int]:
    return [int(r["step"]) for r in run.metrics()]


# --------------------------------------------------------------------------- queueing
def test_second_job_queues_behind_the_first_and_starts_after_it_ends(jm: JobManager, corpus: Path) -> None:
    a = jm.submit(cfg(corpus, max_steps=100, eval_interval=50), "first")
    b = jm.submit(cfg(corpus, max_steps=20), "second")
    assert a.device == b.device == "cpu"
    assert b.state == "queued" and b.here  # (its position is 2 if the worker has not taken the first yet)
    # The folder exists at once, queued, so another tab or process sees it.
    assert Run(jm.runs_root / "second").status()["state"] == "queued"
    assert Run(jm.runs_root / "second").config().name == "second"

    wait_until(lambda: (jm.status("first").step or 0) >= 1, "the first job to train")
    queued, running = [s.name for s in jm.queue()], [s.name for s in jm.active()]
    assert (queued, running) == (["second"], ["first"])
    assert (jm.status("second").state, jm.status("second").queue_position) == ("queued", 1)

    fa, fb = jm.wait("first", TIMEOUT), jm.wait("second", TIMEOUT)
    assert (fa.state, fb.state) == ("completed", "completed"), (fa.message, fb.message)
    assert (fa.step, fb.step) == (100, 20)
    assert [s.name for s in jm.jobs()] == ["first", "second"] and not jm.queue() and not jm.active()

    # No overlap, from the disk: the first run's final status was written before the second started.
    da, db = Run(jm.runs_root / "first").read_status_raw(), Run(jm.runs_root / "second").read_status_raw()
    assert da["updated_at"] <= db["started_at"]
    assert db["queued_at"] < da["updated_at"]  # ... and the second really was waiting meanwhile
    assert fa.finished_at is not None and fb.started_at is not None and fa.finished_at <= fb.started_at
    assert steps(Run(jm.runs_root / "first"))[-1] == 100 and steps(Run(jm.runs_root / "second"))[-1] == 20


# --------------------------------------------------------------------------- stop / live status / resume
def test_live_status_then_stop_and_resume_continue_the_curve(jm: JobManager, corpus: Path) -> None:
    total = 600  # about a second of training: ample time to stop it half-way
    jm.submit(cfg(corpus, max_steps=total, eval_interval=50, log_interval=5), "long")

    def live() -> JobStatus:
        return jm.status("long")

    wait_until(lambda: (live().step or 0) >= 12 and live().eta_s is not None, "live progress")
    seen = live()
    assert jm.stop("long").phase == "stopping"  # stop at once (the run must not finish), then check what was seen
    assert seen.state == "running" and seen.here and seen.phase == "training"
    assert seen.total_steps == total and 12 <= seen.step < total
    assert seen.train_loss is not None and math.isfinite(seen.train_loss) and seen.lr and seen.lr > 0
    assert seen.tokens_per_s and seen.tokens_per_s > 0 and seen.eta_s is not None and seen.eta_s > 0
    rows = jm.recent_metrics("long")
    assert rows and {r["step"] for r in rows} <= set(steps(Run(jm.runs_root / "long")))

    stopped = jm.wait("long", TIMEOUT)
    run = Run(jm.runs_root / "long")
    assert stopped.state == "stopped" and not stopped.here, stopped.message
    assert seen.step <= stopped.step < total
    ckpt = run.latest_checkpoint()
    assert ckpt is not None and ckpt.name == f"step_{stopped.step:08d}"
    assert stopped.eta_s is None
    before = run.metrics()

    # A new manager (as after a restart of the app) sees the stopped run on disk and resumes it.
    with JobManager(jm.runs_root) as jm2:
        assert jm2.status("long").state == "stopped" and not jm2.status("long").here
        assert jm2.status("long").step == stopped.step
        resumed = jm2.resume("long")
        assert resumed.resume and resumed.state in ("queued", "running")
        with pytest.raises(GenAIError, match=r"'long' is already"):
            jm2.resume("long")
        done = jm2.wait("long", TIMEOUT)
        assert done.state == "completed", done.message
        assert done.step == total and done.resume
        assert run.read_status_raw()["started_step"] == stopped.step  # the trainer started from the checkpoint
        with pytest.raises(GenAIError, match="already completed"):
            jm2.resume("long")
    s = steps(run)
    assert s[-1] == total and all(a < b for a, b in itertools.pairwise(s))
    # The rows logged before the stop are kept as they were (a fresh re-run would have other timings).
    assert before and [r for r in run.metrics() if r["step"] <= stopped.step] == before
    # The schedule continued: every logged lr is the schedule's value at its step, across the stop.
    t = run.config().train
    for r in run.metrics():
        assert r["lr"] == pytest.approx(trainer.lr_at(r["step"] - 1, t.lr, t.warmup_steps, total, t.min_lr_ratio))


def test_stopping_a_queued_job_removes_it_from_the_queue(jm: JobManager, corpus: Path) -> None:
    jm.submit(cfg(corpus, max_steps=300, eval_interval=50), "head")
    wait_until(lambda: (jm.status("head").step or 0) >= 1, "the head job to train")  # else it is queued too
    jm.submit(cfg(corpus, max_steps=10), "q1")
    jm.submit(cfg(corpus, max_steps=10), "q2")
    assert [s.name for s in jm.queue()] == ["q1", "q2"]

    removed = jm.stop("q1")
    assert removed.state == "stopped" and "removed from the queue" in removed.message and not removed.here
    assert [(s.name, s.queue_position) for s in jm.queue()] == [("q2", 1)]
    with pytest.raises(GenAIError, match="not running or queued"):
        jm.stop("q1")

    jm.stop("head")
    assert jm.wait("head", TIMEOUT).state == "stopped"
    assert jm.wait("q2", TIMEOUT).state == "completed"
    q1 = Run(jm.runs_root / "q1")
    assert q1.status()["state"] == "stopped" and q1.latest_checkpoint() is None and not q1.metrics()
    with pytest.raises(GenAIError, match="no checkpoint yet; start it again"):
        jm.resume("q1")
    jm.submit(cfg(corpus, max_steps=10), "q1", replace=True)  # "start it again"
    assert jm.wait("q1", TIMEOUT).state == "completed"


# --------------------------------------------------------------------------- failures
def test_failing_jobs_are_marked_failed_and_the_queue_goes_on(jm: JobManager, corpus: Path, tmp_path: Path) -> None:
    doomed = tmp_path / "doomed.txt"
    doomed.write_bytes(corpus.read_bytes())
    jm.submit(cfg(corpus, max_steps=40), "head")
    jm.submit(cfg(doomed, max_steps=10), "no-corpus")
    too_long = cfg(corpus, max_steps=10)
    too_long.model.seq_len = 4096  # more than the validation split holds: fails in setup, not at submit
    jm.submit(too_long, "too-long")
    jm.submit(cfg(corpus, max_steps=10), "after")
    doomed.unlink()  # after submit (which checked it) and before the job starts

    assert jm.wait("head", TIMEOUT).state == "completed"
    nc = jm.wait("no-corpus", TIMEOUT)
    assert nc.state == "failed" and "doomed.txt" in nc.message and nc.error == nc.message
    tl = jm.wait("too-long", TIMEOUT)
    assert tl.state == "failed" and "seq_len 4096 is too long" in tl.message
    assert Run(jm.runs_root / "too-long").status()["state"] == "failed"  # on disk, for other processes
    after = jm.wait("after", TIMEOUT)
    assert after.state == "completed" and after.step == 10


def test_a_bug_in_a_job_does_not_kill_the_worker(jm: JobManager, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_train = trainer.train

    def flaky_train(config: RunConfig, out: Path, **kw: Any) -> trainer.TrainResult:
        if Path(out).name == "buggy":
            raise RuntimeError("boom")  # outside train's own handler: nothing on disk says failed
        return real_train(config, out, **kw)

    monkeypatch.setattr(trainer, "train", flaky_train)
    jm.submit(cfg(corpus, max_steps=10), "buggy")
    jm.submit(cfg(corpus, max_steps=10), "fine")
    bug = jm.wait("buggy", TIMEOUT)
    assert bug.state == "failed" and "RuntimeError: boom" in bug.message
    assert Run(jm.runs_root / "buggy").status()["state"] == "failed"
    assert jm.wait("fine", TIMEOUT).state == "completed"


# --------------------------------------------------------------------------- names and errors at submit
def test_names_and_inputs_are_checked_at_submit(jm: JobManager, corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(GenAIError, match="invalid run name"):
        jm.submit(cfg(corpus), "no spaces")
    with pytest.raises(CorpusError, match="not found"):
        jm.submit(cfg(tmp_path / "missing.txt"), "nocorpus")
    assert not (jm.runs_root / "nocorpus").exists()
    Run.create(jm.runs_root / "on-disk", cfg(corpus))
    with pytest.raises(GenAIError, match="'on-disk' already exists"):
        jm.submit(cfg(corpus), "on-disk")

    jm.submit(cfg(corpus, max_steps=300, eval_interval=50), "busy")
    # Until the worker takes "busy" it is queued too; wait, so the queue below holds "waiting" alone.
    wait_until(lambda: (jm.status("busy").step or 0) >= 1, "the busy job to train")
    jm.submit(cfg(corpus, max_steps=10), "waiting")
    with pytest.raises(GenAIError, match="'busy' is already running"):
        jm.submit(cfg(corpus), "busy", replace=True)
    with pytest.raises(GenAIError, match="'waiting' is already queued"):
        jm.submit(cfg(corpus), "waiting")
    with pytest.raises(GenAIError, match="no run named 'ghost'"):
        jm.resume("ghost")
    with pytest.raises(GenAIError, match="no run named 'ghost'"):
        jm.status("ghost")
    assert [s.name for s in jm.queue()] == ["waiting"]  # the refusals changed nothing


def test_runs_left_by_a_dead_process_read_interrupted_and_block_nothing(jm: JobManager, corpus: Path) -> None:
    dead = {"pid": os.getpid(), "host": socket.gethostname(), "started": 1.0}  # same pid, other process start
    for name, state in (("stale-queued", "queued"), ("stale-running", "running")):
        run = Run.create(jm.runs_root / name, cfg(corpus, max_steps=10))
        run.write_status(state, "as the dead process left it")
        raw = run.read_status_raw()
        raw.update(dead)
        (run.path / "status.json").write_text(json.dumps(raw), encoding="utf-8")
        st = jm.status(name)
        assert st.state == "interrupted" and not st.here, st
    assert "queued by a process that has ended" in jm.status("stale-queued").message
    with pytest.raises(GenAIError, match="no checkpoint yet"):
        jm.resume("stale-queued")
    assert not jm.queue() and not jm.active()  # nothing waits on them
    jm.submit(cfg(corpus, max_steps=10), "stale-queued", replace=True)
    assert jm.wait("stale-queued", TIMEOUT).state == "completed"


# --------------------------------------------------------------------------- shutdown
def test_shutdown_stops_running_jobs_with_a_checkpoint_and_empties_the_queue(tmp_path: Path, corpus: Path) -> None:
    jm = JobManager(tmp_path / "runs")
    try:
        jm.submit(cfg(corpus, max_steps=300, eval_interval=50), "running")
        jm.submit(cfg(corpus, max_steps=10), "queued")
        wait_until(lambda: (jm.status("running").step or 0) >= 1, "the job to train")
    finally:
        assert jm.shutdown(stop_running=True, timeout=30)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("genai-jobs")]
    r = Run(tmp_path / "runs" / "running")
    assert r.status()["state"] == "stopped" and r.latest_checkpoint() is not None
    q = jm.status("queued")
    assert q.state == "stopped" and "shut down" in q.message
    with pytest.raises(GenAIError, match="shut down"):
        jm.submit(cfg(corpus), "late")


def test_a_run_started_from_a_parent_waits_for_it_to_complete(jm: JobManager, corpus: Path) -> None:
    parent = cfg(corpus, max_steps=40, eval_interval=20, checkpoint_interval=1)
    jm.submit(parent, "parent")
    child = cfg(corpus, max_steps=5).model_copy(update={"parent": jm.run("parent").path})
    jm.submit(child, "child")
    wait_until(lambda: (jm.status("parent").step or 0) >= 2, "the parent's first steps")
    jm.stop("parent")
    assert jm.wait("parent", timeout=TIMEOUT).state == "stopped"
    # Held, on disk and in the queue view, instead of starting from a half-trained parent.
    wait_until(lambda: "which was stopped" in jm.status("child").message, "the child to say why it waits")
    held = jm.status("child")
    assert held.state == "queued" and "waiting for parent" in held.message
    assert jm.run("child").read_status_raw().get("waiting_for") == "parent"
    assert jm.queue_waits()["child"] is None
    assert not jm.run("child").metrics()
    jm.resume("parent")
    assert jm.wait("parent", timeout=TIMEOUT).state == "completed"
    final = jm.wait("child", timeout=TIMEOUT)
    assert final.state == "completed"
    assert final.started_at is not None and final.started_at >= jm.status("parent").finished_at


def test_queue_waits_add_up_the_runs_ahead(jm: JobManager, corpus: Path) -> None:
    jm.submit(cfg(corpus, max_steps=400, eval_interval=400), "first")
    jm.submit(cfg(corpus, max_steps=50), "second")
    jm.submit(cfg(corpus, max_steps=50), "third")
    # The worker takes the first from the queue in its own thread: until then it is queued too.
    wait_until(lambda: jm.status("first").state == "running", "the first run to start")
    waits = jm.queue_waits()
    assert set(waits) == {"second", "third"}
    assert waits["second"] is not None and waits["third"] is not None and waits["third"] > waits["second"] > 0


def test_a_resume_refused_by_the_runs_writer_lock_writes_nothing_to_the_run(jm: JobManager, corpus: Path) -> None:
    from genai_core.runs.folder import run_writer

    jm.submit(cfg(corpus, max_steps=20), "held")
    run = Run(jm.runs_root / "held")
    wait_until(lambda: run.state == "completed", "the run to complete")
    run.write_status("stopped", "stopped by request")  # as if stopped halfway: resumable
    before = (run.path / "status.json").read_bytes()
    holding, release = threading.Event(), threading.Event()

    def another_trainer() -> None:  # another thread of this process (another server is another process)
        with run_writer(run.path):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=another_trainer)
    holder.start()
    try:
        holding.wait(10)
        # Its status file still says stopped (the holder has not written yet): the lock says who trains it.
        assert run.status()["state"] == "running" and run.status()["pid"] == os.getpid()
        with pytest.raises(GenAIError, match="running in another process"):
            jm.resume("held")
        # And a job that got past that check (the lock taken a moment later) is refused before it writes.
        from genai_core.train.job_status import LiveLog
        from genai_core.train.thread_jobs import ThreadJob, run_thread_job

        job = ThreadJob("held", run.path, "cpu", run.config(), resume=True, live=LiveLog(run, 100))
        run_thread_job(job)
        assert "is being trained by another thread of this process" in (job.error or "")
        assert (run.path / "status.json").read_bytes() == before  # the holder's status, untouched
    finally:
        release.set()
        holder.join()
