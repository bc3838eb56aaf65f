"""The modern recipe's knobs (RoPE, RMSNorm, QK-norm, ReLU^2, zero init, untied head, soft-cap, Muon) and
the recipes themselves: what each knob promises, everywhere the GPT works, and old runs unchanged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from genai_core.config import RECIPES, DataConfig, ModelConfig, RunConfig, SampleConfig, TrainConfig, with_recipe
from genai_core.devices import resolve_threads
from genai_core.generate.gpt_decoder import GPTDecoder
from genai_core.generate.sampling import Sampler
from genai_core.model import GPT, apply_rope, rope_tables
from genai_core.models import build_model
from genai_core.runs.compare import ablation, baselines
from genai_core.runs.folder import Run
from genai_core.train.optim import is_hidden_matrix, make_optimizer
from genai_core.train.trainer import train
from tests.conftest import tiny_config

MODERN = ModelConfig(vocab_size=40, d_model=32, n_heads=4, n_layers=2, seq_len=24)
KNOB_MIXES = [
    MODERN,
    MODERN.model_copy(update={"copy_head": True}),
    MODERN.model_copy(update={"norm": "rmsnorm", "tie_embeddings": False, "logit_softcap": 10.0, "bias": False}),
    MODERN.model_copy(update={"pos_encoding": "sinusoidal", "qk_norm": False, "mlp": "gelu", "zero_init": True}),
]


def _randomised(cfg: ModelConfig) -> GPT:
    """A model with weights far from their initialisation (zero-init projections would hide bugs)."""
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def test_rope_scores_depend_only_on_relative_position() -> None:
    hd = 16
    cos, sin = rope_tables(64, hd)
    q, k = torch.randn(hd), torch.randn(hd)

    def score(i: int, j: int) -> float:
        return float(apply_rope(q, cos[i], sin[i]) @ apply_rope(k, cos[j], sin[j]))

    assert score(5, 2) == pytest.approx(score(40, 37), abs=1e-4)
    assert score(9, 0) == pytest.approx(score(60, 51), abs=1e-4)
    assert abs(score(5, 2) - score(5, 4)) > 1e-3  # ... and it does depend on the distance


@pytest.mark.parametrize("cfg", KNOB_MIXES, ids=["modern", "modern-copy", "rms-untied-cap", "sin-gelu-zero"])
def test_cached_decoding_equals_the_full_forward(cfg: ModelConfig) -> None:
    model = _randomised(cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, 20))
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_cache(2, "cpu")
        parts = [model.next_logits(idx[:, a:b], cache) for a, b in ((0, 7), (7, 8), (8, 9), (9, 20))]
        assert torch.allclose(torch.stack(parts, 1), full[:, [6, 7, 8, 19]], atol=1e-4)
        if cfg.copy_head:
            return  # the copy head decodes through GPT.next_logits (checked above)
        dec = GPTDecoder(model, 2)
        got = [dec.prefill(idx[:, :5])] + [dec.step(idx[:, t]) for t in range(5, 20)]
        assert torch.allclose(torch.stack(got, 1), full[:, 4:], atol=1e-4)


def test_qk_norm_and_rmsnorm_give_unit_rms() -> None:
    cfg = MODERN.model_copy(update={"norm": "rmsnorm"})
    model = _randomised(cfg)
    x = torch.randn(2, 10, cfg.d_model) * 7
    q, k, _ = model.h[0].attn.project(x)
    for t in (q, k):
        assert torch.allclose(t.pow(2).mean(-1).sqrt(), torch.ones(()), atol=1e-3)
    with torch.no_grad():
        model.ln_f.weight.fill_(1.0)
    assert torch.allclose(model.ln_f(x).pow(2).mean(-1).sqrt(), torch.ones(()), atol=1e-3)


def test_soft_cap_bounds_the_logits() -> None:
    cfg = MODERN.model_copy(update={"logit_softcap": 5.0, "tie_embeddings": False})
    model = _randomised(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(1000)
        logits, _ = model(torch.randint(0, cfg.vocab_size, (2, 12)))
        assert logits.abs().max() <= 5.0
        assert logits.abs().max() > 4.0  # the cap is reached, not merely respected by small logits
        assert GPTDecoder(model, 1).prefill(torch.zeros(1, 3, dtype=torch.long)).abs().max() <= 5.0


def test_zero_init_starts_every_block_as_the_identity() -> None:
    model = GPT(MODERN.model_copy(update={"zero_init": True, "tie_embeddings": False}))
    assert all((b.attn.c_proj.weight == 0).all() and (b.mlp.c_proj.weight == 0).all() for b in model.h)
    assert (model.lm_head.weight == 0).all()


def test_muon_takes_the_block_matrices_and_its_update_is_orthogonal() -> None:
    torch.manual_seed(0)
    model = build_model(MODERN.model_copy(update={"d_model": 64}))
    opt = make_optimizer(model, TrainConfig(optimizer="muon", muon_lr=0.1), torch.device("cpu"))
    muon, adamw = opt.optimizers
    assert isinstance(adamw, torch.optim.AdamW)
    muon_params = {id(p) for g in muon.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in muon_params) == is_hidden_matrix(name, p), name
    w = model.h[0].attn.c_proj.weight  # 64 x 64
    before = w.detach().clone()
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    update = (before - w.detach()) / 0.1
    s = torch.linalg.svdvals(update)
    # Newton-Schulz gives U S' V^T with S' roughly uniform in (0.5, 1.5): every direction moves about
    # equally, unlike the raw gradient, whose singular values spread over an order of magnitude and more.
    assert 0.3 < s.min() and s.max() < 1.6, s
    g = torch.linalg.svdvals(torch.randn(64, 64))
    assert g.max() / g.min() > 10


def test_stop_and_resume_with_muon_equals_one_uninterrupted_run(tmp_path: Path, tiny_txt: Path) -> None:
    import threading

    cfg = tiny_config(tiny_txt, max_steps=24, eval_interval=8)
    assert cfg.train.optimizer == "muon"  # the default for a GPT
    train(cfg, tmp_path / "whole")
    stop = threading.Event()
    train(cfg, tmp_path / "split", stop_event=stop, callbacks=[lambda ev: ev.kind == "step" and ev.step == 13
                                                                and stop.set()])
    assert Run(tmp_path / "split").state == "stopped"
    train(cfg, tmp_path / "split", resume=True)
    a, b = Run(tmp_path / "whole").load_weights(), Run(tmp_path / "split").load_weights()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_run_saved_before_the_knobs_existed_loads_and_samples_unchanged(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = RunConfig.model_validate(_classic(tiny_config(tiny_txt, max_steps=12)))
    train(cfg, tmp_path / "old")
    run = Run(tmp_path / "old")
    before = Sampler.from_run(run).generate("The", _greedy())
    raw = json.loads(run.config_path.read_text())
    for section, fields in (("model", ("norm", "qk_norm", "mlp", "zero_init", "logit_softcap")),
                            ("train", ("optimizer", "muon_lr"))):
        for f in fields:
            raw[section].pop(f)
    run.config_path.write_text(json.dumps(raw))  # what a run written by the previous release holds
    loaded = run.config()
    assert (loaded.model.norm, loaded.model.qk_norm, loaded.model.mlp, loaded.train.optimizer) == \
        ("layernorm", False, "gelu", "adamw")
    assert Sampler.from_run(run).generate("The", _greedy()) == before
    assert ModelConfig().pos_encoding == "rope" and ModelConfig().qk_norm  # new configs: the recipe's default


def _classic(cfg: RunConfig) -> dict:
    """`cfg` as JSON-able values with the classic recipe's knobs."""
    values = json.loads(cfg.model_dump_json())
    for section in ("model", "train"):
        values[section].update(RECIPES["classic"][section])
    return values


def _greedy() -> SampleConfig:
    return SampleConfig(max_new_tokens=20, temperature=0.0)


def test_recipes_fill_the_knobs_under_what_is_given() -> None:
    classic = RunConfig.model_validate(with_recipe({"data": {"corpus": "x.txt"}, "train": {"lr": 0.01}}, "classic"))
    assert classic.model.pos_encoding == "learned" and classic.train.optimizer == "adamw"
    assert classic.train.lr == 0.01  # given beside the recipe: it wins
    modern = RunConfig.model_validate(with_recipe({"data": {"corpus": "x.txt"}}, "modern"))
    assert modern.model == ModelConfig() and modern.train.optimizer == TrainConfig().optimizer
    lstm = RunConfig.model_validate(with_recipe({"data": {"corpus": "x.txt"}, "model": {"arch": "lstm"}}, "modern"))
    assert lstm.train.optimizer == "adamw"  # Muon has nothing to take in an LSTM
    assert set(RECIPES) == {"modern", "classic"}


@pytest.mark.parametrize(("model", "train", "expected"), [
    ({"d_model": 30, "n_heads": 2}, {}, "head dimension"),
    ({"arch": "lstm"}, {"optimizer": "muon"}, "optimizer muon"),
    ({"logit_softcap": 0.0}, {}, "greater than 0"),
])
def test_impossible_combinations_are_refused(model: dict, train: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        RunConfig.model_validate({"data": {"corpus": "x.txt"}, "model": model, "train": train})


def test_threads_follow_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENAI_NUM_THREADS", raising=False)
    monkeypatch.setattr("genai_core.devices.cpu_cores", lambda: 2)
    cpu = torch.device("cpu")
    assert resolve_threads(None, cpu, busy=0.0) == 2
    assert resolve_threads(None, cpu, busy=1.0) == 1  # another program on one core: never oversubscribe
    assert resolve_threads(None, cpu, busy=2.0) == 1
    assert resolve_threads(3, cpu, busy=2.0) == 3  # asked for: given
    monkeypatch.setenv("GENAI_NUM_THREADS", "1")
    assert resolve_threads(None, cpu, busy=0.0) == 1


def test_ablation_groups_seeds_and_finds_one_knob_arms(tmp_path: Path, tiny_txt: Path) -> None:
    base = _classic(tiny_config(tiny_txt, max_steps=10, eval_interval=5))
    arms = {"base": {}, "rope": {"model": {"pos_encoding": "rope"}},
            "both": {"model": {"pos_encoding": "rope", "mlp": "relu2"}}}
    for name, change in arms.items():
        for seed in (0, 1):
            values = json.loads(json.dumps(base))
            for section, upd in change.items():
                values[section].update(upd)
            values["train"]["seed"] = seed
            train(RunConfig.model_validate(values), tmp_path / f"{name}-s{seed}")
    runs = [Run(p) for p in sorted(tmp_path.iterdir())]
    assert "base-s0" in baselines(runs)
    found = ablation(runs, "base-s0")
    assert [a.label for a in found] == ["baseline", "pos_encoding: learned → rope"]
    assert found[0].runs == ["base-s0", "base-s1"] and len(found[1].finals) == 2
    assert found[1].std is not None and math.isfinite(found[1].mean)
    assert len(found[0].mean_curve()) == 2  # steps 5 and 10, averaged over both seeds
    assert len(ablation(runs, "base-s0", max_changes=2)) == 3


def test_each_recipe_trains_through_the_cli(tmp_path: Path, tiny_txt: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for recipe in ("classic", "modern"):
        out = tmp_path / recipe
        proc = subprocess.run([sys.executable, "-m", "genai_core", "train", "--corpus", str(tiny_txt), "--recipe",
                               recipe, "--d-model", "32", "--n-heads", "2", "--n-layers", "1", "--seq-len", "16",
                               "--max-steps", "4", "--eval-interval", "2", "--eval-batches", "1", "--batch-size", "2",
                               "--out", str(out)], capture_output=True, text=True, cwd=root, timeout=120)
        assert proc.returncode == 0, proc.stderr
        cfg = Run(out).config()
        assert cfg.model.pos_encoding == RECIPES[recipe]["model"]["pos_encoding"]
        assert cfg.train.optimizer == RECIPES[recipe]["train"]["optimizer"]
        assert Run(out).state == "completed"
    proc = subprocess.run([sys.executable, "-m", "genai_core", "train", "--corpus", str(tiny_txt), "--arch", "lstm",
                           "--optimizer", "muon", "--out", str(tmp_path / "bad")],
                          capture_output=True, text=True, cwd=root, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:") and "muon" in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_data_config_is_untouched_by_recipes() -> None:
    assert with_recipe({"data": {"corpus": "a.txt"}}, "classic")["data"] == {"corpus": "a.txt"}
    assert DataConfig(corpus=Path("a.txt")).tokenizer == "char"


def test_compile_turns_on_by_itself_only_where_it_was_measured_to_pay() -> None:
    from genai_core.devices import resolve_compile

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile(None, cpu, 256, "lm", 1000)
    assert not resolve_compile(None, cpu, 128, "lm", 5000)  # small: ~1,900 steps to win 33 s back
    assert not resolve_compile(None, cpu, 384, "lm", 300)  # short
    assert not resolve_compile(None, cpu, 384, "qa", 5000)  # QA batches vary in length: it would recompile
    assert not resolve_compile(None, cuda, 384, "lm", 5000)  # not measured on a GPU yet
    assert resolve_compile(True, cpu, 32, "lm", 5) and not resolve_compile(False, cpu, 512, "lm", 10**6)
    assert TrainConfig().compile is None
