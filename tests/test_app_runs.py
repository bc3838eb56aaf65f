"""The Runs page through AppTest: table, overlaid curves, parallel coordinates, downloads,
rename, delete with confirmation, import of a valid and of an invalid archive.

Two real runs (different learning rates) are trained once per module and copied into each test's
runs folder before the page runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from conftest import app_test, tiny_config

from genai_core.runs import archive
from genai_core.runs.folder import Run
from genai_core.train.trainer import train

PAGE = "pages/runs.py"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_txt: Path) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("app-runs")
    train(tiny_config(tiny_txt, max_steps=10, lr=1e-3), root / "alpha")
    train(tiny_config(tiny_txt, max_steps=10, lr=3e-3), root / "beta")
    return root


@pytest.fixture
def runs(trained: Path, app_env: Path) -> Path:
    for name in ("alpha", "beta"):
        shutil.copytree(trained / name, app_env / name)
    return app_env


def _figures(at: Any) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _loss_figure(at: Any) -> dict[str, Any]:
    return next(f for f in _figures(at) if f["data"] and f["data"][0]["type"] == "scatter")


def _button(at: Any, key: str) -> Any:
    return next(b for b in at.button if b.key == key)


def _errors(at: Any) -> list[str]:
    return [e.value for e in at.error]


def test_table_overlay_and_parcoords(runs: Path) -> None:
    at = app_test(PAGE)
    assert not at.exception and not _errors(at)
    table = at.dataframe[0].value
    assert set(table["name"]) == {"alpha", "beta"}
    assert {"best_val_loss", "best_val_ppl", "lr", "d_model", "tokens", "elapsed_s"} <= set(table.columns)

    compare = at.multiselect(key="runs_compare")
    assert sorted(compare.value) == ["alpha", "beta"]  # the two newest are overlaid by default
    fig = _loss_figure(at)
    names = {t["name"] for t in fig["data"]}
    assert names == {"alpha · train", "alpha · validation", "beta · train", "beta · validation"}
    assert fig["layout"]["xaxis"]["title"]["text"] == "step"
    assert "nats/token" in fig["layout"]["yaxis"]["title"]["text"]

    parcoords = next(f for f in _figures(at) if f["data"][0]["type"] == "parcoords")
    labels = [d["label"] for d in parcoords["data"][0]["dimensions"]]
    assert {"d_model (width)", "learning rate (log scale)", "best val loss"} <= set(labels)
    line = parcoords["data"][0]["line"]
    assert line["colorbar"]["title"]["text"] == "best val loss<br>(nats/token)"  # the unit, off the crowded axes
    assert parcoords["data"][0]["labelangle"] == -40  # slanted: labels of ten axes stay apart at 800 px
    assert len(parcoords["data"][0]["line"]["color"]) == 2
    assert "validation loss" in parcoords["layout"]["title"]["text"]

    # x axis, smoothing and log scale reach the figure; one run selected gives one run's traces.
    at.radio(key="runs_x").set_value("tokens")
    at.toggle(key="runs_log").set_value(True)
    compare.set_value(["beta"])
    at.run()
    fig = _loss_figure(at)
    assert {t["name"] for t in fig["data"]} == {"train", "validation"}
    assert fig["layout"]["xaxis"]["title"]["text"] == "tokens seen"
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert fig["data"][0]["x"][-1] == Run(runs / "beta").metrics()[-1]["tokens"]

    labels = {b.proto.label for b in at.get("download_button")}
    assert labels == {"HTML report", "Run as .zip"}


def test_delete_needs_confirmation_and_removes_the_folder(runs: Path) -> None:
    at = app_test(PAGE)
    at.selectbox(key="runs_focus").set_value("beta").run()
    assert _button(at, "runs_delete").disabled  # nothing happens without the confirmation
    at.checkbox(key="delete_confirm_beta").check().run()
    _button(at, "runs_delete").click().run()
    assert not at.exception and not _errors(at)
    assert not (runs / "beta").exists() and (runs / "alpha").is_dir()
    assert any("Deleted run beta" in s.value for s in at.success)
    assert list(at.dataframe[0].value["name"]) == ["alpha"]
    assert at.multiselect(key="runs_compare").value == ["alpha"]


def test_rename_and_refusals_while_active(runs: Path) -> None:
    at = app_test(PAGE)
    at.selectbox(key="runs_focus").set_value("alpha").run()
    at.text_input(key="rename_to_alpha").set_value("bad name/").run()
    _button(at, "runs_rename").click().run()
    assert any("invalid run name" in e for e in _errors(at)) and (runs / "alpha").is_dir()
    at.text_input(key="rename_to_alpha").set_value("alpha-lr1e-3").run()
    _button(at, "runs_rename").click().run()
    assert not at.exception and (runs / "alpha-lr1e-3").is_dir() and not (runs / "alpha").exists()
    assert at.selectbox(key="runs_focus").value == "alpha-lr1e-3"

    Run(runs / "beta").write_status("running", "training")  # this live process: beta reads as running
    at.selectbox(key="runs_focus").set_value("beta").run()
    assert _button(at, "runs_rename").disabled and _button(at, "runs_delete").disabled
    assert any("stop it on the Train page" in i.value for i in at.info)


def test_import_valid_and_invalid_archives(runs: Path) -> None:
    data = archive.export_run(Run(runs / "alpha"))
    at = app_test(PAGE)
    assert _button(at, "runs_import").disabled  # nothing chosen yet
    at.file_uploader[0].set_value(("alpha.zip", data, "application/zip"))
    at.run()
    _button(at, "runs_import").click().run()
    assert not at.exception and not _errors(at)
    assert (runs / "alpha-2").is_dir()  # alpha is taken: a fresh name
    assert "alpha-2" in set(at.dataframe[0].value["name"])
    assert any("as run alpha-2" in s.value for s in at.success)

    truncated = data[: len(data) // 3]  # the central directory is at the end: not a zip any more
    at.file_uploader[0].set_value(("broken.zip", truncated, "application/zip"))
    at.run()
    _button(at, "runs_import").click().run()
    assert not at.exception
    assert any("not a zip archive" in e for e in _errors(at))
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == ["alpha", "alpha-2", "beta"]


def test_lineage_and_qa_scores_as_columns(tiny_qa_runs: dict[str, Path], qa_files: dict[str, Path],
                                          app_env: Path) -> None:
    from genai_core.evaluate.answers import evaluate_qa

    for name in ("pretrain", "qa"):
        shutil.copytree(tiny_qa_runs[name], app_env / name)
    scores = {name: evaluate_qa(app_env / name, qa_files["test"], limit=4, device="cpu")["metrics"]
              for name in ("pretrain", "qa")}
    at = app_test(PAGE)
    assert not at.exception and not _errors(at)
    table = at.dataframe[0].value
    # The fine-tune is listed right after the run it started from (newest first would put it above).
    assert list(table["name"]) == ["pretrain", "qa"]
    rows = table.set_index("name")
    assert rows.loc["qa", "task"] == "qa" and rows.loc["qa", "parent"] == "pretrain"
    assert rows.loc["pretrain", "task"] == "lm" and pd.isna(rows.loc["pretrain", "parent"])
    for name, m in scores.items():
        assert rows.loc[name, "qa_test_f1"] == pytest.approx(m["f1"])
        assert rows.loc[name, "qa_test_exact_match"] == pytest.approx(m["exact_match"])
        assert rows.loc[name, "qa_test_rougeL"] == pytest.approx(m["rougeL"])
    lineage = "\n".join(md.value for md in at.markdown)
    assert "- **pretrain** (lm)" in lineage and "    - ↳ **qa** (qa) · test F1" in lineage

    # Hyperparameters can be judged on answers: the parallel coordinates follow the chosen score.
    at.selectbox(key="runs_target").set_value("qa_test_f1").run()
    parcoords = next(f for f in _figures(at) if f["data"][0]["type"] == "parcoords")
    assert "QA test F1" in parcoords["layout"]["title"]["text"]
    assert sorted(parcoords["data"][0]["line"]["color"]) == sorted(m["f1"] for m in scores.values())


def test_tables_read_true_to_the_disk_and_never_say_none(runs: Path, tiny_txt: Path) -> None:
    from genai_core.config import RunConfig

    # A QA fine-tune queued from a parent: it will train the parent's network, not its own config's defaults.
    parent = Run(runs / "alpha")
    pcfg = parent.config()
    qa = RunConfig.model_validate({**pcfg.model_dump(), "task": "qa", "parent": str(parent.path),
                                   "model": {"seq_len": pcfg.model.seq_len * 4}})
    Run.create(runs / "queued-qa", qa).write_status("queued", "waiting for its parent")
    # A run stopped between two log rows: its checkpoint (and status) is past its last metrics row.
    halfway = Run(runs / "beta")
    halfway.write_status("stopped", "stopped by request", step=13)
    at = app_test(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    frame = at.dataframe[0]
    assert frame.proto.placeholder == "–"  # a missing value reads as a dash, not "None"
    rows = frame.value.set_index("name")
    assert rows.loc["queued-qa", "seq_len"] == pcfg.model.seq_len
    assert rows.loc["beta", "step"] == 13
    assert all(d.proto.placeholder == "–" for d in at.dataframe)
