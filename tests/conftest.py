"""Shared fixtures: small real corpora in every supported format, and tiny configs."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from genai_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig

_SUBJECTS = ["the patient", "a nurse", "the doctor", "her brother", "the old man", "a child", "the team"]
_VERBS = ["walked to", "looked at", "asked about", "remembered", "described", "avoided", "cleaned"]
_OBJECTS = ["the window", "a red door", "the long corridor", "the garden", "an empty room", "the river bank"]
_TAILS = ["slowly.", "before noon.", "without a word.", "again and again.", "with great care.", "at dusk."]


def english_like(n_sentences: int, seed: int = 0) -> list[str]:
    """Deterministic simple sentences: real enough for a tiny model to learn something quickly."""
    rng = random.Random(seed)
    return [f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}"
            for _ in range(n_sentences)]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpora")
    sents = english_like(1200)
    (d / "tiny.txt").write_text("\n".join(sents) + "\n", encoding="utf-8")
    records = [" ".join(sents[i:i + 4]) for i in range(0, len(sents), 4)]
    df = pd.DataFrame({"id": range(len(records)), "body": records, "text": records})
    df.to_csv(d / "tiny.csv", index=False)
    df.to_csv(d / "tiny.tsv", sep="\t", index=False)
    df.to_parquet(d / "tiny.parquet", index=False)
    with open(d / "tiny.jsonl", "w", encoding="utf-8") as f:
        for r in df.to_dict("records"):
            f.write(json.dumps(r) + "\n")
    return d


@pytest.fixture(scope="session")
def tiny_txt(corpus_dir: Path) -> Path:
    return corpus_dir / "tiny.txt"


@pytest.fixture(scope="session")
def tiny_csv(corpus_dir: Path) -> Path:
    return corpus_dir / "tiny.csv"


def tiny_config(corpus: Path, **train: object) -> RunConfig:
    """A model that trains in well under a second per few dozen steps on 2 cores."""
    t = {"max_steps": 30, "batch_size": 4, "eval_interval": 10, "eval_batches": 2, "log_interval": 5,
         "warmup_steps": 3, "sample_tokens": 16, "seed": 0}
    t.update(train)
    return RunConfig(
        data=DataConfig(corpus=corpus),
        model=ModelConfig(d_model=32, n_heads=2, n_layers=2, seq_len=16),
        train=TrainConfig(**t),
    )


@pytest.fixture(scope="session", autouse=True)
def _speed_probe_measured_once(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test (and every process a test starts) reads one verdict of this machine's fast paths, measured
    here once, in a cache folder of the session's own: runs compared float for float take the same path."""
    from genai_core import speed_probe

    os.environ[speed_probe.CACHE_ENV] = str(tmp_path_factory.mktemp("genai-cache"))
    os.environ.pop(speed_probe.BF16_ENV, None)
    speed_probe.forget()
    speed_probe.measure_and_cache(force=True)


@pytest.fixture(autouse=True)
def _deterministic_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests compare exact floats across runs; a fixed thread count keeps reductions in the same order
    # (runs that leave num_threads open would otherwise take the cores that are free at their start).
    torch.set_num_threads(1)
    monkeypatch.setenv("GENAI_NUM_THREADS", "1")


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated runs folder for AppTest, a fresh process-wide job manager, and its shutdown after.

    `st.cache_resource` outlives AppTest instances within one pytest process, so it is cleared on
    both sides; training threads started by the app are stopped in teardown.
    """
    import streamlit as st

    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("GENAI_RUNS_DIR", str(runs))
    monkeypatch.setenv("GENAI_RUNNER", "thread")  # in-process training: AppTest waits on it directly
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    st.cache_resource.clear()
    yield runs
    from pages.ui import job_manager

    try:
        job_manager().shutdown(stop_running=True, timeout=30)
    finally:
        st.cache_resource.clear()


def app_test(page: str | None = None, timeout: float = 60) -> Any:
    """AppTest started from the entry file (as the notes require), then switched to `page`."""
    from streamlit.testing.v1 import AppTest

    # AppTest resolves a relative path against the calling file, so give it the absolute entry point.
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=timeout)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


# --------------------------------------------------------------------------- question answering
_QA_NAMES = ["Tavomab", "Relzaprin", "Kolvetide", "Mirafen", "Suxolol", "Dorvalin", "Pexitrol", "Ganzumab"]


def qa_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Tiny extractive QA records: a short case, two question kinds, answers copied from the context."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        age, drug = str(rng.randint(20, 89)), rng.choice(_QA_NAMES)
        context = f"A {age}-year-old {rng.choice(['man', 'woman'])} was seen. {drug} was given. He went home."
        q, a = rng.choice([("How old was the patient?", age), ("Which drug was given?", drug)])
        rows.append({"question": q, "context": context, "answer": a})
    return rows


@pytest.fixture(scope="session")
def qa_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train/val/test QA CSVs and an unlabeled corpus of the same cases (text column)."""
    d = tmp_path_factory.mktemp("qa")
    out = {}
    for split, n, seed in (("train", 400, 0), ("val", 40, 1), ("test", 40, 2)):
        out[split] = d / f"{split}.csv"
        pd.DataFrame(qa_records(n, seed)).to_csv(out[split], index=False)
    out["corpus"] = d / "cases.csv"
    pd.DataFrame({"text": [r["context"] for r in qa_records(600, 3)]}).to_csv(out["corpus"], index=False)
    return out


@pytest.fixture(scope="session")
def tiny_qa_runs(tmp_path_factory: pytest.TempPathFactory, qa_files: dict[str, Path]) -> dict[str, Path]:
    """A tiny char GPT with a copy head pretrained on the cases, and its QA fine-tune (parent -> child)."""
    from genai_core.train.trainer import train

    root = tmp_path_factory.mktemp("qa-runs")
    torch.set_num_threads(1)
    t = {"batch_size": 8, "eval_interval": 50, "eval_batches": 2, "log_interval": 10, "warmup_steps": 10,
         "sample_tokens": 16, "seed": 0, "lr": 3e-3}
    pre = RunConfig(data=DataConfig(corpus=qa_files["corpus"]),
                    model=ModelConfig(d_model=32, n_heads=2, n_layers=2, seq_len=160, copy_head=True),
                    train=TrainConfig(max_steps=100, **t))
    train(pre, root / "pretrain")
    ft = RunConfig(task="qa", parent=root / "pretrain",
                   data=DataConfig(corpus=qa_files["train"], val_corpus=qa_files["val"]),
                   train=TrainConfig(max_steps=400, **t))
    train(ft, root / "qa")
    return {"pretrain": root / "pretrain", "qa": root / "qa"}

