"""The Explore page: a finished sweep's view (its numbers, charts, table, and the best config trained longer), a
stopped one's Resume, a bad space refused in one message, and Start driving a real controller process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import app_test, tiny_config

from genai_core.explore.space import SearchSpace
from genai_core.explore.sweep import Sweep, SweepSettings, sweeps_dir
from genai_core.runs.folder import Run

pytestmark = pytest.mark.slow

SPACE = {"lr": {"low": 3e-4, "high": 3e-2, "log": True}, "d_model": [16, 32]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_txt: Path) -> Path:
    """A runs folder holding a finished 5-trial sweep of tiny models (trained in this process's job manager)."""
    runs = tmp_path_factory.mktemp("explore") / "runs"
    base = tiny_config(tiny_txt, max_steps=60, eval_interval=10, log_interval=10, runner="thread")
    base = base.model_copy(update={"model": base.model.model_copy(update={"n_layers": 1})})
    sweep = Sweep.create(sweeps_dir(runs) / "sw", runs, base, SearchSpace.from_dict(SPACE),
                         SweepSettings(trials=5, sampler="random"))
    summary = sweep.run(poll_s=0.05)
    assert [t["state"] for t in summary["trials"]].count("completed") >= 1
    return runs


def _at(runs: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("GENAI_RUNS_DIR", str(runs))
    return app_test("pages/explore.py", timeout=120)


def test_a_finished_sweep_shows_its_trials_charts_and_trains_the_best_longer(
        finished: Path, app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _at(finished, monkeypatch)
    assert not at.exception, at.exception
    summary = Sweep.open(sweeps_dir(finished) / "sw", finished).summary()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials"] == "5 / 5"
    assert metrics["Best val loss"] == f"{summary['best']['val_loss']:.4f}"
    assert any(md.value == "**finished**" for md in at.markdown)
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # the curves, the best so far, the parallel coordinates
    table = at.dataframe[0].value
    assert list(table["trial"]) == [f"sw-t{i:02d}" for i in range(5)]
    assert not [b for b in at.button if b.label in ("Stop the sweep", "Resume the sweep")]  # finished: neither
    best = summary["best"]["run"]
    at.button(key="explore_longer").click().run()
    assert not at.exception, at.exception
    longer = Run(finished / f"{best}-longer")
    assert longer.exists() and longer.config().train.max_steps == 3 * Run(finished / best).config().train.max_steps


def test_a_stopped_sweep_offers_resume(finished: Path, app_env: Path, monkeypatch: pytest.MonkeyPatch,
                                       tiny_txt: Path) -> None:
    base = tiny_config(tiny_txt, max_steps=60, eval_interval=10, log_interval=10, runner="thread")
    Sweep.create(sweeps_dir(finished) / "later", finished, base, SearchSpace.from_dict({"d_model": [16, 32]}),
                 SweepSettings(trials=2))  # created, never driven: it reads as stopped
    at = _at(finished, monkeypatch)
    at.selectbox[0].set_value("later").run()
    assert not at.exception, at.exception
    assert any(md.value == "**stopped**" for md in at.markdown)
    assert [b for b in at.button if b.label == "Resume the sweep"]


def test_a_bad_space_is_one_message_and_start_drives_a_real_controller(
        app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app_test("pages/explore.py", timeout=120)
    assert not at.exception, at.exception
    assert any("A trial of the largest corner trains in about" in i.value for i in at.info)  # the cost first
    at.text_input[0].set_value("bad name!").run()
    assert [e.value for e in at.error] and "bad name!" in at.error[0].value
    at.text_input[0].set_value("first").run()
    at.number_input[0].set_value(1).run()  # one trial
    next(b for b in at.button if b.label == "Start the sweep").click().run()
    assert not at.exception, at.exception
    sweep = Sweep.open(sweeps_dir(app_env) / "first", app_env)
    deadline = time.monotonic() + 120
    # The controller is a process of its own (it outlives this page): it asks for the first trial and queues it.
    while not (app_env / "first-t00" / "config.json").is_file():
        assert time.monotonic() < deadline, (sweep.out / "controller.log").read_text()
        time.sleep(0.2)
    assert sweep.controlled()
    sweep.request_stop()
    while sweep.controlled():
        assert time.monotonic() < deadline + 120, (sweep.out / "controller.log").read_text()
        time.sleep(0.2)
    summary = sweep.summary()
    assert [t["run"] for t in summary["trials"]] == ["first-t00"] and not summary["finished"]


def test_a_grid_shows_every_cell_checked_and_timed_before_start_and_queues_them_as_trials(
        app_env: Path, monkeypatch: pytest.MonkeyPatch, tiny_txt: Path) -> None:
    from genai_core.train.trainer import train

    train(tiny_config(tiny_txt, max_steps=2), app_env / "tiny")  # a run to start from
    at = app_test("pages/explore.py", timeout=120)
    at.selectbox(key="explore_start").set_value("Run tiny").run()
    at.toggle(key="explore_as_json").set_value(True).run()
    at.text_area(key="explore_space_text").set_value('{"d_model": [16, 32], "n_layers": {"low": 1, "high": 2}}')
    at.radio[1].set_value("none")
    at.radio[0].set_value("grid").run()
    at.text_input[0].set_value("gr").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    cells = next(df.value for df in at.dataframe if "trial" in df.value.columns)
    assert list(cells["trial"]) == ["gr-t00", "gr-t01", "gr-t02", "gr-t03"]
    assert [(d, n) for d, n in zip(cells["d_model"], cells["n_layers"], strict=True)] == [
        (16, 1), (16, 2), (32, 1), (32, 2)]
    assert cells["problem"].fillna("").eq("").all() and cells["estimated time"].notna().all()
    assert any("4 of the grid's 4 cells" in i.value for i in at.info)
    start = next(b for b in at.button if b.label == "Start the sweep")
    assert not start.disabled
    # A cell that cannot train keeps Start off, with the reason in its row.
    (app_env / "gr-t02").mkdir()
    at.run()
    cells = next(df.value for df in at.dataframe if "trial" in df.value.columns)
    assert cells["problem"][2] == "a run of this name exists (change the sweep's name)"
    assert next(b for b in at.button if b.label == "Start the sweep").disabled
    (app_env / "gr-t02").rmdir()
    # A window longer than the corpus holds is refused per cell, as the Train page refuses it for one run.
    at.text_area(key="explore_space_text").set_value('{"seq_len": [16, 32000]}').run()
    cells = next(df.value for df in at.dataframe if "trial" in df.value.columns)
    assert cells["problem"][0] == "" and "seq_len 32000 is too long for this corpus" in cells["problem"][1]
    assert next(b for b in at.button if b.label == "Start the sweep").disabled
    at.text_area(key="explore_space_text").set_value('{"d_model": [16, 32], "n_layers": {"low": 1, "high": 2}}')
    at.text_input[0].set_value("gr2").run()
    next(b for b in at.button if b.label == "Start the sweep").click().run()
    assert not at.exception, at.exception
    sweep = Sweep.open(sweeps_dir(app_env) / "gr2", app_env)
    assert sweep.settings.sampler == "grid" and sweep.base.model.seq_len == tiny_config(tiny_txt).model.seq_len
    assert sweep.base.train.runner == "process"  # trials outlive the page
    deadline = time.monotonic() + 120
    while not (app_env / "gr2-t00" / "config.json").is_file():
        assert time.monotonic() < deadline, (sweep.out / "controller.log").read_text()
        time.sleep(0.2)
    sweep.request_stop()
    while sweep.controlled():
        assert time.monotonic() < deadline + 120, (sweep.out / "controller.log").read_text()
        time.sleep(0.2)
