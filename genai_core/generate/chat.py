"""A chat about a clinical context, as the Chat page holds one: the runs one can talk to, the example contexts,
the decoding modes a person picks and the `SampleConfig` each one means, and how a question reaches the model.

`decoding_config` is the one rule that turns a mode and the knobs' values into a config: knobs of the other
modes are ignored (they keep their defaults), so a temperature left at 1.3 while beam search is chosen changes
nothing. `chat_prompt` is the one rule for the prompt: the trained question-answering format fits the context
to the window by relevance and may constrain the answer to a span of it; any other template is only filled in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from genai_core.config import SampleConfig
from genai_core.errors import GenAIError
from genai_core.generate.decoding import PromptInfo
from genai_core.generate.extractive import has_span_head
from genai_core.generate.inspection import QA_TEMPLATES, format_qa_prompt
from genai_core.generate.qa import answer_stream
from genai_core.generate.sampling import Generation, Sampler
from genai_core.qa.prompt import QAPrompt
from genai_core.runs.folder import Run, list_runs

CHATTABLE = ("completed", "stopped", "pruned")
"""Run states with weights to talk to: a run still training is left out (its checkpoint moves)."""

DECODING_MODES: dict[str, str] = {"span": "Span head", "sampling": "Sampling", "greedy": "Greedy",
                                  "beam": "Beam search"}
"""Mode name → label. The span head points at the answer in the context (or says "not stated") with a
probability, in one pass; sampling draws each token from the filtered distribution, greedy takes the most likely
token, beam search keeps several hypotheses and returns the best ones with their scores. Sampling and greedy
stream; the span head and beam search answer at once."""


def decoding_modes(sampler: Sampler) -> dict[str, str]:
    """The DECODING_MODES this run's model offers: "span" only with a span head."""
    return {k: v for k, v in DECODING_MODES.items() if k != "span" or has_span_head(sampler.model)}


def chat_runs(root: Path) -> list[Run]:
    """Runs under `root` with weights to talk to (see CHATTABLE): QA fine-tunes first, then the others, newest first
    in each group. The Chat is for answering questions, so the run it opens with is one taught to answer."""
    out = []
    for run in list_runs(root):
        try:
            if run.state in CHATTABLE and run.latest_checkpoint() is not None:
                out.append(run)
        except (GenAIError, OSError):  # a half-written or damaged folder is simply not offered
            continue
    return sorted(out, key=lambda r: not is_qa_run(r))  # a stable sort: newest first within each group


def is_qa_run(run: Run) -> bool:
    """The run was fine-tuned for question answering (task `qa`); False for a pretrained language model or a run
    whose config cannot be read."""
    try:
        return run.config().task == "qa"
    except (GenAIError, OSError):
        return False


def not_taught_to_answer(run: Run) -> str | None:
    """Why `run`'s answers are not answers (a plain language model), or None for a QA fine-tune."""
    if is_qa_run(run):
        return None
    return (f"{run.name} is a plain language model: it learned to continue text and was never taught to answer "
            "questions, so what it writes after “A:” is a continuation, not an answer read from the case. For "
            "answers, pick a QA fine-tune in the sidebar, or train one: the clinical QA demo on the Home page, or "
            "*Fine-tune for QA* on the Train page.")


def example_contexts(folder: Path) -> dict[str, str]:
    """The example contexts of `folder` (*.txt) by display name: the file name without its ordering prefix,
    `_` as spaces; unreadable files are left out."""
    examples = {}
    for p in sorted(folder.glob("*.txt")):
        try:
            examples[re.sub(r"^\d+_", "", p.stem).replace("_", " ")] = p.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
    return examples


def parse_stops(typed: str) -> list[str]:
    r"""Comma-separated stop strings, with \n and \t typed as two characters meaning newline and tab."""
    parts = (s.replace("\\n", "\n").replace("\\t", "\t") for s in typed.split(","))
    return [s for s in parts if s.strip(" ")]


_DEFAULT = SampleConfig()


def decoding_config(mode: str, *, max_new_tokens: int, stop: list[str], repetition_penalty: float,
                    temperature: float = _DEFAULT.temperature, top_k: int = _DEFAULT.top_k,
                    top_p: float = _DEFAULT.top_p, seed: int = 0, fresh_seed: bool = False,
                    num_beams: int = _DEFAULT.num_beams, length_penalty: float = _DEFAULT.length_penalty,
                    num_return: int = _DEFAULT.num_return) -> SampleConfig:
    """The `SampleConfig` of decoding `mode` (a key of DECODING_MODES) with these knob values.

    Sampling uses temperature, top-k, top-p and the seed (none with `fresh_seed`); greedy is temperature 0;
    beam search is temperature 0 with `num_beams` beams, returning `num_return` of them, cut to `num_beams`
    (fewer beams than answers asked for: all of them). Raises GenAIError for an unknown mode and pydantic's
    ValidationError for a value out of range.
    """
    common = {"max_new_tokens": max_new_tokens, "stop": stop, "repetition_penalty": repetition_penalty}
    if mode == "sampling":
        return SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p,
                            seed=None if fresh_seed else int(seed), **common)
    if mode == "greedy":
        return SampleConfig(temperature=0.0, **common)
    if mode == "beam":
        return SampleConfig(temperature=0.0, num_beams=num_beams, length_penalty=length_penalty,
                            num_return=min(num_return, num_beams), **common)
    if mode == "span":  # nothing is decoded; the config only sizes the prompt's room for an answer
        return SampleConfig(temperature=0.0, **common)
    raise GenAIError(f"unknown decoding mode {mode!r}: choose one of {', '.join(DECODING_MODES)}")


@dataclass
class ChatPrompt:
    """How a question reaches the model, and the generation of its answer when that streams."""

    ids: list[int]
    info: PromptInfo
    qa: QAPrompt | None
    """With the trained question-answering format: the prompt with the context fitted to the window."""
    generation: Generation | None
    """The answer, ready to stream (sampling, greedy); None for beam search or a prompt only to be shown."""


def trained_template(sampler: Sampler) -> str:
    """The QA format the sampler's model was fine-tuned in (`ModelConfig.qa_layout`)."""
    return QA_TEMPLATES[sampler.model.config.qa_layout]


def chat_prompt(sampler: Sampler, question: str, context: str, template: str | None = None, *,
                mode: str | None = None, cfg: SampleConfig | None = None, extractive: bool = True,
                with_probs: bool = False) -> ChatPrompt:
    """The prompt of `question` about `context` in `template` (default: the model's trained format) and, given
    the `cfg` of a streaming `mode`, the generation of its answer.

    With the trained format (`trained_template`) the context is cut to the sentences most relevant to the
    question when it does not fit the window, and the answer is a span of it when `extractive`
    (`qa.answer_stream`); any other template is filled in and cropped from the left (`Sampler.encode_prompt`),
    unconstrained. Without a streaming config (beam search, the span head, or no `cfg`) the QA prompt leaves
    room for the default answer.
    """
    stream_cfg = cfg if mode not in ("beam", "span") else None
    if template is None or template == trained_template(sampler):
        qa, gen = answer_stream(sampler, question, context, stream_cfg, extractive=extractive, with_probs=with_probs)
        return ChatPrompt(qa.ids, gen.info, qa, gen if stream_cfg is not None else None)
    ids, info = sampler.encode_prompt(format_qa_prompt(question, context, template))
    gen = None if stream_cfg is None else Generation(sampler, ids, info, stream_cfg, with_probs=with_probs)
    return ChatPrompt(ids, info, None, gen)


__all__ = [
    "CHATTABLE",
    "DECODING_MODES",
    "ChatPrompt",
    "chat_prompt",
    "chat_runs",
    "decoding_config",
    "decoding_modes",
    "example_contexts",
    "is_qa_run",
    "not_taught_to_answer",
    "parse_stops",
    "trained_template",
]
