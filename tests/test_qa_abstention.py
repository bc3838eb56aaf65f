"""Questions the context does not answer, and answers that stop on word boundaries.

The generator's unanswerable rows (and the shipped files' `kind` column), the span constraint's word
boundaries and its NOT_STATED track, the evaluation's abstention figures, and a tiny real model fine-tuned
with unanswerable rows that says "not stated" when the context does not hold the answer.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import qa_records

from genai_core.clinical import synthetic as syn
from genai_core.config import DataConfig, RunConfig, TrainConfig
from genai_core.data.tokenization import CharTokenizer, train_tokenizer
from genai_core.errors import GenAIError
from genai_core.evaluate.answers import evaluate_qa
from genai_core.evaluate.scoring import OUT_OF_SCOPE_KIND
from genai_core.generate.qa import SpanConstraint, answer, answer_confidence
from genai_core.generate.sampling import Sampler
from genai_core.qa.prompt import check_question, is_not_stated
from genai_core.qa.store import read_qa_table
from genai_core.train.trainer import train

ASSETS = Path(__file__).resolve().parent.parent / "assets"


# --------------------------------------------------------------------------- the generator
def test_train_split_mixes_in_unanswerable_questions_whose_context_lacks_the_answer() -> None:
    # Out-of-scope questions are extra rows beside these (tests/test_synthetic.py): left out of the share.
    rows = [r for r in syn.generate_qa("train", 1500) if r.kind != OUT_OF_SCOPE_KIND]
    unanswerable = [r for r in rows if r.answer == syn.NOT_STATED]
    assert 0.20 < len(unanswerable) / len(rows) < 0.30  # synthetic.UNANSWERABLE_SHARE: a quarter
    cases = {c.id: c for c in syn.qa_cases("train", 1000)}
    windowed = [r for r in unanswerable if r.kind in syn.QUESTIONS]
    absent = [r for r in unanswerable if r.kind in syn.ABSENT_QUESTIONS]
    assert windowed and absent
    for r in windowed:
        assert cases[r.case_id].answer(r.kind).lower() not in r.context.lower(), r
        assert r.kind != "sex"  # a pronoun would still answer it
    answerable = [r for r in rows if r.answer != syn.NOT_STATED]
    assert all(r.answer in r.context for r in answerable)


def test_scored_test_splits_stay_answerable_and_the_abstention_split_is_all_unanswerable() -> None:
    for split in ("test", "test_unseen_phrasing"):
        assert not any(r.answer == syn.NOT_STATED for r in syn.generate_qa(split, 200))
    rows = syn.generate_qa("test_unanswerable", 200)
    assert all(r.answer == syn.NOT_STATED for r in rows)
    train_questions = {r.template for r in syn.generate_qa("train", 3000)}
    assert {r.template for r in syn.generate_qa("test_unseen_phrasing", 300)}.isdisjoint(train_questions)


def test_shipped_splits_carry_a_kind_column() -> None:
    for name in ("train", "test", "test_unseen_phrasing", "test_unanswerable"):
        df = read_qa_table(ASSETS / syn.qa_file(name))  # the app's reader: the training split is Parquet
        assert list(df.columns) == list(syn.QA_HEADER)
        assert df["kind"].str.len().min() > 0
    unanswerable = pd.read_csv(ASSETS / "qa" / "test_unanswerable.csv", dtype=str, keep_default_na=False)
    assert set(unanswerable["answer"]) == {syn.NOT_STATED}


# --------------------------------------------------------------------------- the span constraint
def _decode_greedy(c: SpanConstraint, tok: CharTokenizer, wanted: str) -> list[bool]:
    """Feed `wanted` token by token; whether each token was allowed, then whether the end was."""
    ok = []
    for i in tok.encode(wanted).ids:
        ok.append(bool(c.allowed()[i]))
        c.update(i)
    ok.append(bool(c.allowed()[tok.eot_id]))
    return ok


def test_answers_start_and_end_on_word_boundaries_only() -> None:
    context = "He was given Zoravimab 40 mg, then infiltrates cleared."
    tok = CharTokenizer(sorted(set(context + " not stated")))
    assert all(_decode_greedy(SpanConstraint.for_context(tok, context), tok, " Zoravimab"))
    assert not _decode_greedy(SpanConstraint.for_context(tok, context), tok, " Zoravi")[-1]  # no end mid-word
    assert not _decode_greedy(SpanConstraint.for_context(tok, context), tok, "ravimab")[0]  # no start mid-word
    assert _decode_greedy(SpanConstraint.for_context(tok, context), tok, " infiltrates")[-1]
    assert not _decode_greedy(SpanConstraint.for_context(tok, context), tok, " infiltrat")[-1]
    assert all(_decode_greedy(SpanConstraint.for_context(tok, context), tok, " 40 mg"))
    glued = "Pt 52M, given 40mg."  # ward shorthand: a letter meeting a digit is a boundary
    tok = CharTokenizer(sorted(set(glued + " not stated")))
    assert all(_decode_greedy(SpanConstraint.for_context(tok, glued), tok, " 52"))
    assert all(_decode_greedy(SpanConstraint.for_context(tok, glued), tok, "40"))
    assert not _decode_greedy(SpanConstraint.for_context(tok, glued), tok, " 5")[-1]


def test_bpe_answers_end_on_word_boundaries() -> None:
    context = "A woman from Colorado was brought in by her mother with infiltrates."
    tok = train_tokenizer("bpe", [context] * 20 + ["Colo rad o infil trat es"] * 5 + [" not stated"] * 5, 300)
    c = SpanConstraint.for_context(tok, context)
    ids = tok.encode(" Colorado").ids
    for i in ids:
        assert c.allowed()[i]
        c.update(i)
    assert c.allowed()[tok.eot_id]
    pieces = tok.token_strings(tok.encode(" " + context).ids)
    if any(p in ("Colo", " Colo") for p in pieces):  # the word is split: stopping inside it is refused
        c = SpanConstraint.for_context(tok, context)
        first = tok.encode(" Colorado").ids[0]
        c.update(first)
        assert not c.allowed()[tok.eot_id]


def test_not_stated_is_always_open_and_ends_only_when_whole() -> None:
    context = "Aspirin was given."
    tok = CharTokenizer(sorted(set(context + " not stated")))
    assert all(_decode_greedy(SpanConstraint.for_context(tok, context), tok, " not stated"))
    assert not _decode_greedy(SpanConstraint.for_context(tok, context), tok, " not sta")[-1]


def test_question_checks_and_helpers() -> None:
    with pytest.raises(GenAIError, match="context is empty"):
        check_question("How old is he?", "  \n ")
    with pytest.raises(GenAIError, match="has no words"):
        check_question("?!", "He is 40.")
    check_question("age", "He is 40.")
    assert is_not_stated("Not  stated") and not is_not_stated("stated")
    assert answer_confidence([]) is None and abs(answer_confidence([0.5, 0.5]) - 0.5) < 1e-9


# --------------------------------------------------------------------------- a tiny model that abstains
BLOOD = "What is the patient's blood type?"


@pytest.fixture(scope="module")
def abstaining_run(tmp_path_factory: pytest.TempPathFactory, tiny_qa_runs: dict[str, Path]) -> Path:
    """The tiny pretrained model fine-tuned on its QA rows plus a fifth asking what the case never says."""
    d = tmp_path_factory.mktemp("abstain")
    rng = random.Random(5)
    rows = qa_records(400, 0)
    for r in rng.sample(rows, 100):
        r.update(question=BLOOD, answer=syn.NOT_STATED)
    pd.DataFrame(rows).to_csv(d / "train.csv", index=False)
    val = qa_records(40, 1)
    pd.DataFrame(val).to_csv(d / "val.csv", index=False)
    torch.set_num_threads(1)
    cfg = RunConfig(task="qa", parent=tiny_qa_runs["pretrain"],
                    data=DataConfig(corpus=d / "train.csv", val_corpus=d / "val.csv"),
                    train=TrainConfig(max_steps=400, batch_size=8, eval_interval=200, eval_batches=2,
                                      log_interval=20, warmup_steps=10, lr=3e-3, seed=0))
    train(cfg, d / "qa")
    return d / "qa"


def test_a_tiny_model_says_not_stated_when_the_context_does_not_answer(abstaining_run: Path,
                                                                       tmp_path: Path) -> None:
    sampler = Sampler.from_run(abstaining_run)
    contexts = [r["context"] for r in qa_records(10, 7)]
    said = [answer(sampler, BLOOD, c).text for c in contexts]
    assert sum(is_not_stated(s) for s in said) >= 8, said
    # Answerable questions still get a span of the context, never "not stated" for most.
    rows = qa_records(20, 8)
    got = [answer(sampler, r["question"], r["context"]) for r in rows]
    assert sum(is_not_stated(g.text) for g in got) <= 2
    assert all(g.span is not None or is_not_stated(g.text) for g in got)

    # The evaluation counts abstentions on the unanswerable rows and false ones on the others.
    mixed = [{"question": BLOOD, "context": c, "answer": syn.NOT_STATED, "kind": "blood type"} for c in contexts]
    mixed += [{**r, "kind": "age" if r["question"].startswith("How old") else "drug"} for r in rows]
    pd.DataFrame(mixed).to_csv(tmp_path / "mixed.csv", index=False)
    result = evaluate_qa(abstaining_run, tmp_path / "mixed.csv", save=False)
    ab = result["abstention"]
    assert ab["unanswerable"] == 10 and ab["answerable"] == 20
    assert ab["abstained"] >= 80 and ab["false_abstention"] <= 10
    assert set(result["by_kind"]) == {"age", "blood type", "drug"}  # grouped by the file's kind column
