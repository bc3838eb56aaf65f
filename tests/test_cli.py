"""The command line end to end, through real `python -m genai_core` processes: what it prints, what it
leaves on disk, its exit codes, and one clean `error:` line for every mistake a person can make."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import qa_records
from torch.nn import functional as F

from genai_core.config import TrainConfig
from genai_core.runs.status import writer_of

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# A model that trains a few dozen steps in well under a second on one thread.
TINY = ["--d-model", "32", "--n-heads", "2", "--n-layers", "2", "--seq-len", "16", "--batch-size", "4",
        "--warmup-steps", "3", "--eval-batches", "2", "--sample-tokens", "16", "--threads", "1", "--device", "cpu"]


@dataclass
class Cli:
    """Runs the CLI in `cwd` with its runs root at `runs`."""

    cwd: Path
    runs: Path

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYTHONPATH": path, "GENAI_RUNS_DIR": str(self.runs), "OMP_NUM_THREADS": "1"}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "genai_core", *args], cwd=self.cwd, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "genai_core", *args], cwd=self.cwd, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    d = tmp_path_factory.mktemp("cli")
    return Cli(d, d / "runs")


@pytest.fixture(scope="module")
def trained(cli: Cli, tiny_txt: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One run shared by the tests that only read it."""
    res = cli("train", "--corpus", str(tiny_txt), "--out", "tiny", *TINY, "--max-steps", "30",
              "--eval-interval", "10", "--log-interval", "10")
    assert res.returncode == 0, res.stderr
    return cli.runs / "tiny", res


def metric_steps(run: Path) -> list[int]:
    steps = []
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            try:
                steps.append(json.loads(line)["step"])
            except (json.JSONDecodeError, KeyError):
                continue  # a line being written right now
    return steps


def status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"process ended early ({proc.returncode}): {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("timed out waiting for training progress")
        time.sleep(0.05)


def assert_user_error(res: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def field(pattern: str, text: str) -> str:
    m = re.search(pattern, text, re.MULTILINE)
    assert m, (pattern, text)
    return m.group(1)


# --------------------------------------------------------------------------- prepare
def test_building_the_command_line_imports_no_torch() -> None:
    # Every command, `--help` included, builds the whole parser first: it must not wait for torch (2 s here).
    code = "import sys; from genai_core.cli.parser import build_parser; build_parser(); print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr


def test_prepare_prints_the_store_statistics(cli: Cli, tiny_txt: Path) -> None:
    res = cli("prepare", "--corpus", str(tiny_txt), "--out", "store")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # no progress line when stderr is not a terminal
    text = tiny_txt.read_text(encoding="utf-8")
    num = {k: int(field(rf"^{k}\s+([\d,]+)$", res.stdout).replace(",", ""))
           for k in ("records", "characters", "train tokens", "val tokens", "vocab size")}
    # One continuous text, one token per character; the vocabulary adds end-of-text and unknown.
    assert num["records"] == 1 and num["characters"] == len(text)
    assert num["train tokens"] + num["val tokens"] == len(text)
    assert 0 < num["val tokens"] < num["train tokens"]
    assert num["vocab size"] == len(set(text)) + 2
    meta = json.loads((cli.cwd / "store" / "meta.json").read_text())
    assert meta["stats"]["train_tokens"] == num["train tokens"]

    res = cli("prepare", "--corpus", str(tiny_txt), "--out", "store_bpe", "--tokenizer", "bpe", "--vocab-size", "300",
              "--json")
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    assert stats["tokenizer"] == "bpe" and 256 < stats["vocab_size"] <= 300
    assert stats["tokens"] == stats["train_tokens"] + stats["val_tokens"] < len(text)  # merges shorten the text


# --------------------------------------------------------------------------- train
def test_train_writes_a_complete_run(trained: tuple[Path, subprocess.CompletedProcess[str]], tiny_txt: Path) -> None:
    run, res = trained
    assert res.stderr == ""
    lines = [line for line in res.stdout.splitlines() if line.startswith("step")]
    assert [line.split()[1] for line in lines] == ["10/30", "20/30", "30/30"]
    assert all(re.search(r"\| loss [\d.]+ \| val [\d.]+ \| [\d,]+ tok/s \| lr [\d.e+-]+$", line) for line in lines)
    assert re.search(r"^completed 30 steps in .*best val loss [\d.]+", res.stdout, re.MULTILINE)
    assert status(run)["state"] == "completed"
    assert metric_steps(run) == [10, 20, 30]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000030"
    assert (run / "checkpoints" / "step_00000030" / "model.safetensors").stat().st_size > 0
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["model"]["d_model"], cfg["model"]["seq_len"], cfg["train"]["max_steps"]) == (32, 16, 30)
    # Flags not given keep the config's own defaults.
    assert cfg["train"]["lr"] == TrainConfig.model_fields["lr"].default
    assert cfg["train"]["epochs"] is None
    assert Path(cfg["data"]["corpus"]) == tiny_txt and Path(cfg["data"]["corpus"]).is_absolute()


def test_resume_of_a_completed_run_says_so_and_changes_nothing(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    run, _ = trained
    before = (run / "metrics.jsonl").read_text()
    res = cli("train", "--out", "tiny", "--resume", "--max-steps", "60")
    assert res.returncode == 0, res.stderr
    assert "already complete (30/30 steps)" in res.stdout
    assert "ignoring --max-steps" in res.stderr and "Traceback" not in res.stderr
    assert (run / "metrics.jsonl").read_text() == before
    assert status(run)["state"] == "completed"


def test_resume_of_a_queued_run_names_who_holds_it(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    from genai_core.runs.folder import Run

    waiting = cli.runs / "waiting"
    shutil.copytree(trained[0], waiting)
    Run(waiting).write_status("queued", "waiting for cpu", runner="process", queued_at=time.time())
    assert_user_error(cli("train", "--out", "waiting", "--resume"),
                      "run waiting is queued to train (held by the runs folder's scheduler)")
    assert status(waiting)["state"] == "queued"
    shutil.rmtree(waiting)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_stops_with_a_checkpoint_and_resume_continues(cli: Cli, tiny_txt: Path) -> None:
    run = cli.runs / "long"
    proc = cli.popen("train", "--corpus", str(tiny_txt), "--out", "long", *TINY, "--max-steps", "1000000",
                     "--log-interval", "5", "--eval-interval", "1000000")
    wait_for(lambda: len(metric_steps(run)) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "saving a checkpoint" in err
    st = status(run)
    stopped = st["step"]
    assert st["state"] == "stopped" and stopped > 0
    assert (run / "checkpoints" / "latest").read_text().strip() == f"step_{stopped:08d}"
    assert f"stopped at step {stopped:,}" in out and "--out long --resume" in out

    proc = cli.popen("train", "--out", "long", "--resume", "--lr", "0.5")
    wait_for(lambda: any(s > stopped + 5 for s in metric_steps(run)), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert f"resuming at step {stopped:,}" in out
    assert "ignoring --lr" in err and "Traceback" not in err
    assert status(run)["state"] == "stopped" and status(run)["step"] > stopped + 5
    steps = metric_steps(run)
    assert steps == sorted(set(steps))  # the curve continues without repeating steps
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == TrainConfig.model_fields["lr"].default


def test_two_resumes_racing_for_one_run_leave_one_writer(cli: Cli, tiny_txt: Path) -> None:
    run = cli.runs / "race"
    proc = cli.popen("train", "--corpus", str(tiny_txt), "--out", "race", *TINY, "--max-steps", "1000000",
                     "--log-interval", "5", "--eval-interval", "1000000", "--checkpoint-seconds", "0.2")
    wait_for(lambda: (run / "checkpoints" / "latest").is_file() and len(metric_steps(run)) >= 4, proc)
    proc.kill()  # kill -9: no stop, no message; the kernel drops the run's lock with the process
    proc.wait(timeout=30)
    assert writer_of(run) is None
    a, b = (cli.popen("train", "--out", "race", "--resume") for _ in range(2))
    loser = None
    end = time.monotonic() + 90
    while loser is None and time.monotonic() < end:
        loser = next((p for p in (a, b) if p.poll() is not None), None)
        time.sleep(0.05)
    assert loser is not None, "neither resume ended: both are training"
    winner = b if loser is a else a
    out, err = loser.communicate()
    assert loser.returncode == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == (f"error: run race is being trained by process {winner.pid}: "
                                            "stop it there, or wait until it ends")
    holder = writer_of(run)
    assert holder is not None and holder["pid"] == winner.pid
    wait_for(lambda: max(metric_steps(run)) > 40, winner)
    winner.send_signal(signal.SIGINT)
    winner.communicate(timeout=60)
    steps = metric_steps(run)
    assert steps == sorted(set(steps))  # one trainer: no step logged twice
    assert status(run)["state"] == "stopped" and not (run / "error.log").exists()


def test_deleting_a_run_folder_while_it_trains_stops_the_trainer_without_re_creating_it(
        cli: Cli, tiny_txt: Path) -> None:
    run = cli.runs / "doomed"
    # No checkpoint falls due while the folder goes: rmtree racing a checkpoint's write fails that write
    # instead (also without re-creating the folder's config, but with another message).
    proc = cli.popen("train", "--corpus", str(tiny_txt), "--out", "doomed", *TINY, "--max-steps", "1000000",
                     "--log-interval", "5", "--eval-interval", "1000000", "--checkpoint-seconds", "0")
    wait_for(lambda: len(metric_steps(run)) >= 2, proc)
    shutil.rmtree(run)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert err.strip().splitlines()[-1] == (f"error: the run folder {run} was deleted while it trained: training "
                                            "stopped and wrote nothing back")
    time.sleep(0.3)
    assert not run.exists()


# --------------------------------------------------------------------------- sample
def test_sample_streams_text_from_a_run_name(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]], tiny_txt: Path
) -> None:
    res = cli("sample", "--run", "tiny", "--prompt", "The ", "--echo", "--max-new-tokens", "40", "--seed", "3")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # a prompt the tokenizer knows gets no notes
    assert res.stdout.startswith("The ") and len(res.stdout.rstrip("\n")) > len("The ")
    assert set(res.stdout) <= set(tiny_txt.read_text(encoding="utf-8")) | {"\n"}  # the unknown token is never emitted


def test_sample_notes_characters_never_seen_in_training(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    res = cli("sample", "--run", str(trained[0]), "--prompt", "Zebra #9", "--max-new-tokens", "10",
              "--temperature", "0")
    assert res.returncode == 0, res.stderr
    notes = [line for line in res.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "'Z'" in notes[0] and "'#'" in notes[0] and "'9'" in notes[0]
    assert res.stdout.rstrip("\n")  # greedy text of a 30-step model may be blanks, but it is there


# --------------------------------------------------------------------------- eval
def test_eval_reports_the_validation_loss_and_its_perplexity(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    run, _ = trained
    res = cli("eval", "--run", str(run))
    assert res.returncode == 0, res.stderr
    loss = float(field(r"^val loss\s+([\d.]+)$", res.stdout))
    ppl = float(field(r"^perplexity\s+([\d.]+)$", res.stdout))
    assert ppl == pytest.approx(math.exp(loss), rel=1e-3)
    store = json.loads(next((cli.runs / ".tokens").glob("*/meta.json")).read_text())
    assert int(field(r"^tokens\s+([\d,]+)$", res.stdout).replace(",", "")) == store["stats"]["val_tokens"] - 1
    # The exact loss over the whole split agrees with training's sampled estimate, and beats chance.
    val_losses = [json.loads(line).get("val_loss") for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert abs(loss - val_losses[-1]) < 0.25
    assert loss < math.log(store["stats"]["vocab_size"])


def test_eval_json_on_another_corpus_counts_unknown_characters(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]], tiny_txt: Path, tmp_path: Path
) -> None:
    text = "The doctor walked to the garden.\nZoe, 42!\n"
    (tmp_path / "other.txt").write_text(text, encoding="utf-8")
    res = cli("eval", "--run", "tiny", "--corpus", str(tmp_path / "other.txt"), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["split"] == "all" and data["tokens"] == len(text) - 1 and not data["truncated"]
    seen = set(tiny_txt.read_text(encoding="utf-8"))
    unknown = sum(c not in seen for c in text[1:])  # every character after the first is predicted
    assert unknown > 0 and data["unknown_fraction"] == pytest.approx(unknown / (len(text) - 1))
    assert data["perplexity"] == pytest.approx(math.exp(data["loss"]))
    assert data["checkpoint_step"] == 30


def test_evaluation_counts_every_token_once_whatever_the_batch(
    trained: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    from genai_core.evaluate.perplexity import evaluate_run, sum_loss
    from genai_core.model import load_state
    from genai_core.models import build_model
    from genai_core.runs.folder import Run

    run = Run(trained[0])
    one = evaluate_run(run, device="cpu", batch_size=1)
    seven = evaluate_run(run, device="cpu", batch_size=7)
    assert one["tokens"] == seven["tokens"] and one["loss"] == pytest.approx(seven["loss"], rel=1e-6)
    head = evaluate_run(run, device="cpu", max_tokens=37)
    assert head["tokens"] == 37 and head["truncated"]

    # Reference, one token at a time: position j is predicted from the start of its window up to j.
    model = build_model(run.config().model).eval()
    load_state(model, run.load_weights())
    T = model.config.seq_len
    ids = np.asarray(run.tokenizer().encode("The nurse looked at the river bank slowly. A child cleaned it.").ids)
    assert len(ids) - 1 > 3 * T and (len(ids) - 1) % T  # full windows and a partial last one
    ref = 0.0
    with torch.no_grad():
        for j in range(1, len(ids)):
            start = (j - 1) // T * T
            logits, _ = model(torch.tensor(ids[None, start:j]))
            ref += F.cross_entropy(logits[0, -1:], torch.tensor([ids[j]])).item()
    assert sum_loss(model, ids, torch.device("cpu"), batch_size=2) == pytest.approx(ref, rel=1e-5)


def test_eval_qa_scores_a_file_writes_predictions_and_saves_the_result(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    run, _ = trained
    path = cli.cwd / "qa_small.csv"
    pd.DataFrame(qa_records(4, seed=5)).to_csv(path, index=False)
    out = tmp_path / "predictions.csv"
    res = cli("eval", "--run", "tiny", "--qa", str(path), "--predictions", str(out), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert (data["rows"], data["scored"], data["checkpoint_step"]) == (4, True, 30) and "predictions" not in data
    m = data["metrics"]
    assert set(m) == {"exact_match", "f1", "rougeL", "count"} and m["count"] == 4
    assert all(0 <= m[k] <= 100 for k in ("exact_match", "f1", "rougeL"))
    assert Path(data["saved_to"]) == run / "eval" / "qa-qa_small.json"
    assert json.loads(Path(data["saved_to"]).read_text())["metrics"] == m
    table = pd.read_csv(out, dtype={"prediction": str}, keep_default_na=False)
    assert list(table.columns) == ["question", "answer", "prediction", "em", "f1", "rougeL"] and len(table) == 4
    assert list(table["answer"].astype(str)) == [r["answer"] for r in qa_records(4, seed=5)]
    assert table["f1"].mean() == pytest.approx(m["f1"], abs=0.01)

    # Human-readable by default; --limit answers the first N (and the new result replaces the saved one).
    res = cli("eval", "--run", "tiny", "--qa", str(path), "--limit", "2")
    assert res.returncode == 0, res.stderr
    assert field(r"^questions\s+(.+)$", res.stdout) == "2 (of 4)"
    saved = json.loads((run / "eval" / "qa-qa_small.json").read_text())
    assert saved["rows"] == 2
    assert field(r"^F1\s+([\d.]+) %$", res.stdout) == f"{saved['metrics']['f1']:.2f}"
    assert field(r"^exact match\s+([\d.]+) %$", res.stdout) == f"{saved['metrics']['exact_match']:.2f}"
    assert "note: answered the first 2 of 4 questions" in res.stderr and "Traceback" not in res.stderr


def test_eval_qa_without_an_answer_column_predicts_only(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    path = tmp_path / "questions.csv"
    pd.DataFrame(qa_records(3, seed=6))[["question", "context"]].to_csv(path, index=False)
    out = tmp_path / "p.csv"
    res = cli("eval", "--run", "tiny", "--qa", str(path), "--predictions", str(out))
    assert res.returncode == 0, res.stderr
    assert "exact match" not in res.stdout and "not scored" in res.stderr
    assert out.read_text().splitlines()[0] == "question,prediction" and len(pd.read_csv(out)) == 3
    res = cli("eval", "--run", "tiny", "--qa", str(path), "--json")
    assert json.loads(res.stdout)["metrics"] is None


# --------------------------------------------------------------------------- runs
def test_runs_lists_the_run_as_a_table_and_json(
    cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    res = cli("runs")
    assert res.returncode == 0, res.stderr
    header, *rows = res.stdout.splitlines()
    assert header.split()[:2] == ["NAME", "STATE"]
    assert any(r.split()[:3] == ["tiny", "completed", "gpt"] for r in rows)
    res = cli("runs", "--json")
    tiny = next(r for r in json.loads(res.stdout) if r["name"] == "tiny")
    vals = [json.loads(line).get("val_loss") for line in (trained[0] / "metrics.jsonl").read_text().splitlines()]
    assert tiny["state"] == "completed" and tiny["step"] == 30
    assert tiny["best_val_loss"] == pytest.approx(min(v for v in vals if v is not None))


# --------------------------------------------------------------------------- mistakes
@pytest.fixture(scope="module")
def bad_inputs(cli: Cli, trained: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    d = cli.cwd
    (d / "empty.txt").write_bytes(b"")
    (d / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00\x00binary\x00" * 20)
    (d / "data.csv").write_text("title,content\nA,hello there\nB,general kenobi\n", encoding="utf-8")
    (d / "qa_no_context.csv").write_text("question,answer\nHow old?,80\n", encoding="utf-8")
    (d / "qa_empty.csv").write_bytes(b"")
    pd.DataFrame(qa_records(2, seed=7)).to_csv(d / "qa_ok.csv", index=False)
    (d / "qa_binary.csv").write_bytes(b"PK\x03\x04\x00\x00\x00binary\x00" * 20)
    (d / "one_record.jsonl").write_text('{"text": "hi"}\n', encoding="utf-8")
    (d / "not_a_run").mkdir()
    (d / "not_a_run" / "notes.txt").write_text("hello", encoding="utf-8")
    broken = cli.runs / "broken"
    shutil.copytree(trained[0], broken)
    (broken / "checkpoints" / "step_00000030" / "model.safetensors").write_bytes(os.urandom(4096))
    return d


CORPUS = "{corpus}"
MISTAKES: dict[str, tuple[list[str], list[str]]] = {
    "missing corpus": (["train", "--corpus", "nope.txt", "--out", "r", *TINY], ["corpus file not found", "nope.txt"]),
    "empty file": (["prepare", "--corpus", "empty.txt", "--out", "s"], ["empty.txt is empty"]),
    "binary file": (["prepare", "--corpus", "binary.txt", "--out", "s"], ["binary"]),
    "wrong text column": (["prepare", "--corpus", "data.csv", "--text-column", "body", "--out", "s"],
                          ["'body'", "'title'", "'content'"]),
    "heads do not divide width": (["train", "--corpus", CORPUS, "--out", "r", "--d-model", "30", "--n-heads", "4"],
                                  ["d_model (30) must be divisible by n_heads (4)"]),
    "negative lr": (["train", "--corpus", CORPUS, "--out", "r", "--lr", "-0.001"], ["--lr", "greater than 0"]),
    "seq_len too long": (["train", "--corpus", CORPUS, "--out", "r", *TINY, "--seq-len", "20000"],
                         ["--seq-len 20000 is too long for this corpus"]),
    "run is not a run folder": (["sample", "--run", "not_a_run", "--prompt", "x"], ["not a run folder"]),
    "missing run name": (["eval", "--run", "no_such_run"], ["not a run folder", "no_such_run"]),
    "garbage weights (sample)": (["sample", "--run", "broken"], ["damaged or not a safetensors file"]),
    "garbage weights (eval)": (["eval", "--run", "broken"], ["damaged or not a safetensors file"]),
    "invalid run name": (["train", "--corpus", CORPUS, "--out", "bad name!", *TINY], ["invalid run name 'bad name!'"]),
    "fp16 on cpu": (["train", "--corpus", CORPUS, "--out", "r", *TINY, "--precision", "fp16"],
                    ["fp16 needs a CUDA GPU"]),
    "run exists": (["train", "--corpus", CORPUS, "--out", "tiny", *TINY], ["already exists", "--resume"]),
    "overwrite a folder that is not a run": (["train", "--corpus", CORPUS, "--out", "./not_a_run", "--overwrite"],
                                             ["not a run folder"]),
    "prepare over other files": (["prepare", "--corpus", CORPUS, "--out", "not_a_run"], ["not a token store"]),
    "resume without a run": (["train", "--out", "nothing_here", "--resume"], ["cannot resume"]),
    "bad sampling knobs": (["sample", "--run", "tiny", "--temperature", "-1", "--top-p", "0"],
                           ["--temperature", "--top-p"]),
    "qa file without a context column": (["eval", "--run", "tiny", "--qa", "qa_no_context.csv"],
                                         ["qa_no_context.csv lacks column(s) 'context'"]),
    "empty qa file": (["eval", "--run", "tiny", "--qa", "qa_empty.csv"], ["qa_empty.csv is empty"]),
    "binary qa file": (["eval", "--run", "tiny", "--qa", "qa_binary.csv"], ["qa_binary.csv looks binary"]),
    "missing qa file": (["eval", "--run", "tiny", "--qa", "nope.csv"], ["QA file not found", "nope.csv"]),
    "qa on garbage weights": (["eval", "--run", "broken", "--qa", "qa_ok.csv"],
                              ["damaged or not a safetensors file"]),
    "--limit without --qa": (["eval", "--run", "tiny", "--limit", "3"], ["--limit: only used with --qa"]),
    "--qa with a perplexity option": (["eval", "--run", "tiny", "--qa", "qa_ok.csv", "--max-tokens", "9"],
                                      ["--max-tokens: perplexity options, not used with --qa"]),
    "seed past numpy's range": (["train", "--corpus", CORPUS, "--out", "r", *TINY, "--seed", "1" + "0" * 23],
                                ["--seed", "less than or equal to 4294967295"]),
    "infinite grad clip": (["train", "--corpus", CORPUS, "--out", "r", *TINY, "--grad-clip", "inf"],
                           ["--grad-clip", "finite number"]),
    "nan learning rate": (["train", "--corpus", CORPUS, "--out", "r", *TINY, "--lr", "nan"], ["--lr", "finite"]),
    "one-record corpus": (["train", "--corpus", "one_record.jsonl", "--out", "r", *TINY],
                          ["this corpus is too small to train on", "needs at least 2"]),
    "far over memory": (["train", "--corpus", CORPUS, "--out", "r", "--d-model", "2048", "--n-heads", "16",
                         "--n-layers", "24", "--seq-len", "512", "--batch-size", "4096", "--max-steps", "2"],
                        ["will not fit in memory: needs", "lower batch_size"]),
    "--limit 0": (["eval", "--run", "tiny", "--qa", "qa_ok.csv", "--limit", "0"], ["--limit must be at least 1"]),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_mistakes_give_one_error_line_and_exit_2(
    cli: Cli, bad_inputs: Path, tiny_txt: Path, trained: tuple[Path, subprocess.CompletedProcess[str]], case: str
) -> None:
    args, fragments = MISTAKES[case]
    runs_before = {p.name for p in cli.runs.iterdir()}
    state_before = status(trained[0])["state"]
    res = cli(*(str(tiny_txt) if a == CORPUS else a for a in args))
    assert_user_error(res, *fragments)
    # A mistake leaves no half-made run folder and never touches an existing run or other files.
    assert {p.name for p in cli.runs.iterdir()} == runs_before
    assert status(trained[0])["state"] == state_before == "completed"
    assert (bad_inputs / "not_a_run" / "notes.txt").read_text() == "hello"


@pytest.mark.parametrize("args", [
    ["train", "--out", "r"],  # no corpus and no --resume
    ["train", "--corpus", "x.txt", "--out", "r", "--epochs", "1", "--max-steps", "5"],
    ["sample", "--prompt", "x"],
    ["train", "--corpus", "x.txt", "--out", "r", "--resume", "--overwrite"],
])
def test_usage_errors_exit_2(cli: Cli, args: list[str]) -> None:
    res = cli(*args)
    assert res.returncode == 2 and "usage:" in res.stderr and "Traceback" not in res.stderr


def test_help_shows_config_docstrings_and_defaults(cli: Cli) -> None:
    res = cli("train", "--help")
    assert res.returncode == 0
    flat = " ".join(res.stdout.split())
    assert TrainConfig.model_fields["warmup_steps"].description in flat
    assert f"(default: {TrainConfig.model_fields['lr'].default})" in flat
    from genai_core.evaluate.perplexity import DEFAULT_MAX_TOKENS

    assert f"(default: {DEFAULT_MAX_TOKENS:,})" in " ".join(cli("eval", "--help").stdout.split())


def test_first_ctrl_c_requests_a_stop_and_the_second_aborts() -> None:
    from genai_core.cli import StopOnCtrlC

    stop = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    with StopOnCtrlC(stop, announce=False) as guard:
        assert signal.getsignal(signal.SIGINT) == guard._handle
        guard._handle(signal.SIGINT, None)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            guard._handle(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGINT) == before
