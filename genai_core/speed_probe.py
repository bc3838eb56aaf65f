"""Which compute paths are fast on this machine: measured once, cached, and read by every `auto`.

Two automatic choices hinge on how fast this machine computes in bf16:
- Muon's Newton-Schulz iteration, in bf16 or fp32 (`TrainConfig.muon_precision`);
- autocast of the forward and backward passes on a CPU, bf16 or fp32 (`TrainConfig.precision`).

CPU feature flags are a poor guide: without AVX512-BF16 or AMX a bf16 matmul takes a fallback that
measured 3x slower than fp32 on an AVX-512 Ice Lake and 15-60x slower on AVX2-only CPUs (most laptops,
many cloud VMs), while with them bf16 is faster, by how much depending on the size. So the probe times
the paths themselves, at the widths that matter (d_model 128, the demo's, and 384): the Newton-Schulz
iteration of the largest block matrix in each dtype, and, unless bf16 matmuls were already measured
slower, a GPT's forward and backward with and without bf16 autocast. It takes 1-3 s, runs only while
under half a core is busy (a loaded machine times everything slow), and caches its verdict per machine
(CPU model, cores, torch version, and the ISA caps that oneDNN and ATen read from the environment) in
`cache_dir()`, outside the runs folder. CPU flags are the first guess while nothing was measured.

Overrides: `GENAI_BF16=fast` or `slow` decides both choices without measuring; a config field that is not
`auto` decides its own choice. torch.compile's payback and the thread count are not probed: they stay the
measured rules in `devices.resolve_compile` and `devices.resolve_threads`.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from genai_core.errors import GenAIError

BF16_ENV = "GENAI_BF16"
"""`fast` or `slow`: what this machine's bf16 is, instead of measuring it."""
CACHE_ENV = "GENAI_CACHE_DIR"
"""Folder of the probe's verdicts (default: $XDG_CACHE_HOME/genai-playground, else ~/.cache/genai-playground)."""
PROBE_WIDTHS = (128, 384)
"""d_model values the paths are timed at; a run uses the verdict of the nearest one (on a log scale)."""
BF16_MARGIN = 0.9
"""bf16 is picked only when it takes at most this share of fp32's time: a tie goes to fp32, which is exact."""
QUIET_CORES = 0.5
"""The probe runs only while the machine's other work keeps fewer cores than this busy."""
FORMAT_VERSION = 1

ProbedPath = Literal["newton_schulz", "train_step"]
_PATH_WORDS = {"newton_schulz": "the Newton-Schulz iteration", "train_step": "a training step"}


def cpu_has_bf16() -> bool:
    """The CPU reports native bf16 (AVX512-BF16 or AMX): the first guess while nothing was measured."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # private helpers: absent on other builds means "don't know", so no
        return False


def cpu_model() -> str:
    """The CPU's model name (`lscpu`'s), or the platform's description where /proc/cpuinfo is absent."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_description() -> dict[str, str | int | bool]:
    """What a verdict is valid for: change any of these and the paths are measured again."""
    return {"cpu": cpu_model(), "cores": os.cpu_count() or 1, "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_bf16(),
            "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY", ""),
            "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", "")}


def machine_key() -> str:
    return hashlib.sha256(json.dumps(machine_description(), sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genai-playground"


@dataclass(frozen=True)
class Verdict:
    """What this machine's bf16 is worth, per path and width, and where that knowledge came from."""

    source: Literal["measured", "cpu flags", "environment"]
    times_ms: dict[str, dict[str, dict[int, float]]]
    """path -> dtype ("fp32"/"bf16") -> d_model -> milliseconds (measured verdicts only). A training step
    missing at a width was not timed because bf16 matmuls there were already measured slower."""
    guess_fast: bool = False
    """For `cpu flags` and `environment`: bf16 is taken to be fast."""
    measured_at: float | None = None

    def bf16_pays(self, path: ProbedPath, d_model: int) -> bool:
        if self.source != "measured":
            return self.guess_fast
        ratio = self.ratio(path, d_model)
        return ratio is not None and ratio <= BF16_MARGIN

    def ratio(self, path: ProbedPath, d_model: int) -> float | None:
        """bf16's time over fp32's on `path` at the measured width nearest `d_model` (None: not timed)."""
        by_dtype = self.times_ms.get(path, {})
        fp32, bf16 = by_dtype.get("fp32", {}), by_dtype.get("bf16", {})
        widths = [w for w in fp32 if w in bf16]
        if not widths:
            return None
        w = min(widths, key=lambda x: abs(math.log(x / max(d_model, 1))))
        return bf16[w] / fp32[w]

    def why(self, path: ProbedPath, d_model: int) -> str:
        """In words, why `path` runs in the dtype it does at `d_model`."""
        if self.source == "environment":
            return f"{BF16_ENV}={'fast' if self.guess_fast else 'slow'}"
        if self.source == "cpu flags":
            return ("the CPU reports native bf16" if self.guess_fast else "the CPU reports no native bf16") + \
                " (not measured yet)"
        ratio = self.ratio(path, d_model)
        if ratio is None:  # the training step is skipped where the Newton-Schulz matmuls were slower in bf16
            ns = self.ratio("newton_schulz", d_model)
            return f"bf16 matmuls measured {ns:.1f}x slower here" if ns else "not measured"
        words = f"{1 / ratio:.1f}x faster" if ratio < 1 else f"{ratio:.1f}x slower"
        return f"bf16 measured {words} for {_PATH_WORDS[path]} here"

    def to_json(self) -> dict[str, object]:
        return {"version": FORMAT_VERSION, "machine": machine_description(), "measured_at": self.measured_at,
                "times_ms": {p: {d: {str(w): ms for w, ms in by_w.items()} for d, by_w in by_d.items()}
                             for p, by_d in self.times_ms.items()}}

    @classmethod
    def from_json(cls, raw: object) -> Verdict | None:
        """A cached verdict, or None when the file is of another version or malformed (it is then remeasured)."""
        try:
            if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
                return None
            times = {str(p): {str(d): {int(w): float(ms) for w, ms in by_w.items()} for d, by_w in by_d.items()}
                     for p, by_d in raw["times_ms"].items()}
            if not all(math.isfinite(ms) and ms > 0 for by_d in times.values() for by_w in by_d.values()
                       for ms in by_w.values()):
                return None
            return cls("measured", times, measured_at=float(raw.get("measured_at") or 0.0))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


_LOCK = threading.Lock()
_MEASURED: dict[str, Verdict] = {}
_PENDING: set[str] = set()


def verdict(measure: Literal["now", "background", "never"] = "background", *, force: bool = False) -> Verdict:
    """This machine's verdict: the environment's override, else the measured one (this process's, else the
    cache's), else the CPU flags' guess. Without a measurement, `measure` says whether to run the probe now
    (it blocks 1-3 s; a training run's first start does this), in a background thread (the pages: they never
    wait on it), or not at all. The probe is skipped while the machine is busy, unless `force`."""
    env = os.environ.get(BF16_ENV, "").strip().lower()
    if env:
        if env not in ("fast", "slow"):
            raise GenAIError(f"{BF16_ENV} must be fast or slow (or unset to measure), not {env!r}")
        return Verdict("environment", {}, guess_fast=env == "fast")
    key = machine_key()
    with _LOCK:
        hit = _MEASURED.get(key)
    if hit is None:
        hit = _read_cache(key)
    if hit is not None:
        return hit
    if measure == "now":
        measured = measure_and_cache(force=force)
        if measured is not None:
            return measured
    elif measure == "background":
        _measure_in_background(key, force)
    return Verdict("cpu flags", {}, guess_fast=cpu_has_bf16())


def measure_and_cache(force: bool = False) -> Verdict | None:
    """Time the paths now and cache the verdict (None, measuring nothing, when the machine is busy)."""
    if not force and machine_busy_cores() >= QUIET_CORES:
        return None
    v = Verdict("measured", probe(), measured_at=time.time())
    key = machine_key()
    with _LOCK:
        _MEASURED[key] = v
    _write_cache(key, v)
    return v


def machine_busy_cores(sample_s: float = 0.3) -> float:
    """Cores busy right now, this process's threads included (a run training in this process skews timings
    as much as another program does)."""
    import psutil

    return psutil.cpu_percent(interval=sample_s) / 100.0 * (os.cpu_count() or 1)


def forget() -> None:
    """Drop this process's verdicts (the cache file stays): the next `verdict` reads the cache or measures."""
    with _LOCK:
        _MEASURED.clear()


def _cache_file(key: str) -> Path:
    return cache_dir() / f"speed-probe-{key}.json"


def _read_cache(key: str) -> Verdict | None:
    try:
        v = Verdict.from_json(json.loads(_cache_file(key).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
    if v is not None:
        with _LOCK:
            _MEASURED[key] = v
    return v


def _write_cache(key: str, v: Verdict) -> None:
    from genai_core.files import atomic_write_json

    try:
        _cache_file(key).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(_cache_file(key), v.to_json())
    except OSError:  # a read-only home or a full disk: the verdict still serves this process
        pass


def _measure_in_background(key: str, force: bool) -> None:
    with _LOCK:
        if key in _PENDING:
            return
        _PENDING.add(key)

    def work() -> None:
        try:
            measure_and_cache(force=force)
        except Exception:  # a probe that fails leaves the first guess in place; it must not take a page down
            pass
        finally:
            with _LOCK:
                _PENDING.discard(key)

    thread = threading.Thread(target=work, name="genai-speed-probe", daemon=True)
    _RUNNING.append(thread)
    thread.start()


_RUNNING: list[threading.Thread] = []


@atexit.register
def _finish_probes() -> None:
    """At exit, wait for a probe still timing (a second or two): tearing torch's thread pool down under it
    aborts the process."""
    for thread in _RUNNING:
        thread.join(timeout=30)


# --------------------------------------------------------------------------- the probe itself
def _median_ms(fn: Callable[[], object], reps: int = 3, budget_s: float = 0.4,
               clearly_slower_ms: float = math.inf) -> float:
    """Median milliseconds of `fn` after one untimed call (one-time costs), stopping early past `budget_s`.
    A first call already over `clearly_slower_ms` is the answer (an upper bound that decides anyway)."""
    t0 = time.perf_counter()
    fn()
    first_ms = (time.perf_counter() - t0) * 1e3
    if first_ms > clearly_slower_ms:
        return first_ms
    times: list[float] = []
    spent = 0.0
    while len(times) < reps and (not times or spent < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return statistics.median(times) * 1e3


def newton_schulz_ms(width: int, dtype: torch.dtype, reps: int = 3, budget_s: float = 0.4,
                     clearly_slower_ms: float = math.inf) -> float:
    """Milliseconds of Muon's Newton-Schulz on a block's largest matrix (the MLP's, 4 width x width) in `dtype`
    (`_median_ms`'s rules). The probe and `bench --paths` both time it here."""
    from genai_core.train.optim import MUON_NS_STEPS, newton_schulz

    g = torch.randn(1, 4 * width, width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(False), torch.no_grad():
        return _median_ms(lambda: newton_schulz(g, MUON_NS_STEPS, dtype), reps, budget_s, clearly_slower_ms)


def probe(widths: tuple[int, ...] = PROBE_WIDTHS) -> dict[str, dict[str, dict[int, float]]]:
    """Milliseconds of each path in fp32 and bf16 at each width, on the CPU, with torch's current threads."""
    times: dict[str, dict[str, dict[int, float]]] = {"newton_schulz": {"fp32": {}, "bf16": {}},
                                                     "train_step": {"fp32": {}, "bf16": {}}}
    ns = times["newton_schulz"]
    for w in widths:
        ns["fp32"][w] = newton_schulz_ms(w, torch.float32)
        ns["bf16"][w] = newton_schulz_ms(w, torch.bfloat16, clearly_slower_ms=4 * ns["fp32"][w])
    for w in widths:
        if ns["bf16"][w] > ns["fp32"][w]:
            continue  # bf16 matmuls are slower here: autocast cannot pay, and timing it could take seconds
        for name in ("fp32", "bf16"):
            times["train_step"][name][w] = _train_step_ms(w, name)
    return times


def _train_step_ms(width: int, precision: str) -> float:
    """Forward + backward of a 2-layer GPT of this width (the default recipe) on random ids, in ms: timed as the
    estimates time a model (`timing.time_steps`)."""
    from genai_core.config import ModelConfig, TrainConfig
    from genai_core.train.timing import time_steps

    m = ModelConfig(vocab_size=96, d_model=width, n_heads=max(2, width // 64), n_layers=2, seq_len=64)
    t = TrainConfig(batch_size=8, max_steps=1, optimizer="adamw")
    timing = time_steps(m, t, torch.device("cpu"), precision)
    return (timing.forward + timing.backward) * 1e3
