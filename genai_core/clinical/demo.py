"""The clinical QA demo: pretrain on the unlabeled synthetic case reports, then fine-tune for QA.

`python -m genai_core demo-qa --out DIR` trains DIR/pretrain and then DIR/qa (linked to it), and
scores the fine-tuned model on the test split (values never seen in QA training) and on the
test-unseen-phrasing split (values and question wordings never seen). The Home page's one-click demo
queues the same two configs.

Why this shape (measured on a 2-core CPU, see docs/clinical-qa.md):
- byte-level BPE with 1,024 tokens: characters would be cheaper per token, but copying a drug name
  of ten characters is then ten decisions instead of two or three, and it does not emerge in minutes;
- a pointer-generator copy head: invented drug and finding names never seen in training are copied
  out of the context instead of being spelled from the vocabulary;
- a window of 256 tokens: half the contexts are longer, and BM25 sentence selection with clinical
  query expansion keeps the sentence holding the answer for ~97% of questions at a fraction of the
  cost of a 384-token window;
- pretraining first teaches the model the language of the reports (including phrasings the QA
  training set never uses), so fine-tuning only has to teach where answers are;
- a span head beside the generated answer: pointing at the answer's first and last token (or at "not stated")
  is a far easier target than writing it, and training both lifts both (measured with 60% grammar questions:
  test exact match 66.8 → 92.8 read off by the span head, 81.8 generated; unseen wording 41.8 → 54.4;
  abstention 91% → 100%; see docs/clinical-qa.md for the shipped figures);
- a kind head: what the question asks, shown on the Chat page as "understood as";
- the context before the question (`ModelConfig.qa_layout`): the context then reads the same whatever the wording
  of the question (measured, same pretrained run: unseen wording 56.4 → 60.8, test 91.6 → 92.6, note style
  88.8 → 91.8); 900 pretraining steps instead of 300 hurt unseen wording (53.6);
- span keys that read 3 tokens ahead (`ModelConfig.span_lookahead`): a causal model's key at "First-line" has not
  read "treatment was Dexofloxacin" yet, so it cannot tell a lead-in from the answer's first word (measured, same
  pretrained run, mean of four fine-tuning seeds: test 93.6 → 94.3, note style 91.9 → 93.2; unseen wording
  59.0 → 60.1, inside the noise there: one seed to the next moves it by up to 15 points);
- 28,800 training rows, one per example the fine-tune draws, instead of 7,000 drawn four times each (measured,
  same pretrained run, mean of four fine-tuning seeds: unseen wording 60.1 → 64.5, higher for three seeds of
  four; test 94.3 → 95.3; note style 93.2 → 94.8);
- training reports whose treatment sentences are composed (`tables.sentences.SENTENCE_GRAMMARS`: 23 frames for
  the drug started, openings and tails, a marker on every extra drug) instead of nine fixed templates: the pointers
  learn the drug started by the words around it, not by its sentence's shape (measured, mean of four fine-tuning
  seeds: unseen wording 64.5 → 78.4, higher for all four; its false "not stated" 6.6 → 3.5 %; test 95.3 → 94.5
  and note style 94.8 → 93.7, on files that changed with the generator).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genai_core.clinical.synthetic import qa_file
from genai_core.config import ASSETS_DIR, QA_HEADS, DataConfig, ModelConfig, RunConfig, TrainConfig
from genai_core.errors import GenAIError
from genai_core.qa.store import PADDED_SHARE
from genai_core.train.estimates import Estimate, estimate
from genai_core.train.trainer import Callback, train

DEMO_CORPUS = ASSETS_DIR / "corpora" / "clinical_cases.csv"
QA_DIR = ASSETS_DIR / "qa"
QA_STEPS = 1800
"""Fine-tuning steps of the demo: with the modern recipe (a step costs ~1.3x the classic one) 1,800 steps keep
pretraining, fine-tuning and scoring near 10 minutes on 2 CPU cores (9.1 and 10.1 minutes measured, the
28,800-row training split taking ~37 s to tokenize; 2,600 steps took 12.2 minutes)."""


QA_MEAN_EXAMPLE_TOKENS = 157.0
"""Mean tokens of one fine-tuning example of the demo (the shipped training split, through the BPE tokenizer the
pretraining trains): its status reads tokens_per_step 2,510 for batches of 16 (`tests/test_qa.py` checks it
against a fresh demo). A QA batch is this wide, padded, not seq_len: the estimate scales the fine-tune's step by it
(without it the Home page said 11.8 min for a demo that trained 8.6)."""


def demo_pretrain_config(corpus: Path = DEMO_CORPUS, *, steps: int = 300) -> RunConfig:
    """Stage 1: next-token prediction on the unlabeled case reports."""
    return RunConfig(
        name="demo-qa pretrain",
        data=DataConfig(corpus=corpus, tokenizer="bpe", vocab_size=1024),
        model=ModelConfig(arch="gpt", d_model=128, n_heads=4, n_layers=4, seq_len=256, dropout=0.0, copy_head=True),
        train=TrainConfig(batch_size=16, max_steps=steps, lr=3e-3, warmup_steps=100, eval_interval=200,
                          eval_batches=10, log_interval=20, sample_tokens=120, seed=0),
    )


def demo_qa_config(parent: Path, qa_dir: Path = QA_DIR, *, steps: int = QA_STEPS) -> RunConfig:
    """Stage 2: answer-only fine-tuning on the QA training split, starting from `parent`."""
    return RunConfig(
        name="demo-qa fine-tune",
        task="qa",
        parent=parent,
        data=DataConfig(corpus=qa_dir / qa_file("train").name, val_corpus=qa_dir / qa_file("val").name),
        model=ModelConfig(copy_head=True, span_head=True, kind_head=True),
        train=TrainConfig(batch_size=16, max_steps=steps, lr=3e-3, warmup_steps=50, eval_interval=200,
                          eval_batches=10, log_interval=20, seed=0),
    )


def demo_estimates(runs_root: Path | None = None, *, background: bool = False) -> list[Estimate]:
    """The time each stage of the demo takes on this machine (`estimates.estimate`): from earlier demo runs
    under `runs_root` when there are some, else from timing a few steps (in the background with
    `background`). The fine-tune is estimated on its parent's network with its heads, as it trains."""
    pre, qa = demo_pretrain_config(), demo_qa_config(parent=Path("parent"))
    pm = pre.model.model_copy(update={"vocab_size": pre.data.vocab_size})
    qm = pm.model_copy(update={**{h: getattr(qa.model, h) for h in QA_HEADS}, "dropout": qa.model.dropout})
    window = PADDED_SHARE * QA_MEAN_EXAMPLE_TOKENS
    return [estimate(m, train=t, calibrate=True, background=background, runs_root=runs_root, window_tokens=w)
            for m, t, w in ((pm, pre.train, None), (qm, qa.train, window))]


@dataclass
class DemoReport:
    pretrain: Path
    qa: Path
    minutes: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)


EVAL_SPLITS = ("test", "test_unseen_phrasing", "test_unanswerable", "test_note_style")
"""What `demo-qa` scores: unseen values in drilled wording, in unseen wording, questions the context does not
answer (abstention), and cases written as admission notes throughout."""


def run_demo_qa(out: Path | str, *, pretrain_steps: int = 300, qa_steps: int = QA_STEPS,
                evaluate: Iterable[str] = EVAL_SPLITS, overwrite: bool = False,
                callbacks: Iterable[Callback] = (), stop_event: threading.Event | None = None,
                log: Callable[[str], None] = lambda m: None) -> DemoReport:
    """Train both stages into `out`/pretrain and `out`/qa, then score the QA run on the named splits."""
    from genai_core.evaluate.answers import evaluate_qa

    out = Path(out)
    report = DemoReport(out / "pretrain", out / "qa")
    t0 = time.perf_counter()
    log(f"pretraining {report.pretrain} ({pretrain_steps} steps)")
    res = train(demo_pretrain_config(steps=pretrain_steps), report.pretrain, overwrite=overwrite,
                callbacks=callbacks, stop_event=stop_event)
    report.minutes["pretrain"] = (time.perf_counter() - t0) / 60
    if res.state != "completed":
        raise GenAIError(f"pretraining ended {res.state}; resume it with: python -m genai_core train --resume "
                         f"{report.pretrain}")
    t1 = time.perf_counter()
    log(f"fine-tuning {report.qa} for QA ({qa_steps} steps)")
    res = train(demo_qa_config(report.pretrain, steps=qa_steps), report.qa, overwrite=overwrite,
                callbacks=callbacks, stop_event=stop_event)
    report.minutes["qa"] = (time.perf_counter() - t1) / 60
    if res.state != "completed":
        raise GenAIError(f"fine-tuning ended {res.state}; resume it with: python -m genai_core train --resume "
                         f"{report.qa}")
    for split in evaluate:
        t2 = time.perf_counter()
        log(f"scoring {split}")
        report.scores[split] = evaluate_qa(report.qa, QA_DIR / qa_file(split).name)
        report.minutes[f"eval {split}"] = (time.perf_counter() - t2) / 60
    report.minutes["total"] = (time.perf_counter() - t0) / 60
    return report
