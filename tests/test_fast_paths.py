"""Every compute path on every machine: Muon's Newton-Schulz in fp32 and bf16, autocast on and off, each forced
whatever this CPU is; the speed probe that decides `auto`, its cache and its overrides; and a run that keeps the
paths its first start chose."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from genai_core import speed_probe
from genai_core.devices import muon_precision_choice, precision_choice
from genai_core.errors import GenAIError
from genai_core.runs.folder import Run
from genai_core.train.optim import Muon, newton_schulz
from genai_core.train.trainer import train

CPU = torch.device("cpu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_newton_schulz_orthogonalises_a_batch_of_matrices_in_either_dtype(dtype: torch.dtype) -> None:
    g = torch.randn(3, 96, 32, generator=torch.Generator().manual_seed(0))
    g[1] *= 1000  # the scale of a gradient must not matter
    out = newton_schulz(g, 5, dtype)
    assert out.shape == g.shape and out.dtype == dtype
    for i in range(3):
        s = torch.linalg.svdvals(out[i].float())
        assert 0.5 < s.min() and s.max() < 1.3, s  # every direction moves about equally
        single = newton_schulz(g[i:i + 1], 5, dtype)[0]  # batching changes nothing but the speed
        assert torch.allclose(single.float(), out[i].float(), atol=1e-2 if dtype == torch.bfloat16 else 1e-5)


def test_the_gram_form_of_the_iteration_equals_the_plain_one_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_core.train import optim

    g = torch.randn(4, 128, 512, generator=torch.Generator().manual_seed(0))  # the MLP's shape at d_model 128
    gram = newton_schulz(g, 5, torch.float32)
    monkeypatch.setattr(optim, "GRAM_MIN_ASPECT", 10**9)  # the plain iteration at every shape
    plain = newton_schulz(g, 5, torch.float32)
    assert (gram - plain).abs().max() < 1e-4 * plain.abs().max()
    assert not torch.equal(gram, plain)  # two code paths, not one


def _muon_steps(make: object, steps: int = 4) -> list[torch.Tensor]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in ((64, 32), (64, 32), (32, 128), (32, 32))]
    opt = make(params)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return [p.detach() for p in params]


def test_muon_in_bf16_is_torchs_muon_and_in_fp32_within_bf16_rounding_of_it() -> None:
    def torch_muon(ps: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Muon(ps, lr=0.02, weight_decay=0.0, momentum=0.95, nesterov=True, ns_steps=5)

    reference = _muon_steps(torch_muon)
    ours_bf16 = _muon_steps(lambda ps: Muon(ps, lr=0.02, ns_dtype=torch.bfloat16))
    ours_fp32 = _muon_steps(lambda ps: Muon(ps, lr=0.02, ns_dtype=torch.float32))
    for ref, b, f in zip(reference, ours_bf16, ours_fp32, strict=True):
        assert torch.equal(ref, b)  # same update, bit for bit: checkpoints of runs trained before load and resume
        assert (ref - f).abs().max() < 2e-3  # bf16 keeps 8 bits of mantissa: lr 0.02 x 2^-8 per element and step
        assert not torch.equal(ref, f)  # ... and fp32 really is another path


@pytest.mark.parametrize(("precision", "muon_precision"),
                         [("fp32", "fp32"), ("fp32", "bf16"), ("bf16", "fp32"), ("bf16", "bf16")])
def test_every_forced_path_trains_to_the_same_loss(tmp_path: Path, tiny_txt: Path, precision: str,
                                                   muon_precision: str) -> None:
    cfg = tiny_config(tiny_txt, max_steps=40, eval_interval=40, precision=precision, muon_precision=muon_precision)
    train(cfg, tmp_path / "run")
    run = Run(tmp_path / "run")
    status = run.read_status_raw()
    assert (status["precision"], status["muon_precision"]) == (precision, muon_precision)
    assert status["auto_paths"]["muon_precision"] == {"value": muon_precision, "why": "set in the config"}
    val = [r["val_loss"] for r in run.metrics() if r.get("val_loss") is not None]
    # Every path learns as the fp32 one does: 2.581 at step 40 on this corpus (from about ln 28 = 3.3 untrained), and
    # 2.580-2.582 on the other paths, on an AVX-512 CPU and under the AVX2 emulation of docs/performance.md alike.
    reference = _fp32_reference_loss(tmp_path.parent / "fp32-ref", tiny_txt)
    assert reference < 3.0
    assert val[-1] == pytest.approx(reference, abs=0.02)


_REFERENCE: dict[str, float] = {}


def _fp32_reference_loss(folder: Path, corpus: Path) -> float:
    if "loss" not in _REFERENCE:
        cfg = tiny_config(corpus, max_steps=40, eval_interval=40, precision="fp32", muon_precision="fp32")
        train(cfg, folder)
        _REFERENCE["loss"] = [r["val_loss"] for r in Run(folder).metrics() if r.get("val_loss") is not None][-1]
    return _REFERENCE["loss"]


# --------------------------------------------------------------------------- the probe and its verdict
@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own, and no verdict remembered by this process."""
    monkeypatch.setenv(speed_probe.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(speed_probe.BF16_ENV, raising=False)
    speed_probe.forget()
    yield tmp_path / "cache"
    speed_probe.forget()


def _write_verdict(cache: Path, bf16_ms: float, fp32_ms: float = 10.0) -> None:
    """A measured verdict, as the probe writes it, saying bf16 takes `bf16_ms` where fp32 takes `fp32_ms`."""
    times = {path: {"fp32": {128: fp32_ms, 384: fp32_ms}, "bf16": {128: bf16_ms, 384: bf16_ms}}
             for path in ("newton_schulz", "train_step")}
    v = speed_probe.Verdict("measured", times, measured_at=1.0)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / f"speed-probe-{speed_probe.machine_key()}.json").write_text(json.dumps(v.to_json()))
    speed_probe.forget()


def test_the_probe_measures_both_dtypes_once_and_caches_the_verdict_per_machine(
        own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = speed_probe.verdict("now", force=True)
    assert first.source == "measured"
    ns = first.times_ms["newton_schulz"]
    assert set(ns["fp32"]) == set(ns["bf16"]) == set(speed_probe.PROBE_WIDTHS)
    files = list(own_cache.glob("speed-probe-*.json"))
    assert len(files) == 1
    speed_probe.forget()
    again = speed_probe.verdict("never")  # read back from the file: nothing measured twice
    assert again.source == "measured" and again.times_ms == first.times_ms
    # The verdict's choice follows what was measured, and says so.
    for path in ("newton_schulz", "train_step"):
        ratio = first.ratio(path, 128)
        if ratio is not None:
            assert first.bf16_pays(path, 128) == (ratio <= speed_probe.BF16_MARGIN)
            assert "measured" in first.why(path, 128)
    # Another ISA cap (what ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY emulate) is another machine. (SSE41: a cap
    # this suite never runs under; the AVX2 emulation of docs/performance.md does.)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    assert speed_probe.machine_key() != files[0].stem.removeprefix("speed-probe-")
    assert speed_probe.verdict("never").source == "cpu flags"


def test_a_busy_machine_is_not_measured_and_the_cpu_flags_guess(own_cache: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed_probe, "machine_busy_cores", lambda sample_s=0.3: 1.5)
    v = speed_probe.verdict("now")
    assert v.source == "cpu flags" and v.guess_fast == speed_probe.cpu_has_bf16()
    assert "not measured yet" in v.why("newton_schulz", 128)
    assert not own_cache.exists()  # a guess is never cached


def test_a_damaged_cache_file_is_measured_again(own_cache: Path) -> None:
    own_cache.mkdir()
    path = own_cache / f"speed-probe-{speed_probe.machine_key()}.json"
    for junk in ("{not json", json.dumps({"version": 1, "times_ms": {"newton_schulz": {"fp32": {"128": -1}}}}),
                 json.dumps([1, 2])):
        path.write_text(junk)
        speed_probe.forget()
        assert speed_probe.verdict("never").source == "cpu flags"
    assert speed_probe.verdict("now", force=True).source == "measured"
    assert speed_probe.Verdict.from_json(json.loads(path.read_text())) is not None


def test_auto_follows_the_measured_verdict_and_the_environment_overrides_it(own_cache: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _write_verdict(own_cache, bf16_ms=40.0)  # bf16 4x slower: an AVX2 laptop
    slow = muon_precision_choice("auto", CPU, 128)
    assert slow.value == "fp32" and slow.why == "bf16 measured 4.0x slower for the Newton-Schulz iteration here"
    assert precision_choice("auto", CPU, 128).value == "fp32"
    _write_verdict(own_cache, bf16_ms=5.0)  # bf16 2x faster: native bf16
    assert muon_precision_choice("auto", CPU, 384).value == "bf16"
    assert precision_choice("auto", CPU, 384).value == "bf16"
    assert muon_precision_choice("fp32", CPU).why == "set in the config"  # a set field is never overridden
    monkeypatch.setenv(speed_probe.BF16_ENV, "slow")
    assert (muon_precision_choice("auto", CPU).value, precision_choice("auto", CPU).value) == ("fp32", "fp32")
    assert muon_precision_choice("auto", CPU).why == "GENAI_BF16=slow"
    monkeypatch.setenv(speed_probe.BF16_ENV, "maybe")
    with pytest.raises(GenAIError, match="GENAI_BF16 must be fast or slow"):
        muon_precision_choice("auto", CPU)


def test_a_run_keeps_the_paths_of_its_first_start_when_it_resumes(tmp_path: Path, tiny_txt: Path, own_cache: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _write_verdict(own_cache, bf16_ms=40.0)
    cfg = tiny_config(tiny_txt, max_steps=24, eval_interval=8)
    assert (cfg.train.precision, cfg.train.muon_precision) == ("auto", "auto")
    stop = threading.Event()
    out = tmp_path / "run"
    train(cfg, out, stop_event=stop, callbacks=[lambda ev: ev.kind == "step" and ev.step == 10 and stop.set()])
    first = Run(out).read_status_raw()
    assert first["auto_paths"]["muon_precision"]["value"] == "fp32" and first["muon_precision"] == "fp32"
    _write_verdict(own_cache, bf16_ms=5.0)  # the run moves to a machine where bf16 is fast
    train(cfg, out, resume=True)
    resumed = Run(out).read_status_raw()
    assert resumed["state"] == "completed"
    assert (resumed["precision"], resumed["muon_precision"]) == ("fp32", "fp32")
    assert "chosen at the run's first start" in resumed["auto_paths"]["muon_precision"]["why"]
    # ... and it continues the curve of an uninterrupted run on that path, float for float.
    whole = tmp_path / "whole"
    train(tiny_config(tiny_txt, max_steps=24, eval_interval=8, precision="fp32", muon_precision="fp32"), whole)
    a, b = Run(whole).load_weights(), Run(out).load_weights()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The environment overrides the record: a person who says bf16 is fast here gets it.
    other = tmp_path / "other"
    stop.clear()
    train(cfg, other, stop_event=stop, callbacks=[lambda ev: ev.kind == "step" and ev.step == 10 and stop.set()])
    assert Run(other).read_status_raw()["muon_precision"] == "bf16"  # the verdict on disk says fast now
    _write_verdict(own_cache, bf16_ms=40.0)
    monkeypatch.setenv(speed_probe.BF16_ENV, "fast")
    train(cfg, other, resume=True)
    assert Run(other).read_status_raw()["muon_precision"] == "bf16"
    assert Run(other).read_status_raw()["auto_paths"]["muon_precision"]["why"] == "GENAI_BF16=fast"
