"""The Chat page through AppTest: run choice, example context, streamed answers, sliders, charts, errors."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from genai_core.config import SampleConfig
from genai_core.generate.inspection import QA_TEMPLATE, format_qa_prompt
from genai_core.generate.sampling import Sampler
from genai_core.train.trainer import train
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/chat.py"
EXAMPLES = sorted((ROOT / "assets" / "contexts").glob("*.txt"))


def app_test(page: str, timeout: float = 60) -> Any:
    """As conftest's `app_test`, with the entry file by absolute path: AppTest resolves a relative path
    against the file that calls it, which for conftest is tests/, not the repository root."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.run()
    at.switch_page(page)
    at.run()
    return at


@pytest.fixture
def trained(app_env: Path, tiny_txt: Path) -> Path:
    train(tiny_config(tiny_txt, max_steps=20), app_env / "tiny")
    return app_env / "tiny"


def _ok(at: Any) -> Any:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _chat(at: Any, question: str) -> dict[str, Any]:
    """Send a question; the assistant message it produced, as saved in session state."""
    _ok(at.chat_input[0].set_value(question).run())
    return [m for m in at.session_state["chat_messages"] if m["role"] == "assistant"][-1]


def _shown(markdown: str) -> str:
    """The text a markdown element shows: the answer is HTML, each token in a span shaded by its confidence."""
    return html.unescape(re.sub(r"<[^>]*>", "", markdown.replace("<br>", "\n")))


def _charts(at: Any) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _set(at: Any, key: str, value: Any) -> None:
    widgets = [*at.slider, *at.checkbox, *at.number_input]
    next(w for w in widgets if w.key == key).set_value(value)


def test_no_runs_gives_a_helpful_message(app_env: Path) -> None:
    at = _ok(app_test(PAGE))
    assert any("No trained model" in i.value for i in at.info)
    assert at.get("page_link") and not at.chat_input


def test_the_chat_opens_on_a_qa_run_and_warns_on_a_plain_language_model(tiny_qa_runs: dict[str, Path],
                                                                      app_env: Path) -> None:
    for name in ("pretrain", "qa"):
        shutil.copytree(tiny_qa_runs[name], app_env / name)
    os.utime(app_env / "pretrain" / "config.json")  # the plain language model is the newest run now
    at = _ok(app_test(PAGE))
    assert at.selectbox(key="chat_run").value == "qa"  # the QA fine-tune first, though older
    assert not [w for w in at.warning if "plain language model" in w.value]
    _ok(at.selectbox(key="chat_run").set_value("pretrain").run())
    warned = [w.value for w in at.warning if "plain language model" in w.value]
    assert len(warned) == 1 and "never taught to answer" in warned[0] and "Home page" in warned[0]


def test_page_offers_the_run_and_the_example_context_then_streams_an_answer(trained: Path) -> None:
    at = _ok(app_test(PAGE))
    assert at.selectbox(key="chat_run").value == "tiny"
    example = at.selectbox(key="chat_example")
    assert example.value == "COVID-19 ARDS physiotherapy in ICU" and example.options[-1] == "Your own text"
    assert len(example.options) == len(EXAMPLES) + 1 >= 4  # the examples, then "Your own text"
    assert at.text_area(key="chat_context").value == EXAMPLES[0].read_text(encoding="utf-8").strip()
    _ok(example.set_value("COPD exacerbation").run())
    assert at.text_area(key="chat_context").value.startswith("A 71-year-old woman with severe COPD")
    assert [c["layout"]["title"]["text"][:23] for c in _charts(at)] == ["Next-token distribution"]  # no answer yet

    _set(at, "chat_max_new", 30)
    answer = _chat(at, "What helped her clear secretions?")
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert at.chat_message[0].markdown[0].value == "What helped her clear secretions?"
    assert answer["content"].strip() and not answer["partial"]
    assert answer["content"] in [_shown(md.value) for md in at.chat_message[1].markdown]
    # The tiny model's 16-token window is far shorter than a case: the prompt is cropped, and the page says so.
    assert any("cropped" in w.value for w in at.chat_message[1].warning)
    assert any("cropped" in w.value for w in at.warning)
    # What the model sees: the end of the formatted prompt, its context cut to the sentence most relevant to
    # the question (the tiny corpus has no ":", hence the unknown token).
    assert at.code[0].value.endswith("\nA<|unk|>")

    dist, heat = _charts(at)
    assert [t["type"] for t in dist["data"]] == ["bar", "bar"] and dist["layout"]["barmode"] == "group"
    assert dist["layout"]["xaxis"]["title"]["text"] and dist["layout"]["yaxis"]["title"]["text"] == "probability"
    assert len(dist["data"][0]["y"]) == 20 and 0.5 < sum(dist["data"][1]["y"]) <= 1 + 1e-6
    assert heat["data"][0]["type"] == "heatmap" and heat["layout"]["title"]["text"].startswith("Attention")
    assert heat["layout"]["xaxis"]["title"]["text"] and heat["layout"]["yaxis"]["title"]["text"]
    z = heat["data"][0]["z"]
    assert len(z) == len(heat["layout"]["yaxis"]["ticktext"]) >= 1
    assert all(0 < sum(row) <= 1 + 1e-5 for row in z)

    _ok(at.selectbox(key="chat_att_layer").set_value(2).run())
    _ok(at.selectbox(key="chat_att_head").set_value(1).run())
    assert "layer 2, head 1" in _charts(at)[1]["layout"]["title"]["text"]
    assert len(at.chat_message) == 2  # the history survives reruns


def test_the_sliders_reach_the_sampler(trained: Path) -> None:
    at = _ok(app_test(PAGE))
    _set(at, "chat_fresh_seed", True)  # so that only temperature 0 can make two answers equal
    _set(at, "chat_temperature", 0.0)
    _set(at, "chat_max_new", 12)
    first, second = _chat(at, "Why?"), _chat(at, "Why?")
    assert first["content"] == second["content"] and first["ids"] == second["ids"]
    # The very answer the engine gives greedily for the same prompt.
    context = at.text_area(key="chat_context").value
    expected = Sampler.from_run(trained).generate(format_qa_prompt("Why?", context, QA_TEMPLATE),
                                                  SampleConfig(temperature=0, max_new_tokens=12,
                                                               stop=["\nContext:", "\nQ:"]))
    assert first["content"] == expected
    assert sum(y > 0 for y in _charts(at)[0]["data"][1]["y"]) == 1  # greedy: one token left

    _set(at, "chat_max_new", 5)
    assert 1 <= len(_chat(at, "And then?")["ids"]) <= 5

    _set(at, "chat_temperature", 2.0)
    _set(at, "chat_max_new", 40)
    hot = [_chat(at, "Why?")["content"] for _ in range(2)]
    assert hot[0] != hot[1]  # fresh randomness at a high temperature: 40 characters never repeat exactly

    _set(at, "chat_top_k", 3)
    _ok(at.run())
    assert sum(y > 0 for y in _charts(at)[0]["data"][1]["y"]) == 3


def test_broken_checkpoint_and_lstm_runs_are_explained(app_env: Path, tiny_txt: Path) -> None:
    cfg = tiny_config(tiny_txt, max_steps=10)
    cfg.model = cfg.model.model_copy(update={"arch": "lstm"})
    train(cfg, app_env / "lstm")
    at = _ok(app_test(PAGE))
    answer = _chat(at, "What happened?")
    assert answer["ids"]
    assert any("LSTM" in i.value for i in at.info)
    assert [c["data"][0]["type"] for c in _charts(at)] == ["bar"]  # the distribution, no heatmap

    ckpt = next((app_env / "lstm" / "checkpoints").glob("step_*"))
    (ckpt / "model.safetensors").write_bytes(b"not a checkpoint")
    at = _ok(app_test(PAGE))
    assert any("damaged" in e.value for e in at.error)
    assert at.get("page_link") and not at.chat_input


def test_a_fine_tuned_qa_model_answers_with_a_span_and_shows_its_sources(
        app_env: Path, tiny_qa_runs: dict[str, Path], qa_files: dict[str, Path]) -> None:
    import shutil

    import pandas as pd

    shutil.copytree(tiny_qa_runs["qa"], app_env / "qa")
    row = pd.read_csv(qa_files["test"], dtype=str).iloc[1]
    at = _ok(app_test(PAGE))
    at.session_state["chat_context"] = row.context
    at.session_state["chat_decoding"] = "greedy"
    reply = _chat(_ok(at.run()), row.question)
    answer = reply["content"].strip()
    assert answer and answer in row.context  # extractive: always a span of the context
    assert reply["finish"] == "end"  # the end marker learned in fine-tuning stops it
    span = reply["qa_span"]
    assert row.context[span[0]:span[1]] == answer
    expanders = [e.label for e in at.expander]
    assert any(label.startswith("The context the model saw, answer highlighted") for label in expanders)
    assert any("<mark>" + html.escape(answer) + "</mark>" in m.value for m in at.markdown)
    # The attention view offers the copy head, where each answer token was copied from.
    layer = next(s for s in at.selectbox if s.label == "Layer")
    assert layer.options[0] == "copy head"
    _ok(layer.set_value("copy head").run())
    assert any("to copying" in c.value for c in at.caption)


def test_no_warning_about_a_prompt_before_any_question_is_asked(trained: Path) -> None:
    at = _ok(app_test(PAGE))  # a 16-token window: the example prompt of "what the model sees" is cropped
    assert not [w.value for w in at.warning if "were cropped" in w.value]
    assert any("did not fit" in c.value for c in at.caption)  # said where one looks for it, in its expander
    _chat(at, "Who is there?")
    assert [w.value for w in at.warning if "were cropped" in w.value]  # now about the question asked
