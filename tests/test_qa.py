"""QA fine-tuning end to end: prompt format, context selection, answer-only loss, the copy head, the end
marker, the parent link, and the CLI (`train --task qa`, `demo-qa`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from genai_core.clinical.demo import QA_MEAN_EXAMPLE_TOKENS
from genai_core.config import DataConfig, ModelConfig, QALayout, RunConfig, TrainConfig
from genai_core.data.retrieval import select_context, split_sentences
from genai_core.data.tokenization import CharTokenizer
from genai_core.errors import CorpusError, GenAIError
from genai_core.generate import qa
from genai_core.generate.sampling import Sampler
from genai_core.model import IGNORE, state_for_save
from genai_core.models import build_model
from genai_core.qa import prompt as qa_prompt
from genai_core.qa import store as qa_store
from genai_core.qa.finetune import fine_tune_config, init_from_parent
from genai_core.qa.reader import QATargets
from genai_core.runs.folder import Run
from genai_core.train.trainer import train

REPO = Path(__file__).resolve().parents[1]

LONG_CASE = (
    "A 67-year-old woman presented with three days of fever and a productive cough. "
    "She had a history of type 2 diabetes and hypertension. "
    "On examination her temperature was 38.9 C and her heart rate 112 beats per minute. "
    "A chest radiograph showed right lower lobe consolidation. "
    "Blood cultures grew a gram-positive coccus. "
    "She was started on Zanrovimab 500 mg IV twice daily for seven days. "
    "Her oxygen saturation improved over forty-eight hours. "
    "She was discharged home on day six with follow-up in clinic."
)


# --------------------------------------------------------------------------- context selection
def test_split_sentences_keeps_offsets() -> None:
    spans = split_sentences(LONG_CASE)
    assert len(spans) == 8
    assert LONG_CASE[spans[5][0]:spans[5][1]] == "She was started on Zanrovimab 500 mg IV twice daily for seven days."
    assert split_sentences("") == [] and split_sentences("   ") == []


@pytest.mark.parametrize("question, needle", [
    ("Which drug was given, and at what dose?", "Zanrovimab 500 mg"),
    ("What did the chest radiograph show?", "right lower lobe consolidation"),
    ("Where was the patient discharged to?", "discharged home"),
])
def test_selection_keeps_the_sentence_with_the_answer(question: str, needle: str) -> None:
    words = lambda s: len(s.split())  # noqa: E731 - a budget in words keeps the test tokenizer-free
    sel = select_context(question, LONG_CASE, budget=20, count=words)
    assert needle in sel.text
    assert not sel.complete and words(sel.text) <= 20
    # Kept sentences stay in their original order, and their offsets point at them.
    assert sel.spans == sorted(sel.spans)
    assert " ".join(LONG_CASE[a:b] for a, b in sel.spans) == sel.text


@pytest.mark.parametrize("layout", ["context-first", "question-first"])
def test_build_prompt_fits_the_window_and_keeps_the_answer(layout: QALayout) -> None:
    tok = CharTokenizer(set(LONG_CASE + "QA:\nContext?Whichdrugwasgiven"))
    short = qa_prompt.build_prompt(tok, "Which drug was given?", LONG_CASE, seq_len=1024, layout=layout)
    assert not short.selected and short.context == LONG_CASE
    p = qa_prompt.build_prompt(tok, "Which drug was given?", LONG_CASE, seq_len=200, answer_room=40, layout=layout)
    assert p.selected and len(p.ids) <= 160
    assert "Zanrovimab" in p.context
    if layout == "context-first":
        assert p.text.startswith("Context: ") and p.text.endswith("\nQ: Which drug was given?\nA:")
    else:
        assert p.text.startswith("Q: Which drug was given?\nContext: ") and p.text.endswith("\nA:")
    for prompt in (short, p):  # the span head's candidates are found through context_at
        assert prompt.context_at is not None
        assert prompt.text[slice(*prompt.context_at)] == prompt.context


def test_find_span() -> None:
    assert qa_prompt.find_span(LONG_CASE, "Zanrovimab 500 mg") == (LONG_CASE.index("Zanrovimab"),
                                                           LONG_CASE.index("Zanrovimab") + 17)
    assert qa_prompt.find_span(LONG_CASE, "zanrovimab") is not None  # case-insensitive fallback
    assert qa_prompt.find_span(LONG_CASE, "aspirin") is None and qa_prompt.find_span(LONG_CASE, " ") is None
    # Whole words first: the pronoun, not the end of "the" nor the start of "history"; else any occurrence.
    assert qa_prompt.find_span("See the history: he is well.", "he") == (17, 19)
    assert qa_prompt.find_span("See the history: he is well.", "his") == (8, 11)
    assert qa_prompt.find_span("Seen in theatre.", "heat") == (9, 13)


# --------------------------------------------------------------------------- QA store and loss mask
def _store(qa_files: dict[str, Path], tmp_path: Path, seq_len: int = 160) -> qa_store.QAStore:
    tok = CharTokenizer(set("".join(pd.read_csv(qa_files["train"]).astype(str).sum()) + "QA:\nContext?"))
    tok.save(tmp_path / "tok.json")
    cfg = DataConfig(corpus=qa_files["train"], val_corpus=qa_files["val"])
    return qa_store.prepare_qa(cfg, tmp_path / "tok.json", seq_len, "context-first", tmp_path / "cache")


def test_targets_cover_exactly_the_answer_and_end_marker(qa_files: dict[str, Path], tmp_path: Path) -> None:
    store = _store(qa_files, tmp_path)
    rows = pd.read_csv(qa_files["train"], dtype=str)
    assert store.examples("train") == len(rows)
    b = store.batch_of("train", np.arange(6))
    assert b.targets.span is None and b.targets.kind is None  # a model without heads: no reader targets
    tok = store.tokenizer
    for i in range(6):
        y = b.targets.next_ids[i]
        targets = y[y != IGNORE].tolist()
        # The trained targets spell " answer" and then the end marker; nothing of the prompt.
        assert tok.decode(targets[:-1]) == " " + rows.answer[i]
        assert targets[-1] == tok.eot_id
        prompt = qa_prompt.prompt_text(rows.question[i], rows.context[i])
        assert tok.decode(b.x[i][: len(prompt)].tolist()) == prompt
        assert (y[: len(prompt) - 1] == IGNORE).all()
    store.qa_model = False  # a recurrent model: the same next-token ids, as a plain tensor
    torch.testing.assert_close(store.batch_of("train", np.arange(6)).targets, b.targets.next_ids)


def test_answer_only_loss_ignores_the_prompt(qa_files: dict[str, Path], tmp_path: Path) -> None:
    store = _store(qa_files, tmp_path)
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=store.tokenizer.vocab_size, d_model=32, n_heads=2, n_layers=1,
                                    seq_len=160), qa=True)
    b = store.batch_of("train", np.arange(4))
    y = b.targets.next_ids
    _, loss = model(b.x, b.targets)
    logits, _ = model(b.x)  # every position, computed independently of the sparse loss path
    per_token = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.clamp_min(0).reshape(-1), reduction="none")
    mask = y.reshape(-1) != IGNORE
    assert 0 < mask.sum() < mask.numel() / 4
    assert loss.item() == pytest.approx(per_token[mask].mean().item(), rel=1e-5)
    # Changing an answer target changes the loss (the prompt's are IGNORE: they have no value to change).
    first_answer = int((y[0] != IGNORE).nonzero()[0])
    y2 = y.clone()
    y2[0, first_answer] = (y2[0, first_answer] + 1) % store.tokenizer.vocab_size
    assert model(b.x, QATargets(y2))[1].item() != pytest.approx(loss.item(), rel=1e-6)


def test_qa_store_refuses_bad_tables(tmp_path: Path, qa_files: dict[str, Path]) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bin.csv").write_bytes(b"question,context\x00\x01\x02")
    pd.DataFrame({"question": ["q"], "text": ["c"]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(CorpusError, match="is empty"):
        qa_store.read_qa_table(tmp_path / "empty.csv")
    with pytest.raises(CorpusError, match="looks binary"):
        qa_store.read_qa_table(tmp_path / "bin.csv")
    with pytest.raises(CorpusError, match=r"lacks column.*'context'.*'answer'"):
        qa_store.read_qa_table(tmp_path / "cols.csv")
    assert list(qa_store.read_qa_table(qa_files["test"]).columns) == ["question", "context", "answer"]


def test_span_constraint_only_allows_spans_of_the_context() -> None:
    c = qa.SpanConstraint([5, 6, 7, 5, 8], vocab_size=10, end_id=0)
    assert set(c.allowed().nonzero().flatten().tolist()) == {5, 6, 7, 8}  # any start; no empty answer
    c.update(5)
    assert set(c.allowed().nonzero().flatten().tolist()) == {6, 8, 0}  # 5 is followed by 6 or 8, or stop
    c.update(8)
    assert set(c.allowed().nonzero().flatten().tolist()) == {0}  # the context ends: only the end marker
    c = qa.SpanConstraint([5, 6, 7, 5, 8], vocab_size=10, end_id=0)
    for t in (6, 7, 5):
        assert c.allowed()[t]
        c.update(t)
    assert set(c.allowed().nonzero().flatten().tolist()) == {8, 0}


# --------------------------------------------------------------------------- copy head
def test_copy_head_is_a_distribution_and_caches_exactly() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=40, d_model=32, n_heads=4, n_layers=2, seq_len=32,
                                    copy_head=True)).eval()
    x = torch.randint(0, 40, (2, 24))
    full, _ = model(x)
    assert torch.allclose(full.exp().sum(-1), torch.ones(2, 24), atol=1e-5)
    cache = model.new_cache(2, "cpu")
    parts = [model.next_logits(x[:, a:b], cache) for a, b in ((0, 10), (10, 11), (11, 24))]
    assert torch.allclose(torch.stack(parts, 1), full[:, [9, 10, 23]], atol=1e-5)


def test_closed_gate_copies_only_tokens_of_the_context() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=40, d_model=32, n_heads=4, n_layers=2, seq_len=32,
                                    copy_head=True)).eval()
    with torch.no_grad():
        model.copy_gate.bias.fill_(-1e4)  # all mass on copying
    x = torch.tensor([[3, 7, 7, 12, 5]])
    probs = model(x)[0][0, -1].exp()
    assert probs[[3, 7, 12, 5]].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert probs[[i for i in range(40) if i not in (3, 7, 12, 5)]].max().item() < 1e-6
    attn, gate = model.attention_maps(x).copy
    assert attn.shape == (1, 5, 5) and gate.max().item() < 1e-6
    assert torch.triu(attn[0], diagonal=1).abs().max().item() == 0.0  # causal: never copies the future


def test_fine_tune_adds_a_copy_head_and_keeps_the_parent_weights(tiny_qa_runs: dict[str, Path],
                                                                 tmp_path: Path, qa_files: dict[str, Path]) -> None:
    parent = Run(tiny_qa_runs["pretrain"])
    plain = RunConfig(data=DataConfig(corpus=qa_files["corpus"]),
                      model=ModelConfig(d_model=32, n_heads=2, n_layers=1, seq_len=160),
                      train=TrainConfig(max_steps=2, batch_size=2, eval_batches=1, warmup_steps=0, sample_tokens=1))
    train(plain, tmp_path / "plain")
    cfg = fine_tune_config(RunConfig(task="qa", parent=tmp_path / "plain", data=DataConfig(corpus=qa_files["train"]),
                                     model=ModelConfig(copy_head=True, d_model=999 - 999 % 3, n_heads=3,
                                                       pos_encoding="learned")))
    assert cfg.model.copy_head and cfg.model.d_model == 32 and cfg.model.n_layers == 1  # the parent's shape
    assert cfg.parent == (tmp_path / "plain").resolve()
    model = build_model(cfg.model.model_copy(update={"vocab_size": Run(tmp_path / "plain").config().model.vocab_size}))
    init_from_parent(model, Run(tmp_path / "plain"))
    loaded = state_for_save(model)
    for k, v in Run(tmp_path / "plain").load_weights().items():
        assert torch.equal(loaded[k], v), k
    assert "copy_gate.bias" in loaded
    assert parent.config().model.copy_head


def test_fine_tune_needs_a_trained_parent(tmp_path: Path, qa_files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="give parent"):
        RunConfig(task="qa", data=DataConfig(corpus=qa_files["train"]))
    with pytest.raises(GenAIError, match="not found"):
        train(RunConfig(task="qa", parent=tmp_path / "nope", data=DataConfig(corpus=qa_files["train"])),
              tmp_path / "child")
    assert not (tmp_path / "child").exists()  # refused before a folder was made


# --------------------------------------------------------------------------- a fine-tuned model answers
def test_fine_tuned_run_is_linked_and_answers_then_stops(tiny_qa_runs: dict[str, Path],
                                                         qa_files: dict[str, Path]) -> None:
    run = Run(tiny_qa_runs["qa"])
    cfg = run.config()
    assert cfg.task == "qa" and cfg.parent == tiny_qa_runs["pretrain"].resolve()
    assert run.state == "completed"
    metrics = [m for m in run.metrics() if "val_loss" in m]
    assert metrics[-1]["val_loss"] < metrics[0]["val_loss"]
    sample = run.samples()[-1]["text"]
    assert "(expected: " in sample  # live samples of a QA run answer a validation question
    sampler = Sampler.from_run(run, device="cpu")
    test = pd.read_csv(qa_files["test"], dtype=str)
    answers = [qa.answer(sampler, q, c) for q, c in zip(test.question, test.context, strict=True)]
    # The end marker ends generation by itself, long before the token limit.
    assert sum(a.finish_reason == "end" for a in answers) >= 0.9 * len(answers)
    em = np.mean([a.text == gold for a, gold in zip(answers, test.answer, strict=True)])
    assert em >= 0.5, [(a.text, g) for a, g in zip(answers, test.answer, strict=True)][:8]
    hit = next(a for a in answers if a.span is not None)
    ctx = test.context[answers.index(hit)]
    assert ctx[hit.span[0]:hit.span[1]] == hit.text


# --------------------------------------------------------------------------- CLI
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genai_core", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                               "GENAI_RUNS_DIR": str(cwd / "runs")}, timeout=600)


@pytest.mark.slow
def test_cli_fine_tune_and_its_mistakes(tiny_qa_runs: dict[str, Path], qa_files: dict[str, Path],
                                        tmp_path: Path) -> None:
    parent = str(tiny_qa_runs["pretrain"])
    tiny = ["--max-steps", "3", "--batch-size", "2", "--eval-batches", "1", "--warmup-steps", "0",
            "--device", "cpu", "--threads", "1"]
    r = _cli("train", "--task", "qa", "--parent", parent, "--corpus", str(qa_files["train"]), "--val-corpus",
             str(qa_files["val"]), "--out", str(tmp_path / "child"), *tiny, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Run(tmp_path / "child").config().parent == Path(parent).resolve()
    bad = [
        (["--task", "qa", "--corpus", str(qa_files["train"])], "give parent"),
        (["--task", "qa", "--parent", str(tmp_path / "none"), "--corpus", str(qa_files["train"])],
         "is not a run folder"),
        (["--task", "qa", "--parent", parent, "--corpus", str(qa_files["corpus"])], "lacks column"),
        (["--corpus", str(qa_files["corpus"]), "--val-corpus", str(qa_files["val"])], "qa fine-tuning only"),
    ]
    for i, (args, message) in enumerate(bad):
        r = _cli("train", *args, "--out", str(tmp_path / f"bad{i}"), *tiny, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.stderr
        assert not (tmp_path / f"bad{i}").exists()


@pytest.mark.slow
def test_cli_demo_qa_makes_two_linked_runs(tmp_path: Path) -> None:
    r = _cli("demo-qa", "--out", str(tmp_path / "demo"), "--pretrain-steps", "3", "--qa-steps", "3", "--no-eval",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pre, ft = Run(tmp_path / "demo" / "pretrain"), Run(tmp_path / "demo" / "qa")
    assert pre.state == ft.state == "completed"
    m = ft.config().model
    assert ft.config().parent == pre.path.resolve() and m.copy_head and m.span_head and m.kind_head
    assert "blood type" in m.question_kinds and "age" in m.question_kinds  # from the bundled training file
    # The example width the Home page's estimate assumes is the one the shipped split has.
    mean_example = ft.read_status_raw()["tokens_per_step"] / ft.config().train.batch_size
    assert mean_example == pytest.approx(QA_MEAN_EXAMPLE_TOKENS, rel=0.05)
    # Scored as the demo scores it: by the span head, on the note-style split too.
    r = _cli("eval", "--run", str(ft.path), "--qa", str(REPO / "assets" / "qa" / "test_note_style.csv"),
             "--limit", "3", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["method"] == "span"
    r = _cli("demo-qa", "--out", str(tmp_path / "demo"), "--qa-steps", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--qa-steps must be at least 1" in r.stderr
    r = _cli("demo-qa", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert r.returncode == 2 and "already exist" in r.stderr
    assert math.isfinite(ft.summary().get("best_val_loss") or float("nan"))


def test_attention_view_shows_where_the_copy_head_copied_from(tiny_qa_runs: dict[str, Path],
                                                               qa_files: dict[str, Path]) -> None:
    from genai_core.generate.inspection import answer_attention

    sampler = Sampler.from_run(tiny_qa_runs["qa"], device="cpu")
    row = pd.read_csv(qa_files["test"], dtype=str).iloc[0]
    out = qa.answer(sampler, row.question, row.context)
    answer_ids = sampler.tokenizer.encode(" " + out.text).ids
    view = answer_attention(sampler.model, out.prompt.ids, answer_ids)
    assert view.copy is not None and view.copied is not None
    assert view.copy.shape == (len(answer_ids), len(out.prompt.ids))
    assert torch.all((view.copied >= 0) & (view.copied <= 1))
    # The first answer token can only copy from the prompt; later ones may also point at earlier answer tokens.
    assert view.copy[0].sum().item() == pytest.approx(1.0, abs=1e-4)
    assert torch.all(view.copy.sum(-1) <= 1 + 1e-4)
