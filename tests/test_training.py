"""The trainer end to end on a tiny real corpus: determinism, stop/resume, failures, crash safety."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from pydantic import ValidationError

from genai_core.errors import GenAIError
from genai_core.generate.sampling import Sampler
from genai_core.runs.folder import Run
from genai_core.runs.status import RunStatus, next_status, process_token
from genai_core.train.trainer import Trainer, TrainEvent, lr_at, setup_run, train

CURVE_KEYS = ("step", "epoch", "tokens", "train_loss", "lr", "val_loss", "grad_norm")


def curve(run: Run) -> list[tuple]:
    return [tuple(r.get(k) for k in CURVE_KEYS) for r in run.metrics()]


def test_training_learns_and_writes_a_complete_run(tmp_path: Path, tiny_txt: Path) -> None:
    events: list[TrainEvent] = []
    cfg = tiny_config(tiny_txt, max_steps=60, eval_interval=20, lr=3e-3)
    res = train(cfg, tmp_path / "r", callbacks=[events.append])
    run = res.run
    assert res.state == "completed" and run.status()["state"] == "completed"
    rows = run.metrics()
    assert [r["step"] for r in rows] == list(range(5, 61, 5))
    for r in rows:
        assert {"step", "epoch", "tokens", "elapsed_s", "train_loss", "lr", "tokens_per_s"} <= set(r)
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == [20, 40, 60]
    assert math.isclose(evals[-1]["val_ppl"], math.exp(evals[-1]["val_loss"]), rel_tol=1e-9)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] < math.log(run.config().model.vocab_size)
    assert rows[-1]["tokens"] == 60 * 4 * 16
    kinds = {e.kind for e in events}
    assert {"start", "step", "log", "eval", "sample", "checkpoint", "end"} <= kinds
    assert run.latest_checkpoint().name == "step_00000060"
    assert len(run.samples()) == 3
    # The run folder alone is enough to sample from.
    assert Sampler.from_run(run.path).generate("The ", None)


def test_same_seed_same_run(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=20)
    a = train(cfg, tmp_path / "a").run
    b = train(cfg, tmp_path / "b").run
    assert curve(a) == curve(b)
    c = train(tiny_config(tiny_txt, max_steps=20, seed=1), tmp_path / "c").run
    assert curve(c) != curve(a)


@pytest.mark.parametrize("stop_at", [7, 13])
def test_stop_then_resume_continues_the_same_curve(tmp_path: Path, tiny_txt: Path, stop_at: int) -> None:
    cfg = tiny_config(tiny_txt, max_steps=30)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"dropout": 0.1})})  # exercise dropout RNG too
    straight = train(cfg, tmp_path / "straight").run

    stop = threading.Event()

    def stopper(ev: TrainEvent) -> None:
        if ev.kind == "step" and ev.step == stop_at:
            stop.set()

    first = train(cfg, tmp_path / "resumed", callbacks=[stopper], stop_event=stop)
    assert first.state == "stopped"
    run = first.run
    assert run.status()["state"] == "stopped"
    assert run.latest_checkpoint().name == f"step_{stop_at:08d}"  # honoured within one step
    second = train(cfg, tmp_path / "resumed", resume=True)
    assert second.state == "completed"
    assert curve(second.run) == curve(straight)
    assert [s["text"] for s in second.run.samples()] == [s["text"] for s in straight.samples()]


def test_divergence_fails_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=30, checkpoint_interval=5)
    config, run, store = setup_run(cfg, tmp_path / "nan")

    def poison(ev: TrainEvent) -> None:
        if ev.kind == "step" and ev.step == 12:  # e.g. an fp16 overflow or a bad batch
            with torch.no_grad():
                trainer.model.h[0].mlp.c_fc.weight.fill_(float("inf"))

    trainer = Trainer(config, run, store, callbacks=[poison])
    with pytest.raises(GenAIError, match="diverged"):
        try:
            trainer.fit()
        except GenAIError as e:
            run.write_status("failed", str(e))
            raise
    assert run.status()["state"] == "failed"
    assert run.latest_checkpoint().name == "step_00000010"
    weights, _, _ = run.load_checkpoint()
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_train_records_failures_in_status(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"seq_len": 100_000})})
    with pytest.raises(GenAIError, match="seq_len 100000 is too long for this corpus"):
        train(cfg, tmp_path / "long")
    assert not (tmp_path / "long").exists()  # refused before anything was written
    done = train(tiny_config(tiny_txt, max_steps=5), tmp_path / "done").run
    assert done.config().name == "done"
    with pytest.raises(GenAIError, match="already exists"):
        train(tiny_config(tiny_txt, max_steps=5), tmp_path / "done")
    assert done.status()["state"] == "completed"  # a refused second start never marks the run failed
    with pytest.raises(GenAIError, match="cannot resume"):
        train(cfg, tmp_path / "never", resume=True)
    with pytest.raises(GenAIError, match="invalid run name"):
        train(cfg, tmp_path / "bad name!")


def test_every_status_write_is_checked_against_run_status_and_unknown_old_fields_are_kept(
        tmp_path: Path, tiny_txt: Path) -> None:
    run = train(tiny_config(tiny_txt, max_steps=3), tmp_path / "s").run
    saved = json.loads((run.path / "status.json").read_text())
    assert RunStatus.model_validate(saved).state == "completed"  # what the trainer wrote is a RunStatus
    assert set(saved) - {"pid", "host", "started"} <= set(RunStatus.model_fields)
    with pytest.raises(TypeError, match="not a RunStatus field: totl_steps"):
        run.write_status("stopped", "a typo", totl_steps=3)
    with pytest.raises(ValidationError):
        run.write_status("stopped", "a wrong type", step="three")
    with pytest.raises(ValidationError):
        run.write_status("paused", "not a state")  # type: ignore[arg-type]
    assert json.loads((run.path / "status.json").read_text()) == saved  # a refused write changes nothing
    (run.path / "status.json").write_text(json.dumps({**saved, "from_a_newer_version": 1}))
    run.write_status("stopped", "kept")
    assert run.status()["from_a_newer_version"] == 1 and run.state == "stopped"


def test_a_run_that_starts_leaves_its_last_life_behind_and_an_active_one_has_an_owner() -> None:
    me = process_token()
    queued = next_status({}, "queued", "waiting for its parent", {"runner": "thread", "waiting_for": "pre"})
    assert queued["pid"] == me["pid"]  # queued in a thread of this process: owned by it
    on_disk = next_status({}, "queued", "waiting for cpu", {"runner": "process"})
    assert "pid" not in on_disk  # queued for the scheduler: nobody owns it until it starts
    ended = {**queued, "state": "interrupted", "stop_requested": True, "exit_code": -9}
    started = next_status(ended, "running", "training", {}, owner={"pid": 1, "host": "h", "started": 2.0})
    assert (started["waiting_for"], started["stop_requested"], started["exit_code"]) == (None, False, None)
    assert (started["pid"], started["host"]) == (1, "h") and started["runner"] == "thread"
    stopping = next_status(started, "running", "training", {"stop_requested": True})
    assert stopping["stop_requested"] is True  # written on a running run: kept until it ends
    assert next_status(stopping, "stopped", "stopped", {})["stop_requested"] is True


def test_warmup_longer_than_run_is_shortened_with_a_notice(tmp_path: Path, tiny_txt: Path) -> None:
    notices: list[str] = []
    cfg = tiny_config(tiny_txt, max_steps=10, warmup_steps=100)
    train(cfg, tmp_path / "w", callbacks=[lambda e: e.kind == "notice" and notices.append(e.data["message"])])
    assert notices and "using 1 warmup steps" in notices[0]


def test_lr_schedule_shape() -> None:
    lrs = [lr_at(s, 1.0, 10, 100, 0.1) for s in range(100)]
    assert lrs[0] < lrs[5] < lrs[9] <= 1.0
    assert max(lrs) == pytest.approx(1.0, abs=0.01)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_epochs_define_steps(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=None, epochs=0.5)
    res = train(cfg, tmp_path / "e")
    st = res.run.status()
    rows = res.run.metrics()
    assert rows[-1]["step"] == st["total_steps"] == math.ceil(0.5 * st["steps_per_epoch"])
    assert rows[-1]["epoch"] == pytest.approx(0.5, abs=1 / st["steps_per_epoch"])


def test_bf16_autocast_on_cpu_trains(tmp_path: Path, tiny_txt: Path) -> None:
    res = train(tiny_config(tiny_txt, max_steps=10, precision="bf16"), tmp_path / "bf16")
    assert res.state == "completed" and res.run.status()["precision"] == "bf16"
    with pytest.raises(GenAIError, match="fp16 needs a CUDA GPU"):
        train(tiny_config(tiny_txt, max_steps=10, precision="fp16"), tmp_path / "fp16")


def test_grad_accumulation_and_lstm_train(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=10, grad_accum_steps=2)
    assert train(cfg, tmp_path / "acc").run.metrics()[-1]["tokens"] == 10 * 2 * 4 * 16
    lstm = cfg.model_copy(update={"model": cfg.model.model_copy(update={"arch": "lstm"})})
    assert train(lstm, tmp_path / "lstm").state == "completed"


_CHILD = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from genai_core.train.trainer import train
    torch.set_num_threads(1)
    cfg = tiny_config(__import__("pathlib").Path({corpus!r}), max_steps=100000, checkpoint_interval=1,
                      eval_interval=1000, sample_tokens=1)
    train(cfg, {out!r}, resume={resume})
""")


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint_and_resumable_run(tmp_path: Path, tiny_txt: Path) -> None:
    out = tmp_path / "killed"
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    last_step = 0
    for attempt, delay in enumerate((0.9, 0.37, 0.61)):
        code = _CHILD.format(tests=tests, corpus=str(tiny_txt), out=str(out), resume=attempt > 0)
        proc = subprocess.Popen([sys.executable, "-c", code], env=env)
        deadline = time.time() + 60
        run = Run(out)
        while time.time() < deadline and (run.latest_checkpoint() is None or
                                          int(run.latest_checkpoint().name[5:]) <= last_step):
            time.sleep(0.05)
        time.sleep(delay)  # checkpoints are written every step: the kill very likely lands mid-write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert run.status()["state"] == "interrupted"
        model, optim, state = run.load_checkpoint()
        assert model and optim and state["step"] > last_step
        last_step = state["step"]
        steps = [r["step"] for r in run.metrics()]
        assert steps == sorted(set(steps))
    # In-process resume to a short end proves the interrupted run continues where it stopped.
    cfg = Run(out).config()
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": last_step + 3})})
    Run(out).save_config(cfg)
    res = train(cfg, out, resume=True)
    assert res.state == "completed" and res.run.latest_checkpoint().name == f"step_{last_step + 3:08d}"


def test_a_second_trainer_of_a_run_in_training_is_refused_before_it_writes(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=40, eval_interval=10)
    out = tmp_path / "run"
    at_step_5, release = threading.Event(), threading.Event()

    def hold(ev: TrainEvent) -> None:
        if ev.kind == "step" and ev.step == 5:
            at_step_5.set()
            release.wait(30)

    first = threading.Thread(target=train, args=(cfg, out), kwargs={"callbacks": [hold]})
    first.start()
    assert at_step_5.wait(60)
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    for kwargs in ({"resume": True}, {"overwrite": True}, {}):
        with pytest.raises(GenAIError) as err:
            train(cfg, out, **kwargs)
        assert str(err.value) == (f"run run is being trained by another thread of this process (pid {os.getpid()}): "
                                  "stop it there, or wait until it ends")
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # nothing written
    release.set()
    first.join(60)
    run = Run(out)
    assert run.state == "completed"
    steps = [r["step"] for r in run.metrics()]
    assert steps == sorted(set(steps))
    assert train(cfg, out, overwrite=True).state == "completed"  # the lock went with its holder


def test_what_a_killed_write_left_behind_neither_blocks_a_start_nor_stays(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=12, eval_interval=6)
    # A scheduler killed while launching: the placeholder (config, status) and a status write's temporary file.
    out = tmp_path / "launching"
    out.mkdir()
    Run(out).save_config(cfg)
    Run(out).write_status("queued", "waiting")
    (out / ".status.json.k1ll3d.tmp").write_text("{half")
    assert train(cfg, out).state == "completed"  # not "run folder already exists"
    # A trainer killed mid-checkpoint: a staged checkpoint folder and a temporary file, both old by now.
    run = Run(out)
    stale = [run.checkpoints_path / ".step_00000007.x1y2", out / ".latest.ab12.tmp"]
    stale[0].mkdir()
    (stale[0] / "model.safetensors").write_bytes(b"partial")
    stale[1].write_text("step_00000007")
    fresh = out / ".metrics.jsonl.live.tmp"  # a write happening right now: never touched
    fresh.write_text("x")
    for p in stale:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    train(cfg, out, resume=True)  # the run's writer, even of a completed run, clears them first
    assert not any(p.exists() for p in stale) and fresh.exists()


def test_a_folder_deleted_between_the_trainers_check_and_its_write_reads_as_deleted(
        tmp_path: Path, tiny_txt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI test deletes the folder at a random moment; here the deletion lands in the window it can only
    # hit by chance: after the trainer saw the folder, before its status write (whose temporary file then has
    # nowhere to go).
    out = tmp_path / "doomed"
    heartbeat = Run.heartbeat

    def deleted_first(self: Run, **extra: object) -> None:
        if extra.get("step", 0) >= 10:
            shutil.rmtree(self.path)
        heartbeat(self, **extra)
    monkeypatch.setattr(Run, "heartbeat", deleted_first)
    with pytest.raises(GenAIError) as e:
        train(tiny_config(tiny_txt, max_steps=30), out)
    assert str(e.value) == f"the run folder {out} was deleted while it trained: training stopped and wrote nothing back"
    assert not out.exists()  # nothing re-created it
