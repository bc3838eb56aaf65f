"""`python -m genai_core bench --paths`: every compute path on this machine, side by side, and what `auto` picks.

For two shapes, the demo's (a GPT of 4 layers, d_model 128, window 64, batch 12) and a larger one (6 layers,
d_model 384, window 128, batch 12), the engine's own training step (`train.optim.TrainStep`, the default
recipe, random ids) is timed in every CPU path: autocast fp32 or bf16, Muon's Newton-Schulz in fp32 or bf16,
1 thread or every core; the classic recipe (nanoGPT's: AdamW, fp32) beside them for scale. The paths run
interleaved, one step each per round, so all see the same machine load; a path far slower than the rest
stops being timed once it has used its share of the time (its figure is then from fewer rounds, or from its
first step alone when that takes seconds). Then the Newton-Schulz iteration alone per dtype, and generation
(the fast decoder and GPT.next_logits, 1 thread and every core). Each table marks the path `auto` takes
here and how far it is from the fastest. torch.compile is not in the table: its payback is the measured rule
of `devices.resolve_compile` (`benchmarks/cpu_paths.py` times it).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from genai_core.config import RECIPES, ModelConfig, TrainConfig
from genai_core.devices import cpu_cores, muon_precision_choice, precision_choice
from genai_core.speed_probe import cpu_has_bf16, cpu_model, newton_schulz_ms, verdict

SHAPES = {"demo 4x128": (4, 128, 64, 12), "6x384": (6, 384, 128, 12)}
"""name: (layers, d_model, seq_len, batch)."""
PATH_BUDGET_S = 6.0
"""Seconds of steps after which a path is timed no more (slow paths: bf16 where bf16 has no hardware)."""


@dataclass
class TrainPath:
    """One way to run a training step: the recipe, the autocast and Newton-Schulz dtypes, the threads."""

    name: str
    recipe: str
    precision: str
    muon_precision: str | None
    threads: int


def _paths(cores: int) -> list[TrainPath]:
    threads = sorted({1, cores})
    out = [TrainPath(f"modern, autocast {p}, Muon {mp}, {th}t", "modern", p, mp, th)
           for p in ("fp32", "bf16") for mp in ("fp32", "bf16") for th in threads]
    out += [TrainPath(f"classic (AdamW), fp32, {th}t", "classic", "fp32", None, th) for th in threads]
    return out


def _step_for(path: TrainPath, layers: int, d: int, seq: int, batch: int) -> tuple[Any, Any]:
    from genai_core.models import build_model
    from genai_core.train.optim import TrainStep, make_optimizer
    from genai_core.train.timing import random_batch

    m = ModelConfig(vocab_size=96, d_model=d, n_heads=max(4, d // 64), n_layers=layers, seq_len=seq,
                    **RECIPES[path.recipe]["model"])
    t = TrainConfig(batch_size=batch, max_steps=10, muon_precision=path.muon_precision or "auto",
                    **RECIPES[path.recipe]["train"])
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model(m)
    model.train()
    step = TrainStep(model, make_optimizer(model, t, cpu, muon_precision=path.muon_precision), t, cpu,
                     path.precision)
    return step, random_batch(m, batch, cpu)


def bench_training_paths(shape: str, rounds: int, log: Any = print) -> dict[str, Any]:
    """Median tokens/s of every training path at `shape`, interleaved round by round."""
    layers, d, seq, batch = SHAPES[shape]
    cores = cpu_cores()
    paths = _paths(cores)
    log(f"training paths at {shape} (seq {seq}, batch {batch}): {len(paths)} paths x {rounds} rounds ...")
    steps = {}
    times: dict[str, list[float]] = {p.name: [] for p in paths}
    for p in paths:
        torch.set_num_threads(p.threads)
        steps[p.name] = _step_for(p, layers, d, seq, batch)
        t0 = time.perf_counter()
        steps[p.name][0](lambda b=steps[p.name][1]: b).loss.item()  # one-time costs: not timed, unless ...
        first = time.perf_counter() - t0
        if first > PATH_BUDGET_S / 2:  # ... one step already takes seconds: that bound is the answer
            times[p.name].append(first)
    for _ in range(rounds):
        for p in paths:
            if sum(times[p.name]) > PATH_BUDGET_S:
                continue
            step, b = steps[p.name]
            torch.set_num_threads(p.threads)
            t0 = time.perf_counter()
            step(lambda b=b: b).loss.item()
            times[p.name].append(time.perf_counter() - t0)
    torch.set_num_threads(cores)
    tokens = batch * seq
    rows = {p.name: {"tokens_per_s": tokens / statistics.median(times[p.name]), "rounds": len(times[p.name]),
                     "recipe": p.recipe, "precision": p.precision, "muon_precision": p.muon_precision,
                     "threads": p.threads} for p in paths}
    auto_p = precision_choice("auto", torch.device("cpu"), d)
    auto_mp = muon_precision_choice("auto", torch.device("cpu"), d)
    auto_name = f"modern, autocast {auto_p.value}, Muon {auto_mp.value}, {cores}t"
    modern = {k: v for k, v in rows.items() if v["recipe"] == "modern"}
    fastest = max(modern, key=lambda k: modern[k]["tokens_per_s"])
    classic = rows[f"classic (AdamW), fp32, {cores}t"]["tokens_per_s"]
    return {"shape": shape, "layers": layers, "d_model": d, "seq_len": seq, "batch": batch, "rows": rows,
            "auto": auto_name, "auto_why": {"precision": auto_p.why, "muon_precision": auto_mp.why},
            "fastest": fastest, "auto_vs_fastest": rows[auto_name]["tokens_per_s"] / modern[fastest]["tokens_per_s"],
            "auto_vs_classic": rows[auto_name]["tokens_per_s"] / classic}


def bench_newton_schulz(rounds: int = 5) -> dict[str, dict[str, float]]:
    """Milliseconds of one Newton-Schulz orthogonalisation of the block's largest matrix (4d x d), per dtype."""
    return {str(d): {name: newton_schulz_ms(d, dtype, reps=rounds, budget_s=PATH_BUDGET_S / 2)
                     for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
            for d in (128, 384)}


def bench_generation_paths(tokens: int = 500, rounds: int = 3) -> dict[str, Any]:
    """Tokens/s of greedy decoding of a demo-shaped GPT: the fast decoder and GPT.next_logits with its KV cache,
    1 thread and every core. (Generation runs in fp32 on every machine; the Chat and the samples use the fast
    decoder.)"""
    from genai_core.generate.gpt_decoder import GPTDecoder
    from genai_core.models import build_model

    cores = cpu_cores()
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=96, d_model=128, n_heads=4, n_layers=4, seq_len=256)).eval()
    rows: dict[str, float] = {}

    def fast() -> None:
        dec = GPTDecoder(model, 1)
        tok = int(dec.prefill(torch.zeros(1, 1, dtype=torch.long))[0].argmax())
        for _ in range(tokens - 1):
            if dec.pos >= model.config.seq_len:
                dec.reset()
            tok = int(dec.step(tok)[0].argmax())

    def module_cache() -> None:
        cache = model.new_cache(1, "cpu")
        ids = torch.zeros(1, 1, dtype=torch.long)
        for i in range(tokens):
            if i and i % model.config.seq_len == 0:
                cache = model.new_cache(1, "cpu")
            ids = model.next_logits(ids, cache).argmax(-1, keepdim=True)

    with torch.inference_mode():
        for th in sorted({1, cores}):
            for name, fn in (("fast decoder", fast), ("GPT.next_logits cache", module_cache)):
                torch.set_num_threads(th)
                fn()
                ts = []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t0)
                rows[f"{name}, {th}t"] = tokens / min(ts)
    torch.set_num_threads(cores)
    return {"tokens": tokens, "rows": rows, "auto": f"fast decoder, {cores}t"}


def run_paths(json_output: bool = False, quick: bool = False) -> dict[str, Any]:
    v = verdict("now")
    report: dict[str, Any] = {
        "cpu": cpu_model(), "cores": cpu_cores(), "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16_flags": cpu_has_bf16(),
        "verdict": v.source, "newton_schulz_ms": bench_newton_schulz(),
        "training": [bench_training_paths(s, 4 if quick else 10, log=(lambda *_: None) if json_output else print)
                     for s in (list(SHAPES)[:1] if quick else SHAPES)],
        "generation": bench_generation_paths(200 if quick else 500)}
    if json_output:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return report


def format_report(r: dict[str, Any]) -> str:
    lines = [f"CPU: {r['cpu']}, {r['cores']} cores, torch {r['torch']} ({r['cpu_capability']}), native bf16 in "
             f"the CPU flags: {'yes' if r['native_bf16_flags'] else 'no'}; auto's verdict: {r['verdict']}",
             "", "Newton-Schulz (5 iterations) of one 4d x d matrix, ms:"]
    for d, by in r["newton_schulz_ms"].items():
        lines.append(f"  d_model {d:>4}: fp32 {by['fp32']:8.2f}   bf16 {by['bf16']:8.2f}   "
                     f"(bf16 / fp32 = {by['bf16'] / by['fp32']:.1f}x)")
    for t in r["training"]:
        lines += ["", f"Training at {t['shape']} (seq {t['seq_len']}, batch {t['batch']}), tokens/s "
                      f"(median step, interleaved):"]
        best = max(v["tokens_per_s"] for v in t["rows"].values())
        for name, row in sorted(t["rows"].items(), key=lambda kv: -kv[1]["tokens_per_s"]):
            mark = "  <- auto" if name == t["auto"] else ""
            lines.append(f"  {name:<40} {row['tokens_per_s']:>9,.0f}  {row['tokens_per_s'] / best:5.2f}x best"
                         f"  ({row['rounds']} rounds){mark}")
        lines.append(f"  auto: {t['auto']} (precision: {t['auto_why']['precision']}; Muon: "
                     f"{t['auto_why']['muon_precision']}): {t['auto_vs_fastest']:.2f}x the fastest modern path, "
                     f"{t['auto_vs_classic']:.2f}x classic's tokens/s")
    g = r["generation"]
    lines += ["", f"Generation, greedy, {g['tokens']} tokens, demo-shaped GPT (fp32), tokens/s:"]
    for name, tps in sorted(g["rows"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<40} {tps:>9,.0f}{'  <- auto' if name == g['auto'] else ''}")
    return "\n".join(lines)
