"""The Chat page's "Inside the model" views: the exact prompt the model sees, what the sampling sliders do to the
next-token distribution, and where the answer looked (attention, or the copy head's pointer). The numbers are
the engine's (`genai_core.generate.inspection`); this module draws them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st
import torch

from genai_core.config import SampleConfig
from genai_core.generate.chat import chat_prompt
from genai_core.generate.inspection import (
    AnswerAttention,
    NextTokenView,
    answer_attention,
    has_attention,
    next_token_logits,
    next_token_view,
    prompt_share,
    token_labels,
    unique_labels,
)
from genai_core.generate.sampling import Sampler
from genai_core.runs.folder import Run

PREVIEW_QUESTION = "What was the main problem?"
TOP_N = 20  # bars in the distribution chart: enough to see the tail, few enough to read


@dataclass
class Loaded:
    """The run chosen in the sidebar, with its model loaded."""

    run: Run
    checkpoint: Path
    model_key: tuple[str, str, int]
    """(run folder, checkpoint name, weights mtime): names the model in caches and in each reply."""
    sampler: Sampler


@st.cache_data(show_spinner=False, max_entries=64)
def cached_logits(model_key: tuple[str, str, int], ids: tuple[int, ...], _sampler: Sampler) -> torch.Tensor:
    # Every slider move reruns the page; the forward pass only depends on the model and the prompt.
    return next_token_logits(_sampler.model, ids)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_attention(model_key: tuple[str, str, int], prompt_ids: tuple[int, ...], answer_ids: tuple[int, ...],
                     _sampler: Sampler) -> AnswerAttention:
    return answer_attention(_sampler.model, prompt_ids, answer_ids)


# --------------------------------------------------------------------------- figures
def distribution_figure(view: NextTokenView, labels: list[str], cfg: SampleConfig) -> go.Figure:
    x = list(range(len(labels)))  # positions, not labels: plotly would merge equal labels or read "1" as a number
    hover = "token %{customdata}<br>%{y:.2%}<extra>%{fullData.name}</extra>"
    knobs = "greedy (temperature 0)" if view.greedy else (
        f"temperature {cfg.temperature:g}, top-k {cfg.top_k or 'off'}, top-p {cfg.top_p:g}")
    fig = go.Figure([
        go.Bar(x=x, y=view.shown_before(), name="model (before)", marker_color="#9aa5b1", customdata=labels,
               hovertemplate=hover),
        go.Bar(x=x, y=view.shown_after(), name="sampled from (after)", marker_color="#3b6ea5", customdata=labels,
               hovertemplate=hover),
    ])
    fig.update_layout(
        title=f"Next-token distribution before and after the filters ({knobs})", barmode="group", height=380,
        margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.25},
        xaxis={"title": f"next token (the {len(labels)} most likely)", "tickmode": "array", "tickvals": x,
               "ticktext": labels, "tickangle": -45, "automargin": True},
        yaxis={"title": "probability", "tickformat": ".0%"},
    )
    return fig


def attention_figure(matrix: torch.Tensor, prompt_labels: list[str], answer_labels: list[str], what: str) -> go.Figure:
    P, A = len(prompt_labels), len(answer_labels)
    every = max(1, math.ceil(P / 40))  # more tick labels than this overlap even slanted; hover names every token
    fig = go.Figure(go.Heatmap(
        z=matrix.tolist(), x=list(range(P)), y=list(range(A)), colorscale="Blues", zmin=0.0,
        customdata=[[[a, p] for p in prompt_labels] for a in answer_labels],
        hovertemplate="generated %{customdata[0]} → prompt %{customdata[1]}<br>attention %{z:.3f}<extra></extra>",
        colorbar={"title": "attention"},
    ))
    fig.update_layout(
        title=f"Attention of the answer over the prompt ({what})", height=min(900, 160 + 18 * A),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"title": "prompt token (what the model read)", "tickmode": "array", "tickvals": list(range(0, P, every)),
               "ticktext": prompt_labels[::every], "tickangle": -60, "automargin": True},
        yaxis={"title": "generated token", "tickmode": "array", "tickvals": list(range(A)), "ticktext": answer_labels,
               "autorange": "reversed"},
    )
    return fig


# --------------------------------------------------------------------------- inside the model
def what_the_model_sees(loaded: Loaded, context: str, messages: list[dict[str, Any]]) -> list[int]:
    """The prompt of the last question (or an example one) as the model sees it; its ids."""
    sampler = loaded.sampler
    last_q = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
    shown = chat_prompt(sampler, last_q or PREVIEW_QUESTION, context, st.session_state["chat_template"])
    info = shown.info  # as the answers above were asked
    shown_q = f"the last question, “{last_q}”" if last_q else f"the example question “{PREVIEW_QUESTION}”"
    st.caption(f"For the current context and {shown_q}.")
    # The last answer, right above, already shows its prompt's warnings: the same words twice add nothing. Before
    # any question, the example prompt's warnings would warn about a question nobody asked: its expander says it.
    answered = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    already = set(answered.get("warnings", [])) if answered else set()
    for w in info.warnings() if last_q else []:
        if w not in already:
            st.warning(w, icon=":material/warning:")

    with st.expander(f"What the model sees ({info.tokens} of {sampler.model.config.seq_len} tokens)"):
        st.caption("The exact input after cropping to the model's context window"
                   + (f": the first {info.cropped_tokens} tokens did not fit." if info.cropped_tokens else "."))
        st.code(info.text, language=None, wrap_lines=True)
    return shown.ids


def what_the_sliders_do(loaded: Loaded, prompt_ids: list[int], cfg: SampleConfig, decoding: str) -> None:
    st.markdown("**What the sampling sliders do**")
    sampler = loaded.sampler
    unk = getattr(sampler.tokenizer, "unk_id", None)
    view = next_token_view(cached_logits(loaded.model_key, tuple(prompt_ids), sampler), cfg, seen_ids=prompt_ids,
                           banned_ids=[] if unk is None else [unk], top_n=TOP_N)
    labels = unique_labels(token_labels(sampler.tokenizer, view.top_ids))
    st.plotly_chart(distribution_figure(view, labels, cfg))
    if decoding == "span":
        st.caption("The model's own probabilities for the first token of a generated answer. The span head "
                   "does not sample: it scores where the answer starts and ends in the context. Pick Sampling "
                   "to see temperature, top-k and top-p reshape this distribution.")
    elif decoding == "beam":
        st.caption(f"Beam search scores every continuation of each of its {cfg.num_beams} hypotheses with the "
                   "model's probabilities (grey, after the repetition penalty) and keeps the most likely "
                   "hypotheses; temperature, top-k and top-p do not apply.")
    elif view.greedy:
        st.caption("Temperature 0: the answer always takes the most likely token (after the repetition penalty); "
                   "top-k and top-p have no effect.")
    else:
        st.caption(f"Grey: the model's own probabilities for the first token of the answer. Blue: what sampling "
                   f"draws from after the repetition penalty, temperature, top-k and top-p: {view.kept} of "
                   f"{sampler.model.config.vocab_size} tokens remain; entropy {view.entropy('before'):.2f} → "
                   f"{view.entropy('after'):.2f} nats.")


def chosen_attention(att: AnswerAttention) -> tuple[torch.Tensor, str]:
    """The layer and head pickers; the (answer, prompt) matrix they choose and its description."""
    c1, c2 = st.columns(2)
    copy_choice = ["copy head"] if att.copy is not None else []
    layer = c1.selectbox("Layer", [*copy_choice, "mean", *range(1, att.n_layers + 1)], key="chat_att_layer",
                         help="The copy head points at the context token each answer token was copied from.")
    if layer == "copy head":
        return att.copy, "copy head"
    head = c2.selectbox("Head", ["mean", *range(1, att.n_heads + 1)], key="chat_att_head")
    li = None if layer == "mean" else int(layer) - 1
    hi = None if head == "mean" else int(head) - 1
    what = ("mean of layers" if li is None else f"layer {li + 1}") + ", " + (
        "mean of heads" if hi is None else f"head {hi + 1}")
    return att.matrix(li, hi), what


def attention_view(loaded: Loaded, last: dict[str, Any]) -> None:
    """Which prompt tokens the last answer's predictions attended to (or copied from), with notes."""
    sampler, seq_len = loaded.sampler, loaded.sampler.model.config.seq_len
    att = cached_attention(loaded.model_key, tuple(last["prompt_ids"]), tuple(last["ids"]), sampler)
    matrix, what = chosen_attention(att)
    prompt_labels = token_labels(sampler.tokenizer, att.prompt_ids)
    answer_labels = unique_labels(token_labels(sampler.tokenizer, att.answer_ids))
    st.plotly_chart(attention_figure(matrix, prompt_labels, answer_labels, what))
    notes = [f"Row i: where the model looked when it chose generated token i. On average "
             f"{prompt_share(matrix):.0%} of its attention went to the prompt, the rest to the answer so far."]
    if att.copy_share is not None:
        notes.append(f"The copy head's gate gave {att.copy_share:.0%} of the answer's probability to "
                     "copying (row by row in the copy head view), the rest to the vocabulary.")
    if att.prompt_cropped:
        notes.append(f"The first {att.prompt_cropped} prompt tokens are not shown (window or size limit).")
    if att.answer_omitted:
        notes.append(f"The last {att.answer_omitted} answer tokens are not shown: the view is one forward pass, "
                     f"so prompt and answer must fit one {seq_len}-token window (and a size limit).")
    st.caption(" ".join(notes))


def where_the_answer_looked(loaded: Loaded, messages: list[dict[str, Any]]) -> None:
    st.markdown("**Where the answer looked**")
    mcfg = loaded.sampler.model.config
    last = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    if not has_attention(loaded.sampler.model):
        st.info(f"This run is {'an' if mcfg.arch == 'lstm' else 'a'} {mcfg.arch.upper()}: it reads the prompt through "
                "a recurrent state and has no attention weights to show. Train a GPT run to see which prompt "
                "tokens each answer token attended to.", icon=":material/lightbulb:")
    elif last is None:
        st.caption("Ask a question: the attention of the answer over the prompt appears here.")
    elif last.get("model_key") != loaded.model_key:
        st.caption(f"The last answer came from another model ({last.get('run')}); ask again to see this one's.")
    elif last.get("finish") == "span":
        st.caption("The span head read the last answer off the context in one pass, with nothing generated: "
                   "its place is highlighted in the context the model saw, above. Ask in Greedy or Sampling "
                   "mode to see where each generated token looked.")
    elif not last.get("ids"):
        st.caption("The last answer is empty: there is no generated token to explain.")
    else:
        attention_view(loaded, last)


def inside_the_model(loaded: Loaded, context: str, cfg: SampleConfig, decoding: str,
                     messages: list[dict[str, Any]]) -> None:
    st.divider()
    st.subheader("Inside the model")
    prompt_ids = what_the_model_sees(loaded, context, messages)
    what_the_sliders_do(loaded, prompt_ids, cfg, decoding)
    where_the_answer_looked(loaded, messages)
