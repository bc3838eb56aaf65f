"""`python -m genai_core bench`: measure this machine on the three things the playground does.

1. Training: our trainer (`training.train` on a run folder) against a nanoGPT-style loop
   (`benchmarks/nanogpt_baseline.py`), same model shape, hyperparameters, data and step count,
   interleaved step by step (one step of the baseline inside each of our step callbacks) so that
   both see the same machine load: tokens/s (median step time after warm-up) and validation loss at
   the final step, both models scored on the same validation windows. Ours runs its defaults for the
   device (on a CPU with native bf16: bf16 autocast and the free cores' threads); the full bench adds a
   short run of ours in the other precision (fp32 there) as an extra line, beside a fresh baseline.
2. Generation: 500 tokens through the KV cache (`Sampler`) against recomputing the window for
   every token (`generate_uncached`), same trained model, greedy and sampled; sampled again with the
   per-token probabilities recorded (`with_probs`), and a width-4 beam search of 500 steps (tokens/s
   per beam against the sampler's own tokens/s).
3. Ingestion: `tokenstore.prepare` (char tokenizer) on a synthetic CSV of English-like records,
   in a child process so that its peak RSS is its own.

The English training text is built from what every Python installation has: the docstrings of the
standard library, in a fixed order, so every machine trains on the same ~1 MB. Everything is written
under one temporary folder, removed at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genai_core.config import REPO_ROOT, RunConfig, SampleConfig, child_env, with_recipe
from genai_core.devices import resolve_device, resolve_precision
from genai_core.files import json_safe
from genai_core.generate.gpt_decoder import GPTDecoder

ENGLISH_BYTES = 1 << 20
GEN_TOKENS = 500
BEAM_WIDTH = 4
CSV_RECORDS = 160_000
WARMUP_STEPS = 20  # excluded from the median step time: allocator, caches and thread pools warm up
# Modules never imported for their docstrings: side effects on import (a browser, printed text, a
# GUI), test suites, or nothing but data.
_DENY = {"antigravity", "this", "idlelib", "turtle", "turtledemo", "tkinter", "test", "lib2to3", "ensurepip",
         "pydoc_data", "xxlimited", "xxlimited_35", "xxsubtype"}
_BASELINE = REPO_ROOT / "benchmarks" / "nanogpt_baseline.py"


# --------------------------------------------------------------------------- English text
def _module_docs(module: types.ModuleType, seen: set[int]) -> Iterator[str]:
    """Docstrings of a module, its public classes and functions, and their methods (each object once)."""
    doc = inspect.getdoc(module)
    if doc:
        yield doc
    root = module.__name__.split(".")[0]
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or id(obj) in seen:
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
            continue
        if not str(getattr(obj, "__module__", "")).startswith(root):  # re-exports from elsewhere
            continue
        seen.add(id(obj))
        doc = inspect.getdoc(obj)
        if doc:
            yield doc
        if inspect.isclass(obj):
            for mname, member in sorted(vars(obj).items()):
                if not mname.startswith("_") and (inspect.isfunction(member) or inspect.ismethoddescriptor(member)):
                    mdoc = getattr(member, "__doc__", None)
                    if isinstance(mdoc, str) and mdoc.strip():
                        yield inspect.cleandoc(mdoc)


def stdlib_docstrings() -> Iterator[str]:
    """Docstrings of the standard library in a fixed order (modules and submodules sorted by name)."""
    seen: set[int] = set()
    names = sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in _DENY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated modules warn on import
        for name in names:
            try:
                module = importlib.import_module(name)
            except Exception:  # platform-specific modules (winreg, msvcrt, ...) are simply absent
                continue
            modules = [module]
            for info in sorted(pkgutil.iter_modules(getattr(module, "__path__", [])), key=lambda i: i.name):
                if info.name.startswith("_") or "test" in info.name:
                    continue
                try:
                    modules.append(importlib.import_module(f"{name}.{info.name}"))
                except Exception:
                    continue
            for m in modules:
                yield from _module_docs(m, seen)


def english_text(target_bytes: int = ENGLISH_BYTES) -> str:
    """About `target_bytes` of English prose (UTF-8), the same on every run of one Python installation."""
    parts: list[str] = []
    size = 0
    for doc in stdlib_docstrings():
        parts.append(doc)
        size += len(doc.encode("utf-8")) + 2
        if size >= target_bytes:
            break
    text = "\n\n".join(parts)
    while len(text.encode("utf-8")) < target_bytes:  # a very small installation: repeat
        text += "\n\n" + text
    return text.encode("utf-8")[:target_bytes].decode("utf-8", errors="ignore") + "\n"


# --------------------------------------------------------------------------- synthetic CSV
def write_english_csv(path: Path, megabytes: float, records: int = CSV_RECORDS, seed: int = 0,
                      source: str | None = None) -> dict[str, Any]:
    """A CSV (`id`, `text`) of `records` English-like records totalling about `megabytes` MB.

    Words follow the frequencies of real English (the standard library's docstrings): sentences of
    6-24 words, capitalised, with commas, full stops, paragraph breaks and lengths varying 4x from
    record to record. Built in vectorised chunks, so 250 MB takes seconds, not minutes.
    """
    t0 = time.perf_counter()
    src = source if source is not None else english_text()
    counts = Counter(w.lower() for w in re.findall(r"[A-Za-z]+(?:'[a-z]+)?", src))
    vocab = [w for w, _ in counts.most_common(8000)]
    freq = np.array([counts[w] for w in vocab], dtype=np.float64)
    vocab += [str(n) for n in (1, 2, 3, 10, 12, 20, 42, 100, 365, 1000, 2024)]
    freq = np.concatenate([freq, np.full(11, freq.sum() * 0.002 / 11)])
    prob = freq / freq.sum()
    V = len(vocab)
    # Every spelling a word can take, indexed as variant * V + word.
    cap = [w[:1].upper() + w[1:] for w in vocab]
    table = np.array(vocab + cap + [w + "," for w in vocab] + [w + "." for w in vocab]
                     + [w + ".\n\n" for w in vocab] + [w + "?" for w in vocab], dtype=object)
    PLAIN, CAP, COMMA, STOP, PARA, QUESTION = range(6)

    rng = np.random.default_rng(seed)
    target = megabytes * (1 << 20)
    mean_word = 7.0  # characters per word with its space and punctuation; corrected as we go
    written = 0
    chunk = 4000
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for start in range(0, records, chunk):
            n = min(chunk, records - start)
            left_records = records - start
            per_record = max(1.0, (target - written) / left_records / mean_word)
            lengths = np.maximum(1, (per_record * rng.uniform(0.4, 1.6, size=n)).astype(np.int64))
            total = int(lengths.sum())
            words = rng.choice(V, size=total, p=prob)
            # Sentence ends: geometric gaps of mean 14 words, and the last word of every record.
            ends = rng.random(total) < 1 / 14
            bounds = np.cumsum(lengths)
            ends[bounds - 1] = True
            starts_ = np.empty(total, dtype=bool)
            starts_[0] = True
            starts_[1:] = ends[:-1]
            starts_[bounds[:-1]] = True
            variant = np.full(total, PLAIN)
            variant[rng.random(total) < 0.06] = COMMA
            end_kind = rng.choice([STOP, PARA, QUESTION], size=total, p=[0.88, 0.08, 0.04])
            variant[ends] = end_kind[ends]
            variant[bounds - 1] = STOP  # records end cleanly
            variant[starts_ & ~ends] = CAP
            texts_flat = table[variant * V + words]
            texts = [" ".join(texts_flat[a:b]) for a, b in zip(np.r_[0, bounds[:-1]], bounds, strict=True)]
            texts = [t[:1].upper() + t[1:] for t in texts]
            w.writerows(zip(range(start, start + n), texts, strict=True))
            chunk_chars = sum(len(t) for t in texts)
            written += chunk_chars + 12 * n  # the id, the quotes, the line end
            mean_word = chunk_chars / total
    size = path.stat().st_size
    return {"path": str(path), "records": records, "mb": round(size / (1 << 20), 2),
            "seconds": round(time.perf_counter() - t0, 2)}


# --------------------------------------------------------------------------- helpers
def _median_tps(step_times: list[float], tokens_per_step: int) -> float:
    times = step_times[WARMUP_STEPS:] if len(step_times) > 2 * WARMUP_STEPS else step_times
    return tokens_per_step / statistics.median(times) if times else float("nan")


def _load_baseline() -> types.ModuleType | None:
    """benchmarks/nanogpt_baseline.py of the source tree (absent from an installed package)."""
    if not _BASELINE.is_file():
        return None
    spec = importlib.util.spec_from_file_location("genai_nanogpt_baseline", _BASELINE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def _val_loss(model: torch.nn.Module, val: np.ndarray, seq_len: int, batch: int, batches: int = 50) -> float:
    """Mean loss over fixed validation windows (the same for every model scored in one bench)."""
    from genai_core.data.tokenstore import windows_to_batch

    was = model.training
    model.eval()
    starts = np.random.default_rng(12345).integers(0, len(val) - seq_len, size=(batches, batch))
    dev = next(model.parameters()).device
    total = 0.0
    for s in starts:
        x, y = windows_to_batch(val, s, seq_len, dev)
        _, loss = model(x.contiguous(), y.contiguous())  # the baseline's loss takes views, as nanoGPT's
        total += float(loss)
    model.train(was)
    return total / batches


# --------------------------------------------------------------------------- 1. training
def _bench_config(corpus: Path, steps: int, device: str, **train: Any) -> RunConfig:
    """nanoGPT's architecture and optimizer (the classic recipe), so that the two loops compute the same model;
    precision and threads are our engine's defaults for the device unless given."""
    t = {"batch_size": 12, "max_steps": steps, "lr": 1e-3, "warmup_steps": min(100, steps // 3),
         "eval_interval": steps, "eval_batches": 20, "device": device, "seed": 0}
    t.update(train)
    return RunConfig.model_validate(with_recipe({
        "name": "bench",
        "data": {"corpus": str(corpus), "tokenizer": "char"},
        "model": {"n_layers": 4, "n_heads": 4, "d_model": 128, "seq_len": 64, "dropout": 0.0},
        "train": t,
    }, "classic"))


def _train_interleaved(config: RunConfig, out: Path, partner: Any | None) -> dict[str, Any]:
    """Run our trainer; after each of its steps, one step of `partner` (the baseline), if given.

    Alternating step by step means both loops see the same machine load (other processes come and
    go on a shared machine). Each loop times its own steps only: the trainer measures `dt` before it
    calls the step callback, where the partner's step runs.
    """
    from genai_core.train.trainer import train

    dts: list[float] = []
    vals: list[float] = []
    last: dict[str, Any] = {}
    errors: list[str] = []

    def on_event(ev: Any) -> None:
        if ev.kind == "step":
            dts.append(ev.data["dt"])
            if partner is not None and not errors and partner.iter_num < partner.cfg.max_iters:
                try:
                    partner.step()
                except Exception as e:  # report it; do not let it stop our run
                    errors.append(f"{type(e).__name__}: {e}")
        elif ev.kind == "eval":
            vals.append(ev.data["val_loss"])
        elif ev.kind == "log":
            last["train_loss"] = ev.data["train_loss"]

    t0 = time.perf_counter()
    res = train(config, out, callbacks=[on_event])
    if errors:
        raise RuntimeError(f"the baseline failed: {errors[0]}")
    return {"state": res.state, "step_times": dts, "tokens_per_step": config.train.batch_size * config.model.seq_len,
            "total_s": time.perf_counter() - t0, "trainer_val_loss": vals[-1] if vals else float("nan"),
            "train_loss": last.get("train_loss")}


def _speed(step_times: list[float], tokens_per_step: int) -> dict[str, float]:
    return {"tokens_per_s": _median_tps(step_times, tokens_per_step),
            "mean_tokens_per_s": len(step_times) * tokens_per_step / max(sum(step_times), 1e-9)}


def bench_training(corpus: Path, work: Path, steps: int, *, bf16_steps: int = 0, seed: int = 0,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Ours vs the nanoGPT-style baseline at equal steps, interleaved step by step.

    Returns the figures and `run_path`, our trained run (the generation benchmark samples from it).
    """
    from genai_core.data.tokenstore import prepare_cached
    from genai_core.model import load_state
    from genai_core.models import build_model
    from genai_core.runs.folder import Run

    device = resolve_device("auto")
    config = _bench_config(corpus, steps, device.type, seed=seed)
    run_path = work / "runs" / f"ours-{seed}"
    # Prepare the token store first (train() finds it in its cache) so the baseline reads the same files.
    store = prepare_cached(config.data, Run(run_path).token_cache)
    T, B = config.model.seq_len, config.train.batch_size
    base_mod = _load_baseline()

    def baseline(n: int) -> Any:
        bcfg = base_mod.BaselineConfig(vocab_size=store.tokenizer.vocab_size, block_size=T, batch_size=B,
                                       max_iters=n, warmup_iters=config.train.warmup_steps, dtype=store.dtype.name,
                                       seed=seed)
        return base_mod.BaselineTrainer(store.path, bcfg, device=str(device))

    partner = baseline(steps) if base_mod is not None else None
    log(f"training: ours and the nanoGPT-style baseline, {steps} steps each, interleaved ...")
    ours = _train_interleaved(config, run_path, partner)
    run = Run(run_path)
    cfg = run.config()
    model = build_model(cfg.model).to(device)
    load_state(model, run.load_weights())
    out: dict[str, Any] = {
        "steps": steps, "seed": seed, "device": str(device), "threads": torch.get_num_threads(),
        "tokens_per_step": ours["tokens_per_step"], "train_tokens": len(store.train), "val_tokens": len(store.val),
        "vocab_size": cfg.model.vocab_size,
        "ours": {**_speed(ours["step_times"], ours["tokens_per_step"]), "val_loss": _val_loss(model, store.val, T, B),
                 "trainer_val_loss": ours["trainer_val_loss"], "train_loss": ours["train_loss"]},
    }
    del model
    if partner is None:
        out["baseline"] = None
        out["note"] = f"{_BASELINE} not found: no baseline"
    else:
        res = partner.finish()
        out["baseline"] = {**_speed(res.step_times, res.tokens_per_step),
                           "val_loss": _val_loss(partner.model, store.val, T, B),
                           "own_val_loss": res.val_loss, "train_loss": res.final_train_loss}
        out["speed_ratio"] = out["ours"]["tokens_per_s"] / out["baseline"]["tokens_per_s"]
        out["mean_speed_ratio"] = out["ours"]["mean_tokens_per_s"] / out["baseline"]["mean_tokens_per_s"]
    out["precision"] = resolve_precision("auto", device)
    if bf16_steps and device.type == "cpu":
        # An extra line: the precision that is not the default here. Interleaved with a fresh baseline so
        # that its ratio is measured side by side too.
        other = "fp32" if out["precision"] == "bf16" else "bf16"
        log(f"training: ours in {other} and the baseline, {bf16_steps} steps each, interleaved ...")
        partner16 = baseline(bf16_steps) if base_mod is not None else None
        r16 = _train_interleaved(_bench_config(corpus, bf16_steps, device.type, precision=other, seed=seed),
                                 work / "runs" / f"ours-{other}-{seed}", partner16)
        x = {"steps": bf16_steps, "precision": other, **_speed(r16["step_times"], r16["tokens_per_step"])}
        if partner16 is not None:
            x["baseline_tokens_per_s"] = _median_tps(partner16.result.step_times, partner16.result.tokens_per_step)
            x["speed_ratio"] = x["tokens_per_s"] / x["baseline_tokens_per_s"]
        out["ours_other_precision"] = x
    out["run_path"] = str(run_path)
    return out


# --------------------------------------------------------------------------- 2. generation
def bench_generation(run_path: Path, tokens: int = GEN_TOKENS, repeats: int = 5) -> dict[str, Any]:
    """Tokens/s of cached greedy, uncached greedy, cached sampled decoding (with and without per-token
    probabilities) and beam search of width BEAM_WIDTH, interleaved repeats."""
    from genai_core.generate.sampling import Sampler, generate_uncached

    sampler = Sampler.from_run(run_path, device="cpu")
    model = sampler.model
    prompt = "The function returns"
    ids, _ = sampler.encode_prompt(prompt)
    greedy = SampleConfig(max_new_tokens=tokens, temperature=0.0, stop_at_end=False)
    sampled = SampleConfig(max_new_tokens=tokens, temperature=0.8, top_k=20, top_p=0.9, seed=0, stop_at_end=False)
    beam = SampleConfig(max_new_tokens=tokens, num_beams=BEAM_WIDTH, stop_at_end=False)
    times: dict[str, list[float]] = {"uncached": [], "cached": [], "sampled": [], "sampled_probs": [], "beam": []}
    results: dict[str, list[int]] = {}

    def timed(name: str, fn: Callable[[], list[int]]) -> None:
        t0 = time.perf_counter()
        results[name] = fn()
        times[name].append(time.perf_counter() - t0)

    def run_cached(cfg: SampleConfig, with_probs: bool = False) -> list[int]:
        g = sampler.stream(prompt, cfg, with_probs=with_probs)
        for _ in g:
            pass
        return g.ids

    for r in range(repeats + 1):  # the first round warms up and is not counted
        timed("uncached", lambda: generate_uncached(model, ids, tokens))
        timed("cached", lambda: run_cached(greedy))
        timed("sampled", lambda: run_cached(sampled))
        timed("sampled_probs", lambda: run_cached(sampled, with_probs=True))
        timed("beam", lambda: sampler.beam_search(prompt, beam).best.ids)
        if r == 0:
            for v in times.values():
                v.clear()
    inside = model.config.seq_len - len(ids)
    # Logits of the fast path against full forwards, at every position of one window; GPT.next_logits
    # cache path beside it, for scale: both differ from the full forward by fp32 rounding only (matmuls
    # of one row and of a whole window sum in different orders), about 1e-6 of the largest logit.
    P = len(ids)
    window = torch.tensor([(ids + results["uncached"])[: model.config.seq_len]])
    with torch.inference_mode():
        full, _ = model(window)
        ref = full[0, P - 1:]
        dec = GPTDecoder(model, 1)
        fast = torch.stack([dec.prefill(window[:, :P])[0]] + [dec.step(int(t))[0] for t in window[0, P:]])
        cache = model.new_cache(1, "cpu")
        module = torch.stack([model.next_logits(window[:, :P], cache)[0]]
                             + [model.next_logits(window[:, t:t + 1], cache)[0] for t in range(P, window.shape[1])])
    max_diff = float((fast - ref).abs().max())
    module_diff = float((module - ref).abs().max())
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "tokens": tokens, "repeats": repeats, "prompt_tokens": len(ids), "seq_len": model.config.seq_len,
        "uncached_tokens_per_s": tokens / best["uncached"], "cached_tokens_per_s": tokens / best["cached"],
        "sampled_tokens_per_s": tokens / best["sampled"],
        "sampled_probs_tokens_per_s": tokens / best["sampled_probs"],
        "probs_slowdown": best["sampled_probs"] / best["sampled"] - 1.0,
        "probs_same_tokens": results["sampled_probs"] == results["sampled"],
        "beam_width": BEAM_WIDTH, "beam_tokens": len(results["beam"]),
        # Each step advances every beam by one token: tokens/s per beam is steps per second.
        "beam_tokens_per_s_per_beam": len(results["beam"]) / best["beam"],
        "beam_vs_sampled": (len(results["beam"]) / best["beam"]) / (tokens / best["sampled"]),
        "speedup": best["uncached"] / best["cached"], "speedup_median": med["uncached"] / med["cached"],
        "greedy_matches_uncached_in_window": results["cached"][:inside] == results["uncached"][:inside],
        "max_logit_diff_in_window": max_diff, "module_cache_max_logit_diff": module_diff,
        "max_abs_logit": float(ref.abs().max()),
        "generated_tokens": len(results["cached"]),
    }


# --------------------------------------------------------------------------- 3. ingestion
_PREPARE_CHILD = r"""
import json, resource, sys, time
import psutil
from genai_core.config import DataConfig
from genai_core.data.tokenstore import prepare
before = psutil.Process().memory_info().rss // 1024  # KiB, like ru_maxrss on Linux
t0 = time.perf_counter()
store = prepare(DataConfig(corpus=sys.argv[1], tokenizer="char"), sys.argv[2])
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s = store.stats
print(json.dumps({"seconds": seconds, "peak_rss_kb": peak, "rss_before_kb": before, "records": s.records,
                  "tokens": s.tokens, "vocab_size": s.vocab_size, "split": s.split}))
"""


def bench_ingestion(work: Path, megabytes: float, records: int = CSV_RECORDS,
                    source: str | None = None) -> dict[str, Any]:
    """Write the synthetic CSV, then time `tokenstore.prepare` on it in a child process."""
    path = work / "ingest.csv"
    made = write_english_csv(path, megabytes, records, source=source)
    proc = subprocess.run([sys.executable, "-c", _PREPARE_CHILD, str(path), str(work / "ingest-store")],
                          capture_output=True, text=True, env=child_env(), timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"prepare failed in the child process:\n{proc.stderr[-4000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux, bytes on macOS (the RSS before prepare is in KiB everywhere).
    unit = 1 if sys.platform == "darwin" else 1024
    mb = path.stat().st_size / (1 << 20)
    path.unlink()
    return {"csv_mb": round(mb, 2), "records": child["records"], "csv_write_s": made["seconds"],
            "seconds": child["seconds"], "mb_per_s": mb / child["seconds"],
            "peak_rss_mb": child["peak_rss_kb"] * unit / (1 << 20),
            "rss_before_mb": child["rss_before_kb"] / 1024,
            "tokens": child["tokens"], "vocab_size": child["vocab_size"], "split": child["split"]}


# --------------------------------------------------------------------------- report
def _fmt(report: dict[str, Any]) -> str:
    tr, ge, ing = report.get("training"), report.get("generation"), report.get("ingestion")
    lines = [f"genai bench ({'quick' if report['quick'] else 'full'}) - torch {report['torch']}, "
             f"{report['cpu_count']} CPU cores, {report['threads']} threads"]
    if tr:
        o, b = tr["ours"], tr.get("baseline")
        lines += ["", f"Training: {tr['steps']} steps of {tr['tokens_per_step']} tokens, 4x4x128 GPT (classic recipe; "
                      f"ours in {tr.get('precision', '?')}, the baseline in fp32), seq 64, "
                      f"char vocab {tr['vocab_size']}, {tr['train_tokens']:,} train tokens ({tr['device']}, "
                      f"{tr['threads']} threads; the two loops interleaved step by step)",
                  f"  ours               {o['tokens_per_s']:9,.0f} tokens/s (median step)  "
                  f"{o['mean_tokens_per_s']:9,.0f} (mean)   val loss {o['val_loss']:.4f}"]
        if b:
            lines += [f"  nanoGPT-style      {b['tokens_per_s']:9,.0f} tokens/s (median step)  "
                      f"{b['mean_tokens_per_s']:9,.0f} (mean)   val loss {b['val_loss']:.4f}",
                      f"  ours / nanoGPT     {tr['speed_ratio']:.3f}x (median step), {tr['mean_speed_ratio']:.3f}x "
                      f"(mean); val loss difference {o['val_loss'] - b['val_loss']:+.4f}"]
        if "ours_other_precision" in tr:
            x = tr["ours_other_precision"]
            extra = f", {x['speed_ratio']:.3f}x the fp32 baseline beside it" if "speed_ratio" in x else ""
            lines.append(f"  extra: ours in {x['precision']} ({x['steps']} steps) {x['tokens_per_s']:,.0f} tokens/s"
                         f"{extra}")
    if ge:
        lines += ["", f"Generation: {ge['tokens']} tokens, prompt {ge['prompt_tokens']} tokens, window {ge['seq_len']} "
                      f"(best of {ge['repeats']})",
                  f"  uncached (window recomputed) {ge['uncached_tokens_per_s']:9,.0f} tokens/s",
                  f"  KV cache, greedy             {ge['cached_tokens_per_s']:9,.0f} tokens/s   "
                  f"speed-up {ge['speedup']:.2f}x (median {ge['speedup_median']:.2f}x)",
                  f"  KV cache, T=0.8 k=20 p=0.9   {ge['sampled_tokens_per_s']:9,.0f} tokens/s",
                  f"    + per-token probabilities  {ge['sampled_probs_tokens_per_s']:9,.0f} tokens/s   "
                  f"({ge['probs_slowdown']:+.1%} time; same tokens {ge['probs_same_tokens']})",
                  f"  beam search, {ge['beam_width']} beams         {ge['beam_tokens_per_s_per_beam']:9,.0f} tokens/s "
                  f"per beam ({ge['beam_vs_sampled']:.2f}x sampling; "
                  f"{ge['beam_width'] * ge['beam_tokens_per_s_per_beam']:,.0f} tokens/s over all beams)",
                  f"  inside the window: greedy equals uncached {ge['greedy_matches_uncached_in_window']}; "
                  f"max |cached - full forward| logit {ge['max_logit_diff_in_window']:.1e} (GPT.next_logits "
                  f"cache: {ge['module_cache_max_logit_diff']:.1e}; largest |logit| {ge['max_abs_logit']:.1f})"]
    if ing:
        lines += ["", f"Ingestion: CSV of {ing['csv_mb']:.1f} MB, {ing['records']:,} records (written in "
                      f"{ing['csv_write_s']:.1f} s), char tokenizer",
                  f"  tokenstore.prepare {ing['seconds']:.1f} s = {ing['mb_per_s']:.1f} MB/s, peak RSS "
                  f"{ing['peak_rss_mb']:,.0f} MB ({ing['rss_before_mb']:,.0f} MB before prepare), "
                  f"{ing['tokens']:,} tokens"]
    lines += ["", f"total {report['seconds']:.0f} s"]
    return "\n".join(lines)


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the bench runs, so that `kill` still removes its temp folder
    (and stops the child process preparing the CSV). Only possible from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_bench(json_output: bool = False, quick: bool = False, train_steps: int | None = None,
              corpus_mb: float | None = None) -> dict[str, Any]:
    """Run the three benchmarks; print a readable report (or one JSON object) and return the figures."""
    t0 = time.perf_counter()
    steps = train_steps or (300 if quick else 2000)
    mb = corpus_mb or (20.0 if quick else 250.0)

    def log(msg: str) -> None:
        if not json_output:
            print(msg, file=sys.stderr, flush=True)

    report: dict[str, Any] = {"quick": quick, "torch": torch.__version__, "cpu_count": os.cpu_count(),
                              "threads": torch.get_num_threads()}
    with _sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="genai-bench-") as tmp:
        work = Path(tmp)
        log("building the English corpus from the standard library's docstrings ...")
        text = english_text()
        corpus = work / "english.txt"
        corpus.write_text(text, encoding="utf-8")
        report["training"] = bench_training(corpus, work, steps, bf16_steps=0 if quick else 300, log=log)
        log("generation ...")
        report["generation"] = bench_generation(Path(report["training"].pop("run_path")),
                                                repeats=3 if quick else 5)
        log(f"ingestion: writing a {mb:g} MB CSV and preparing it ...")
        report["ingestion"] = bench_ingestion(work, mb, source=text)
    report["seconds"] = time.perf_counter() - t0
    report = json_safe(report)
    if json_output:
        print(json.dumps(report))
    else:
        print(_fmt(report))
    return report


__all__ = ["bench_generation", "bench_ingestion", "bench_training", "english_text", "run_bench",
           "write_english_csv"]
