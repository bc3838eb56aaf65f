"""A QA fine-tune: its config completed from its parent run, and its start from the parent's weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genai_core.config import QA_HEADS, RunConfig
from genai_core.data.tokenstore import TokenStore
from genai_core.errors import GenAIError
from genai_core.model import load_state, state_for_save, unwrap
from genai_core.qa.reader import has_reader_heads
from genai_core.qa.store import QAStore, check_parent, question_kinds, read_qa_table
from genai_core.runs.folder import Run


def fine_tune_config(config: RunConfig) -> RunConfig:
    """A QA fine-tune's config completed from its parent: the parent's network (plus the copy, span and kind
    heads asked for, with the requested dropout) and its text processing, so prompts are tokenized as the
    parent saw text."""
    check_parent(config.parent)
    parent = Run(config.parent)
    pcfg = parent.config()
    heads: dict[str, Any] = {h: getattr(pcfg.model, h) or getattr(config.model, h) for h in QA_HEADS}
    if heads["kind_head"]:
        # A caller that has read the file already (the Train page, on every rerun) passes its kinds; the trainer
        # checks them against the prepared store's.
        heads["question_kinds"] = config.model.question_kinds or question_kinds(
            read_qa_table(config.data.corpus, max_rows=config.data.max_records))
        if not heads["question_kinds"]:
            raise GenAIError(f"the kind head learns what each question asks from a `kind` column, and "
                             f"{Path(config.data.corpus).name} has none (or it is empty): add one, or switch the "
                             "kind head off")
    # A parent with a span head keeps its keys' shape; a new span head is built as the fine-tune asks.
    lookahead = (pcfg.model if pcfg.model.span_head else config.model).span_lookahead
    model = pcfg.model.model_copy(update={**heads, "dropout": config.model.dropout, "span_lookahead": lookahead,
                                          "qa_layout": config.model.qa_layout})
    data = config.data.model_copy(update={k: getattr(pcfg.data, k)
                                          for k in ("tokenizer", "vocab_size", "lowercase", "normalize_whitespace")})
    return RunConfig.model_validate({**config.model_dump(), "model": model.model_dump(), "data": data.model_dump(),
                                     "parent": str(parent.path.resolve())})


def init_from_parent(model: torch.nn.Module, parent: Run) -> None:
    """Start a fine-tune from its parent's weights. Parameters the parent lacks (a copy, span or kind head added
    for the fine-tune) keep their fresh initialisation; every other name and shape must match. A parent's kind
    head is dropped when the fine-tune's kinds differ (a new file, new classes)."""
    state = parent.load_weights()
    own = state_for_save(model)
    if parent.config().model.question_kinds != unwrap(model).config.question_kinds:
        state = {k: v for k, v in state.items() if not k.startswith("kind_head.")}
    added = {k: v for k, v in own.items() if k not in state and k.startswith(("copy_", "span_", "kind_head."))}
    load_state(model, {**state, **added})


def serve_targets(store: TokenStore | QAStore, config: RunConfig) -> None:
    """A QA store hands out span and kind targets when the model has a head to learn them."""
    if not isinstance(store, QAStore):
        return
    if config.model.question_kinds and store.kinds != config.model.question_kinds:
        raise GenAIError(f"the QA file's question kinds changed since the run started ({len(store.kinds)} now, "
                         f"{len(config.model.question_kinds)} then): the kind head cannot learn them")
    store.reader = has_reader_heads(config.model)
