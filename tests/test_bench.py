"""The bench's inputs (the standard-library English text, the synthetic CSV) and its recipe and paths tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from genai_core.bench import paths
from genai_core.bench.speed import english_text, write_english_csv
from genai_core.devices import cpu_cores, muon_precision_choice, precision_choice
from genai_core.files import json_safe


def test_english_text_is_deterministic_and_about_the_size_asked() -> None:
    a = english_text(200_000)
    assert a == english_text(200_000)
    assert 199_000 <= len(a.encode("utf-8")) <= 200_010
    words = a.split()
    assert len(words) > 20_000 and sum(w.isalpha() for w in words) / len(words) > 0.6  # prose, not code


def test_english_csv_has_the_records_columns_and_size_asked(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    info = write_english_csv(path, 1.0, records=2000, source=english_text(200_000))
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(df.columns) == ["id", "text"] and len(df) == 2000
    assert df["id"].tolist() == [str(i) for i in range(2000)]
    assert 0.85 <= info["mb"] <= 1.15
    lengths = df["text"].str.len()
    assert lengths.min() > 0 and lengths.max() > 2 * lengths.min()  # lengths vary from record to record
    first = df["text"].str[0]
    assert df["text"].str.contains(r"\.").all() and (first.str.isupper() | first.str.isdigit()).all()
    assert df["text"].nunique() == 2000


def test_report_is_strict_json() -> None:
    assert json_safe({"a": math.nan, "b": [1, 2.5, math.inf], "c": True, "d": None}) == {
        "a": None, "b": [1, 2.5, None], "c": True, "d": None}


def test_recipe_benchmark_trains_every_arm_into_run_folders_the_ablation_view_reads(tmp_path: Path) -> None:
    from genai_core.bench.recipes import KNOBS, SHAKESPEARE, format_report, run_recipes
    from genai_core.runs.compare import ablation
    from genai_core.runs.folder import list_runs

    assert SHAKESPEARE.is_file() and 1_000_000 < SHAKESPEARE.stat().st_size < 1_300_000
    report = run_recipes(tmp_path, steps=20, ablation_steps=10, seeds=2, log=lambda m: None)
    assert set(report["ablation"]) == {"classic", *(f"+{k}" for k in KNOBS), "modern"}
    assert all(len(a["final"]) == 2 and a["std"] >= 0 for a in report["ablation"].values())
    assert report["ablation"]["classic"]["delta"] == 0.0
    curve = report["recipes"]["modern"]["curve"]
    assert [s for s, _, _ in curve] == [20]  # evaluations every 50 steps, and at the end
    text = format_report(report)
    assert "modern per step costs" in text and "+rope" in text
    runs = list_runs(tmp_path)
    assert {"recipe-classic-s0", "recipe-modern-s0", "ablation-rope-s1"} <= {r.name for r in runs}
    arms = {a.label: a for a in ablation(runs, "ablation-classic-s0")}
    for label in ("baseline", "pos_encoding: learned → rope", "optimizer: adamw → muon", "mlp: gelu → relu2"):
        assert len(arms[label].finals) == 2, label  # the seeds of one arm are grouped


def test_paths_bench_times_every_path_and_marks_autos_pick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "PATH_BUDGET_S", 0.0)  # one timed step per path: the table, not the figures
    t = paths.bench_training_paths("demo 4x128", rounds=2, log=lambda *_: None)
    cores = cpu_cores()
    expected = {f"modern, autocast {p}, Muon {mp}, {th}t" for p in ("fp32", "bf16") for mp in ("fp32", "bf16")
                for th in {1, cores}} | {f"classic (AdamW), fp32, {th}t" for th in {1, cores}}
    assert set(t["rows"]) == expected
    assert all(r["tokens_per_s"] > 0 and r["rounds"] == 1 for r in t["rows"].values())
    cpu = torch.device("cpu")
    assert t["auto"] == (f"modern, autocast {precision_choice('auto', cpu, 128).value}, "
                         f"Muon {muon_precision_choice('auto', cpu, 128).value}, {cores}t")
    assert 0 < t["auto_vs_fastest"] <= 1.0 and t["fastest"] in t["rows"]
    ns = paths.bench_newton_schulz(rounds=1)
    assert set(ns) == {"128", "384"} and all(v["fp32"] > 0 and v["bf16"] > 0 for v in ns.values())
    report = {"cpu": "x", "cores": cores, "torch": "t", "cpu_capability": "c", "native_bf16_flags": False,
              "verdict": "measured", "newton_schulz_ms": ns, "training": [t],
              "generation": paths.bench_generation_paths(tokens=20, rounds=1)}
    text = paths.format_report(report)
    assert text.count("<- auto") == 2 and "x the fastest modern path" in text
