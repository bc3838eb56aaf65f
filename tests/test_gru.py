"""The GRU: a third architecture beside the GPT and the LSTM, from the model to the CLI and the pages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from genai_core.cli import build_parser
from genai_core.config import DataConfig, ModelConfig, SampleConfig
from genai_core.data.tokenstore import prepare_cached
from genai_core.generate.sampling import Sampler
from genai_core.model import RecurrentLM, RecurrentState, load_state, state_for_save
from genai_core.models import build_model
from genai_core.runs.folder import Run
from genai_core.train.estimates import count_params, estimate, flops_per_token, matmul_params
from genai_core.train.trainer import train
from tests.conftest import app_test, tiny_config

GRU = ModelConfig(arch="gru", vocab_size=50, d_model=32, n_layers=2, seq_len=24)


def test_gru_is_built_with_three_gates_and_its_own_state_dict_keys() -> None:
    model = build_model(GRU)
    assert isinstance(model, RecurrentLM) and isinstance(model.rnn, torch.nn.GRU)
    assert model.gru.weight_ih_l0.shape == (3 * 32, 32)
    assert sorted(state_for_save(model)) == sorted(
        ["wte.weight", "ln_f.weight", "ln_f.bias"]
        + [f"gru.{w}_{k}_l{i}" for i in range(2) for w in ("weight", "bias") for k in ("ih", "hh")])
    assert count_params(GRU) == sum(p.numel() for p in model.parameters())


def test_lstm_checkpoint_keys_are_unchanged() -> None:
    # Runs saved before the GRU existed name the recurrent weights lstm.*: they must still load.
    lstm = build_model(GRU.model_copy(update={"arch": "lstm"}))
    keys = sorted(state_for_save(lstm))
    assert keys == sorted(["wte.weight", "ln_f.weight", "ln_f.bias"]
                          + [f"lstm.{w}_{k}_l{i}" for i in range(2) for w in ("weight", "bias") for k in ("ih", "hh")])
    assert lstm.lstm.weight_ih_l0.shape == (4 * 32, 32)
    other = build_model(GRU.model_copy(update={"arch": "lstm"}))
    load_state(other, state_for_save(lstm))
    x = torch.randint(0, 50, (2, 10))
    torch.testing.assert_close(other.eval()(x)[0], lstm.eval()(x)[0])


def test_gru_cache_equals_full_forward_and_is_causal() -> None:
    torch.manual_seed(0)
    model = build_model(GRU).eval()
    x = torch.randint(0, 50, (3, GRU.seq_len))
    with torch.no_grad():
        full, _ = model(x)
        cache = model.new_cache(3, "cpu")
        ends = [7, 8, 9, 10, 11, 12, GRU.seq_len]  # a prefill, one token at a time, then a multi-token chunk
        parts = [model.next_logits(x[:, a:b], cache) for a, b in zip([0, *ends], ends, strict=False)]
        assert isinstance(cache, RecurrentState) and cache.c is None and cache.h.shape == (2, 3, 32)
        assert cache.pos == GRU.seq_len
        y = x.clone()
        y[:, 10:] = torch.randint(0, 50, y[:, 10:].shape)
        changed, _ = model(y)
    torch.testing.assert_close(torch.stack(parts, 1), full[:, [e - 1 for e in ends]], rtol=0, atol=1e-5)
    torch.testing.assert_close(changed[:, :10], full[:, :10], rtol=0, atol=0)
    assert not torch.allclose(changed[:, 10:], full[:, 10:])


def test_gru_estimates_count_three_gates() -> None:
    lstm = GRU.model_copy(update={"arch": "lstm"})
    C, L = GRU.d_model, GRU.n_layers
    assert count_params(lstm) - count_params(GRU) == L * (2 * C * C + 2 * C)  # one gate of weights and biases fewer
    assert matmul_params(GRU) == L * 6 * C * C + GRU.vocab_size * C
    assert flops_per_token(GRU) == 6 * matmul_params(GRU)
    est = estimate(GRU, "cpu", calibrate=False)
    assert est.arch == "gru" and est.params == count_params(GRU) and est.memory.attention == "gru"
    assert est.memory.activations < estimate(lstm, "cpu", calibrate=False).memory.activations


@pytest.mark.slow
def test_gru_trains_saves_reloads_and_samples(tmp_path: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=30, lr=3e-3)
    cfg.model = cfg.model.model_copy(update={"arch": "gru"})
    res = train(cfg, tmp_path / "gru")
    assert res.state == "completed"
    run = Run(tmp_path / "gru")
    assert run.config().model.arch == "gru"
    evals = [r["val_loss"] for r in run.metrics() if "val_loss" in r]
    assert len(evals) == 3 and evals[-1] < evals[0]
    weights = load_file(str(run.latest_checkpoint() / "model.safetensors"))
    assert any(k.startswith("gru.") for k in weights) and not any(k.startswith("lstm.") for k in weights)
    assert run.summary()["params"] == count_params(run.config().model)

    sampler = Sampler.from_run(run.path)
    assert isinstance(sampler.model, RecurrentLM) and sampler.model.config.arch == "gru"
    greedy = SampleConfig(temperature=0, max_new_tokens=40, stop_at_end=False)
    text = sampler.generate("The ", greedy)
    assert len(text) > 0 and text == Sampler.from_run(run.path).generate("The ", greedy)
    beams = sampler.beam_search("The ", SampleConfig(num_beams=3, num_return=3, max_new_tokens=20))
    assert len(beams.hypotheses) == 3 and beams.best.text
    # Resuming continues the same GRU from its checkpoint.
    saved = run.config()
    longer = saved.model_copy(update={"train": saved.train.model_copy(update={"max_steps": 40})})
    (run.path / "config.json").write_text(longer.model_dump_json(), encoding="utf-8")
    assert train(longer, run.path, resume=True).state == "completed"
    assert run.metrics()[-1]["step"] == 40


def test_cli_offers_gru() -> None:
    args = build_parser().parse_args(["train", "--arch", "gru", "--corpus", "x.txt", "--out", "r"])
    assert args.model__arch == "gru"
    choices = next(a.choices for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                   if a.dest == "model__arch")
    assert list(choices) == ["gpt", "lstm", "gru"]


# --------------------------------------------------------------------------- pages
@pytest.mark.slow
def test_train_page_offers_gru_and_estimates_it(app_env: Path, tmp_path: Path, tiny_txt: Path) -> None:
    from pages import ui

    ui.save_data_choice(DataConfig(corpus=tiny_txt))
    at = app_test("pages/train.py")
    arch = at.radio(key="train_arch")
    assert list(arch.options) == ["GPT", "LSTM", "GRU"]
    arch.set_value("gru").run()
    for key, value in {"d_model": 32, "n_layers": 2, "seq_len": 16, "max_steps": 20}.items():
        at.number_input(key=f"train_{key}").set_value(value)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.number_input(key="train_n_heads").disabled
    vocab = prepare_cached(DataConfig(corpus=tiny_txt), tmp_path / "store").tokenizer.vocab_size
    expected = count_params(ModelConfig(arch="gru", d_model=32, n_layers=2, seq_len=16, vocab_size=vocab))
    assert next(m.value for m in at.metric if m.label == "Parameters") == f"{expected:,}"
    assert not at.button(key="train_start").disabled


@pytest.fixture(scope="module")
def three_archs(tmp_path_factory: pytest.TempPathFactory, tiny_txt: Path) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("archs")
    for arch in ("gpt", "lstm", "gru"):
        cfg = tiny_config(tiny_txt, max_steps=10)
        cfg.model = cfg.model.model_copy(update={"arch": arch})
        train(cfg, root / arch)
    return root


def _figures(at: Any) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


@pytest.mark.slow
def test_runs_page_compares_gpt_lstm_and_gru(three_archs: Path, app_env: Path) -> None:
    for name in ("gpt", "lstm", "gru"):
        shutil.copytree(three_archs / name, app_env / name)
    at = app_test("pages/runs.py")
    assert not at.exception and not at.error
    assert sorted(at.dataframe[0].value["arch"]) == ["gpt", "gru", "lstm"]
    at.multiselect(key="runs_compare").set_value(["gpt", "lstm", "gru"]).run()
    assert not at.exception
    curves = next(f for f in _figures(at) if f["data"] and f["data"][0]["type"] == "scatter")
    assert {t["name"].split(" · ")[0] for t in curves["data"]} == {"gpt", "lstm", "gru"}
    parcoords = next(f for f in _figures(at) if f["data"][0]["type"] == "parcoords")
    arch_axis = next(d for d in parcoords["data"][0]["dimensions"] if d["label"] == "architecture")
    assert arch_axis["ticktext"] == ["gpt", "gru", "lstm"] and len(arch_axis["values"]) == 3


@pytest.mark.slow
def test_chat_page_talks_to_a_gru(three_archs: Path, app_env: Path) -> None:
    shutil.copytree(three_archs / "gru", app_env / "gru")
    at = app_test("pages/chat.py")
    at.chat_input[0].set_value("What happened?").run()
    assert not at.exception
    answer = [m for m in at.session_state["chat_messages"] if m["role"] == "assistant"][-1]
    assert answer["ids"] and not answer["partial"]
    assert any("GRU" in i.value and "no attention" in i.value for i in at.info)
