"""Question answering on top of the language models: the QA model (`reader`: the GPT with its span and kind
heads and the answer-only loss), its fine-tuning data (`store`) and the prompt format both share (`prompt`).
Answering at run time lives with generation: `generate.qa` (decoded answers) and `generate.extractive`
(answers read as a span of the context)."""
