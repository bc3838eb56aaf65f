"""Sweeps: a bad space is refused in one line; a real sweep trains its trials as runs through the runs folder's
scheduler, prunes the losers at the rungs, survives its controller being killed, and summarises."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from test_cli import TINY, Cli, assert_user_error, metric_steps, status

from genai_core.errors import GenAIError
from genai_core.explore.space import SearchSpace

pytestmark = pytest.mark.slow

TRIALS = 6
MAX_STEPS, RUNG = 300, 20
SPACE = {"lr": {"low": 3e-4, "high": 3e-2, "log": True}, "d_model": [16, 32]}
# TINY's model but its width, which the space sweeps; the classic recipe (AdamW: the swept lr is the only one).
assert TINY[:2] == ["--d-model", "32"]
FIXED = [*TINY[2:], "--max-steps", str(MAX_STEPS), "--eval-interval", str(RUNG), "--log-interval", "10",
         "--recipe", "classic"]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    d = tmp_path_factory.mktemp("sweep-cli")
    return Cli(d, d / "runs")


@pytest.mark.parametrize(("space", "fragment"), [
    ({"lr": {"low": 0.01, "high": 0.001}}, "lr: the range is empty (low 0.01 is not below high 0.001)"),
    ({"lr": {"low": 0, "high": 0.1, "log": True}}, "lr: a log-scale range must start above 0"),
    ({"lr": {"low": -0.1, "high": 0.1}}, "the space holds a config the trainer refuses: lr=-0.1"),
    ({"d_model": [30, 32], "n_heads": [4]}, "d_model (30) must be divisible by n_heads (4)"),
    ({"vocab": [1, 2]}, "the space names 'vocab', which a sweep cannot vary"),
    ({"d_model": []}, "d_model: the list of choices is empty"),
    ({"optimizer": {"low": 1, "high": 2}}, "optimizer takes one of a few values, not a range"),
    ({"n_layers": {"low": 1.5, "high": 3}}, "n_layers is a whole number: low 1.5 is not"),
    ({}, "a search space is a JSON object mapping at least one knob"),
])
def test_a_bad_space_gets_one_message_before_anything_runs(
        cli: Cli, tiny_txt: Path, tmp_path: Path, space: dict, fragment: str) -> None:
    f = tmp_path / "space.json"
    f.write_text(json.dumps(space))
    assert_user_error(cli("sweep", "--corpus", str(tiny_txt), "--space", str(f), *FIXED, "--out", "bad"), fragment)
    assert not (cli.runs / ".sweeps" / "bad").exists() and not list(cli.runs.glob("bad-t*"))


def test_a_space_that_is_not_json_is_named(cli: Cli, tiny_txt: Path, tmp_path: Path) -> None:
    f = tmp_path / "space.json"
    f.write_text("{lr: 1}")
    assert_user_error(cli("sweep", "--corpus", str(tiny_txt), "--space", str(f), *FIXED, "--out", "bad"),
                      "the space is not valid JSON")


def test_a_space_reads_ranges_choices_and_its_grid() -> None:
    space = SearchSpace.from_dict({"n_layers": {"low": 1, "high": 3}, "d_model": [64, 128],
                                   "lr": {"low": 1e-4, "high": 1e-2, "log": True}})
    assert [k.integer for k in space.knobs] == [True, True, False]
    assert space.grid_size() is None  # a range of reals has no grid
    assert SearchSpace.from_dict({"n_layers": {"low": 1, "high": 3}, "d_model": [64, 128]}).grid_size() == 6
    with pytest.raises(GenAIError, match="lr: log must be true or false"):
        SearchSpace.from_dict({"lr": {"low": 1e-4, "high": 1e-2, "log": "yes"}})


@pytest.fixture(scope="module")
def swept(cli: Cli, tiny_txt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 6-trial random-search sweep with successive halving, its controller killed (-9) once the second trial
    trains, then resumed to the end. Returns its summary."""
    f = tmp_path_factory.mktemp("space") / "space.json"
    f.write_text(json.dumps(SPACE))
    proc = cli.popen("sweep", "--corpus", str(tiny_txt), "--space", str(f), *FIXED, "--trials", str(TRIALS),
                     "--sampler", "random", "--out", "sw")
    deadline = time.monotonic() + 240
    while not metric_steps(cli.runs / "sw-t01"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the second trial never trained"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # the controller only: the trial trains on in the scheduler's process
    proc.communicate()
    res = cli("sweep", "--out", "sw", "--resume", timeout=600)
    assert res.returncode == 0, (res.stdout, res.stderr)
    summary = json.loads((cli.runs / ".sweeps" / "sw" / "summary.json").read_text())
    summary["stdout"] = res.stdout
    return summary


def test_a_sweep_trains_each_trial_once_as_a_run_and_prunes_losers_at_the_rungs(cli: Cli, swept: dict) -> None:
    trials = swept["trials"]
    assert [t["run"] for t in trials] == [f"sw-t{i:02d}" for i in range(TRIALS)]
    assert sorted(p.name for p in cli.runs.glob("sw-t*")) == [t["run"] for t in trials]  # no trial twice
    for t in trials:
        run = cli.runs / t["run"]
        steps = metric_steps(run)
        assert steps == sorted(set(steps)), (t["run"], steps)  # no step logged twice, across the kill
        st = status(run)
        assert st["sweep"] == "sw" and st["trial"] == t["number"]  # lineage to the sweep
        config = json.loads((run / "config.json").read_text())
        assert config["model"]["d_model"] == t["params"]["d_model"] and config["train"]["lr"] == t["params"]["lr"]
        assert t["state"] in ("completed", "pruned"), t
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned, trials
    for t in pruned:  # it keeps its curve and checkpoint, and says where and by what it was cut
        run = cli.runs / t["run"]
        st = status(run)
        assert st["state"] == "pruned" and st["pruned_at"] == t["pruned_at"]["step"]
        assert t["pruned_at"]["step"] % RUNG == 0 and t["steps"] < MAX_STEPS
        assert "pruned by the sweep at step" in st["message"]
        assert (run / "checkpoints" / "latest").is_file()
    done = [t for t in trials if t["state"] == "completed"]
    assert swept["best"]["run"] == min(done, key=lambda t: t["val_loss"])["run"]
    assert all(t["steps"] == MAX_STEPS for t in done)
    assert 0 < swept["compute"]["saved_by_pruning"] < 1
    assert f"best: {swept['best']['run']}" in swept["stdout"]


def test_importance_is_measured_at_the_latest_rung_enough_trials_reached_pruned_ones_included(swept: dict) -> None:
    imp = swept["importance"]
    assert imp is not None and set(imp["knobs"]) == set(SPACE)
    assert all(v >= 0 for v in imp["knobs"].values()) and sum(imp["knobs"].values()) == pytest.approx(1.0)
    trials = swept["trials"]
    reached = [t for t in trials if t["steps"] >= imp["step"]]
    assert imp["trials"] == len(reached) >= 4 and imp["step"] % RUNG == 0
    # The latest such step: fewer than four trials went further (pruning stopped the rest).
    assert sum(t["steps"] >= imp["step"] + RUNG for t in trials) < 4
    assert f"importance (val loss at step {imp['step']:,} of {imp['trials']} trials)" in swept["stdout"]


def test_a_second_controller_of_a_sweep_is_refused_and_a_finished_sweep_asks_nothing_more(
        cli: Cli, swept: dict) -> None:
    from genai_core.explore.sweep import LOCK_FILE, Sweep
    from genai_core.files import file_lock

    folder = cli.runs / ".sweeps" / "sw"
    with file_lock(folder / LOCK_FILE):
        res = cli("sweep", "--out", "sw", "--resume")
    assert_user_error(res, "sweep sw is being run by another process")
    again = Sweep.open(folder, cli.runs).run(poll_s=0.05)  # done: nothing new is asked or trained
    assert [t["run"] for t in again["trials"]] == [t["run"] for t in swept["trials"]]


def test_a_resumed_sweep_keeps_its_space_and_a_trials_run_stays_an_ordinary_run(cli: Cli, swept: dict) -> None:
    res = cli("runs")
    assert res.returncode == 0 and "sw-t00" in res.stdout and ".sweeps" not in res.stdout
    saved = json.loads((cli.runs / ".sweeps" / "sw" / "sweep.json").read_text())
    assert saved["space"] == SPACE and saved["settings"]["trials"] == TRIALS


def test_a_grid_sweep_trains_every_cell_once_in_order_and_stops(tmp_path: Path, tiny_txt: Path) -> None:
    from conftest import tiny_config

    from genai_core.explore.sweep import Sweep, SweepSettings, sweeps_dir

    runs = tmp_path / "runs"
    base = tiny_config(tiny_txt, max_steps=20, eval_interval=10, log_interval=10, runner="thread")
    space = SearchSpace.from_dict({"n_layers": {"low": 1, "high": 2}, "d_model": [16, 32]})
    sweep = Sweep.create(sweeps_dir(runs) / "g", runs, base, space, SweepSettings(trials=10, sampler="grid",
                                                                                  pruner="none"))
    summary = sweep.run(poll_s=0.05)
    assert [t["params"] for t in summary["trials"]] == [{"n_layers": n, "d_model": d} for n in (1, 2) for d in (16, 32)]
    assert all(t["state"] == "completed" and t["steps"] == 20 for t in summary["trials"]) and summary["finished"]
    assert summary["compute"]["saved_by_pruning"] == 0


def test_a_random_search_of_a_small_space_never_trains_a_config_twice(tmp_path: Path, tiny_txt: Path) -> None:
    from conftest import tiny_config

    from genai_core.explore.sweep import Sweep, SweepSettings, sweeps_dir

    runs = tmp_path / "runs"
    base = tiny_config(tiny_txt, max_steps=10, eval_interval=10, log_interval=10, runner="thread")
    sweep = Sweep.create(sweeps_dir(runs) / "r", runs, base, SearchSpace.from_dict({"d_model": [16, 32]}),
                         SweepSettings(trials=5, sampler="random", pruner="none"))
    summary = sweep.run(poll_s=0.05)
    assert sorted(t["params"]["d_model"] for t in summary["trials"]) == [16, 32]  # 2 cells: 2 trials, not 5
    assert summary["finished"] and len(list(runs.glob("r-t*"))) == 2


def test_a_stopped_sweep_resumes_its_trials_where_they_stopped(tmp_path: Path, tiny_txt: Path) -> None:
    import threading

    from conftest import tiny_config

    from genai_core.explore.sweep import Sweep, SweepSettings, sweeps_dir

    runs = tmp_path / "runs"
    base = tiny_config(tiny_txt, max_steps=400, eval_interval=50, log_interval=10, runner="thread",
                       checkpoint_seconds=0.0)
    sweep = Sweep.create(sweeps_dir(runs) / "p", runs, base, SearchSpace.from_dict({"d_model": [16, 32]}),
                         SweepSettings(trials=2, sampler="grid", pruner="none"))
    stop = threading.Event()
    stopper = threading.Thread(target=lambda: (_wait_for_steps(runs / "p-t00", 20), stop.set()))
    stopper.start()
    first = sweep.run(stop=stop, poll_s=0.05)
    stopper.join()
    assert not first["finished"] and first["trials"][0]["steps"] < 400
    summary = Sweep.open(sweep.out, runs).run(poll_s=0.05)
    assert summary["finished"] and [t["state"] for t in summary["trials"]] == ["completed", "completed"]
    steps = metric_steps(runs / "p-t00")
    assert steps == sorted(set(steps)) and steps[-1] == 400  # resumed from its checkpoint, not retrained


def _wait_for_steps(run: Path, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(metric_steps(run)) < n // 10 and time.monotonic() < deadline:
        time.sleep(0.02)


def test_seed_reruns_train_the_best_config_again_with_other_seeds_and_give_the_seed_noise(
        tmp_path: Path, tiny_txt: Path) -> None:
    from conftest import tiny_config

    from genai_core.explore.sweep import Sweep, SweepSettings, sweeps_dir
    from genai_core.runs.folder import Run

    runs = tmp_path / "runs"
    base = tiny_config(tiny_txt, max_steps=20, eval_interval=10, log_interval=10, runner="thread", seed=5)
    sweep = Sweep.create(sweeps_dir(runs) / "s", runs, base, SearchSpace.from_dict({"d_model": [16, 32]}),
                         SweepSettings(trials=2, sampler="grid", pruner="none", seed_reruns=2))
    summary = sweep.run(poll_s=0.05)
    best = summary["best"]["run"]
    reruns = summary["seed_reruns"]
    assert [r["run"] for r in reruns] == [f"{best}-seed1", f"{best}-seed2"] and summary["finished"]
    assert [r["seed"] for r in reruns] == [6, 7] and all(r["state"] == "completed" for r in reruns)
    losses = [summary["best"]["val_loss"], *(r["val_loss"] for r in reruns)]
    assert len(set(losses)) == 3  # other seeds, other losses (equal seeds give equal runs on CPU)
    assert summary["seed_spread"] == pytest.approx(max(losses) - min(losses))
    for r in reruns:  # the best config exactly, but the seed; lineage to the sweep, not a trial of it
        config = Run(runs / r["run"]).config()
        assert config.model == Run(runs / best).config().model and config.train.max_steps == 20
        assert Run(runs / r["run"]).read_status_raw()["rerun_of"] == best
    assert len(summary["trials"]) == 2
    assert Sweep.open(sweep.out, runs).run(poll_s=0.05)["seed_reruns"] == reruns  # resumed: nothing trained again
