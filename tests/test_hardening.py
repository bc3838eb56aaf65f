"""What a reliability probe broke, each on the real thing: a zip bomb, a full disk and a read-only disk (small
tmpfs mounts made here), a whitespace-only corpus, reserved and option-like run names, a damaged checkpoint
pointer. Every one ends in one clear message (CLI: one `error:` line, exit 2), nothing corrupted or lost."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import tiny_config

from genai_core.errors import GenAIError, user_message
from genai_core.runs import archive
from genai_core.runs.folder import Run, validate_run_name
from genai_core.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genai_core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=180, env={**os.environ, **(env or {})})


def one_error_line(res: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs of our own (a real full or read-only disk); skipped where mounting is not allowed."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True, capture_output=True)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("run/config.json", "{}")
        with zf.open("run/metrics.jsonl", "w") as f:  # 96 MiB of one repeated line
            line = b'{"step": 1, "train_loss": 2.0}\n' * 32768
            for _ in range(96 * 2**20 // len(line)):
                f.write(line)
    data = buf.getvalue()
    assert len(data) < 2 * 2**20
    tracemalloc.start()
    with pytest.raises(GenAIError, match="zip bomb"):
        archive.import_run(data, tmp_path / "runs")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20  # nothing was inflated to check it
    assert not any((tmp_path / "runs").glob("*/*"))


def test_a_full_disk_ends_training_with_one_line_and_the_run_resumes(mount: Path, tiny_txt: Path) -> None:
    remount(mount, "size=400k")
    out = mount / "full"
    res = cli("train", "--corpus", str(tiny_txt), "--d-model", "32", "--n-heads", "2", "--n-layers", "2",
              "--seq-len", "16", "--batch-size", "4", "--max-steps", "200", "--checkpoint-interval", "5",
              "--eval-interval", "5", "--eval-batches", "1", "--out", str(out))
    one_error_line(res, "is full", "MB free")
    run = Run(out)
    assert run.state == "failed" and "is full" in run.status()["message"]
    kept = run.latest_checkpoint()
    assert kept is not None
    run.load_checkpoint()  # the last good checkpoint loads
    remount(mount, "size=8m")
    res = cli("train", "--resume", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert Run(out).state == "completed"


def test_a_read_only_disk_is_named_and_nothing_is_changed(mount: Path, tiny_txt: Path) -> None:
    import threading

    out = mount / "ro"
    stop = threading.Event()
    train(tiny_config(tiny_txt, max_steps=60, eval_interval=3), out, stop_event=stop,
          callbacks=[lambda ev: ev.kind == "step" and ev.step >= 4 and stop.set()])
    assert Run(out).state == "stopped"
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")}
    remount(mount, "ro")
    one_error_line(cli("train", "--resume", "--out", str(out)), "read-only file system")
    one_error_line(cli("train", "--corpus", str(tiny_txt), "--out", str(mount / "new")), "read-only")
    assert {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")} == before
    res = cli("sample", "--run", str(out), "--prompt", "The", "--max-new-tokens", "5")
    assert res.returncode == 0, res.stderr  # reading still works


def test_the_app_on_a_read_only_runs_folder_browses_and_says_why_it_cannot_train(
        mount: Path, tiny_txt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st
    from conftest import app_test

    train(tiny_config(tiny_txt, max_steps=6, eval_interval=3), mount / "kept")
    remount(mount, "ro")
    monkeypatch.setenv("GENAI_RUNS_DIR", str(mount))
    monkeypatch.chdir(ROOT)
    st.cache_resource.clear()
    try:
        for page in ("pages/data.py", "pages/train.py", "pages/runs.py", "pages/chat.py"):
            at = app_test(page)
            assert not at.exception, (page, [e.value for e in at.exception])
        at = app_test("pages/train.py")
        assert any("read-only file system" in e.value for e in at.error), [e.value for e in at.error]
        assert at.button(key="train_start").disabled  # the reason is on the page, nothing half-made
    finally:
        from pages.ui import job_manager

        job_manager().shutdown(timeout=10)
        st.cache_resource.clear()


def test_storage_errors_from_numpy_and_safetensors_read_as_one_line() -> None:
    assert "is full" in (user_message(OSError("5400000 requested and 3145728 written")) or "")
    assert "is full" in (user_message(RuntimeError("SafetensorError: No space left on device (os error 28)")) or "")
    assert user_message(RuntimeError("something else")) is None


def test_whitespace_only_corpus_and_odd_names_get_one_line(tmp_path: Path, tiny_txt: Path) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n\t \n", encoding="utf-8")
    one_error_line(cli("prepare", "--corpus", str(blank), "--out", str(tmp_path / "store")), "only whitespace")
    for name in ("CON", "nul.txt", "Com1"):
        with pytest.raises(GenAIError, match="reserved"):
            validate_run_name(name)
    one_error_line(cli("train", "--corpus", str(tiny_txt), "--out", "-rf"), "--out", "--flag=-value")
    assert not Path(ROOT / "-rf").exists()


def test_a_damaged_latest_pointer_falls_back_to_the_newest_checkpoint(tmp_path: Path, tiny_txt: Path) -> None:
    out = tmp_path / "run"
    train(tiny_config(tiny_txt, max_steps=12, eval_interval=4, checkpoint_interval=4), out)
    run = Run(out)
    newest = run.latest_checkpoint()
    assert newest is not None
    (run.checkpoints_path / "latest").write_bytes(bytes(range(200, 256)))
    assert run.latest_checkpoint() == newest
    res = cli("sample", "--run", str(out), "--prompt", "The", "--max-new-tokens", "5")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
