"""Where training runs, measured: the app's responsiveness beside a run, and a grid on Ray vs one after another.

1. **Page reruns** (`--only ui`): the Runs page (its table, curves and parallel coordinates over the runs
   folder) is re-run through Streamlit's AppTest 40 times, as a person's click re-runs it: with nothing
   training, beside a run training in a thread of this process (the `thread` runner: it shares the
   interpreter, and the GIL, with the page), and beside the same run in its own process (`process`).
   Prints p50 / p95 / max in milliseconds for each, and the run's step rate alone (5 s) and while the page
   reruns: what the page costs the run, and the run the page.
2. **A grid** (`--only grid`): four runs (the lr values of a small explore grid, 1 torch thread each) one
   after another through the local scheduler, then as Ray jobs on a two-node local cluster (1 CPU per
   node) started here. Prints both wall times, from the first submit to the last run's end.

    python benchmarks/jobs_bench.py [--only ui,grid] [--steps 400]

Nothing else should run meanwhile (2 cores: a second job halves either figure).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("GENAI_NUM_THREADS", "1")

from conftest import english_like  # noqa: E402  (the tests' deterministic text)

from genai_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from genai_core.runs.folder import Run  # noqa: E402
from genai_core.train.jobs import JobManager  # noqa: E402
from genai_core.train.trainer import train  # noqa: E402


def config(corpus: Path, steps: int, **train_kw: object) -> RunConfig:
    return RunConfig(data=DataConfig(corpus=corpus),
                     model=ModelConfig(d_model=128, n_heads=4, n_layers=4, seq_len=64),
                     train=TrainConfig(max_steps=steps, batch_size=16, eval_interval=max(1, steps // 4),
                                       eval_batches=4, log_interval=10, device="cpu", num_threads=1, **train_kw))


def percentiles(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20)
    return f"p50 {statistics.median(ms):7.1f} ms   p95 {q[18]:7.1f} ms   max {max(ms):7.1f} ms"


def page_reruns(runs: Path, n: int = 25) -> list[float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/runs.py")
    at.run()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t0) * 1000)
        assert not at.exception, at.exception
    return times


def step_rate(run: Run, during: Callable[[], object]) -> float:
    """Steps per second the run made while `during` ran (from its logged steps, every 10)."""
    s0, t0 = run.metrics()[-1]["step"], time.monotonic()
    during()
    return (run.metrics()[-1]["step"] - s0) / (time.monotonic() - t0)


def bench_ui(work: Path, corpus: Path) -> None:
    runs = work / "ui-runs"
    os.environ["GENAI_RUNS_DIR"] = str(runs)
    for i, lr in enumerate((1e-3, 3e-3)):  # something for the page to draw
        train(config(corpus, 60, lr=lr), runs / f"done-{i}")
    print("Runs page rerun time (AppTest, 40 reruns each):")
    print(f"  idle             {percentiles(page_reruns(runs, 40))}")
    for runner in ("thread", "process"):
        jm = JobManager(runs)
        name = f"busy-{runner}"
        jm.submit(config(corpus, 100_000, runner=runner), name)
        run = Run(runs / name)
        deadline = time.monotonic() + 120
        while not run.metrics():
            if time.monotonic() > deadline:
                raise SystemExit(f"the {runner} run did not start")
            time.sleep(0.2)
        alone = step_rate(run, lambda: time.sleep(5))
        times: list[float] = []
        beside = step_rate(run, lambda out=times: out.extend(page_reruns(runs, 40)))
        print(f"  beside a {runner:<7} {percentiles(times)}   the run: {alone:5.1f} steps/s alone, "
              f"{beside:5.1f} while the page reruns")
        jm.stop(name)
        jm.wait(name, timeout=120)
        jm.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_grid(work: Path, corpus: Path, steps: int) -> None:
    lrs = (1e-3, 2e-3, 3e-3, 4e-3)

    def grid(runner: str, root: Path, **kw: object) -> float:
        jm = JobManager(root)
        t0 = time.monotonic()
        names = []
        for lr in lrs:
            names.append(f"{runner}-lr{lr:g}")
            jm.submit(config(corpus, steps, lr=lr, runner=runner, **kw), names[-1])
        for name in names:
            st = jm.wait(name, timeout=3600)
            assert st.state == "completed", (name, st.state, st.message)
        return time.monotonic() - t0

    print(f"Grid of {len(lrs)} runs x {steps} steps (d_model 128, 4 layers, 1 torch thread each):")
    wall = grid("process", work / "grid-local")
    print(f"  one after another (local scheduler, one run per device): {wall:6.1f} s")
    if shutil.which("ray") is None:
        print("  Ray: not installed (pip install 'ray[default]')")
        return
    gcs, dash = _free_port(), _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(["ray", "start", "--head", "--num-cpus", "1", "--port", str(gcs), "--dashboard-port", str(dash),
                    "--include-dashboard", "true"], env=env, check=True, capture_output=True)
    subprocess.run(["ray", "start", "--address", f"127.0.0.1:{gcs}", "--num-cpus", "1",
                    "--dashboard-agent-listen-port", str(_free_port()), "--metrics-export-port", str(_free_port())],
                   env=env, check=True, capture_output=True)
    try:
        address = f"http://127.0.0.1:{dash}"
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(address)
        while True:  # the job agents come up a little after `ray start` returns
            try:
                client.submit_job(entrypoint="true")
                break
            except RuntimeError:
                time.sleep(1)
        wall_ray = grid("ray", work / "grid-ray", ray_address=address)
        print(f"  Ray jobs on a 2-node local cluster (1 CPU each):          {wall_ray:6.1f} s "
              f"({wall / wall_ray:.2f}x faster)")
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="ui,grid")
    ap.add_argument("--steps", type=int, default=400, help="steps of each grid run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "corpus.txt"
        corpus.write_text("\n".join(english_like(3000, seed=1)) + "\n", encoding="utf-8")
        if "ui" in args.only:
            bench_ui(work, corpus)
        if "grid" in args.only:
            bench_grid(work, corpus, args.steps)


if __name__ == "__main__":
    main()
