"""Greedy generation tokens/s of the engine in the checkout REPO, fast decoder: a modern GPT 4x4x128 (RMSNorm,
QK-norm, RoPE) and a classic one (LayerNorm, learned positions), random weights, 2 threads, best of 5 rounds of
400 tokens. Prints one JSON line; run it for two checkouts interleaved (see `checkout_speed.py`).

    python benchmarks/checkout_generation.py REPO
"""

import json
import sys
import time

sys.path.insert(0, sys.argv[1])

import torch

from genai_core.config import ModelConfig, SampleConfig
from genai_core.data.tokenization import CharTokenizer
from genai_core.generate.sampling import Sampler

try:
    from genai_core.models import build_model
except ImportError:  # a checkout from before models.py
    from genai_core.model import build_model

torch.set_num_threads(2)
tok = CharTokenizer("abcdefghijklmnopqrstuvwxyzROMEO:., \n")
out = {}
for name, cfg in (("modern", ModelConfig(vocab_size=tok.vocab_size, seq_len=512)),
                  ("classic", ModelConfig(vocab_size=tok.vocab_size, seq_len=512, norm="layernorm", qk_norm=False,
                                          pos_encoding="learned", mlp="gelu"))):
    torch.manual_seed(0)
    s = Sampler(build_model(cfg), tok)
    sc = SampleConfig(max_new_tokens=400, temperature=0.0, stop_at_end=False)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        s.generate("ROMEO:", sc)
        best = max(best, 400 / (time.perf_counter() - t0))
    out[name] = round(best)
print(json.dumps(out))
