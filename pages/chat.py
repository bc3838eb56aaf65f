"""Chat: ask a trained model questions about a clinical case, and look inside it while it answers.

Each question is wrapped with the context into the question-answering format the model was trained
on and the answer streams in (sampling or greedy decoding), or comes back as the n best hypotheses of a
beam search with their scores. The answer is shaded by how likely each token was, with the alternatives
on hover. Below the conversation, three views explain the answer: the exact prompt the model sees
(after cropping to its window), how the sampling sliders reshape the next-token distribution, and which
prompt tokens the answer's predictions attended to (GPT runs), and for a copy-head model where each
answer token was copied from.

A context longer than the model's window is cut down to the sentences most relevant to the question
(`genai_core.qa.prompt`); the answer shows which sentences the model saw and where in the context its answer
is. "Answer with a span of the context" constrains the answer to a span of what the model saw. A run
fine-tuned with a span head adds the *Span head* mode (its default): the answer read off the context in one
pass, a whole-word span or "not stated", with its probability and the spans it weighed; with a kind head, what
the question was understood to ask (`genai_core.generate.extractive`).

The rules (which runs can chat, what each decoding mode means, how a question becomes a prompt) are the
engine's, in `genai_core.generate.chat`; this page gathers the knobs and draws.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import streamlit as st
from pydantic import ValidationError

from genai_core.clinical.questions import answered_kinds
from genai_core.config import SampleConfig
from genai_core.data.corpus import clean_text
from genai_core.errors import GenAIError, user_message
from genai_core.evaluate.scoring import OUT_OF_SCOPE_KIND
from genai_core.generate.beam import BeamResult, beam_search
from genai_core.generate.chat import (
    ChatPrompt,
    chat_prompt,
    chat_runs,
    decoding_config,
    decoding_modes,
    example_contexts,
    not_taught_to_answer,
    parse_stops,
    trained_template,
)
from genai_core.generate.extractive import SpanAnswer, read_answer, understood_as
from genai_core.generate.inspection import QA_TEMPLATE, QA_TEMPLATES, display_token, format_qa_prompt
from genai_core.generate.qa import LOW_CONFIDENCE, answer_confidence
from genai_core.generate.sampling import Generation, Sampler
from genai_core.qa.prompt import check_question, find_span, is_not_stated
from genai_core.runs.folder import Run
from pages.parts.inside_model import PREVIEW_QUESTION, Loaded, inside_the_model
from pages.ui import ASSETS, runs_root, table, user_errors

CONTEXTS = ASSETS / "contexts"
TRAIN_PAGE = "pages/train.py"
# As typed in the text box: past its answer, a model trained on QA records starts the next one there.
DEFAULT_STOP = "\\nContext:,\\nQ:"
FINISH = {"end": "the model ended its answer", "stop": "a stop string appeared", "length": "max new tokens reached"}

# Widget values with their defaults. They are re-assigned on every run (keep_widget_state) because Streamlit drops
# the state of widgets a run does not draw: without it, visiting another page would reset the sliders.
_SAMPLING = SampleConfig()  # the engine's decoding defaults, which the sliders start from
DEFAULTS: dict[str, Any] = {
    "chat_temperature": _SAMPLING.temperature,
    "chat_top_k": _SAMPLING.top_k,
    "chat_top_p": _SAMPLING.top_p,
    "chat_max_new": _SAMPLING.max_new_tokens,
    "chat_rep_penalty": _SAMPLING.repetition_penalty,
    "chat_seed": _SAMPLING.seed,
    "chat_fresh_seed": False,
    "chat_template": QA_TEMPLATE,
    "chat_stop": DEFAULT_STOP,
    "chat_decoding": "span",
    "chat_beams": 4,
    "chat_length_penalty": _SAMPLING.length_penalty,
    "chat_num_return": 3,
    "chat_confidence": True,
    "chat_extractive": True,
}


# --------------------------------------------------------------------------- cached model and forward passes
@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_sampler(run_path: str, checkpoint: str, mtime_ns: int) -> Sampler:
    """One Sampler per run checkpoint, shared by every session.

    `checkpoint` and `mtime_ns` are only part of the cache key: a run that saved a newer checkpoint
    gets loaded again. Sharing is safe because a Generation keeps its state to itself and runs in the
    script thread of the session that asked; the model's weights are only read.
    """
    return Sampler.from_run(run_path)


# --------------------------------------------------------------------------- small helpers
OWN_TEXT = "Your own text"
COLLAPSE_CHARS = 160  # unseen context longer than this is collapsed to a note (a long case would make a long page)


def use_example() -> None:
    """Selectbox callback: put the chosen example into the context box (which stays editable)."""
    if st.session_state["chat_example"] != OWN_TEXT:
        st.session_state["chat_context"] = example_contexts(CONTEXTS).get(st.session_state["chat_example"], "")


def clear_chat() -> None:
    st.session_state["chat_messages"] = []


def reset_format(trained: str) -> None:
    st.session_state["chat_template"] = trained
    st.session_state["chat_stop"] = DEFAULT_STOP


def follow_trained_format(sampler: Sampler) -> None:
    """Show the chosen run's QA format in the template box, unless the person has written their own: runs
    fine-tuned in different layouts (`ModelConfig.qa_layout`) each get theirs."""
    if st.session_state["chat_template"] in QA_TEMPLATES.values():
        st.session_state["chat_template"] = trained_template(sampler)


def train_link() -> None:
    st.page_link(TRAIN_PAGE, label="Train a model on the Train page", icon=":material/fitness_center:")


def stream_and_save(gen: Generation, reply: dict[str, Any]) -> Iterator[str]:
    """Pass the pieces through to `st.write_stream`, saving the reply in session state as it grows, so
    a person who leaves the page mid-answer finds the partial reply when they come back."""
    reply["ids"] = gen.ids  # the same list: it grows with the generation
    for piece in gen:
        reply["content"] += piece
        yield piece
    reply.update(content=gen.text, ids=list(gen.ids), finish=gen.finish_reason, partial=False,
                 tokens=[t.as_dict() for t in gen.tokens])


def beam_rows(result: BeamResult) -> list[dict[str, Any]]:
    """The n best hypotheses of a beam search as table rows, best first."""
    return [{"rank": i, "answer": h.text, "score": h.score, "log_prob": h.logprob, "tokens": len(h.ids),
             "ended": FINISH.get(h.finish_reason, h.finish_reason)} for i, h in enumerate(result.hypotheses, 1)]


def reply_caption(m: dict[str, Any]) -> str:
    if m.get("finish") == "span":
        return f"{m.get('run', '')} · read off the context by the span head in one pass"
    if m.get("partial"):
        return f"{m.get('run', '')} · interrupted after {len(m.get('ids', []))} tokens"
    why = FINISH.get(m.get("finish") or "", "")
    how = f" · best of a {m['num_beams']}-beam search" if m.get("num_beams") else ""
    return f"{m.get('run', '')} · {len(m.get('ids', []))} tokens · {why}{how}"


def _escape(text: str) -> str:
    # One line of HTML: a blank line would end the HTML block inside Markdown; `$` would start LaTeX.
    return html.escape(text).replace("\n", "<br>").replace("$", "&#36;")


def confidence_html(tokens: list[dict[str, Any]], text: str) -> str:
    """The answer with each token's background shaded by how unlikely it was (clear = sure), and its
    probability and the top alternatives as a tooltip (the HTML title attribute).

    `text` is the answer as shown: it can be shorter than the tokens' pieces (cut before a stop string).
    """
    spans, used = [], 0
    for t in tokens:
        piece = t["text"][: max(0, len(text) - used)]
        used += len(piece)
        if not piece:  # a token ending mid-character: its text arrives with the next one
            continue
        alts = " · ".join(f"{display_token(a)} {p:.1%}" for a, p in t["alternatives"])
        title = f"p = {t['prob']:.1%}&#10;top: {html.escape(alts, quote=True)}"
        shade = 0.7 * (1.0 - t["prob"])
        spans.append(f'<span title="{title}" style="background-color: rgba(255, 140, 0, {shade:.2f}); '
                     f'border-radius: 2px">{_escape(piece)}</span>')
    if used < len(text):  # characters completed only when the generation ended
        spans.append(_escape(text[used:]))
    return f'<div class="answer-confidence" style="white-space: pre-wrap">{"".join(spans)}</div>'


def span_reply(got: SpanAnswer) -> dict[str, Any]:
    """The span head's answer as plain data for the conversation."""
    return {"content": got.text, "finish": "span", "partial": False, "confidence": got.confidence,
            "not_stated_p": got.not_stated_probability, "kind": got.kind, "kind_confidence": got.kind_confidence,
            "overruled": got.overruled,
            "choices": [{"answer": c.text, "probability": c.probability} for c in got.choices],
            "qa_span": got.span, "read_from": got.read_from}


def render_span_answer(m: dict[str, Any]) -> None:
    """The span head's answer: "not stated" or the span, its probability (an unsure one flagged), and the other
    spans it weighed."""
    if is_not_stated(m["content"]):
        st.info(f"**Not stated** in the context ({m['not_stated_p']:.0%}): the model found no answer to this "
                "question in the paragraph.", icon=":material/help:")
    else:
        if m["confidence"] < LOW_CONFIDENCE:
            st.warning(f"Low confidence ({m['confidence']:.0%} for this span): the model was unsure; check the "
                       "context.", icon=":material/warning:")
        st.markdown(f"{_escape(m['content'])} <span style='opacity:0.6'>· {m['confidence']:.0%}</span>",
                    unsafe_allow_html=True)
        if m.get("read_from"):
            st.caption(f"Read from the pronoun “{_escape(m['read_from'])}”, highlighted in the context: the text "
                       "gives the sex no other way.")
    if m.get("choices"):
        render_weighed_spans(m)


def render_weighed_spans(m: dict[str, Any]) -> None:
    with st.expander("Spans the model weighed"):
        rows = [*m["choices"], {"answer": "(not stated)", "probability": m["not_stated_p"]}]
        rows.sort(key=lambda r: -r["probability"])
        table(rows, hide_index=True, width="stretch", column_config={
            "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0,
                                                           format="percent")})


def render_out_of_scope(m: dict[str, Any]) -> None:
    """A question the kind head read as about none of the trained kinds: "not stated", and what the model does
    answer, so that the person asks that instead of reading a random span of the context."""
    kinds = ", ".join(m.get("answers_about") or [])
    st.info("**Not stated**: this model was not trained to answer this kind of question"
            + (f". It answers questions about {kinds}; this question looks like none of them." if kinds else "."),
            icon=":material/block:")


def render_answer(m: dict[str, Any]) -> None:
    """The answer text, shaded by confidence when its token probabilities were kept and the toggle is on. A "not
    stated" answer, or an unsure one, is shown as such, never as a confident answer. Above it, what the question
    was understood to ask, when the model has a kind head."""
    if m.get("overruled"):
        st.caption(f"Understood as: **{m['kind']}**: the model read it as {m['overruled']} "
                   f"({m['kind_confidence']:.0%}), but the question never names a {m['overruled']}")
    elif m.get("kind"):
        st.caption(f"Understood as: **{m['kind']}** ({m['kind_confidence']:.0%})")
    if m.get("kind") == OUT_OF_SCOPE_KIND and is_not_stated(m["content"]):
        render_out_of_scope(m)
        if m.get("choices"):
            render_weighed_spans(m)
        return
    if m.get("finish") == "span":
        render_span_answer(m)
        return
    if is_not_stated(m["content"]):
        st.info("**Not stated** in the context: the model found no answer to this question in the paragraph.",
                icon=":material/help:")
        return
    # The model's own probabilities: the label must not change with the temperature the answer was drawn at.
    confidence = answer_confidence([t.get("confidence", t["prob"]) for t in m.get("tokens") or []])
    if confidence is not None and confidence < LOW_CONFIDENCE:
        st.warning(f"Low confidence ({confidence:.0%} per token): the model was unsure; check the context.",
                   icon=":material/warning:")
    if m["content"] and m.get("tokens") and st.session_state.get("chat_confidence"):
        st.markdown(confidence_html(m["tokens"], m["content"]), unsafe_allow_html=True)
    else:
        st.markdown(m["content"] or "*(empty answer)*")


def render_beams(rows: list[dict[str, Any]]) -> None:
    table(rows, hide_index=True, width="stretch", column_config={
        "rank": st.column_config.NumberColumn("#", width="small"),
        "answer": st.column_config.TextColumn("Answer", width="large"),
        "score": st.column_config.NumberColumn("Score", format="%.3f",
                                               help="Log-probability divided by the length penalty: the ranking."),
        "log_prob": st.column_config.NumberColumn("Log-prob", format="%.3f",
                                                  help="Sum of the log-probabilities of the answer's tokens."),
        "tokens": st.column_config.NumberColumn("Tokens"),
        "ended": st.column_config.TextColumn("Ended because"),
    })


def context_html(context: str, kept: list[tuple[int, int]], span: tuple[int, int] | None,
                 collapse: bool = False) -> str:
    """The context with the sentences the model did not see greyed out and the answer's span marked; with
    `collapse`, each run of unseen text longer than a line becomes a short note of its length."""
    marks = [(a, "kept") for a, _ in kept] + [(b, "/kept") for _, b in kept]
    if span:
        marks += [(span[0], "span"), (span[1], "/span")]
    grey = "<span style='opacity:0.4'>"
    tags = {"kept": "</span>", "/kept": grey, "span": "<mark>", "/span": "</mark>"}
    out, pos, in_grey = [grey], 0, True

    def piece(text: str) -> str:
        if collapse and in_grey and len(text) > COLLAPSE_CHARS:
            return f" <i>[… {len(text):,} characters the model did not see …]</i> "
        return _escape(text)

    for at, what in sorted(marks, key=lambda m: (m[0], not m[1].startswith("/"))):  # closing tags first
        out += [piece(context[pos:at]), tags[what]]
        pos = at
        if what in ("kept", "/kept"):
            in_grey = what == "/kept"
    out.append(piece(context[pos:]) + "</span>")
    return "".join(out)


def render_context_used(m: dict[str, Any], key: str) -> None:
    if not m.get("qa_context"):
        return
    ctx, kept = m["qa_context"], [tuple(x) for x in m["qa_sentences"]]
    span = tuple(m["qa_span"]) if m.get("qa_span") else None
    label = (f"The model saw {len(kept)} of the context's sentences (the window holds {m['qa_window']} tokens)"
             if m.get("qa_selected") else "The context the model saw")
    with st.expander(label + (", answer highlighted" if span else ""), expanded=bool(m.get("qa_selected"))):
        whole = bool(m.get("qa_selected")) and st.toggle("Show the whole context", key=f"chat_whole_{key}")
        st.markdown(context_html(ctx, kept, span, collapse=not whole), unsafe_allow_html=True)
        st.caption(("Grey: sentences left out, the least relevant to the question by BM25. " if m.get("qa_selected")
                    else "") + ("Highlighted: where the answer occurs in the context." if span
                                else "The answer is not a span of the context."))


def render_message(m: dict[str, Any], key: str) -> None:
    with st.chat_message(m["role"]):
        if m["role"] == "assistant":
            for w in m.get("warnings", []):
                st.warning(w, icon=":material/warning:")
            render_answer(m)
            if m.get("beams"):
                render_beams(m["beams"])
            render_context_used(m, key)
            st.caption(reply_caption(m))
        else:
            st.markdown(m["content"])


# --------------------------------------------------------------------------- page sections
def header() -> None:
    st.title("Chat")
    st.caption("Ask a trained model about a clinical case. The answer streams in as it is generated; below it you "
               "can see the exact prompt, what the sampling sliders do, and where the model looked.")


def keep_widget_state(by_name: dict[str, Run]) -> None:
    """Re-assign every widget value (see DEFAULTS) and keep the chosen run among the runs offered."""
    for key, default in DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, default)
    if st.session_state.get("chat_run") not in by_name:
        st.session_state["chat_run"] = next(iter(by_name))
    st.session_state["chat_run"] = st.session_state["chat_run"]
    st.session_state.setdefault("chat_messages", [])


def choose_run() -> Loaded:
    """The run picker in the sidebar and its loaded model; stops the page when there is nothing to load."""
    runs = chat_runs(runs_root())
    if not runs:
        st.info("No trained model to chat with yet. Runs appear here once they have completed or been stopped "
                "with a checkpoint.", icon=":material/lightbulb:")
        train_link()
        st.stop()
    by_name = {r.name: r for r in runs}
    keep_widget_state(by_name)
    with st.sidebar:
        st.header("Model")
        st.selectbox("Run", list(by_name), key="chat_run", format_func=lambda n: f"{n} · {by_name[n].state}",
                     help="Completed or stopped runs with a checkpoint: QA fine-tunes first, then the others, "
                          "newest first in each.")
    run = by_name[st.session_state["chat_run"]]
    try:
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            raise GenAIError(f"run {run.name} has no checkpoint yet")
        model_key = (str(run.path.resolve()), ckpt.name, (ckpt / "model.safetensors").stat().st_mtime_ns)
        sampler = load_sampler(*model_key)
    except (GenAIError, OSError) as e:
        st.error(f"Cannot load run **{run.name}**: {user_message(e) or e}", icon=":material/block:")
        st.caption("Pick another run in the sidebar, or train (or resume) this one.")
        train_link()
        st.stop()
    follow_trained_format(sampler)
    warning = not_taught_to_answer(run)
    if warning:
        st.warning(warning, icon=":material/warning:")
    return Loaded(run, ckpt, model_key, sampler)


def fit_knobs_to_model(vocab: int) -> None:
    """Bring remembered slider values inside the ranges this model's sliders can show."""
    st.session_state["chat_top_k"] = min(int(st.session_state["chat_top_k"]), vocab)  # a smaller vocabulary
    # Fewer beams than answers asked for: ask for all of them (the slider cannot show a value above its max).
    st.session_state["chat_num_return"] = min(int(st.session_state["chat_num_return"]),
                                              int(st.session_state["chat_beams"]))


def sampling_knobs(vocab: int) -> None:
    st.slider("Temperature", 0.0, 2.0, step=0.05, key="chat_temperature",
              help="Divides the logits: below 1 sharpens the distribution, above 1 flattens it; 0 always takes "
                   "the most likely token.")
    st.slider("Top-k", 0, vocab, step=1, key="chat_top_k",
              help="Keep only the k most likely tokens (0 = off).")
    st.slider("Top-p", 0.05, 1.0, step=0.05, key="chat_top_p",
              help="Keep the smallest set of most likely tokens whose probabilities add up to p (1 = off).")


def beam_knobs() -> None:
    st.slider("Beams", 1, 16, step=1, key="chat_beams", help=SampleConfig.model_fields["num_beams"].description)
    st.slider("Length penalty", 0.0, 2.0, step=0.1, key="chat_length_penalty",
              help=SampleConfig.model_fields["length_penalty"].description)
    if st.session_state["chat_beams"] > 1:  # one beam (greedy) has one answer: no slider from 1 to 1
        st.slider("Answers shown", 1, int(st.session_state["chat_beams"]), step=1, key="chat_num_return",
                  help="How many of the best hypotheses to list, with their scores (at most one per beam).")


def decoding_sidebar(loaded: Loaded) -> str:
    """The model's card and the decoding knobs in the sidebar; the chosen decoding mode."""
    mcfg, vocab = loaded.sampler.model.config, loaded.sampler.model.config.vocab_size
    fit_knobs_to_model(vocab)
    modes = decoding_modes(loaded.sampler)
    if st.session_state["chat_decoding"] not in modes:  # the span head's mode, on a run without one
        st.session_state["chat_decoding"] = "sampling"
    with st.sidebar:
        st.caption(f"{mcfg.arch.upper()} · {mcfg.n_layers} layers · d_model {mcfg.d_model} · window {mcfg.seq_len} "
                   f"tokens · vocabulary {vocab} ({loaded.sampler.tokenizer.kind}) · weights of step "
                   f"{Run.step_of(loaded.checkpoint):,}")
        st.header("Decoding")
        decoding = st.radio("Decoding", list(modes), key="chat_decoding", format_func=modes.get,
                            horizontal=True, label_visibility="collapsed",
                            help="The span head (runs fine-tuned with one) points at the answer in the context, or "
                                 "says it is not stated, with a probability; sampling draws each token at random "
                                 "from the filtered distribution; greedy always takes the most likely token; beam "
                                 "search keeps several hypotheses and returns the best ones with their scores.")
        # Only the knobs of the chosen decoding are drawn; the others keep their values (see keep_widget_state).
        if decoding == "span":
            st.caption("The span head reads the answer off the context in one pass: always a whole-word span of "
                       "it, or *not stated*, with its probability. Nothing is sampled, so the sliders belong to "
                       "Sampling, where the answer is generated token by token (still inside the context).")
            st.button("Clear the conversation", on_click=clear_chat, width="stretch")
            return "span"
        if decoding == "sampling":
            sampling_knobs(vocab)
        elif decoding == "beam":
            beam_knobs()
        st.slider("Max new tokens", 1, 1000, step=1, key="chat_max_new", help="Longest answer, in tokens.")
        st.slider("Repetition penalty", 1.0, 2.0, step=0.05, key="chat_rep_penalty",
                  help="Makes tokens already in the prompt or answer less likely (1 = off).")
        if decoding == "sampling":
            st.number_input("Seed", 0, 2**31 - 1, step=1, key="chat_seed",
                            help="Same seed, settings and question give the same answer; change it for another draw.")
            st.checkbox("New randomness each time", key="chat_fresh_seed", help="Ignore the seed.")
        st.checkbox("Answer with a span of the context", key="chat_extractive",
                    help="Extractive decoding: each answer token must continue a span of the context the model sees, "
                         "so the answer is always copied from the case and never invented (beam search and custom "
                         "prompt formats are not constrained).")
        st.checkbox("Shade the answer by confidence", key="chat_confidence",
                    help="Each token's background darkens the less likely it was; hover a token for its probability "
                         "and the five most likely tokens at that point. Sampling: the distribution it was drawn "
                         "from (after every filter); greedy and beam search: the model's softmax after the "
                         "repetition penalty.")
        st.button("Clear the conversation", on_click=clear_chat, width="stretch")
    return str(decoding)


def context_inputs(loaded: Loaded) -> str:
    """The example picker, the context box and the prompt format; the context."""
    examples = example_contexts(CONTEXTS)
    if "chat_context" not in st.session_state:
        st.session_state["chat_context"] = next(iter(examples.values()), "")
    st.session_state["chat_context"] = st.session_state["chat_context"]
    if examples:
        # The label follows the text: once the context is not an example any more, it says so.
        shown = next((name for name, text in examples.items() if text == st.session_state["chat_context"]), OWN_TEXT)
        st.session_state["chat_example"] = shown
        st.selectbox("Example case (fictional)", [*examples, OWN_TEXT], key="chat_example", on_change=use_example,
                     help="Fills the context box below with an example; edit it freely.")
    context = st.text_area("Clinical context", key="chat_context", height=170,
                           help="Every question is asked about this text.")

    with st.expander("Prompt format"):
        st.text_area("Template", key="chat_template", height=90,
                     help="How a question and the context become the model's input. Use the format the model was "
                          "trained on; {question} and {context} are filled in, a literal brace is {{ or }}.")
        st.text_input("Stop the answer at", key="chat_stop",
                      help=r"Comma-separated strings that end the answer; \n means a new line. Empty = no stop string.")
        st.button("Reset to the trained format", on_click=reset_format, args=(trained_template(loaded.sampler),))
    return context


def chosen_config(decoding: str, context: str) -> SampleConfig | None:
    """The decoding config the knobs describe, with the prompt template checked; None (and the error shown)
    when a value is not valid."""
    s = st.session_state
    try:
        cfg = decoding_config(
            decoding, max_new_tokens=s["chat_max_new"], stop=parse_stops(s["chat_stop"]),
            repetition_penalty=s["chat_rep_penalty"], temperature=s["chat_temperature"], top_k=s["chat_top_k"],
            top_p=s["chat_top_p"], seed=s["chat_seed"], fresh_seed=s["chat_fresh_seed"], num_beams=s["chat_beams"],
            length_penalty=s["chat_length_penalty"], num_return=s["chat_num_return"])
        format_qa_prompt(PREVIEW_QUESTION, context, s["chat_template"])  # check the template now
    except (GenAIError, ValidationError) as e:
        st.error(user_message(e) or str(e), icon=":material/block:")
        return None
    return cfg


def new_reply(loaded: Loaded, question: str, context: str, prompt: ChatPrompt) -> dict[str, Any]:
    """The reply to a new question as saved in the conversation, empty: it is filled in as the answer comes."""
    reply = {"role": "assistant", "content": "", "run": loaded.run.name, "model_key": loaded.model_key,
             "question": question, "prompt_ids": prompt.ids, "ids": [], "warnings": prompt.info.warnings(),
             "finish": None, "partial": True}
    if prompt.qa is not None:
        reply.update(qa_context=clean_text(context), qa_sentences=prompt.qa.sentences, qa_selected=prompt.qa.selected,
                     qa_window=loaded.sampler.model.config.seq_len,
                     answers_about=answered_kinds(loaded.sampler.model.config.question_kinds))
    return reply


def answer_question(loaded: Loaded, prompt: ChatPrompt, cfg: SampleConfig, decoding: str,
                    messages: list[dict[str, Any]], chat_box: Any, context: str) -> None:
    """Draw the question and its answer as it is generated, filling in the reply saved in the conversation."""
    reply = messages[-1]
    with chat_box:
        render_message(messages[-2], str(len(messages) - 2))
        with st.chat_message("assistant"):
            for w in reply["warnings"]:
                st.warning(w, icon=":material/warning:")
            answer_box = st.empty()
            with user_errors():  # e.g. out of memory on a big model: say so, keep the partial reply
                if decoding == "span":
                    reply.update(span_reply(read_answer(loaded.sampler.model, loaded.sampler.tokenizer,
                                                        reply["question"], context, prompt=prompt.qa)))
                elif decoding == "beam":
                    with st.spinner(f"Beam search with {cfg.num_beams} beams…"):
                        result = beam_search(loaded.sampler, prompt.ids, cfg, info=prompt.info,
                                             with_probs=bool(st.session_state["chat_confidence"]))
                    best = result.best
                    reply.update(content=best.text, ids=list(best.ids), finish=best.finish_reason, partial=False,
                                 tokens=[t.as_dict() for t in best.tokens], beams=beam_rows(result),
                                 num_beams=cfg.num_beams)
                elif prompt.generation is not None:
                    with answer_box:
                        st.write_stream(stream_and_save(prompt.generation, reply))
                if decoding != "span" and prompt.qa is not None:
                    kind = understood_as(loaded.sampler.model, loaded.sampler.tokenizer, reply["question"], context,
                                         prompt=prompt.qa)
                    if kind is not None:
                        reply.update(kind=kind[0], kind_confidence=kind[1])
            if prompt.qa is not None and reply["content"].strip() and not reply.get("qa_span"):
                reply["qa_span"] = find_span(reply["qa_context"], reply["content"].strip())
            if reply["content"] and (reply.get("tokens") or reply.get("beams") or reply.get("kind")
                                     or reply["finish"] == "span" or is_not_stated(reply["content"])):
                with answer_box.container():  # the finished answer replaces the plain streamed text
                    render_answer(reply)
            elif not reply["content"]:
                st.markdown("*(empty answer)*")
            if reply.get("beams"):
                render_beams(reply["beams"])
            render_context_used(reply, str(len(messages) - 1))
            st.caption(reply_caption(reply))


def conversation(loaded: Loaded, context: str, cfg: SampleConfig | None, decoding: str) -> list[dict[str, Any]]:
    """The messages so far, the question box, and the answer to a new question; the messages."""
    messages: list[dict[str, Any]] = st.session_state["chat_messages"]
    chat_box = st.container()
    with chat_box:
        for i, m in enumerate(messages):
            render_message(m, str(i))
    # In a container the box sits under the conversation. Called at the page's top level it would be pinned to
    # the window's foot, and Streamlit would then keep the page scrolled to its bottom: the Chat opened on the
    # charts of "Inside the model", below the fold, instead of on the context and the question.
    with st.container():
        question = st.chat_input("Ask a question about the context", submit_mode="disable", disabled=cfg is None)
    if not question or cfg is None:
        return messages
    try:
        check_question(question, context)
    except GenAIError as e:
        st.error(f"No answer: {e}.", icon=":material/block:")
        return messages
    if decoding == "span" and st.session_state["chat_template"] != trained_template(loaded.sampler):
        st.error("The span head reads questions in the format it was trained on: reset the prompt format, or "
                 "pick another decoding to try your own.", icon=":material/block:")
        return messages
    prompt = chat_prompt(loaded.sampler, question, context, st.session_state["chat_template"], mode=decoding, cfg=cfg,
                         extractive=bool(st.session_state["chat_extractive"]),
                         with_probs=bool(st.session_state["chat_confidence"]))
    messages += [{"role": "user", "content": question}, new_reply(loaded, question, context, prompt)]
    answer_question(loaded, prompt, cfg, decoding, messages, chat_box, context)
    return messages


# --------------------------------------------------------------------------- the page
def main() -> None:
    header()
    loaded = choose_run()
    decoding = decoding_sidebar(loaded)
    context = context_inputs(loaded)
    cfg = chosen_config(decoding, context)
    messages = conversation(loaded, context, cfg, decoding)
    if cfg is not None:
        inside_the_model(loaded, context, cfg, decoding, messages)


main()
