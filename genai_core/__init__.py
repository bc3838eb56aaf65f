"""genai_core: the headless engine of GenAI Playground.

Data flows corpus → tokenizer → token store → model → trainer → run folder → sampler/evaluator,
one module per stage:

    config        validated configs (DataConfig, ModelConfig, TrainConfig, RunConfig, SampleConfig)
    corpus        reading .txt/.csv/.tsv/.jsonl/.parquet in bounded memory; cleaning
    tokenization  char (with unknown token) and byte-level BPE tokenizers
    tokenstore    train/val token ids as numpy memmaps; random-window batches
    model         GPT decoder (KV cache), LSTM and GRU language models
    training      the trainer (events, AMP, DDP, stop/resume) and `train()`
    runs          the run folder: atomic writes, status, metrics, safetensors checkpoints
    sampling      streaming generation with temperature / top-k / top-p / penalties; beam search
    evaluation    validation loss and perplexity of a run
    estimates     parameters, memory, FLOPs and time before training
    jobs          background training threads with a per-device queue
    cli           `python -m genai_core ...`

This package never imports streamlit; the app in app.py and pages/ drives it.
"""

__version__ = "0.1.0"
