"""The Chat page's rules, in the engine: decoding mode → SampleConfig, stop strings, example contexts, the prompt."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from pydantic import ValidationError

from genai_core.config import ModelConfig, SampleConfig
from genai_core.data.tokenization import CharTokenizer
from genai_core.errors import GenAIError
from genai_core.generate.chat import (
    DECODING_MODES,
    chat_prompt,
    chat_runs,
    decoding_config,
    decoding_modes,
    example_contexts,
    parse_stops,
    trained_template,
)
from genai_core.generate.inspection import QA_TEMPLATE, QA_TEMPLATES, format_qa_prompt
from genai_core.generate.sampling import Sampler
from genai_core.models import build_model
from genai_core.qa.prompt import ANSWER_ROOM, build_prompt

KNOBS = {"max_new_tokens": 50, "stop": ["\nQ:"], "repetition_penalty": 1.2, "temperature": 1.3, "top_k": 7,
         "top_p": 0.9, "seed": 5, "num_beams": 4, "length_penalty": 1.0, "num_return": 3}


def test_the_modes_and_the_span_head_only_where_the_model_has_one() -> None:
    assert DECODING_MODES == {"span": "Span head", "sampling": "Sampling", "greedy": "Greedy", "beam": "Beam search"}
    tok = CharTokenizer(sorted(string.printable))
    for span_head, offered in ((False, ["sampling", "greedy", "beam"]), (True, ["span", "sampling", "greedy", "beam"])):
        model = build_model(ModelConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, n_layers=1, seq_len=64,
                                        span_head=span_head))
        assert list(decoding_modes(Sampler(model, tok))) == offered
    span = decoding_config("span", **KNOBS)
    assert span.temperature == 0.0 and span.num_beams == 1  # nothing is sampled


def test_sampling_uses_its_knobs_and_the_seed() -> None:
    cfg = decoding_config("sampling", **KNOBS)
    assert cfg == SampleConfig(temperature=1.3, top_k=7, top_p=0.9, seed=5, max_new_tokens=50, stop=["\nQ:"],
                               repetition_penalty=1.2)
    assert cfg.num_beams == 1
    assert decoding_config("sampling", **KNOBS, fresh_seed=True).seed is None


def test_greedy_is_temperature_zero_and_ignores_the_other_modes_knobs() -> None:
    cfg = decoding_config("greedy", **KNOBS, fresh_seed=True)
    assert cfg == SampleConfig(temperature=0.0, max_new_tokens=50, stop=["\nQ:"], repetition_penalty=1.2)
    assert (cfg.top_k, cfg.top_p, cfg.seed, cfg.num_beams, cfg.num_return) == (0, 1.0, 0, 1, 1)


def test_beam_search_uses_its_knobs_and_never_asks_for_more_answers_than_beams() -> None:
    cfg = decoding_config("beam", **KNOBS)
    assert cfg == SampleConfig(temperature=0.0, num_beams=4, length_penalty=1.0, num_return=3, max_new_tokens=50,
                               stop=["\nQ:"], repetition_penalty=1.2)
    assert (cfg.top_k, cfg.top_p) == (0, 1.0)
    fewer = decoding_config("beam", **{**KNOBS, "num_beams": 2, "num_return": 5})
    assert (fewer.num_beams, fewer.num_return) == (2, 2)


def test_unknown_modes_and_values_out_of_range_are_refused() -> None:
    with pytest.raises(GenAIError, match="unknown decoding mode"):
        decoding_config("nucleus", **KNOBS)
    with pytest.raises(ValidationError):
        decoding_config("sampling", **{**KNOBS, "max_new_tokens": 0})
    with pytest.raises(ValidationError):
        decoding_config("beam", **{**KNOBS, "num_beams": 0})


def test_typed_stop_strings() -> None:
    assert parse_stops("\\nQ:") == ["\nQ:"]
    assert parse_stops("a,\\t, ,b") == ["a", "\t", "b"]
    assert parse_stops("") == []


def test_example_contexts_are_named_after_their_files(tmp_path: Path) -> None:
    (tmp_path / "02_copd_exacerbation.txt").write_text("  Second case.\n", encoding="utf-8")
    (tmp_path / "01_Chest_pain.txt").write_text("First case.", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not an example", encoding="utf-8")
    (tmp_path / "03_broken.txt").write_bytes(b"\xff\xfe\xfa")
    assert example_contexts(tmp_path) == {"Chest pain": "First case.", "copd exacerbation": "Second case."}
    assert chat_runs(tmp_path / "no-runs") == []


@pytest.fixture
def sampler() -> Sampler:
    tok = CharTokenizer(string.ascii_letters + " .,?:\n")
    return Sampler(build_model(ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=1,
                                           seq_len=128)), tok)


Q = "is the patient seventy?"
CONTEXT = "The patient is seventy. She has a cough. The chest is clear. Fever began today. " * 3


def test_the_trained_format_fits_the_context_and_streams_unless_beam_search(sampler: Sampler) -> None:
    cfg = SampleConfig(temperature=0.0, max_new_tokens=10)
    streamed = chat_prompt(sampler, Q, CONTEXT, mode="greedy", cfg=cfg, with_probs=True)
    assert streamed.qa is not None and streamed.qa.selected and streamed.qa.sentences  # the context was cut to fit
    assert streamed.ids == build_prompt(sampler.tokenizer, Q, CONTEXT, 128, 10, layout="context-first").ids
    assert streamed.generation is not None and streamed.generation.cfg is cfg and streamed.generation.with_probs
    assert streamed.generation.constraint is not None  # extractive by default
    assert chat_prompt(sampler, Q, CONTEXT, mode="greedy", cfg=cfg,
                       extractive=False).generation.constraint is None
    # Beam search, or a prompt only to be shown: no generation, room for the default answer.
    for beam in (chat_prompt(sampler, Q, CONTEXT, mode="beam", cfg=cfg.model_copy(update={"num_beams": 2})),
                 chat_prompt(sampler, Q, CONTEXT)):
        assert beam.generation is None and beam.qa is not None
        assert beam.ids == build_prompt(sampler.tokenizer, Q, CONTEXT, 128, ANSWER_ROOM, layout="context-first").ids


def test_the_trained_format_is_the_models_layout(sampler: Sampler) -> None:
    # A run fine-tuned before the layout knob reads its questions first; today's read the context first.
    legacy = Sampler(build_model(sampler.model.config.model_copy(update={"qa_layout": "question-first"})),
                     sampler.tokenizer)
    context = "The patient is seventy."
    for s, layout in ((sampler, "context-first"), (legacy, "question-first")):
        assert trained_template(s) == QA_TEMPLATES[layout]
        got = chat_prompt(s, Q, context)
        assert got.qa is not None and got.qa.text == format_qa_prompt(Q, context, QA_TEMPLATES[layout])
    assert chat_prompt(sampler, Q, context, QA_TEMPLATES["question-first"]).qa is None  # not its format


def test_another_template_is_filled_in_and_cropped(sampler: Sampler) -> None:
    template = "C: {context} Q: {question} A:"
    assert template != QA_TEMPLATE
    cfg = SampleConfig(temperature=0.0, max_new_tokens=5)
    got = chat_prompt(sampler, Q, CONTEXT, template, mode="sampling", cfg=cfg)
    ids, info = sampler.encode_prompt(format_qa_prompt(Q, CONTEXT, template))
    assert got.qa is None and (got.ids, got.info) == (ids, info) and info.cropped_tokens > 0
    assert got.generation is not None and got.generation.constraint is None and got.generation.cfg is cfg
    assert chat_prompt(sampler, Q, CONTEXT, template, mode="beam", cfg=cfg).generation is None
