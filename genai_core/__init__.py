"""genai_core: the headless engine of GenAI Playground.

Data flows corpus -> tokenizer -> token store -> model -> trainer -> run folder -> sampler / evaluator, and the
packages follow it (ARCHITECTURE.md has one line per module):

    config         every knob: validated configs, each field with its docstring and bounds
    data/          reading and cleaning corpora, tokenizers, the memmapped token store
    model          the GPT and the LSTM / GRU baselines
    train/         the trainer and its events, optimizers, estimates, where runs train (jobs), grids
    runs/          the run folder (the source of truth), archives, reports, comparisons
    generate/      sampling, beam search, question answering, views inside the model
    evaluate/      held-out perplexity, QA scores
    clinical/      the bundled synthetic clinical demo (nothing else depends on it)
    cli/           `python -m genai_core ...`

This package never imports streamlit; the app in app.py and pages/ drives it.
"""

__version__ = "0.1.0"
