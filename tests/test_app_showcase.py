"""The showcase journey's fixes, through AppTest: resume and stop from the Runs page, runs that never trained
listed apart, the overlay defaulting to runs with curves, Epochs 0 refused, a numeric CSV refused, the Chat's
label and collapsed context, viewer mode, and the runs folder's disk cap."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import app_test, tiny_config

from genai_core.config import DataConfig
from genai_core.runs.folder import Run
from genai_core.train.trainer import train

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_txt: Path) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("showcase")
    train(tiny_config(tiny_txt, max_steps=10), root / "done")
    import threading

    stop = threading.Event()
    train(tiny_config(tiny_txt, max_steps=400, eval_interval=5, checkpoint_interval=5), root / "halfway",
          stop_event=stop, callbacks=[lambda ev: ev.kind == "step" and ev.step >= 12 and stop.set()])
    return root


@pytest.fixture
def runs(trained: Path, app_env: Path, tiny_txt: Path) -> Path:
    for name in ("done", "halfway"):
        shutil.copytree(trained / name, app_env / name)
    Run.create(app_env / "never", tiny_config(tiny_txt))  # created, never trained (the newest)
    return app_env


def _errors(at: Any) -> str:
    return " | ".join(e.value for e in at.error)


def _button(at: Any, key: str) -> Any:
    return next(b for b in at.button if b.key == key)


def _manager() -> Any:
    from pages import ui

    return ui.job_manager()


def _wait(pred: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_runs_page_resumes_and_stops_and_lists_never_trained_runs_apart(runs: Path) -> None:
    at = app_test("pages/runs.py")
    assert not at.exception
    # The overlay starts with runs that have curves, never with the empty newest one.
    assert at.multiselect(key="runs_compare").value == ["halfway", "done"]
    assert "never" not in at.multiselect(key="runs_compare").options
    assert any("Never trained (1)" in e.label for e in at.expander)
    _button(at, "runs_resume_halfway").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    _wait(lambda: _manager().status("halfway").state in ("running", "completed"), "the resumed run")
    at.run()
    stop = [b for b in at.button if b.key == "runs_stop_halfway"]
    if stop:  # still training: stop it from the page, it keeps a checkpoint and offers Resume again
        stop[0].click().run()
        _wait(lambda: _manager().status("halfway").state == "stopped", "the stop")
        at.run()
        assert [b for b in at.button if b.key == "runs_resume_halfway"]
    _button(at, "runs_delete_unstarted").click().run()
    assert not (runs / "never").exists() and (runs / "done").exists()


def test_epochs_zero_is_refused_with_the_reason_and_start_stays_off(app_env: Path, tiny_txt: Path) -> None:
    from pages import ui

    ui.save_data_choice(DataConfig(corpus=tiny_txt))
    at = app_test("pages/train.py")
    at.radio(key="train_length_mode").set_value("epochs").run()
    at.number_input(key="train_epochs").set_value(0.0).run()
    assert not at.exception
    assert "epochs" in _errors(at) and "greater than 0" in _errors(at)
    assert _button(at, "train_start").disabled


def test_a_new_session_starts_from_the_last_run_and_can_reset(runs: Path, tiny_txt: Path) -> None:
    from pages import ui

    ui.save_data_choice(DataConfig(corpus=tiny_txt))
    at = app_test("pages/train.py")
    assert "pre-filled from the last run" in " ".join(c.value for c in at.caption)
    assert at.number_input(key="train_d_model").value == 32  # the tiny runs' width, not the default 128
    _button(at, "train_reset_knobs").click().run()
    assert not at.exception
    assert at.number_input(key="train_d_model").value == 128
    assert not [b for b in at.button if b.key == "train_reset_knobs"]


def test_a_numeric_csv_is_refused_and_a_rejected_upload_leaves_recent_files(app_env: Path) -> None:
    at = app_test("pages/data.py")
    numbers = "a,b\n" + "\n".join(f"{i},{i * 0.5}" for i in range(50)) + "\n"
    _upload(at, "numbers.csv", numbers.encode())
    assert "holds numbers or symbols, not text" in _errors(at)
    assert not at.metric
    _upload(at, "empty.txt", b"")
    assert "is empty" in _errors(at)
    uploads = app_env / ".playground" / "uploads"
    left = sorted(p.name for p in uploads.glob("*/*")) if uploads.is_dir() else []
    assert "empty.txt" not in left and "numbers.csv" in left  # a bad column keeps the file; a bad file goes


def _upload(at: Any, name: str, data: bytes) -> Any:
    from test_app_data import upload

    return upload(at, name, data)


def test_viewer_mode_locks_changes_until_the_presenter_unlocks(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_PRESENTER_PASSWORD", "s3cret")
    at = app_test()  # the entry page: app.py draws the sidebar (AppTest's switch_page runs a page alone)
    assert any("Viewer mode" in c.value for c in at.sidebar.get("caption"))
    assert _button(at, "home_demo").disabled
    at.switch_page("pages/runs.py").run()
    assert _button(at, "runs_resume_halfway").disabled
    assert _button(at, "runs_import").disabled
    at.switch_page("app.py").run()
    at.sidebar.text_input(key="presenter_typed").set_value("wrong").run()
    assert "not the presenter's password" in _errors(at)
    assert _button(at, "home_demo").disabled
    at.sidebar.text_input(key="presenter_typed").set_value("s3cret").run()
    assert not _button(at, "home_demo").disabled
    at.switch_page("pages/runs.py").run()
    assert not _button(at, "runs_resume_halfway").disabled
    assert not at.exception


def test_the_runs_folder_cap_refuses_new_runs_with_one_message(runs: Path, monkeypatch: pytest.MonkeyPatch,
                                                               tiny_txt: Path) -> None:
    from genai_core.errors import GenAIError

    monkeypatch.setenv("GENAI_RUNS_MAX_GB", "0.000001")  # 1 kB: the copied runs are far over it
    with pytest.raises(GenAIError, match="cap"):
        _manager().submit(tiny_config(tiny_txt), "one-more")
    assert not (runs / "one-more").exists()
    monkeypatch.setenv("GENAI_RUNS_MAX_GB", "lots")
    with pytest.raises(GenAIError, match="not a number"):
        _manager().submit(tiny_config(tiny_txt), "one-more")


def test_chat_label_follows_the_context_and_long_unseen_text_is_collapsed(app_env: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=5)
    train(cfg.model_copy(update={"model": cfg.model.model_copy(update={"seq_len": 64})}), app_env / "tiny")
    at = app_test("pages/chat.py")
    assert at.selectbox(key="chat_example").value != "Your own text"
    filler = "The nurse walked to the window slowly. " * 30
    at.text_area(key="chat_context").set_value("A 70-year-old man has a cough. " + filler).run()
    assert not at.exception
    assert at.selectbox(key="chat_example").value == "Your own text"
    at.session_state["chat_decoding"] = "greedy"
    at.chat_input[0].set_value("How old is the man?").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(m.value for m in at.markdown if "opacity" in m.value)
    assert "characters the model did not see" in shown  # the unused sentences, collapsed to a note
    assert shown.count("The nurse walked") < 30
    at.toggle(key="chat_whole_1").set_value(True).run()
    whole = " ".join(m.value for m in at.markdown if "opacity" in m.value)
    assert whole.count("The nurse walked") == 30


def _tree_digest(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_locked_visitor_pressing_every_button_on_every_page_changes_nothing(
        runs: Path, tiny_txt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pages import ui

    ui.save_data_choice(DataConfig(corpus=tiny_txt))
    monkeypatch.setenv("GENAI_PRESENTER_PASSWORD", "s3cret")
    before = _tree_digest(runs)
    at = app_test()
    pressed, locked = [], []
    for page in ("home", "data", "train", "explore", "runs", "evaluate", "chat"):
        page = f"pages/{page}.py"
        at.switch_page(page).run()
        for _ in range(2):  # a press can show another button
            for key in [b.key for b in at.button if b.key and b.key not in pressed]:
                pressed.append(key)
                button = _button(at, key)
                if button.disabled:
                    locked.append(key)
                    # A forged click, as a crafted websocket message would send it (Streamlit 1.67 drops a
                    # disabled widget's value server-side; the pages check again before writing).
                    button.proto.disabled = False
                button.click().run()
                assert not at.exception, (page, key, [e.value for e in at.exception])
    assert {"home_demo", "data_prepare", "train_start", "runs_resume_halfway", "runs_import", "eval_qa",
            "eval_ppl", "explore_start_sweep"} <= set(pressed), pressed
    assert _tree_digest(runs) == before
    assert {"home_demo", "data_prepare", "runs_resume_halfway", "eval_qa", "eval_ppl",
            "explore_start_sweep"} <= set(locked), locked


def test_password_guesses_are_rate_limited_across_sessions(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_PRESENTER_PASSWORD", "s3cret")
    def new_session() -> Any:  # a reload, as a guessing script would do; the sidebar is app.py's, so rerun it
        at = app_test()
        at.switch_page("pages/runs.py").run()  # AppTest reruns the page alone until switched back via another
        return at.switch_page("app.py").run()

    for guess in range(5):
        at = new_session()
        at.sidebar.text_input(key="presenter_typed").set_value(f"wrong{guess}").run()
        assert "not the presenter's password" in _errors(at)
    at = new_session()
    at.sidebar.text_input(key="presenter_typed").set_value("s3cret").run()  # even the right one waits now
    assert "Too many password attempts" in _errors(at)
    assert _button(at, "home_demo").disabled


def test_no_child_process_sees_the_presenters_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_core.config import PRESENTER_ENV, child_env

    monkeypatch.setenv(PRESENTER_ENV, "s3cret")
    env = child_env(EXTRA="1")
    assert PRESENTER_ENV not in env and env["EXTRA"] == "1"
    assert env["PYTHONPATH"].split(":")[0] == str(Path(__file__).resolve().parent.parent)
