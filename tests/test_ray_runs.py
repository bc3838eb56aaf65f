"""The Ray runner against a real two-node Ray cluster started on this machine for the session.

`ray start --head` plus a second `ray start --address` make two nodes of one CPU each; runs are Ray jobs
(the Jobs API) whose entrypoint is the same `train --from-saved` the local scheduler uses, writing the same
run folders. Skipped, with the reason, only where the `ray` package is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import app_test, english_like, tiny_config

from genai_core.config import RunConfig
from genai_core.runs.folder import Run
from genai_core.train import ray_jobs
from genai_core.train.jobs import JobManager
from genai_core.train.ray_local import LocalRayCluster

pytestmark = pytest.mark.skipif(not ray_jobs.available() or shutil.which("ray") is None,
                                reason="ray is not installed (pip install 'ray[default]')")
TIMEOUT = 180.0


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """Two nodes (one CPU each) on this machine; yields the dashboard address for the Jobs API."""
    with LocalRayCluster(cpus_per_node=1) as cluster:
        cluster.add_node()
        yield cluster.address


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text("\n".join(english_like(500, seed=3)) + "\n", encoding="utf-8")
    return path


def ray_cfg(corpus: Path, address: str, **train: Any) -> RunConfig:
    train.setdefault("device", "cpu")
    return tiny_config(corpus, runner="ray", ray_address=address, num_threads=1, **train)


def test_a_grid_runs_as_parallel_ray_jobs_on_two_nodes(ray_cluster: str, corpus: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "runs"
    jm = JobManager(root)
    names = [f"cell-{lr}" for lr in ("1e-3", "2e-3", "3e-3", "4e-3")]
    for name in names:
        lr = float(name.split("-", 1)[1])
        st = jm.submit(ray_cfg(corpus, ray_cluster, max_steps=200, eval_interval=100, lr=lr), name)
        assert st.state == "queued" and st.runner == "ray"
    assert {s.name for s in jm.queue()} | {s.name for s in jm.active()} == set(names)
    finals = {name: jm.wait(name, timeout=TIMEOUT) for name in names}
    assert {n: s.state for n, s in finals.items()} == dict.fromkeys(names, "completed")

    client = ray_jobs.client(ray_cluster)
    ids = [str(Run(root / n).read_status_raw()["ray_job"]) for n in names]
    deadline = time.monotonic() + 30  # the folder says completed a moment before the process has exited
    while not all(client.get_job_status(i).is_terminal() for i in ids):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    infos = [client.get_job_info(i) for i in ids]
    assert {str(getattr(i.status, "value", i.status)) for i in infos} == {"SUCCEEDED"}
    assert len({i.driver_node_id for i in infos}) == 2, "the cells did not spread over both nodes"
    # Two 1-CPU nodes: two cells at a time, never more (each reserves its one torch thread).
    # Each span: the training process's start (its pid token) to its final status.
    spans = [(st["started"], st["updated_at"]) for st in (Run(root / n).read_status_raw() for n in names)]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 2
    for name in names:
        run = Run(root / name)
        assert run.latest_checkpoint() is not None and run.metrics()[-1]["step"] == 200
        assert "completed 200 steps" in jm.log(name)

    # The Runs page shows every cell's curve.
    monkeypatch.setenv("GENAI_RUNS_DIR", str(root))
    import streamlit as st

    st.cache_resource.clear()
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    at = app_test("pages/runs.py")
    assert not at.exception
    at.multiselect(key="runs_compare").set_value(names).run()
    fig = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
               if json.loads(c.proto.spec)["data"][0]["type"] == "scatter")
    assert {t["name"].split(" · ")[0] for t in fig["data"]} == set(names)
    st.cache_resource.clear()


def test_stop_and_resume_a_ray_run(ray_cluster: str, corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    jm = JobManager(root)
    jm.submit(ray_cfg(corpus, ray_cluster, max_steps=20_000, eval_interval=2000), "long")
    run = Run(root / "long")
    deadline = time.monotonic() + TIMEOUT
    while not (run.metrics() and run.metrics()[-1]["step"] >= 30):
        assert time.monotonic() < deadline, "the Ray run did not start training"
        time.sleep(0.2)
    assert jm.status("long").backend_state == "RUNNING"
    jm.stop("long")
    final = jm.wait("long", timeout=TIMEOUT)
    assert final.state == "stopped" and run.latest_checkpoint() is not None
    jm.resume("long")
    while run.status().get("started_step") != final.step:
        assert time.monotonic() < deadline + TIMEOUT, "the resumed Ray run did not start"
        time.sleep(0.2)
    jm.stop("long")
    assert jm.wait("long", timeout=TIMEOUT).state == "stopped"


def test_a_sweep_trains_its_trials_as_ray_jobs_two_at_a_time_on_both_nodes(ray_cluster: str, corpus: Path,
                                                                           tmp_path: Path) -> None:
    from genai_core.explore.space import SearchSpace
    from genai_core.explore.sweep import Sweep, SweepSettings, sweeps_dir

    root = tmp_path / "runs"
    base = ray_cfg(corpus, ray_cluster, max_steps=150, eval_interval=50)
    space = SearchSpace.from_dict({"lr": [1e-3, 3e-3], "d_model": [16, 32]})
    sweep = Sweep.create(sweeps_dir(root) / "rs", root, base, space,
                         SweepSettings(trials=4, sampler="grid", pruner="none", parallel=2))
    summary = sweep.run(poll_s=0.2)
    assert summary["finished"] and [t["state"] for t in summary["trials"]] == ["completed"] * 4
    assert all(t["steps"] == 150 for t in summary["trials"])
    # Every cell to the end, two at once: the costliest (widest) first, so both nodes finish together.
    assert [t["params"]["d_model"] for t in summary["trials"]] == [32, 32, 16, 16]
    names = [t["run"] for t in summary["trials"]]
    statuses = [Run(root / n).read_status_raw() for n in names]
    assert {st["runner"] for st in statuses} == {"ray"} and all(st["sweep"] == "rs" for st in statuses)
    client = ray_jobs.client(ray_cluster)
    nodes = {client.get_job_info(str(st["ray_job"])).driver_node_id for st in statuses}
    assert len(nodes) == 2, "the sweep's trials did not spread over both nodes"
    spans = [(st["started"], st["updated_at"]) for st in statuses]
    assert max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans) == 2  # parallel 2: two at once


def test_unreachable_cluster_is_one_clear_error(corpus: Path, tmp_path: Path) -> None:
    from genai_core.errors import GenAIError

    jm = JobManager(tmp_path / "runs")
    with pytest.raises(GenAIError, match=re.escape("Ray cluster at http://127.0.0.1:9")):
        jm.submit(ray_cfg(corpus, "http://127.0.0.1:9"), "nowhere")
    assert not (tmp_path / "runs" / "nowhere").exists()  # nothing half-made is left behind
