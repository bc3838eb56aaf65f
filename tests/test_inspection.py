"""The Chat page's maths: next-token distributions before/after the knobs, answer attention, QA prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genai_core.config import ModelConfig, SampleConfig
from genai_core.errors import GenAIError
from genai_core.generate.decoding import apply_repetition_penalty, filter_logits
from genai_core.generate.inspection import (
    QA_TEMPLATE,
    QA_TEMPLATES,
    AnswerAttention,
    answer_attention,
    display_token,
    format_qa_prompt,
    next_token_logits,
    next_token_view,
    prompt_share,
    unique_labels,
)
from genai_core.models import build_model


def _logits(V: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.randn(V, generator=torch.Generator().manual_seed(seed)) * 2.5


def _reference_after(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """Temperature, top-k, top-p and softmax written again in numpy, independent of the engine."""
    z = logits / temperature
    keep = np.ones_like(z, dtype=bool)
    if 0 < top_k < z.size:
        keep &= z >= np.sort(z)[::-1][top_k - 1]
    if top_p < 1.0:
        masked = np.where(keep, z, -np.inf)
        order = np.argsort(-masked, kind="stable")
        p = np.exp(masked[order] - masked[order][0])
        p /= p.sum()
        before_mass = np.cumsum(p) - p
        nucleus = np.zeros_like(keep)
        nucleus[order[(before_mass < top_p) | (np.arange(z.size) == 0)]] = True
        keep &= nucleus
    out = np.where(keep, np.exp(z - z[keep].max()), 0.0)
    return out / out.sum()


@pytest.mark.parametrize(("temperature", "top_k", "top_p"),
                         [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.8), (0.5, 10, 0.6), (2.0, 1, 1.0)])
def test_after_matches_softmax_of_filter_logits_and_sums_to_one(temperature: float, top_k: int, top_p: float) -> None:
    logits = _logits()
    cfg = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    view = next_token_view(logits, cfg)
    expected = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
    torch.testing.assert_close(view.after, expected)
    np.testing.assert_allclose(view.after.numpy(), _reference_after(logits.numpy(), temperature, top_k, top_p),
                               rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(view.before, logits.softmax(-1))
    assert view.after.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert view.before.sum().item() == pytest.approx(1.0, abs=1e-6)
    if top_k:
        assert view.kept <= top_k
        if top_p == 1.0:
            assert view.kept == top_k
    assert view.after[logits.argmax()] > 0  # the most likely token always survives


def test_top_ids_are_the_most_likely_in_order_and_include_the_survivors() -> None:
    logits = _logits(200, seed=3)
    view = next_token_view(logits, SampleConfig(temperature=0.5, top_k=7), top_n=20)
    assert len(view.top_ids) == 20
    shown_before = view.shown_before()
    assert shown_before == sorted(shown_before, reverse=True)
    assert set(view.after.nonzero().flatten().tolist()) <= set(view.top_ids)
    assert sum(view.shown_after()) == pytest.approx(1.0, abs=1e-6)
    assert len(next_token_view(logits[:5], SampleConfig(), top_n=20).top_ids) == 5


def test_repetition_penalty_and_banned_tokens_follow_generation() -> None:
    logits = _logits(30, seed=1)
    seen, banned = [0, 3, 7, int(logits.argmax())], [1]
    cfg = SampleConfig(temperature=0.9, top_p=0.95, repetition_penalty=1.5)
    view = next_token_view(logits, cfg, seen_ids=seen, banned_ids=banned)
    mask = torch.zeros(30, dtype=torch.bool)
    mask[seen] = True
    adjusted = apply_repetition_penalty(logits, mask, 1.5).clone()
    adjusted[1] = float("-inf")
    torch.testing.assert_close(view.after, filter_logits(adjusted, 0.9, 0, 0.95).softmax(-1))
    assert view.after[1] == 0
    torch.testing.assert_close(view.before, logits.softmax(-1))  # "before" is the model's own


def test_temperature_zero_is_all_mass_on_the_greedy_choice() -> None:
    logits = _logits()
    view = next_token_view(logits, SampleConfig(temperature=0, top_k=3), banned_ids=[int(logits.argmax())])
    assert view.greedy and view.kept == 1
    second = int(torch.topk(logits, 2).indices[1])
    assert view.after[second] == 1.0
    assert view.entropy("after") == pytest.approx(0.0)


def _gpt(seq_len: int = 16, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=20, d_model=16, n_heads=2, n_layers=3, seq_len=seq_len, **kw)
    return build_model(cfg).eval()


def test_next_token_logits_is_the_last_row_of_a_forward_pass_over_the_window() -> None:
    model = _gpt()
    ids = [*range(2, 20), 5, 6, 7]  # longer than the window: the last 16 are used
    with torch.no_grad():
        full, _ = model(torch.tensor([ids[-16:]]))
    torch.testing.assert_close(next_token_logits(model, ids), full[0, -1])
    with pytest.raises(GenAIError):
        next_token_logits(model, [])


def test_answer_attention_shapes_rows_and_values() -> None:
    model = _gpt()
    prompt, answer = [3, 4, 5, 6, 7, 8], [9, 10, 11, 12]
    att = answer_attention(model, prompt, answer)
    assert att.weights.shape == (3, 2, len(answer), len(prompt))
    assert (att.prompt_ids, att.answer_ids, att.prompt_cropped, att.answer_omitted) == (prompt, answer, 0, 0)
    rows = att.weights.sum(-1)
    assert (rows <= 1 + 1e-5).all() and (att.weights >= 0).all()
    # Row 0 is the last prompt position predicting the first answer token: it can only see the prompt.
    torch.testing.assert_close(rows[..., 0], torch.ones(3, 2))
    assert (rows[..., 1:] < 1 - 1e-4).all()  # later rows also attend to answer tokens
    # Independently: the same slice of the model's own attention over prompt + answer[:-1].
    with torch.no_grad():
        maps = model.attention_maps(torch.tensor([prompt + answer[:-1]]))
    own = torch.stack([w[0] for w in maps.layers])[:, :, len(prompt) - 1:, : len(prompt)]
    torch.testing.assert_close(att.weights, own)
    torch.testing.assert_close(att.matrix(), own.mean((0, 1)))
    torch.testing.assert_close(att.matrix(1, 0), own[1, 0])
    torch.testing.assert_close(att.matrix(None, 1), own[:, 1].mean(0))
    assert att.matrix(2).shape == (len(answer), len(prompt))


def test_answer_attention_fits_one_window_and_caps_sizes() -> None:
    model = _gpt(seq_len=16)
    prompt, answer = list(range(2, 17)), list(range(2, 20)) * 2  # prompt of 15, answer of 36
    att = answer_attention(model, prompt, answer)
    P, A = len(att.prompt_ids), len(att.answer_ids)
    assert P + A - 1 <= 16 and P >= 8  # the prompt keeps at least half the window
    assert att.prompt_ids == prompt[-P:] and att.answer_ids == answer[:A]
    assert att.prompt_cropped == 15 - P and att.answer_omitted == 36 - A
    assert att.weights.shape == (3, 2, A, P)
    assert (att.weights.sum(-1) <= 1 + 1e-5).all()
    capped = answer_attention(_gpt(seq_len=64), list(range(2, 20)) * 3, answer, max_prompt=10, max_answer=5)
    assert capped.weights.shape[-2:] == (5, 10)


def test_answer_attention_explains_what_it_cannot_do() -> None:
    with pytest.raises(GenAIError, match="LSTM"):
        answer_attention(_gpt(arch="lstm"), [3, 4], [5])
    with pytest.raises(GenAIError, match="empty"):
        answer_attention(_gpt(), [3, 4], [])


def test_qa_prompt_format() -> None:
    assert QA_TEMPLATE == QA_TEMPLATES["context-first"] == "Context: {context}\nQ: {question}\nA:"
    assert QA_TEMPLATES["question-first"] == "Q: {question}\nContext: {context}\nA:"  # runs fine-tuned before
    assert format_qa_prompt(" Why? ", "ICU day 3.\n") == "Context: ICU day 3.\nQ: Why?\nA:"
    # Braces in the question or context are text, never placeholders.
    assert (format_qa_prompt("what is {context}?", "a {b}", QA_TEMPLATES["question-first"])
            == "Q: what is {context}?\nContext: a {b}\nA:")
    assert format_qa_prompt("q", "c", "{context} || {question} {{x}} =>") == "c || q {x} =>"
    assert format_qa_prompt("q", "ignored", "Question: {question}\nAnswer:") == "Question: q\nAnswer:"
    for bad, why in [("{question} {patient}", "unknown"), ("Context: {context}", "must contain"),
                     ("Q: {question", "malformed"), ("Q: {} {question}", "unknown")]:
        with pytest.raises(GenAIError, match=why):
            format_qa_prompt("q", "c", bad)


def test_token_labels_are_readable_and_distinct() -> None:
    assert [display_token(s) for s in [" ", "\n", "a b", "", "<|endoftext|>", "\x07"]] == \
        ["␣", "⏎", "a␣b", "∅", "⟨end⟩", "\\x07"]
    assert unique_labels(["�", "a", "�", "�"]) == ["�", "a", "�·2", "�·3"]


def test_attention_shares_for_the_notes_under_the_attention_view() -> None:
    weights = torch.tensor([[[[0.5, 0.3], [0.1, 0.1]]]])  # 1 layer, 1 head, 2 answer tokens, 2 prompt tokens
    att = AnswerAttention(weights, [1, 2], [3, 4], 0, 0)
    assert prompt_share(att.matrix()) == pytest.approx((0.8 + 0.2) / 2)
    assert att.copy_share is None
    copying = AnswerAttention(weights, [1, 2], [3, 4], 0, 0, copy=weights[0, 0], copied=torch.tensor([0.9, 0.5]))
    assert copying.copy_share == pytest.approx(0.7)


def test_entropy_of_a_certain_choice_is_never_negative() -> None:
    view = next_token_view(torch.tensor([0.0, 50.0, 0.0]), SampleConfig(temperature=0.0))
    assert view.entropy("before") >= 0.0 and view.entropy("after") == 0.0
