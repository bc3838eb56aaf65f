"""Training and generation tokens/s of the engine in the checkout REPO, for comparing two checkouts of a change
(a refactor's "within 5 %"): LM pretraining (modern recipe, GPT 4x4x128, seq 256, batch 12, Shakespeare, 100
steps), a QA fine-tune of it adding copy, span and kind heads (the demo QA split, 60 steps), and greedy generation
on the fast decoder (the LM) and through a copy-head GPT's cache (the QA run). Prints one JSON line.

    git worktree add /tmp/before <commit>
    for r in 1 2 3; do for repo in /tmp/before .; do python benchmarks/checkout_speed.py $repo; done; done

Run the two checkouts interleaved, on a quiet machine, and compare medians. `checkout_generation.py` times
generation alone (random weights, no training), for a change to the decoder.
"""

import json
import os
import statistics
import sys
import tempfile
import time

repo = sys.argv[1]
sys.path.insert(0, repo)
os.chdir(repo)

import torch  # noqa: E402

from genai_core.config import DataConfig, ModelConfig, RunConfig, SampleConfig, TrainConfig  # noqa: E402
from genai_core.generate.sampling import Sampler  # noqa: E402
from genai_core.train.trainer import train  # noqa: E402

torch.set_num_threads(2)


def rate(run):
    rows = [m["tokens_per_s"] for m in run.metrics() if m.get("tokens_per_s")]
    return statistics.median(rows[1:])


out = {}
with tempfile.TemporaryDirectory() as tmp:
    os.environ["GENAI_RUNS_DIR"] = tmp
    quiet = dict(eval_interval=10_000, sample_interval=0, checkpoint_interval=10_000, seed=0)
    lm = RunConfig(data=DataConfig(corpus="assets/corpora/shakespeare.txt"),
                   model=ModelConfig(d_model=128, n_heads=4, n_layers=4, seq_len=256),
                   train=TrainConfig(batch_size=12, max_steps=100, log_interval=10, **quiet))
    r = train(lm, f"{tmp}/lm")
    out["lm_train_tok_s"] = rate(r.run)
    qa = RunConfig(task="qa", parent=f"{tmp}/lm", data=DataConfig(corpus="assets/qa/train.parquet", max_records=3000),
                   model=ModelConfig(copy_head=True, span_head=True, kind_head=True),
                   train=TrainConfig(batch_size=12, max_steps=60, log_interval=5, **quiet))
    q = train(qa, f"{tmp}/qa")
    out["qa_train_tok_s"] = rate(q.run)
    for name, path, n in (("gen_fast_tok_s", f"{tmp}/lm", 400), ("gen_copy_tok_s", f"{tmp}/qa", 150)):
        s = Sampler.from_run(path)
        cfg = SampleConfig(max_new_tokens=n, temperature=0.0, stop_at_end=False)
        best = 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            s.generate("ROMEO:", cfg)
            best = max(best, n / (time.perf_counter() - t0))
        out[name] = best
print(json.dumps(out))
