"""The Chat page's decoding choice (sampling / greedy / beam search) and the answer shaded by per-token
confidence, through AppTest on a really trained tiny run."""

from __future__ import annotations

import ast
import html
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from genai_core.config import SampleConfig
from genai_core.generate.beam import beam_search
from genai_core.generate.qa import answer_stream
from genai_core.generate.sampling import Sampler
from genai_core.qa.prompt import build_prompt
from genai_core.train.trainer import train
from tests.conftest import app_test, tiny_config

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/chat.py"
pytestmark = pytest.mark.slow
SAMPLING_KNOBS = {"chat_temperature", "chat_top_k", "chat_top_p"}
BEAM_KNOBS = {"chat_beams", "chat_length_penalty", "chat_num_return"}


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory, tiny_txt: Path) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("chat-decoding") / "tiny"
    train(tiny_config(tiny_txt, max_steps=30, lr=3e-3), path)
    return path


@pytest.fixture
def run(trained_once: Path, app_env: Path) -> Path:
    shutil.copytree(trained_once, app_env / "tiny")
    return app_env / "tiny"


def _ok(at: Any) -> Any:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _sliders(at: Any) -> set[str]:
    return {s.key for s in at.slider}


def _set(at: Any, key: str, value: Any) -> None:
    next(w for w in [*at.slider, *at.checkbox, *at.number_input] if w.key == key).set_value(value)


def _ask(at: Any, question: str) -> dict[str, Any]:
    _ok(at.chat_input[0].set_value(question).run())
    return [m for m in at.session_state["chat_messages"] if m["role"] == "assistant"][-1]


def _shown(markdown: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", markdown.replace("<br>", "\n")))


def test_each_decoding_shows_only_its_knobs(run: Path) -> None:
    at = _ok(app_test(PAGE))
    decoding = at.radio(key="chat_decoding")
    assert decoding.value == "sampling" and list(decoding.options) == ["Sampling", "Greedy", "Beam search"]
    assert SAMPLING_KNOBS <= _sliders(at) and not BEAM_KNOBS & _sliders(at)
    assert at.number_input(key="chat_seed")

    _ok(decoding.set_value("greedy").run())
    assert not (SAMPLING_KNOBS | BEAM_KNOBS) & _sliders(at)
    assert {"chat_max_new", "chat_rep_penalty"} <= _sliders(at) and not at.number_input

    _ok(at.radio(key="chat_decoding").set_value("beam").run())
    assert BEAM_KNOBS <= _sliders(at) and not SAMPLING_KNOBS & _sliders(at)
    # Asking for more answers than beams is impossible: fewer beams take the answers down with them.
    _set(at, "chat_beams", 5)
    _ok(at.run())
    _set(at, "chat_num_return", 5)
    _ok(at.run())
    _set(at, "chat_beams", 2)
    _ok(at.run())
    assert at.slider(key="chat_num_return").value == 2 and at.slider(key="chat_num_return").max == 2
    _set(at, "chat_beams", 1)
    _ok(at.run())
    assert "chat_num_return" not in _sliders(at)  # one beam, one answer

    # The hidden knobs kept their values while another decoding was shown.
    _set(at, "chat_beams", 3)
    _ok(at.radio(key="chat_decoding").set_value("sampling").run())
    _set(at, "chat_temperature", 1.3)
    _ok(at.radio(key="chat_decoding").set_value("beam").run())
    assert at.slider(key="chat_beams").value == 3
    _ok(at.radio(key="chat_decoding").set_value("sampling").run())
    assert at.slider(key="chat_temperature").value == 1.3


def test_beam_search_answers_with_the_n_best_and_their_scores(run: Path) -> None:
    at = _ok(app_test(PAGE))
    _ok(at.radio(key="chat_decoding").set_value("beam").run())
    for key, value in {"chat_beams": 4, "chat_length_penalty": 1.0, "chat_max_new": 12}.items():
        _set(at, key, value)
        _ok(at.run())
    _set(at, "chat_num_return", 3)
    answer = _ask(at, "What happened?")
    table = at.chat_message[1].dataframe[0].value
    assert list(table.columns) == ["rank", "answer", "score", "log_prob", "tokens", "ended"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["score"].tolist() == sorted(table["score"].tolist(), reverse=True)
    assert (table["log_prob"] <= 0).all() and table["answer"].nunique() == 3
    assert table["answer"][0] == answer["content"] and not answer["partial"]
    assert any("best of a 4-beam search" in c.value for c in at.chat_message[1].caption)
    # The engine's beam search for the same prompt and knobs gives the same table.
    context = at.text_area(key="chat_context").value
    sampler = Sampler.from_run(run)
    prompt = build_prompt(sampler.tokenizer, "What happened?", context, sampler.model.config.seq_len,
                          layout=sampler.model.config.qa_layout)  # as the page
    expected = beam_search(sampler, prompt.ids, SampleConfig(
        num_beams=4, num_return=3, length_penalty=1.0, max_new_tokens=12, stop=["\nQ:"], temperature=0))
    assert table["answer"].tolist() == [h.text for h in expected.hypotheses]
    assert table["score"].tolist() == pytest.approx([h.score for h in expected.hypotheses])
    # The reply, its table and its shading survive reruns (the conversation history).
    _ok(at.run())
    assert at.chat_message[1].dataframe[0].value["answer"].tolist() == table["answer"].tolist()
    assert _shown(at.chat_message[1].markdown[0].value) == answer["content"]
    assert "<span title=" in at.chat_message[1].markdown[0].value


def test_greedy_answer_is_the_engines_and_is_shaded_by_confidence(run: Path) -> None:
    at = _ok(app_test(PAGE))
    _ok(at.radio(key="chat_decoding").set_value("greedy").run())
    _set(at, "chat_max_new", 15)
    answer = _ask(at, "Why?")
    context = at.text_area(key="chat_context").value
    _, gen = answer_stream(Sampler.from_run(run), "Why?", context,  # the page's QA path, extractive by default
                           SampleConfig(temperature=0, max_new_tokens=15, stop=["\nQ:"]), with_probs=True)
    list(gen)
    assert answer["content"] == gen.text and answer["ids"] == gen.ids
    assert [t["prob"] for t in answer["tokens"]] == pytest.approx([t.prob for t in gen.tokens])

    shaded = at.chat_message[1].markdown[0].value
    assert _shown(shaded) == answer["content"]
    spans = re.findall(r'<span title="([^"]*)" style="background-color: rgba\(255, 140, 0, ([\d.]+)\)', shaded)
    pieces = [t for t in gen.tokens if t.text]
    assert len(spans) == len(pieces)
    for (title, shade), t in zip(spans, pieces, strict=True):
        assert title.startswith(f"p = {t.prob:.1%}") and "top: " in title
        assert float(shade) == pytest.approx(0.7 * (1 - t.prob), abs=0.006)

    _set(at, "chat_confidence", False)  # plain text again, for this answer and the next
    _ok(at.run())
    assert at.chat_message[1].markdown[0].value.strip() == answer["content"].strip()
    assert "<span" not in at.chat_message[1].markdown[0].value
    plain = _ask(at, "Why?")
    assert plain["tokens"] == [] and plain["content"] == answer["content"]


def _page_functions(*names: str) -> dict[str, Any]:
    """Functions of the Chat page, compiled on their own (importing the page would run it)."""
    from genai_core.generate.inspection import display_token

    namespace: dict[str, Any] = {"html": html, "display_token": display_token, "Any": Any}
    tree = ast.parse((ROOT / PAGE).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            exec(compile(ast.Module([node], type_ignores=[]), PAGE, "exec"), namespace)
    return namespace


def test_confidence_html_escapes_and_follows_the_shown_text() -> None:
    confidence_html = _page_functions("_escape", "confidence_html")["confidence_html"]
    tokens = [{"text": t, "prob": p, "alternatives": [[t, p], ["x", 0.01]]}
              for t, p in (("<b>", 0.9), ("$5", 0.5), ("\n", 0.2), ("", 0.3), ("é", 0.3), ("Q:", 0.4))]
    out = confidence_html(tokens, "<b>$5\né")  # a stop string cut the last token off
    assert "<b>" not in out.replace("<br>", "") and "&lt;b&gt;" in out and "&#36;5" in out
    assert "\n" not in out and out.count("<span") == 4
    assert _shown(out).replace("&#36;", "$") == "<b>$5\né"
    assert 'title="p = 90.0%&#10;top: &lt;b&gt; 90.0% · x 1.0%"' in out
