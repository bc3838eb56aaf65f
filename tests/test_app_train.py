"""The Train page and the Home page's demo button, through AppTest, with real tiny trainings.

AppTest never fires `run_every`: each `run()` is a full run of the page, which is how a refresh or a
second tab sees it. Training threads keep going between runs; `app_env` shuts the manager down.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from conftest import app_test, english_like

from genai_core.config import DataConfig, ModelConfig
from genai_core.data.tokenstore import prepare_cached
from genai_core.model import count_parameters
from genai_core.models import build_model
from genai_core.runs.folder import Run
from genai_core.train.jobs import JobManager

TIMEOUT = 60.0
TINY = {"d_model": 32, "n_heads": 2, "n_layers": 2, "seq_len": 16, "batch_size": 4, "max_steps": 20,
        "warmup_steps": 2, "eval_interval": 10, "eval_batches": 2, "log_interval": 5, "num_threads": 1}


@pytest.fixture
def corpus(app_env: Path, tmp_path: Path) -> Path:
    """A ~15 KB text saved as the Data page's choice (on disk, as a new session would find it)."""
    from pages import ui

    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(english_like(400, seed=5)) + "\n", encoding="utf-8")
    ui.save_data_choice(DataConfig(corpus=path))
    return path


def manager() -> JobManager:
    from pages import ui

    return ui.job_manager()


def set_knobs(at: Any, **values: Any) -> Any:
    for key, value in values.items():
        at.number_input(key=f"train_{key}").set_value(value)
    return at.run()


def errors(at: Any) -> str:
    return " | ".join(e.value for e in at.error)


def metric(at: Any, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def wait_until(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_tiny(at: Any, **over: Any) -> str:
    """Start a tiny run from the page; its name, as the job manager knows it."""
    set_knobs(at, **{**TINY, **over})
    assert not at.exception and not at.error, errors(at)
    assert not at.button(key="train_start").disabled
    at.button(key="train_start").click().run()
    assert not at.exception
    jobs = manager().jobs()
    assert len(jobs) == 1
    return jobs[0].name


def test_widgets_render_with_defaults(corpus: Path) -> None:
    at = app_test("pages/train.py")
    assert not at.exception
    assert at.title[0].value == "Train"
    assert at.number_input(key="train_d_model").value == 128
    assert at.number_input(key="train_n_heads").value == 4
    assert at.number_input(key="train_n_layers").value == 4
    assert at.radio(key="train_arch").value == "gpt"
    assert "auto" in at.selectbox(key="train_device").options
    assert not at.error, errors(at)
    assert not at.button(key="train_start").disabled
    labels = {m.label for m in at.metric}
    assert {"Parameters", "Peak memory", "FLOPs per step", "Time per step", "Total time"} <= labels
    # LSTM has no heads: the input is disabled (and its value ignored by the config).
    at.radio(key="train_arch").set_value("lstm").run()
    assert at.number_input(key="train_n_heads").disabled
    assert not at.error, errors(at)


def test_without_a_data_choice_the_demo_corpus_or_a_pointer_to_the_data_page(
        app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pages import ui

    monkeypatch.setattr(ui, "DEMO_CORPUS", tmp_path / "absent.csv")
    at = app_test("pages/train.py")
    assert not at.exception
    assert "Data page" in at.warning[0].value
    assert "no corpus" in errors(at) and at.button(key="train_start").disabled

    demo = tmp_path / "demo.txt"
    demo.write_text("\n".join(english_like(300, seed=9)) + "\n", encoding="utf-8")
    monkeypatch.setattr(ui, "DEMO_CORPUS", demo)
    at.run()
    assert "demo corpus" in at.info[0].value
    set_knobs(at, **TINY)
    assert not at.error and not at.button(key="train_start").disabled


def test_bad_values_disable_start_with_the_reason(corpus: Path) -> None:
    at = app_test("pages/train.py")
    set_knobs(at, d_model=130)
    assert "divisible by n_heads" in errors(at)
    assert at.button(key="train_start").disabled

    set_knobs(at, d_model=128, seq_len=5000)
    assert "too long for this corpus" in errors(at)
    assert at.button(key="train_start").disabled

    set_knobs(at, seq_len=64, lr=2.0)
    assert "lr" in errors(at) and "less than or equal to 1" in errors(at)
    assert at.button(key="train_start").disabled

    set_knobs(at, lr=0.003)
    at.text_input(key="train_run_name").set_value("no spaces allowed").run()
    assert "invalid run name" in errors(at)
    assert at.button(key="train_start").disabled

    at.text_input(key="train_run_name").set_value("").run()
    assert not at.error and not at.button(key="train_start").disabled


def test_estimate_shows_the_engines_parameter_count(corpus: Path, tmp_path: Path) -> None:
    at = app_test("pages/train.py")
    set_knobs(at, **TINY)
    vocab = prepare_cached(DataConfig(corpus=corpus), tmp_path / "store").tokenizer.vocab_size
    model = build_model(ModelConfig(d_model=32, n_heads=2, n_layers=2, seq_len=16, vocab_size=vocab))
    assert metric(at, "Parameters") == f"{count_parameters(model):,}"


def test_start_trains_and_the_page_shows_the_curve(corpus: Path, app_env: Path) -> None:
    at = app_test("pages/train.py")
    at.text_input(key="train_run_name").set_value("typed-name").run()
    name = start_tiny(at)
    assert name == "typed-name"
    # The typed name is used once: the box is emptied so the page does not call the new run "taken".
    assert at.text_input(key="train_run_name").value == ""
    assert "already exists" not in errors(at)
    final = manager().wait(name, timeout=TIMEOUT)
    assert final.state == "completed", final
    rows = Run(app_env / name).metrics()
    train_losses = [r["train_loss"] for r in rows if r.get("train_loss") is not None]
    assert len(train_losses) == 4  # 20 steps, one line every 5

    # A new session (a refresh, another tab) finds the run from the manager and the disk.
    at = app_test("pages/train.py")
    assert not at.exception
    assert any(name in h.value for h in at.subheader)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    train = next(t for t in spec["data"] if t["name"] == "train")
    assert train["y"] == pytest.approx(train_losses)
    assert any(t["name"] == "validation" for t in spec["data"])
    assert metric(at, "Train loss") == f"{train_losses[-1]:.3f}"


def test_stop_and_resume_act_on_the_job(corpus: Path, app_env: Path) -> None:
    at = app_test("pages/train.py")
    name = start_tiny(at, max_steps=100_000, eval_interval=1000)
    wait_until(lambda: (manager().status(name).step or 0) > 0, "the first step")
    at.run()
    at.button(key="train_stop_run").click().run()
    assert manager().wait(name, timeout=TIMEOUT).state == "stopped"

    at.run()
    assert any("stopped" in m.value for m in at.markdown)
    at.button(key="train_resume_run").click().run()
    assert not at.exception
    status = manager().status(name)
    assert status.resume and status.active
    manager().stop(name)
    assert manager().wait(name, timeout=TIMEOUT).state == "stopped"

    # A server restart ends the process: the disk says `running` for a process that is gone. A new
    # manager (the cache cleared) and a new session show the run as interrupted, with Resume.
    run = Run(app_env / name)
    raw = run.read_status_raw()
    (run.path / "status.json").write_text(json.dumps({**raw, "state": "running", "pid": 4_194_303, "started": 1.0}))
    st.cache_resource.clear()
    at = app_test("pages/train.py")
    assert any("interrupted" in m.value for m in at.markdown)
    at.button(key="train_resume_run").click().run()
    assert manager().status(name).resume


def test_stopping_my_run_keeps_it_in_view_while_someone_elses_trains(corpus: Path, app_env: Path) -> None:
    at = app_test("pages/train.py")
    mine = start_tiny(at, max_steps=100_000, eval_interval=1000)
    theirs = manager().submit(manager().run(mine).config().model_copy(update={"name": "theirs"}), "theirs").name
    wait_until(lambda: (manager().status(mine).step or 0) > 0, "my first step")
    at.run()
    at.button(key="train_stop_run").click().run()
    assert manager().wait(mine, timeout=TIMEOUT).state == "stopped"
    wait_until(lambda: manager().status(theirs).state == "running", "their run to start")
    at.run()
    assert not at.exception
    assert any(h.value.endswith(f" {mine}") for h in at.subheader), [h.value for h in at.subheader]  # not theirs
    assert any("stopped" in m.value for m in at.markdown)
    assert not at.button(key="train_resume_run").disabled
    assert f"Also training or queued: {theirs}." in [c.value for c in at.caption]
    at.button(key="train_show_other").click().run()
    assert any(h.value.endswith(f" {theirs}") for h in at.subheader)
    manager().stop(theirs)
    manager().wait(theirs, timeout=TIMEOUT)


def test_sweep_around_these_settings_hands_the_form_to_explore(corpus: Path, app_env: Path) -> None:
    """Grids moved to Explore: the form's settings go there as what every trial of a sweep shares."""
    from pages import ui

    at = app_test("pages/train.py")
    set_knobs(at, **{**TINY, "max_steps": 120})
    assert not at.exception and not at.error, errors(at)
    at.button(key="train_to_explore").click().run()
    assert not at.exception, at.exception
    handed = at.session_state[ui.SWEEP_BASE]
    assert handed["model"]["d_model"] == TINY["d_model"] and handed["train"]["max_steps"] == 120
    assert handed["data"]["corpus"] == str(corpus)
    assert at.selectbox(key="explore_start").value == "The Train page's settings"
    assert any(f"d_model {TINY['d_model']}, {TINY['n_layers']} layers" in c.value for c in at.caption)


def test_home_demo_button_queues_pretraining_then_its_qa_fine_tune(app_env: Path) -> None:
    from genai_core.clinical.demo import demo_pretrain_config, demo_qa_config

    at = app_test()
    assert at.title[0].value == "GenAI Playground"
    assert not [m for m in at.markdown if "unique_run_name" in m.value]  # no stray strings drawn by magic
    at.button(key="home_demo").click().run()
    assert not at.exception, at.exception
    jobs = manager().jobs()
    assert len(jobs) == 2, jobs
    pretrain, fine_tune = (manager().run(j.name).config() for j in jobs)
    # The engine's presets, queued in order: the fine-tune starts from the pretraining run's folder.
    assert pretrain.name == demo_pretrain_config().name and pretrain.task == "lm"
    assert fine_tune.name == demo_qa_config(parent=Path("p")).name and fine_tune.task == "qa"
    assert fine_tune.parent is not None and fine_tune.parent.resolve() == (app_env / jobs[0].name).resolve()
    wait_until(lambda: [a.name for a in manager().active()] == [jobs[0].name], "the pretraining to start")
    assert [q.name for q in manager().queue()] == [jobs[1].name]  # it waits for its parent
    assert at.title[0].value == "Train"
    assert any(jobs[0].name in h.value for h in at.subheader)  # the Train page follows the first stage

    # Back on Home while it trains: a link naming both runs instead of a second start.
    at.switch_page("pages/home.py").run()
    assert not [b for b in at.button if b.key == "home_demo"]
    link = next(link.label for link in at.get("page_link") if "is training" in link.label)
    assert jobs[0].name in link and jobs[1].name in link
    # The fine-tune first: stopping the pretraining first would let the queue start the fine-tune.
    for job in reversed(jobs):
        manager().stop(job.name)
        assert manager().wait(job.name, timeout=TIMEOUT).state == "stopped"
    at.run()
    # Nothing of the demo trains now: a click must not start a fresh copy; it offers resume or restart.
    assert not [b for b in at.button if b.key == "home_demo"]
    assert "trained here before" in " ".join(c.value for c in at.caption)
    at.button(key="home_demo_resume").click().run()
    assert not at.exception, at.exception
    names = sorted(j.name for j in manager().jobs() if j.active)
    assert names == sorted(j.name for j in jobs)  # the same two runs, carried on, not demo-qa-2
    # The pretraining stopped, its fine-tune still queued behind it: the demo is paused, not "training", and
    # Home offers to resume or restart it.
    wait_until(lambda: [a.name for a in manager().active()] == [jobs[0].name], "the pretraining to resume")
    manager().stop(jobs[0].name)
    assert manager().wait(jobs[0].name, timeout=TIMEOUT).state == "stopped"
    assert [q.name for q in manager().queue()] == [jobs[1].name]  # held by its stopped parent
    at.switch_page("pages/home.py").run()
    assert not at.exception, at.exception
    assert not [link for link in at.get("page_link") if "is training" in link.label]
    assert "The demo is paused" in " ".join(c.value for c in at.caption)
    assert at.button(key="home_demo_restart")
    at.button(key="home_demo_resume").click().run()
    assert not at.exception, at.exception
    wait_until(lambda: [a.name for a in manager().active()] == [jobs[0].name], "the pretraining to resume again")
    assert [q.name for q in manager().queue()] == [jobs[1].name]  # the same fine-tune, not a second one
    for job in reversed(jobs):
        manager().stop(job.name)
        manager().wait(job.name, timeout=TIMEOUT)
    assert sorted(p.name for p in app_env.iterdir() if not p.name.startswith(".")) == sorted(j.name for j in jobs)


# --------------------------------------------------------------------------- QA fine-tuning mode
QA_TINY = {"max_steps": 20, "batch_size": 4, "warmup_steps": 2, "eval_interval": 10, "eval_batches": 2,
           "log_interval": 5, "num_threads": 1}


def qa_mode(at: Any) -> Any:
    at.segmented_control(key="train_mode").set_value("qa").run()
    assert not at.exception, at.exception
    return at


def upload_qa(at: Any, name: str, data: bytes) -> Any:
    at.radio(key="qa_train_source").set_value("upload").run()
    at.file_uploader(key="qa_upload").set_value((name, data, "text/csv"))
    return at.run()


def copy_parent(run: Path, app_env: Path, name: str = "tiny-pre") -> Path:
    """A pretrained run in the app's runs folder (a copy: the session's fixture run stays untouched)."""
    return Path(shutil.copytree(run, app_env / name))


def test_qa_mode_offers_parents_and_refuses_a_missing_parent_or_bad_file(
        app_env: Path, tiny_qa_runs: dict[str, Path], qa_files: dict[str, Path]) -> None:
    at = qa_mode(app_test("pages/train.py"))
    assert not [n for n in at.number_input if n.key == "train_d_model"]  # the pretraining form is not shown
    assert "no pretrained run to fine-tune" in errors(at)  # an empty runs folder: nothing to start from
    assert at.button(key="qa_start").disabled

    copy_parent(tiny_qa_runs["pretrain"], app_env)
    Run(copy_parent(tiny_qa_runs["pretrain"], app_env, "half-trained")).write_status("stopped", "stopped by request")
    at.run()
    options = at.selectbox(key="qa_parent").options
    assert [o for o in options if "tiny-pre" in o]
    # A stopped run is not offered: the engine would hold its fine-tune until it is resumed and completes.
    assert not [o for o in options if "half-trained" in o]
    assert "Choose the pretrained run to fine-tune" in errors(at)
    assert at.button(key="qa_start").disabled

    # A table without an answer column: the engine's reason, and Start stays disabled.
    no_answer = pd.read_csv(qa_files["train"]).drop(columns=["answer"]).to_csv(index=False).encode()
    upload_qa(at, "no-answer.csv", no_answer)
    assert "lacks column(s) 'answer'" in errors(at)
    assert "training file cannot be used" in errors(at)
    assert at.button(key="qa_start").disabled


def test_qa_fine_tune_from_the_page_trains_a_run_linked_to_its_parent(
        app_env: Path, tiny_qa_runs: dict[str, Path], qa_files: dict[str, Path]) -> None:
    parent = copy_parent(tiny_qa_runs["pretrain"], app_env)
    at = qa_mode(app_test("pages/train.py"))
    # Small files first, so that choosing the parent tokenizes them rather than the bundled set.
    upload_qa(at, "train.csv", qa_files["train"].read_bytes())
    at.radio(key="qa_val_source").set_value("holdout").run()
    for key, value in QA_TINY.items():
        at.number_input(key=f"qa_{key}").set_value(value)
    at.selectbox(key="qa_parent").set_value("tiny-pre").run()
    assert not at.exception and not at.error, errors(at)
    shape = next(c.value for c in at.caption if c.value.startswith("Model (the parent's"))
    assert "d_model 32" in shape and "context 160 tokens" in shape and "copy head" in shape
    toggle = at.toggle(key="qa_copy_head_tiny-pre")
    assert toggle.value and toggle.disabled  # the parent has a copy head: the fine-tune keeps it
    span, kind = at.toggle(key="qa_span_head_tiny-pre"), at.toggle(key="qa_kind_head_tiny-pre_none")
    assert span.value and not span.disabled  # added, as in the demo's preset
    assert not kind.value and kind.disabled  # this training file has no kind column to learn from
    with_span = Run(parent).config().model.model_copy(update={"span_head": True})
    assert metric(at, "Parameters") == f"{count_parameters(build_model(with_span)):,}"  # the parent's, + span head

    at.button(key="qa_start").click().run()
    assert not at.exception, at.exception
    [job] = manager().jobs()
    assert job.name == "tiny-pre-qa"
    final = manager().wait(job.name, timeout=TIMEOUT)
    assert final.state == "completed", final
    run = Run(app_env / job.name)
    cfg = run.config()
    assert cfg.task == "qa" and cfg.parent is not None and cfg.parent.resolve() == parent.resolve()
    assert run.summary()["parent"] == "tiny-pre"
    assert cfg.train.max_steps == 20 and cfg.data.val_corpus is None  # held out from the uploaded file
    assert "(expected:" in run.samples()[-1]["text"]

    # A new session's live view shows the fine-tune, its parent and what its sample is.
    at = app_test("pages/train.py")
    assert not at.exception
    assert any(job.name in h.value for h in at.subheader)
    assert any("QA fine-tune of tiny-pre" in c.value for c in at.caption)
    assert any("expected one" in c.value for c in at.caption)


def test_recipe_choice_fills_the_knobs_and_each_recipe_trains_from_the_page(corpus: Path) -> None:
    at = app_test("pages/train.py")
    assert at.session_state["train_recipe"] == "modern"
    assert at.selectbox(key="train_pos_encoding").value == "rope"
    assert at.selectbox(key="train_optimizer").value == "muon"
    caption = " ".join(c.value for c in at.caption)
    # The path line says what auto chose here and why (the session's probe measured this machine).
    assert "Runs on: cpu" in caption and "measured" in caption
    assert re.search(r"Muon in (fp32|bf16)", caption), caption
    at.selectbox(key="train_muon_precision").set_value("bf16").run()
    assert "Muon in bf16 (set in the config)" in " ".join(c.value for c in at.caption)
    at.selectbox(key="train_muon_precision").set_value("auto").run()
    at.segmented_control(key="train_recipe").set_value("classic").run()
    assert not at.exception
    assert at.selectbox(key="train_pos_encoding").value == "learned"
    assert at.selectbox(key="train_mlp").value == "gelu"
    assert at.checkbox(key="train_qk_norm").value is False
    assert at.selectbox(key="train_optimizer").value == "adamw"
    assert at.number_input(key="train_lr").value == pytest.approx(1e-3)
    classic = start_tiny(at)
    wait_until(lambda: manager().status(classic).state == "completed", "the classic run")
    cfg = manager().run(classic).config()
    assert (cfg.model.pos_encoding, cfg.train.optimizer) == ("learned", "adamw")
    at.segmented_control(key="train_recipe").set_value("modern").run()
    at = set_knobs(at, **TINY)
    at.text_input(key="train_run_name").set_value("modern-from-page").run()
    at.button(key="train_start").click().run()
    assert not at.exception
    wait_until(lambda: manager().status("modern-from-page").state == "completed", "the modern run")
    cfg = manager().run("modern-from-page").config()
    assert (cfg.model.pos_encoding, cfg.model.qk_norm, cfg.train.optimizer) == ("rope", True, "muon")


def test_an_impossible_architecture_gets_one_message_and_no_start(corpus: Path) -> None:
    at = app_test("pages/train.py")
    at = set_knobs(at, d_model=30, n_heads=2)  # rope needs an even head dimension: 15 is odd
    assert "head dimension" in errors(at)
    assert at.button(key="train_start").disabled
    at.selectbox(key="train_pos_encoding").set_value("learned").run()
    assert "head dimension" not in errors(at)
