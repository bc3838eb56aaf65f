"""Which network a config builds: the GPT, the GPT with question-answering heads, or a recurrent LM.

The one place that knows every model class (`model.py` holds the language models, `qa/reader.py` the QA model
built on the GPT), so a saved run's weights always find the class that holds them.
"""

from __future__ import annotations

from genai_core.config import ModelConfig
from genai_core.model import GPT, LanguageModel, RecurrentLM
from genai_core.qa.reader import QAGPT, has_reader_heads


def build_model(cfg: ModelConfig, *, qa: bool = False) -> LanguageModel:
    """A fresh model of `cfg`: a `QAGPT` when it has a span or kind head, or when it is to be fine-tuned for QA
    (`qa`: the answer-only loss), else the GPT or the LSTM / GRU."""
    if cfg.arch != "gpt":
        return RecurrentLM(cfg)
    return QAGPT(cfg) if qa or has_reader_heads(cfg) else GPT(cfg)
