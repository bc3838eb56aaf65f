"""The span head: extractive answers with start/end pointers, "not stated" as a pointer of its own, and the
question-kind head.

What the span head learns from each example (`qa.reader_targets`), the head's candidates and the best-span
search (start <= end, inside the context, whole words), and a tiny real model fine-tuned with both heads that
answers with spans, says "not stated" when the context does not hold the answer, tells question kinds apart,
and is scored with either answer method by `evaluate_qa` and the CLI.
"""

from __future__ import annotations

import json
import random
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from conftest import qa_records

from genai_core.clinical import synthetic as syn
from genai_core.config import DataConfig, ModelConfig, QALayout, RunConfig, TrainConfig
from genai_core.data.tokenization import CharTokenizer, train_tokenizer
from genai_core.errors import GenAIError
from genai_core.evaluate.answers import evaluate_qa
from genai_core.evaluate.scoring import NOT_STATED, OUT_OF_SCOPE_KIND
from genai_core.generate.extractive import best_spans, has_span_head, read_answer
from genai_core.generate.inspection import QA_TEMPLATES
from genai_core.generate.sampling import Sampler
from genai_core.model import IGNORE
from genai_core.qa.prompt import build_prompt, is_not_stated
from genai_core.qa.reader import QAGPT
from genai_core.qa.store import QAStore, span_target
from genai_core.train.trainer import train

ROOT = Path(__file__).resolve().parent.parent
BLOOD = "What is the patient's blood type?"
OUT_OF_SCOPE = ("Tell me a joke.", "What is the weather like today?", "Who is the patient's GP?")
"""Questions of kind `other` in the span fixture's training file: about nothing the model answers."""
CONTEXT = "A 52-year-old woman was seen. Zorbamycin 40 mg IV was given. She went home."


# --------------------------------------------------------------------------- targets
@pytest.fixture(scope="module")
def bpe() -> object:
    texts = [r["context"] for r in qa_records(300, 3)] + [CONTEXT] * 20
    return train_tokenizer("bpe", texts, vocab_size=300)


@pytest.mark.parametrize("layout", ["context-first", "question-first"])
@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_reader_targets_point_at_exactly_the_answer_tokens(kind: str, layout: QALayout, bpe: object) -> None:
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \n"
    tok = CharTokenizer(sorted(alphabet)) if kind == "char" else bpe
    for question, ans in (("Which drug?", "Zorbamycin 40 mg IV"), ("How old?", "52"), ("Sex?", "woman")):
        p = build_prompt(tok, question, CONTEXT, 200, layout=layout)
        query, lo, hi, first, last = span_target(p, p.token_offsets(tok), ans)
        assert query == len(p.ids) - 1
        assert tok.decode(p.ids[lo:hi]).strip() == CONTEXT  # the context's tokens, and nothing else
        assert lo <= first <= last < hi
        assert tok.decode(p.ids[first:last + 1]).strip() == ans
    p = build_prompt(tok, BLOOD, CONTEXT, 200, layout=layout)
    q, lo, hi, first, last = span_target(p, p.token_offsets(tok), NOT_STATED)
    assert first == last == q  # "not stated" points at the answer position itself
    assert span_target(p, p.token_offsets(tok), "warfarin")[3:] == (-1, -1)  # not in the context: no span loss
    if kind == "bpe":  # an answer starting inside a token has no whole-token span to point at
        pieces = [x.strip() for x in tok.token_strings(p.ids[lo:hi])]
        inner = next(x[1:] for x in pieces if len(x) > 3 and x.isalpha())
        assert span_target(p, p.token_offsets(tok), inner)[3:] == (-1, -1), inner


def test_best_spans_start_before_they_end_on_whole_words() -> None:
    pieces = [" Zorb", "amycin", " 40", " mg", ".", " home"]
    log_start = torch.tensor([0.0, 5.0, -1.0, -2.0, 9.0, -3.0]).log_softmax(0)  # "amycin" and "." tempt it
    log_end = torch.tensor([4.0, 0.0, -1.0, 3.0, 9.0, -3.0]).log_softmax(0)
    spans = best_spans(log_start, log_end, pieces, top=20)
    assert spans and all(s <= e for s, e, _ in spans)
    texts = ["".join(pieces[s:e + 1]).strip() for s, e, _ in spans]
    assert texts[0] == "Zorbamycin 40 mg"  # neither inside a word nor ending on punctuation
    assert not any(t.startswith(("amycin", ".")) or t.endswith((".", "Zorb")) for t in texts), texts
    scores = [v for _, _, v in spans]
    assert scores == sorted(scores, reverse=True)


def test_span_head_candidates_are_the_context_and_the_answer_position() -> None:
    torch.manual_seed(0)
    model = QAGPT(ModelConfig(vocab_size=50, d_model=32, n_heads=2, n_layers=1, seq_len=32, span_head=True)).eval()
    idx = torch.randint(0, 50, (2, 20))
    h = model.hidden(idx)
    start, end = model.span_logits(h, torch.tensor([19, 15]), torch.tensor([5, 3]), torch.tensor([12, 9]))
    for logits in (start, end):
        finite = torch.isfinite(logits)
        assert finite[0].nonzero().flatten().tolist() == [*range(5, 12), 19]
        assert finite[1].nonzero().flatten().tolist() == [*range(3, 9), 15]
    with pytest.raises(ValueError, match="gpt"):
        ModelConfig(arch="lstm", span_head=True)


def test_span_keys_read_ahead_but_never_past_the_answer_position() -> None:
    """A key also reads the `span_lookahead` tokens after its own (a lead-in's first word can tell it is not the
    answer), but never a token after the answer position: in training that is the answer itself."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, d_model=32, n_heads=2, n_layers=1, seq_len=32, span_head=True,
                      span_lookahead=3)
    query, lo, hi = torch.tensor([17]), torch.tensor([4]), torch.tensor([14])
    idx = torch.randint(0, 50, (1, 24))

    def changed(model: QAGPT, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Which positions' span keys, and which candidates' start or end logits, move when the token at
        `position` (and, at the answer, every later one) changes."""
        other = idx.clone()
        moved = slice(position, position + 1 if position < 18 else None)
        other[0, moved] = (other[0, moved] + 1) % 50
        with torch.no_grad():
            hs = [model.hidden(ids) for ids in (idx, other)]
            keys = [model.span_keys(h, query) for h in hs]
            logits = [torch.stack(model.span_logits(h, query, lo, hi)) for h in hs]
        return (keys[0] != keys[1]).any(-1)[0], (logits[0] != logits[1]).any(0)[0]

    model = QAGPT(cfg).eval()
    assert not changed(model, 18)[1].any()  # the "answer" after the query position moves nothing
    assert changed(model, 10)[0][:10].tolist() == [False] * 7 + [True] * 3  # three keys read token 10 ahead
    blind = QAGPT(cfg.model_copy(update={"span_lookahead": 0})).eval()
    assert not hasattr(blind, "span_ahead") and not changed(blind, 10)[0][:10].any()
    saved = RunConfig(data=DataConfig(corpus="x.txt"), model=cfg).model_dump(mode="json")
    del saved["model"]["span_lookahead"]  # a run saved before the knob: its keys read their own token alone
    assert RunConfig.from_saved(json.dumps(saved)).model.span_lookahead == 0


# --------------------------------------------------------------------------- a tiny model with both heads
@pytest.fixture(scope="module")
def span_run(tmp_path_factory: pytest.TempPathFactory, tiny_qa_runs: dict[str, Path]) -> Path:
    """The tiny pretrained model fine-tuned with a span head and a kind head, a fifth of its questions about what
    the case never says."""
    d = tmp_path_factory.mktemp("span")
    rng = random.Random(5)
    rows = qa_records(400, 0)
    for r in rows:
        r["kind"] = "age" if r["question"].startswith("How old") else "drug"
    picked = rng.sample(rows, 160)
    for r in picked[:100]:
        r.update(question=BLOOD, answer=syn.NOT_STATED, kind="blood type")
    for i, r in enumerate(picked[100:]):
        r.update(question=OUT_OF_SCOPE[i % len(OUT_OF_SCOPE)], answer=syn.NOT_STATED, kind=OUT_OF_SCOPE_KIND)
    pd.DataFrame(rows).to_csv(d / "train.csv", index=False)
    pd.DataFrame(qa_records(40, 1)).to_csv(d / "val.csv", index=False)
    torch.set_num_threads(1)
    cfg = RunConfig(task="qa", parent=tiny_qa_runs["pretrain"],
                    data=DataConfig(corpus=d / "train.csv", val_corpus=d / "val.csv"),
                    model=ModelConfig(span_head=True, kind_head=True),
                    train=TrainConfig(max_steps=300, batch_size=8, eval_interval=150, eval_batches=2,
                                      log_interval=20, warmup_steps=10, lr=3e-3, seed=0))
    train(cfg, d / "qa")
    return d / "qa"


def test_the_fine_tune_learns_spans_kinds_and_not_stated(span_run: Path, tmp_path: Path) -> None:
    sampler = Sampler.from_run(span_run)
    cfg = sampler.model.config
    assert cfg.span_head and cfg.question_kinds == ["age", "blood type", "drug", "other"]  # the file's kinds
    assert has_span_head(sampler.model)
    rows = qa_records(30, 8)
    got = [read_answer(sampler.model, sampler.tokenizer, r["question"], r["context"]) for r in rows]
    for g, r in zip(got, rows, strict=True):
        assert is_not_stated(g.text) or (g.span is not None and r["context"][g.span[0]:g.span[1]] == g.text)
        assert all(c.span is not None for c in g.choices)  # every candidate is a span of the context
        assert 0.0 <= g.confidence <= 1.0
    exact = sum(g.text == r["answer"] for g, r in zip(got, rows, strict=True))
    assert exact >= 24, [(g.text, r["answer"]) for g, r in zip(got, rows, strict=True)]
    kinds = [g.kind for g, r in zip(got, rows, strict=True)
             if g.kind == ("age" if r["question"].startswith("How old") else "drug")]
    assert len(kinds) >= 27
    contexts = [r["context"] for r in qa_records(10, 7)]
    unanswered = [read_answer(sampler.model, sampler.tokenizer, BLOOD, c) for c in contexts]
    assert sum(is_not_stated(u.text) for u in unanswered) >= 8, [u.text for u in unanswered]
    assert all(u.kind == "blood type" for u in unanswered)
    # Read as out of scope, a question is answered "not stated" whatever span the span head would pick.
    outside = [read_answer(sampler.model, sampler.tokenizer, q, c) for q in OUT_OF_SCOPE for c in contexts[:4]]
    assert sum(o.kind == OUT_OF_SCOPE_KIND for o in outside) >= 10, [(o.kind, o.text) for o in outside]
    assert all(is_not_stated(o.text) and o.out_of_scope for o in outside if o.kind == OUT_OF_SCOPE_KIND)
    assert not any(g.out_of_scope for g in got)


def test_a_question_read_as_out_of_scope_is_not_stated_whatever_the_span_head_says(span_run: Path) -> None:
    sampler = Sampler.from_run(span_run)
    model = sampler.model
    row = qa_records(1, 12)[0]
    assert read_answer(model, sampler.tokenizer, row["question"], row["context"]).text == row["answer"]
    other = model.config.question_kinds.index(OUT_OF_SCOPE_KIND)
    with torch.no_grad():  # the kind head made sure the question is about nothing it knows; the span head untouched
        model.kind_head.bias[other] += 100.0
    try:
        got = read_answer(model, sampler.tokenizer, row["question"], row["context"])
    finally:
        with torch.no_grad():
            model.kind_head.bias[other] -= 100.0
    assert got.text == NOT_STATED and got.out_of_scope and got.kind == OUT_OF_SCOPE_KIND
    assert got.choices and got.choices[0].text == row["answer"]  # what the span head would have said is kept


def test_a_span_on_a_lone_pronoun_is_answered_as_the_sex_it_gives_with_the_pronoun_highlighted(
        span_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_core.generate import extractive

    sampler = Sampler.from_run(span_run)
    context = "A 40-year-old was seen. Calfiformin was given. She went home."
    real_best_spans = extractive.best_spans

    def on_the_pronoun(log_start: torch.Tensor, log_end: torch.Tensor, pieces: list[str] | None, top: int,
                       **kw: object) -> list[tuple[int, int, float]]:
        # The span head's choice forced onto "She", where a model taught pronoun answers points; the rest of
        # the reading is the real model's.
        assert pieces is not None
        starts = [sum(map(len, pieces[:k])) for k in range(len(pieces) + 1)]  # token -> its first character
        at = "".join(pieces).index(" She ") + 1
        first, last = starts.index(at), starts.index(at + 3) - 1
        return [(first, last, 0.0), *real_best_spans(log_start, log_end, pieces, top, **kw)][:top]
    monkeypatch.setattr(extractive, "best_spans", on_the_pronoun)
    got = read_answer(sampler.model, sampler.tokenizer, "Which drug was given?", context)
    assert got.text == "female" and got.read_from == "She"
    assert got.span == (context.index("She"), context.index("She") + 3)  # the pronoun is what the Chat highlights
    monkeypatch.setattr(extractive, "best_spans", real_best_spans)
    assert read_answer(sampler.model, sampler.tokenizer, "Which drug was given?", context).read_from is None


def test_a_question_read_as_sex_is_answered_with_a_sex_word_or_not_stated(
        span_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_core.evaluate.scoring import ANSWER_SHAPES, sex_in
    from genai_core.generate import extractive

    sampler = Sampler.from_run(span_run)
    context = "A 40-year-old woman was seen. Calfiformin was given. She went home."
    question = "Was the patient who was given the drug a man or a woman?"
    # The kind head forced to read it as a sex question (as a real kind head reads "Sex?"): a sex word of the
    # context is the answer, never the drug the span head of this tiny model may point at.
    monkeypatch.setattr(extractive, "_kind", lambda raw, reading: ("sex", 0.99))
    got = read_answer(sampler.model, sampler.tokenizer, question, context)
    assert sex_in(got.text) == "female" and got.kind == "sex"  # "woman", "40-year-old woman", "She" read as female
    assert got.choices and all(ANSWER_SHAPES["sex"](c.text) for c in got.choices)
    assert is_not_stated(read_answer(sampler.model, sampler.tokenizer, question,
                                     "A 40-year-old was seen. Calfiformin was given.").text)  # no sex said
    monkeypatch.setattr(extractive, "_kind", lambda raw, reading: ("sex", 0.3))  # unsure: no shape binds
    assert sex_in(read_answer(sampler.model, sampler.tokenizer, "Which drug was given?", context).text) is None


def test_a_sex_or_age_said_in_the_context_is_answered_even_where_the_span_head_leans_to_not_stated(
        span_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_core.evaluate.scoring import sex_in
    from genai_core.generate import extractive

    sampler = Sampler.from_run(span_run)
    model = sampler.model
    real = type(model).span_logits

    def leaning_to_null(self: Any, hidden: torch.Tensor, query: torch.Tensor, lo: torch.Tensor,
                        hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = (t.clone() for t in real(self, hidden, query, lo, hi))
        start[0, query[0]] += 50.0  # "the context does not say", by far
        end[0, query[0]] += 50.0
        return start, end

    monkeypatch.setattr(type(model), "span_logits", leaning_to_null)
    said = "A 3-month-old was brought in. Calfiformin 40 mg was given. She went home."
    silent = "A baby was brought in. Calfiformin 40 mg was given and the baby went home."
    monkeypatch.setattr(extractive, "_kind", lambda raw, reading: ("sex", 0.99))
    got = read_answer(model, sampler.tokenizer, "What sex is the baby?", said)
    assert sex_in(got.text) == "female"  # "She" read as female, or a span holding it
    assert is_not_stated(read_answer(model, sampler.tokenizer, "What sex is the baby?", silent).text)
    monkeypatch.setattr(extractive, "_kind", lambda raw, reading: ("age", 0.99))
    got = read_answer(model, sampler.tokenizer, "How old was the baby?", said)
    assert "3-month-old" in got.text and "40" not in got.text  # an age phrase, not any number
    assert is_not_stated(read_answer(model, sampler.tokenizer, "How old was the baby?", silent).text)  # 40 mg is no age
    monkeypatch.setattr(extractive, "_kind", lambda raw, reading: ("drug", 0.99))  # other kinds: the null answer holds
    assert is_not_stated(read_answer(model, sampler.tokenizer, "Which drug was given?", said).text)


def test_a_question_read_as_sex_that_names_no_sex_is_out_of_scope(span_run: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_core.evaluate.scoring import sex_in
    from genai_core.generate import extractive

    sampler = Sampler.from_run(span_run)
    context = "A 19-year-old student was seen. Calfiformin was given. She went home."
    monkeypatch.setattr(extractive, "_kind", lambda raw, reading: ("sex", 0.99))  # as real kind heads read it
    got = read_answer(sampler.model, sampler.tokenizer, "Which school does she attend?", context)
    assert got.text == NOT_STATED and got.out_of_scope and got.kind == OUT_OF_SCOPE_KIND and got.overruled == "sex"
    got = read_answer(sampler.model, sampler.tokenizer, "What gedner is she?", context)  # a slip of the keys names it
    assert sex_in(got.text) == "female" and got.overruled is None


def test_evaluation_answers_with_the_span_head_or_by_generating(span_run: Path, tmp_path: Path) -> None:
    rows = [{**r, "kind": "age" if r["question"].startswith("How old") else "drug"} for r in qa_records(20, 9)]
    rows += [{"question": BLOOD, "context": r["context"], "answer": NOT_STATED, "kind": "blood type"}
             for r in qa_records(10, 10)]
    pd.DataFrame(rows).to_csv(tmp_path / "mixed.csv", index=False)
    span = evaluate_qa(span_run, tmp_path / "mixed.csv", save=False)
    assert span["method"] == "span"  # "auto" with a span head
    assert {p["finish_reason"] for p in span["predictions"]} == {"span"}
    assert all("understood_as" in p and 0 <= p["confidence"] <= 1 for p in span["predictions"])
    assert span["metrics"]["exact_match"] >= 70 and span["abstention"]["abstained"] >= 80
    generated = evaluate_qa(span_run, tmp_path / "mixed.csv", save=False, method="generate")
    assert generated["method"] == "generate"
    assert {p["finish_reason"] for p in generated["predictions"]} != {"span"}
    with pytest.raises(GenAIError, match="unknown answer method"):
        evaluate_qa(span_run, tmp_path / "mixed.csv", save=False, method="guess")


def test_cli_method_flag_and_a_run_without_a_span_head(span_run: Path, tiny_qa_runs: dict[str, Path],
                                                       qa_files: dict[str, Path], tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "genai_core", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    out = cli("eval", "--run", str(span_run), "--qa", str(qa_files["test"]), "--limit", "5", "--method", "span",
              "--predictions", str(tmp_path / "p.csv"))
    assert out.returncode == 0, out.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 5
    bad = cli("eval", "--run", str(tiny_qa_runs["qa"]), "--qa", str(qa_files["test"]), "--method", "span")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: this run has no span head: answer with --method generate, or "
                                               "fine-tune with --span-head"]


def test_store_serves_reader_targets_only_to_a_model_with_heads(span_run: Path) -> None:
    [meta] = (span_run.parent / ".tokens").glob("qa-*/meta.json")  # the store this fine-tune trained on
    store = QAStore(meta.parent)
    assert store.kinds == ["age", "blood type", "drug", "other"]
    rng = __import__("numpy").random.default_rng(0)
    assert store.batch("train", 4, 160, rng).targets.span is None  # a model without heads gets plain batches
    store.reader = True
    b = store.batch("train", 4, 160, rng)
    span, kind = b.targets.span, b.targets.kind
    assert span is not None and all(t.shape == (4,) for t in span) and kind is not None and kind.shape == (4,)
    query, lo, hi, first, last = span
    assert bool(((first == query) | ((lo <= first) & (first <= last) & (last < hi))).all())
    assert bool((b.targets.next_ids[torch.arange(4), query] != IGNORE).all())  # the answer position predicts
    assert store.eval_batch(rng.integers(0, 4, 4), 160).targets.span is None  # validation: the answer's loss alone


# --------------------------------------------------------------------------- the Chat page
def test_chat_page_answers_with_the_span_head_and_says_not_stated(span_run: Path, app_env: Path) -> None:
    from streamlit.testing.v1 import AppTest

    shutil.copytree(span_run, app_env / "span-qa")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/chat.py")
    at.run()
    assert at.radio(key="chat_decoding").value == "span"  # the default for a run with a span head
    assert not [s for s in at.slider if s.key == "chat_temperature"]  # nothing is sampled in this mode
    row = qa_records(5, 11)[0]
    at.session_state["chat_context"] = row["context"]

    def ask(question: str) -> dict:
        at.chat_input[0].set_value(question).run()
        assert not at.exception, [e.value for e in at.exception]
        return [m for m in at.session_state["chat_messages"] if m["role"] == "assistant"][-1]

    reply = ask(row["question"])
    assert reply["finish"] == "span" and reply["content"] == row["answer"]
    assert row["context"][reply["qa_span"][0]:reply["qa_span"][1]] == reply["content"]
    assert any(c.value.startswith("Understood as: **") for c in at.caption)
    assert any(row["answer"] in m.value and "%" in m.value for m in at.markdown)  # the span and its probability
    reply = ask(BLOOD)
    assert reply["content"] == NOT_STATED
    assert any(i.value.startswith("**Not stated** in the context") for i in at.info)
    reply = ask(OUT_OF_SCOPE[0])  # read as out of scope: the Chat says what the model answers instead
    assert reply["content"] == NOT_STATED and reply["kind"] == OUT_OF_SCOPE_KIND, reply
    assert any(c.value.startswith("Understood as: **other**") for c in at.caption)
    assert any("not trained to answer this kind of question. It answers questions about age, drugs;" in i.value
               for i in at.info), [i.value for i in at.info]
    at.radio(key="chat_decoding").set_value("greedy").run()  # a generated answer is understood the same way
    reply = ask(row["question"])
    assert reply["finish"] != "span" and reply["kind"] in ("age", "drug")
    assert sum(c.value.startswith("Understood as: **") for c in at.caption) >= 4
    messages = len(at.session_state["chat_messages"])
    at.session_state["chat_context"] = "   "
    at.chat_input[0].set_value("How old was the patient?").run()
    assert any("the context is empty" in e.value for e in at.error)
    assert len(at.session_state["chat_messages"]) == messages  # no answer to an empty context

    # The prompt-format box shows the chosen run's layout, unless the person wrote their own.
    assert at.text_area(key="chat_template").value == QA_TEMPLATES["context-first"]
    shutil.copytree(span_run, app_env / "legacy-qa")
    cfg = json.loads((app_env / "legacy-qa" / "config.json").read_text())
    del cfg["model"]["qa_layout"]  # fine-tuned before the layout knob: question first
    (app_env / "legacy-qa" / "config.json").write_text(json.dumps(cfg))
    at.run()
    at.selectbox(key="chat_run").set_value("legacy-qa").run()
    assert at.text_area(key="chat_template").value == QA_TEMPLATES["question-first"]
    at.text_area(key="chat_template").set_value("C: {context} Q: {question} A:").run()
    at.selectbox(key="chat_run").set_value("span-qa").run()
    assert at.text_area(key="chat_template").value == "C: {context} Q: {question} A:"


def test_a_kind_head_needs_a_kind_column(tiny_qa_runs: dict[str, Path], qa_files: dict[str, Path]) -> None:
    from genai_core.qa.finetune import fine_tune_config

    cfg = RunConfig(task="qa", parent=tiny_qa_runs["pretrain"], data=DataConfig(corpus=qa_files["train"]),
                    model=ModelConfig(kind_head=True))
    with pytest.raises(GenAIError, match=r"has none .* switch the kind head off"):
        fine_tune_config(cfg)
    assert fine_tune_config(cfg.model_copy(update={"model": ModelConfig(span_head=True)})).model.span_head


def test_kinds_given_by_the_caller_must_be_the_files(span_run: Path, tiny_qa_runs: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """The Train page passes the kinds it read; the trainer holds them against the prepared store's."""
    train_csv = span_run.parent / "train.csv"  # the span fixture's file: kinds age, blood type, drug
    stale = RunConfig(task="qa", parent=tiny_qa_runs["pretrain"], data=DataConfig(corpus=train_csv),
                      model=ModelConfig(kind_head=True, question_kinds=["age", "drug"]),
                      train=TrainConfig(max_steps=1, batch_size=2, seed=0))
    with pytest.raises(GenAIError, match="question kinds changed"):
        train(stale, tmp_path / "stale")


def test_runs_saved_before_the_layout_knob_keep_reading_the_question_first(span_run: Path,
                                                                          tiny_qa_runs: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    """A config.json without `qa_layout` was fine-tuned question first: it is answered so, and its children are
    fine-tuned in today's layout."""
    def legacy_copy(run: Path) -> Path:
        shutil.copytree(run, tmp_path / run.name)
        cfg = json.loads((tmp_path / run.name / "config.json").read_text())
        del cfg["model"]["qa_layout"]
        (tmp_path / run.name / "config.json").write_text(json.dumps(cfg))
        return tmp_path / run.name

    assert Sampler.from_run(span_run).model.config.qa_layout == "context-first"
    old = Sampler.from_run(legacy_copy(span_run))
    assert old.model.config.qa_layout == "question-first"
    got = read_answer(old.model, old.tokenizer, "How old is she?", CONTEXT)
    assert got.prompt.text.startswith("Q: How old is she?")  # (a line break is a space to a char tokenizer)
    assert 0 < got.prompt.context_tokens(got.prompt.token_offsets(old.tokenizer))[0]  # pointing past the question
    from genai_core.qa.finetune import fine_tune_config

    child = fine_tune_config(RunConfig(task="qa", parent=legacy_copy(tiny_qa_runs["pretrain"]),
                                       data=DataConfig(corpus=span_run.parent / "train.csv")))
    assert child.model.qa_layout == "context-first"
    again = fine_tune_config(RunConfig(task="qa", parent=span_run, model=ModelConfig(span_lookahead=1),
                                       data=DataConfig(corpus=span_run.parent / "train.csv")))
    assert again.model.span_lookahead == 3  # a parent's span head keeps the shape of its keys
