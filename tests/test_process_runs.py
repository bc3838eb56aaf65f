"""Runs in their own OS process: the on-disk queue, its scheduler, re-attaching, stopping, crashes.

Every test trains real tiny models in real child processes (`python -m genai_core train`), started by the
real scheduler, and kills real processes with real signals. A child pays Python's and torch's start-up
(~3 s here), so each test queues as few runs as what it shows needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import english_like, tiny_config

from genai_core.config import RunConfig
from genai_core.runs.folder import Run
from genai_core.train import launcher
from genai_core.train.jobs import JobManager

TIMEOUT = 120.0
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("proc-corpus") / "small.txt"
    path.write_text("\n".join(english_like(500, seed=3)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    runs = tmp_path / "runs"
    runs.mkdir()
    yield runs
    # Whatever a failed test left training must not outlive it.
    for path in runs.iterdir():
        st = Run(path).read_status_raw() if path.is_dir() else {}
        if st.get("state") == "running" and st.get("pid"):
            try:
                os.kill(int(st["pid"]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def cfg(corpus: Path, **train: Any) -> RunConfig:
    train.setdefault("device", "cpu")
    train.setdefault("runner", "process")
    return tiny_config(corpus, **train)


def long_cfg(corpus: Path, **train: Any) -> RunConfig:
    """Thousands of steps (minutes): a run that is surely still training when the test acts on it."""
    return cfg(corpus, max_steps=20_000, eval_interval=2000, log_interval=10, **train)


def wait_until(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def logged_step(run: Run) -> int:
    rows = run.metrics()
    return int(rows[-1]["step"]) if rows else 0


def starts(run: Run) -> int:
    """How many training processes the scheduler started for a run (one line each in train.log)."""
    return run.log_path.read_text().count(" started on ") if run.log_path.is_file() else 0


def test_queue_runs_one_per_device_in_their_own_processes(root: Path, corpus: Path) -> None:
    jm = JobManager(root)
    first = jm.submit(cfg(corpus, max_steps=40), "first")
    second = jm.submit(cfg(corpus, max_steps=20), "second")
    assert (first.state, first.runner, second.state) == ("queued", "process", "queued")
    # The queue is the folders: a manager that never saw these submits lists the same queue. ("first"
    # leaves it when the scheduler process starts it, which takes it a second or more.)
    for manager in (jm, JobManager(root)):
        assert [q.name for q in manager.queue()] in (["first", "second"], ["second"])
    seen_together = False
    while jm.status("second").active:
        running = [s.name for s in jm.active()]
        seen_together |= running == ["first", "second"]
        time.sleep(0.05)
    assert not seen_together, "two runs trained on the CPU at once"
    a, b = jm.wait("first", timeout=TIMEOUT), jm.wait("second", timeout=TIMEOUT)
    assert (a.state, a.step, b.state, b.step) == ("completed", 40, "completed", 20)
    ra, rb = Run(root / "first"), Run(root / "second")
    assert ra.status()["pid"] != os.getpid() and ra.status()["pid"] != rb.status()["pid"]
    assert rb.status()["started_at"] >= ra.status()["updated_at"] - 1.0  # second started after first ended
    assert "completed 40 steps" in jm.log("first")
    assert a.val_loss is not None and a.sample  # live fields read from the folder
    assert {j.name for j in jm.jobs()} >= {"first", "second"}


def test_stop_checkpoints_and_resume_continues_in_a_new_process(root: Path, corpus: Path) -> None:
    jm = JobManager(root)
    jm.submit(long_cfg(corpus), "long")
    run = Run(root / "long")
    wait_until(lambda: logged_step(run) >= 50, "the run to train 50 steps")
    jm.stop("long")
    wait_until(lambda: run.status()["state"] == "stopped", "the stop")
    stopped_at = int(run.status()["step"])
    assert run.latest_checkpoint() is not None and run.latest_checkpoint().name == f"step_{stopped_at:08d}"
    jm.resume("long")
    wait_until(lambda: run.status().get("started_step") == stopped_at and logged_step(run) > stopped_at + 20,
               "the resumed run to go on")
    assert starts(run) == 2
    jm.stop("long")
    wait_until(lambda: run.status()["state"] == "stopped", "the second stop")
    steps = [r["step"] for r in run.metrics()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # one curve, no step twice


def test_queued_run_leaves_the_queue_when_stopped(root: Path, corpus: Path) -> None:
    jm = JobManager(root)
    jm.submit(long_cfg(corpus), "busy")
    jm.submit(cfg(corpus), "behind")
    assert jm.stop("behind").state == "stopped"
    jm.stop("busy")
    wait_until(lambda: not jm.status("busy").active, "the first run to stop")
    time.sleep(1.5)  # a scheduler that wrongly kept `behind` would start it within a poll
    assert Run(root / "behind").status()["state"] == "stopped" and starts(Run(root / "behind")) == 0


def _server(root: Path, config: RunConfig, name: str) -> subprocess.Popen[str]:
    """A stand-in for the app's server: a process whose JobManager submits a run and then just lives."""
    code = ("import sys, time; from genai_core.config import RunConfig; from genai_core.train.jobs import JobManager;"
            f"jm = JobManager({str(root)!r});"
            f"jm.submit(RunConfig.model_validate_json(sys.stdin.read()), {name!r});"
            "print('submitted', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(config.model_dump_json())
    proc.stdin.close()
    assert proc.stdout.readline().strip() == "submitted"
    return proc


def test_killing_the_server_loses_nothing_and_a_new_one_reattaches(root: Path, corpus: Path) -> None:
    run = Run(root / "survivor")
    server = _server(root, cfg(corpus, max_steps=1500, eval_interval=500, log_interval=10), "survivor")
    wait_until(lambda: logged_step(run) >= 30, "training to begin")
    server.send_signal(signal.SIGKILL)
    server.wait()
    at_kill = logged_step(run)
    wait_until(lambda: logged_step(run) >= at_kill + 50, "the run to keep training without its server")
    # A restarted server finds the run from the disk and shows it live.
    jm = JobManager(root)
    live = [s for s in jm.active() if s.name == "survivor"]
    assert live and live[0].state == "running" and live[0].runner == "process"
    assert live[0].step is not None and live[0].step >= at_kill and live[0].train_loss is not None
    final = None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and (final := jm.status("survivor")).active:
        time.sleep(0.2)
    assert final is not None and (final.state, final.step) == ("completed", 1500)  # 0 steps lost


def test_killed_training_process_reads_interrupted_and_loses_at_most_the_time_interval(
        root: Path, corpus: Path) -> None:
    jm = JobManager(root)
    jm.submit(long_cfg(corpus, checkpoint_seconds=1.0), "victim")
    run = Run(root / "victim")
    wait_until(lambda: run.latest_checkpoint() is not None and logged_step(run) >= 100,
               "a checkpoint taken by time (the step interval is 2000)")
    time.sleep(1.5)
    os.kill(int(run.status()["pid"]), signal.SIGKILL)
    killed_at = time.monotonic()
    # The raw status: status() reads `interrupted` as soon as the pid is dead, before the scheduler writes why.
    wait_until(lambda: run.read_status_raw()["state"] == "interrupted", "the scheduler to record the kill")
    assert time.monotonic() - killed_at < 5.0
    message = run.status()["message"]
    assert "SIGKILL" in message and "out of memory" in message and "resume" in message
    saved = int(run.latest_checkpoint().name.split("_")[1])
    rows = {r["step"]: r["elapsed_s"] for r in run.metrics()}
    lost_s = rows[max(rows)] - rows.get(saved, 0.0)
    assert 0 < saved and lost_s < 3.0, f"lost {lost_s:.1f} s of training (checkpoint_seconds 1)"
    jm.resume("victim")
    wait_until(lambda: run.status().get("started_step") == saved, "the run to resume from its checkpoint")
    jm.stop("victim")
    wait_until(lambda: run.status()["state"] == "stopped", "the stop")


def test_stop_before_the_process_catches_signals_reads_stopped(root: Path, corpus: Path) -> None:
    jm = JobManager(root)
    jm.submit(long_cfg(corpus), "early")
    run = Run(root / "early")
    wait_until(lambda: run.status()["state"] == "running", "the scheduler to start the process")
    jm.stop("early")  # within torch's import: the default SIGTERM action ends it
    wait_until(lambda: not jm.status("early").active, "the process to end")
    assert run.status()["state"] == "stopped", run.status()["message"]


def test_out_of_memory_fails_the_run_with_a_message_and_spares_the_rest(
        root: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_MEMORY_LIMIT_GB", "2")  # the scheduler's children inherit it
    jm = JobManager(root)
    hungry = cfg(corpus, max_steps=5, batch_size=512).model_copy(deep=True)
    hungry.model.d_model, hungry.model.n_heads, hungry.model.n_layers, hungry.model.seq_len = 512, 8, 4, 128
    jm.submit(hungry, "hungry")
    jm.submit(cfg(corpus, max_steps=10), "modest")
    a, b = jm.wait("hungry", timeout=TIMEOUT), jm.wait("modest", timeout=TIMEOUT)
    assert a.state == "failed" and a.message.startswith("out of memory"), a.message
    assert b.state == "completed"


def test_two_schedulers_never_start_a_run_twice(root: Path, corpus: Path) -> None:
    names = ["q1", "q2", "q3"]
    for name in names:  # queued on disk only: no scheduler yet
        run = Run.create(root / name, cfg(corpus, max_steps=10))
        run.write_status("queued", "waiting for cpu", runner="process", queued_at=time.time(), queue_device="cpu")
    cmd = [sys.executable, "-m", "genai_core", "scheduler", "--runs-dir", str(root)]
    procs = [subprocess.Popen(cmd, cwd=ROOT) for _ in range(2)]
    assert [p.wait(timeout=TIMEOUT) for p in procs] == [0, 0]
    for name in names:
        run = Run(root / name)
        assert run.status()["state"] == "completed" and starts(run) == 1, (name, starts(run))


def test_two_servers_on_one_folder_start_each_queued_run_once(root: Path, corpus: Path) -> None:
    a, b = JobManager(root), JobManager(root)
    a.submit(cfg(corpus, max_steps=10), "s1")
    b.submit(cfg(corpus, max_steps=10), "s2")
    a.submit(cfg(corpus, max_steps=10), "s3")
    for jm in (a, b, a, b):
        jm.queue()  # the pages' polling: each may try to start a scheduler
    for name in ("s1", "s2", "s3"):
        assert b.wait(name, timeout=TIMEOUT).state == "completed"
        assert starts(Run(root / name)) == 1


def test_fine_tune_waits_on_disk_for_its_parent(root: Path, corpus: Path) -> None:
    jm = JobManager(root)
    jm.submit(cfg(corpus, max_steps=30), "parent")
    child = cfg(corpus, max_steps=10).model_copy(update={"parent": root / "parent"})
    jm.submit(child, "child")
    assert jm.wait("child", timeout=TIMEOUT).state == "completed"
    p, c = Run(root / "parent").status(), Run(root / "child").status()
    assert c["started_at"] >= p["updated_at"] - 1.0


def test_scheduler_lock_is_exclusive(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with launcher.file_lock(lock) as got:
        assert got
        code = ("from genai_core.train.launcher import file_lock\n"
                f"with file_lock(__import__('pathlib').Path({str(lock)!r}), blocking=False) as g: print(g)")
        assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip() == "False"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "True"


def test_a_run_over_several_processes_starts_under_torchrun(root: Path, corpus: Path) -> None:
    """`gpus` N starts the run with torchrun --nproc_per_node N. Here, without GPUs, `auto` falls back to the
    CPU and the N processes train with DDP over gloo: the same launch path as on a multi-GPU node."""
    jm = JobManager(root)
    config = cfg(corpus, max_steps=20, device="auto", gpus=2)
    assert launcher.train_command(Run(root / "ddp"), config)[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    jm.submit(config, "ddp")
    final = jm.wait("ddp", timeout=TIMEOUT)
    assert final.state == "completed", final.message
    assert Run(root / "ddp").status()["world_size"] == 2


def test_cli_queues_a_process_run_and_follows_it(root: Path, corpus: Path) -> None:
    cmd = [sys.executable, "-m", "genai_core", "train", "--corpus", str(corpus), "--d-model", "32", "--n-heads", "2",
           "--n-layers", "2", "--seq-len", "16", "--max-steps", "20", "--log-interval", "10", "--eval-interval", "10",
           "--device", "cpu", "--runner", "process", "--out", str(root / "cli")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "to train in its own process" in done.stdout and "step 20/20" in done.stdout
    assert done.stdout.strip().endswith("cli: completed (finished)")
    status = Run(root / "cli").status()
    assert status["runner"] == "process" and status["pid"] != os.getpid()
    bad = subprocess.run([*cmd[:-2], "--runner", "ray", "--out", str(root / "x")], cwd=ROOT, capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: runner ray needs ray_address: the Ray dashboard's address, e.g. http://head-node:8265")


# --------------------------------------------------------------------------- a queue that heals itself
def scheduler_pids(root: Path) -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and "scheduler" in p.info["cmdline"] and str(root) in p.info["cmdline"]]


def kill_scheduler(root: Path) -> None:
    """kill -9 the scheduler of `root`, and wait until the kernel has closed its files (and dropped its lock)."""
    import psutil

    pids = scheduler_pids(root)
    assert pids, "no scheduler to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(lambda: all(gone(pid) for pid in pids), "the scheduler to die")


def test_a_killed_scheduler_is_restarted_by_the_trainer_it_left_and_every_queued_run_completes(
        root: Path, corpus: Path) -> None:
    jm = JobManager(root)
    for name in ("a", "b", "c"):
        jm.submit(cfg(corpus, max_steps=60), name)
    wait_until(lambda: Run(root / "a").state == "running" and bool(scheduler_pids(root)), "the first run to start")
    kill_scheduler(root)
    # No command typed, no page open (nothing calls jm.queue): the trainer of `a` restarts it as it exits.
    wait_until(lambda: all(Run(root / n).state == "completed" for n in "abc"), "every queued run to complete")
    assert [starts(Run(root / n)) for n in "abc"] == [1, 1, 1]


def test_a_scheduler_killed_before_it_started_anything_is_restarted_by_its_keeper(root: Path, corpus: Path) -> None:
    # Queued from a process that then exits: no server, no trainer, no CLI following; only the keeper is left.
    submit = ("import sys\nsys.path.insert(0, 'tests')\nfrom conftest import tiny_config\n"
              "from genai_core.train.jobs import JobManager\n"
              "jm = JobManager(sys.argv[1])\n"
              "for name in 'ab':\n"
              "    jm.submit(tiny_config(sys.argv[2], device='cpu', runner='process', max_steps=30), name)\n")
    subprocess.run([sys.executable, "-c", submit, str(root), str(corpus)], cwd=ROOT, check=True, timeout=TIMEOUT)
    # Still importing torch: it never looked at the queue. (Whether it had launched anything is not checked after
    # the kill: by then its keeper's new scheduler may have, legitimately.)
    kill_scheduler(root)
    wait_until(lambda: all(Run(root / n).state == "completed" for n in "ab"), "every queued run to complete")
    assert [starts(Run(root / n)) for n in "ab"] == [1, 1]


def test_a_scheduler_killed_while_its_parent_lives_on_is_restarted_by_its_keeper(root: Path, corpus: Path) -> None:
    # Queued from this process, which lives on and does not reap the killed scheduler (a server with no page
    # open): a zombie, which the keeper must not take for a scheduler still alive.
    jm = JobManager(root)
    for name in "ab":
        jm.submit(tiny_config(corpus, device="cpu", runner="process", max_steps=30), name)
    kill_scheduler(root)  # still importing torch: it never looked at the queue
    wait_until(lambda: all(Run(root / n).state == "completed" for n in "ab"), "every queued run to complete")
    assert [starts(Run(root / n)) for n in "ab"] == [1, 1]


def test_a_queued_run_launched_by_a_scheduler_killed_before_it_said_so_is_adopted_not_started_twice(
        root: Path, corpus: Path) -> None:
    jm = JobManager(root)
    jm.submit(long_cfg(corpus), "orphan")
    wait_until(lambda: logged_step(Run(root / "orphan")) > 0, "the run to train")
    kill_scheduler(root)
    run = Run(root / "orphan")
    raw = run.read_status_raw()
    # The moment between the child's start and the status saying so: the file still reads `queued`.
    run.write_status("queued", "waiting for cpu", runner="process", queued_at=time.time(), queue_device="cpu",
                     pid=None, started_at=None)
    # A new scheduler adopts it: started here, or by the killed one's keeper (this call reaps the killed
    # scheduler, which ends the keeper's wait, so the two race for the lock, and either may win).
    launcher.ensure_scheduler(root)
    wait_until(lambda: run.read_status_raw().get("state") == "running", "the scheduler to adopt the trainer")
    assert run.read_status_raw()["pid"] == raw["pid"] and starts(run) == 1
    jm.stop("orphan")
    wait_until(lambda: run.state == "stopped", "the stop")


def test_removing_the_queue_folder_never_lets_a_second_scheduler_in(root: Path, corpus: Path) -> None:
    import shutil

    jm = JobManager(root)
    jm.submit(long_cfg(corpus), "long")
    wait_until(lambda: Run(root / "long").state == "running", "the scheduler to start the run")
    shutil.rmtree(root / launcher.QUEUE_FOLDER)
    assert not launcher.ensure_scheduler(root)  # the lock is the runs folder's own, not a file in .queue
    time.sleep(1.0)
    assert len(scheduler_pids(root)) == 1
    jm.stop("long")
    wait_until(lambda: Run(root / "long").state == "stopped", "the stop")


def test_a_broken_queue_folder_refuses_the_run_instead_of_leaving_it_queued(root: Path, corpus: Path) -> None:
    from genai_core.errors import GenAIError

    (root / launcher.QUEUE_FOLDER).write_text("not a folder")
    with pytest.raises(GenAIError, match=r"the queue's folder .* is not usable"):
        JobManager(root).submit(cfg(corpus), "never")
    assert not (root / "never").exists()


def test_a_damaged_status_is_reported_on_its_run_and_a_running_one_can_still_be_stopped(
        root: Path, corpus: Path) -> None:
    queued = Run.create(root / "queued", cfg(corpus))
    queued.write_status("queued", "waiting for cpu", runner="process", queued_at=time.time())
    (queued.path / "status.json").write_bytes(b"\x00garbage{")
    st = queued.status()
    assert st["state"] == "interrupted" and st["message"].startswith("status damaged: ") and \
        st["message"].endswith("; resume or delete")
    # A run training in a CLI process (no scheduler, no server) whose status file was damaged under it.
    proc = subprocess.Popen([sys.executable, "-m", "genai_core", "train", "--corpus", str(corpus), "--d-model", "32",
                             "--n-heads", "2", "--n-layers", "2", "--seq-len", "16", "--max-steps", "20000",
                             "--log-interval", "10", "--eval-interval", "100000", "--device", "cpu",
                             "--out", str(root / "busy")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    busy = Run(root / "busy")
    try:
        wait_until(lambda: logged_step(busy) >= 10, "the CLI run to train")
        (busy.path / "status.json").write_bytes(b"{not json")
        st = busy.status()
        assert st["state"] == "running" and st["pid"] == proc.pid and "status damaged" in st["message"]
        JobManager(root).stop("busy")  # found through its writer lock, stopped through the run folder
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 130 or "stopped at step" in out, (out, err)
        assert busy.status()["state"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
