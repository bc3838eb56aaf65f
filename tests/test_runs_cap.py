"""The runs folder's disk cap ($GENAI_RUNS_MAX_GB) holds for every writer: each checkpoint during training (the
run stops, keeping its last checkpoint, and resumes once there is room), starts and resumes that count what
running runs will still write, imports, and prepared corpora."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_config

from genai_core.data.tokenstore import prepare_cached
from genai_core.files import RUNS_CAP_ENV, RunsCapReached, folder_bytes
from genai_core.runs import archive
from genai_core.runs.folder import Run, token_cache_dir
from genai_core.train.counts import checkpoint_bytes
from genai_core.train.jobs import JobManager, projected_bytes
from genai_core.train.trainer import train


def _cap(monkeypatch: pytest.MonkeyPatch, nbytes: float) -> None:
    monkeypatch.setenv(RUNS_CAP_ENV, repr(nbytes / 1e9))


def test_a_run_reaching_the_cap_stops_keeps_its_last_checkpoint_and_resumes_once_there_is_room(
        tmp_path: Path, tiny_txt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tiny_txt, max_steps=40, checkpoint_interval=5, eval_interval=5)
    runs = tmp_path / "runs"
    prepare_cached(cfg.data, token_cache_dir(runs))
    reference = train(cfg, tmp_path / "reference" / "r")  # outside the capped folder: one checkpoint's size
    one = folder_bytes(reference.run.latest_checkpoint())
    # Room for two checkpoints beside the corpus, not for the third that is written before the oldest goes.
    cap = folder_bytes(runs) + 2.5 * one
    _cap(monkeypatch, cap)
    result = train(cfg, runs / "capped")
    status = result.run.status()
    assert result.state == "stopped" and status["step"] == 15, status
    assert "reached its cap" in status["message"] and "resume to continue from step 10" in status["message"]
    assert result.run.latest_checkpoint().name == "step_00000010"
    assert folder_bytes(runs) <= cap  # never passed, not even while a checkpoint was written
    monkeypatch.delenv(RUNS_CAP_ENV)
    resumed = train(cfg, runs / "capped", resume=True)
    assert resumed.state == "completed"
    assert [r["step"] for r in resumed.run.metrics()] == [r["step"] for r in reference.run.metrics()]


def test_a_start_counts_what_running_and_queued_runs_will_still_write(
        tmp_path: Path, tiny_txt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tiny_txt, max_steps=100_000)
    runs = tmp_path / "runs"
    prepare_cached(cfg.data, token_cache_dir(runs))
    one_run = projected_bytes(cfg, None)
    assert one_run == 3 * checkpoint_bytes(cfg.model, cfg.train) > 0
    _cap(monkeypatch, folder_bytes(runs) + 1.5 * one_run)  # one run fits, two do not
    jm = JobManager(runs)
    try:
        jm.submit(cfg, "first")
        with pytest.raises(RunsCapReached, match="reached its cap"):
            jm.submit(cfg, "second")  # the runs folder is nowhere near its cap yet: the first run's future is
        assert not (runs / "second").exists()
    finally:
        jm.shutdown(stop_running=True, timeout=30)


def test_imports_and_prepared_corpora_count_against_the_cap(
        tmp_path: Path, tiny_txt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tiny_txt, max_steps=5)
    zipped = archive.export_run(train(cfg, tmp_path / "elsewhere" / "r").run)
    runs = tmp_path / "runs"
    runs.mkdir()
    _cap(monkeypatch, 1000)  # 1 kB: an empty folder, but nothing fits
    with pytest.raises(RunsCapReached, match="this needs"):
        archive.import_run(zipped, runs)
    with pytest.raises(RunsCapReached, match="this needs"):
        prepare_cached(cfg.data, token_cache_dir(runs))
    assert folder_bytes(runs) == 0 and not [p for p in runs.rglob("*") if p.is_file()]
    assert not Run(runs / "r").exists()
