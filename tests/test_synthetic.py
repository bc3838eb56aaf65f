"""The synthetic clinical corpus and QA generator, and the files shipped from it under assets/."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pytest

from genai_core.clinical import synthetic as syn
from genai_core.clinical.cases import Case
from genai_core.clinical.tables.vocabulary import PRONOUNS
from genai_core.qa.prompt import find_span

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
# What assets/README.md documents: the command and seed the shipped files were made with.
SHIPPED_SEED = 0
SHIPPED_ROWS = {
    "corpora/clinical_cases.csv": syn.DEFAULT_CASES,
    **{str(syn.qa_file(split)): syn.DEFAULT_QA[split] for split in syn.SPLITS},
}
BUDGET_BYTES = 10 * 1024 * 1024
PREFIX = 150  # rows regenerated to check the shipped files; the streams are prefix-stable


def _read(rel: str) -> pd.DataFrame:
    return _read_at(ASSETS / rel)


def _read_qa(split: str) -> pd.DataFrame:
    return _read(str(syn.qa_file(split)))


@pytest.fixture(scope="module")
def train_records() -> list[syn.QARecord]:
    return syn.generate_qa("train", syn.DEFAULT_QA["train"], SHIPPED_SEED)


@pytest.fixture(scope="module")
def test_records() -> dict[str, list[syn.QARecord]]:
    return {s: syn.generate_qa(s, syn.DEFAULT_QA[s], SHIPPED_SEED) for s in ("test", "test_unseen_phrasing")}


@pytest.fixture(scope="module")
def template_cases() -> dict[str, list[Case]]:
    """The first cases behind the train and unseen-wording splits, whose sentence templates tests compare."""
    return {"train": syn.qa_cases("train", 300, SHIPPED_SEED),
            "test_unseen_phrasing": syn.qa_cases("test_unseen_phrasing", 200, SHIPPED_SEED)}


# --------------------------------------------------------------------------- determinism
def test_cases_are_deterministic_by_seed() -> None:
    a = [c.text for c in syn.generate_cases(40, seed=7)]
    b = [c.text for c in syn.generate_cases(40, seed=7)]
    c = [c.text for c in syn.generate_cases(40, seed=8)]
    assert a == b
    assert sum(x != y for x, y in zip(a, c, strict=True)) >= 39  # a different seed changes (nearly) everything


def test_written_files_are_byte_identical_for_a_seed(tmp_path: Path) -> None:
    kwargs = {"cases": 60, "qa_train": 80, "qa_val": 20, "qa_test": 20, "qa_test_unseen": 20,
              "qa_test_unanswerable": 10, "qa_test_note_style": 10}
    syn.write_dataset(tmp_path / "a", seed=3, **kwargs)
    syn.write_dataset(tmp_path / "b", seed=3, **kwargs)
    syn.write_dataset(tmp_path / "c", seed=4, **kwargs)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 7
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
        assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes(), rel


def test_streams_are_prefix_stable() -> None:
    """The first rows do not depend on how many follow: what lets the tests check shipped prefixes."""
    assert [r.question for r in syn.generate_qa("val", 7)] == [r.question for r in syn.generate_qa("val", 30)[:7]]
    assert [c.text for c in syn.generate_cases(5)] == [c.text for c in syn.generate_cases(12)[:5]]


# --------------------------------------------------------------------------- answers and spans
def test_every_span_is_the_recorded_value() -> None:
    for case in syn.generate_cases(300, seed=11):
        assert case.answer("age") == str(case.age)
        # A real (lower-case) drug name opening a sentence is capitalised there: "Nintedanib 150 mg ..."
        assert case.answer("drug").lower() == case.primary_drug.lower()
        assert case.answer("dose") == case.primary_dose
        assert case.answer("treatment").lower() == f"{case.primary_drug} {case.primary_dose}".lower()
        for kind, (start, end) in case.spans.items():
            assert 0 <= start < end <= len(case.text), kind
            answer = case.text[start:end]
            assert answer == answer.strip() and answer, (kind, answer)
        # Every span lies inside one sentence: what the excerpted QA contexts rely on.
        for start, end in case.spans.values():
            assert any(a <= start and end <= b for a, b in case.sentences)


@pytest.mark.parametrize("split", syn.SPLITS)
def test_every_shipped_answer_occurs_verbatim_in_its_context(split: str) -> None:
    df = _read_qa(split)
    assert list(df.columns) == ["question", "context", "answer", "kind"]
    # An unanswerable question's answer is NOT_STATED, which is not a span (tests/test_qa_abstention.py checks
    # that its context leaves the real answer out).
    missing = [i for i, (ctx, ans) in enumerate(zip(df["context"], df["answer"], strict=True))
               if ans not in ctx and ans != syn.NOT_STATED]
    assert not missing, df.iloc[missing[:3]].to_dict("records")
    assert (df["answer"].str.len() > 0).all() and (df["question"].str.len() > 0).all()


# --------------------------------------------------------------------------- held-out values
def test_reserved_values_never_reach_qa_train(
    train_records: list[syn.QARecord], test_records: dict[str, list[syn.QARecord]]
) -> None:
    train_answers = {r.answer for r in train_records}
    train_words = {w for r in train_records for w in re.findall(r"[A-Za-z]+", f"{r.question} {r.context}")}
    train_ages = {r.answer for r in train_records if r.kind == "age" and r.answer != syn.NOT_STATED}
    assert train_ages and not any(syn.is_reserved_age(int(a)) for a in train_ages)
    for split, records in test_records.items():
        kinds = {r.kind for r in records}
        assert {"age", "drug", "dose", "treatment", "symptoms"} <= kinds, split
        for r in records:
            if r.kind == "age":
                assert syn.is_reserved_age(int(r.answer)), r
                assert r.answer not in train_ages, r
            if r.kind in ("drug", "treatment", "symptoms"):
                assert r.answer not in train_answers, r
        # Every invented drug of a test case is a reserved name that QA train never mentions.
        cases = {c.id: c for c in syn.qa_cases(split, len(records), SHIPPED_SEED)}
        assert {r.case_id for r in records} <= set(cases)
        names = {d for c in cases.values() for d in c.drugs}
        assert len(names) > 100, split
        assert all(syn.is_reserved_drug(n) for n in names), split
        assert all(r.context in cases[r.case_id].text for r in records)
        leaked = sorted(names & train_words)
        assert not leaked, leaked[:10]


def test_reserved_symptom_combinations_are_disjoint() -> None:
    train = syn.generate_cases(800, seed=0, values="train", stream="check-train")
    test = syn.generate_cases(300, seed=0, values="reserved", stream="check-test")
    train_combos = {(c.condition, c.symptom_keys) for c in train}
    test_combos = {(c.condition, c.symptom_keys) for c in test}
    assert all(syn.is_reserved_combo(c, keys) for c, keys in test_combos)
    assert not any(syn.is_reserved_combo(c, keys) for c, keys in train_combos)
    assert not train_combos & test_combos
    assert all(syn.is_reserved_age(c.age) for c in test) and not any(syn.is_reserved_age(c.age) for c in train)
    assert all(syn.is_reserved_drug(d) for c in test for d in c.drugs)
    assert not any(syn.is_reserved_drug(d) for c in train for d in c.drugs)
    assert all(c.primary_drug in c.drugs for c in test)  # the test treatment is always an invented, reserved drug


# --------------------------------------------------------------------------- held-out phrasings
def _matching(questions: Iterable[str], templates: Iterable[str]) -> set[str]:
    patterns = [syn.question_pattern(t) for t in templates]
    return {q for q in questions if any(p.match(q) for p in patterns)}


def test_question_patterns_are_unambiguous() -> None:
    """Each rendered question matches its own template's pattern and no other's."""
    templates = [t for k in syn.QUESTIONS for t in syn.QUESTIONS[k]]
    assert len(templates) == len(set(templates))
    patterns = {t: syn.question_pattern(t) for t in templates}
    for t in templates:
        for drug in ("Zoravimab", "magnesium sulfate"):
            for pronouns in PRONOUNS.values():
                question = t.format(drug=drug, **pronouns)
                assert [u for u, p in patterns.items() if p.match(question)] == [t], question


def test_unseen_phrasing_questions_never_appear_in_train() -> None:
    reserved = [t for k in syn.QUESTIONS for t in syn.questions(k, "reserved")]
    allowed = [t for k in syn.QUESTIONS for t in syn.questions(k, "train")]
    assert set(reserved).isdisjoint(allowed)
    train_q = set(_read_qa("train")["question"]) | set(_read_qa("val")["question"])
    unseen_q = set(_read_qa("test_unseen_phrasing")["question"])
    assert not _matching(train_q, reserved), sorted(_matching(train_q, reserved))[:5]
    assert _matching(unseen_q, reserved) == unseen_q
    assert not _matching(unseen_q, allowed)  # no reserved phrasing is also a train phrasing
    assert _matching(set(_read_qa("test")["question"]), allowed) == set(_read_qa("test")["question"])
    assert not unseen_q & train_q


def test_unseen_phrasing_contexts_use_reserved_sentence_templates(
    train_records: list[syn.QARecord],
    test_records: dict[str, list[syn.QARecord]],
    template_cases: dict[str, list[Case]],
) -> None:
    reserved_ids = syn.reserved_template_ids()
    for slot, regs in syn.TEMPLATES.items():
        for reg in regs:
            assert syn.templates(slot, reg, "train") and syn.templates(slot, reg, "reserved"), (slot, reg)
    train_cases, unseen_cases = template_cases["train"], template_cases["test_unseen_phrasing"]
    assert not any(set(c.template_ids) & reserved_ids for c in train_cases)
    assert all(set(c.template_ids) <= reserved_ids for c in unseen_cases)
    # and these are the very cases behind the shipped rows
    assert {r.case_id for r in train_records[:100] if "-style-" not in r.case_id} <= {c.id for c in train_cases}
    by_id = {c.id: c for c in unseen_cases}
    for r in test_records["test_unseen_phrasing"][:200]:
        assert r.context in by_id[r.case_id].text


# --------------------------------------------------------------------------- diversity
def _skeleton(sentence: str) -> str:
    """A sentence with numbers and names (capitalised words after the first) masked."""
    s = re.sub(r"\d+(?:[./]\d+)*", "#", sentence)
    head, _, rest = s.partition(" ")
    return head + " " + re.sub(r"\b[A-Z][A-Za-z-]*\b", "N", rest)


def test_diversity_of_surface_forms() -> None:
    cases = syn.generate_cases(2000, seed=5)
    texts = [c.text for c in cases]
    assert len(set(texts)) == 2000
    sentences = [s for t in texts for s in re.split(r"(?<=\.) (?=[A-Z0-9])", t)]
    assert len({_skeleton(s) for s in sentences}) >= 1000
    assert len({c.template_ids for c in cases}) >= 1000
    words = {w.lower() for t in texts for w in re.findall(r"[A-Za-z][A-Za-z-]+", t)}
    assert len(words) >= 300
    assert len({d for c in cases for d in c.drugs}) >= 500  # invented names are procedural, not a list
    assert len({c.condition for c in cases}) >= 10
    assert {c.register for c in cases} == {"narrative", "terse"}


def test_the_note_style_split_is_shorthand_throughout_and_leaves_the_other_streams_alone() -> None:
    notes = syn.qa_cases("test_note_style", 100, SHIPPED_SEED)
    assert all(c.register == "terse" for c in notes)
    assert all("/terse/" in t for c in notes for t in c.template_ids if not t.startswith("filler"))
    # Mostly-prose splits still mix: most cases narrative, a share of their sentences terse.
    test = syn.qa_cases("test", 100, SHIPPED_SEED)
    assert 50 <= sum(c.register == "narrative" for c in test) <= 90
    assert any("/terse/" in t for c in test if c.register == "narrative" for t in c.template_ids)
    shorthand = " ".join(c.text for c in notes)
    for abbreviation in ("c/o", "PMH", "Rx", "BIBA", "d/c", "s/c"):
        assert abbreviation in shorthand, abbreviation
    rows = syn.generate_qa("test_note_style", 100, SHIPPED_SEED)
    assert all(r.answer != syn.NOT_STATED and r.answer in r.context for r in rows)


def test_out_of_scope_questions_are_extra_train_rows_from_the_trained_families_only(
        train_records: list[syn.QARecord], monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_core.clinical import questions
    from genai_core.clinical.tables.phrasings import HELD_OUT_SCOPE_FAMILIES, OUT_OF_SCOPE_QUESTIONS
    from genai_core.evaluate.scoring import OUT_OF_SCOPE_KIND

    other = [r for r in train_records if r.kind == OUT_OF_SCOPE_KIND]
    assert 0.04 * len(train_records) <= len(other) <= 0.08 * len(train_records)
    assert all(r.answer == syn.NOT_STATED for r in other)
    families = {r.template.strip("()") for r in other}
    assert families == set(OUT_OF_SCOPE_QUESTIONS) - set(HELD_OUT_SCOPE_FAMILIES)
    held_out = {q.lower().rstrip("?.!") for f in HELD_OUT_SCOPE_FAMILIES for q in OUT_OF_SCOPE_QUESTIONS[f]}
    assert not any(r.question.lower().rstrip("?.!") in held_out for r in train_records)
    # An extra row: every other row of the stream is the one it was without it.
    rest = [r for r in syn.generate_qa("train", 400, SHIPPED_SEED) if r.kind != OUT_OF_SCOPE_KIND]
    assert len(rest) < 400
    monkeypatch.setattr(questions, "OUT_OF_SCOPE_SHARE", {})
    assert rest == syn.generate_qa("train", len(rest), SHIPPED_SEED)
    assert not any(r.kind == OUT_OF_SCOPE_KIND for s in syn.SPLITS if s not in ("train", "val")
                   for r in syn.generate_qa(s, 200, SHIPPED_SEED))


def test_real_style_cases_give_the_sex_by_pronoun_or_as_a_child_and_are_extra_rows(
        train_records: list[syn.QARecord], monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from genai_core.clinical import questions
    from genai_core.clinical.cases import make_case
    from genai_core.clinical.tables.vocabulary import CHILD_AGES, SEX_WORDS
    from genai_core.evaluate.scoring import pronoun_sex

    for i in range(60):
        case = make_case(random.Random(f"pronoun/{i}"), style="pronoun", values="train", phrasings="train")
        intro = case.text[slice(*case.sentences[0])]
        assert pronoun_sex(case.answer("sex")) == case.sex, intro  # the pronoun gives the sex...
        assert not set(re.findall(r"\w+", intro.lower())) & {w.lower() for ws in SEX_WORDS.values()
                                                             for form in ws for w in form}, intro  # ...nothing else
        child = make_case(random.Random(f"child/{i}"), style="child", values="train", phrasings="train")
        assert not set(case.template_ids + child.template_ids) & syn.reserved_template_ids()
        assert CHILD_AGES[0] <= child.age <= CHILD_AGES[1]
        sex = child.answer("sex")
        assert (pronoun_sex(sex) or {"boy": "male", "girl": "female"}[sex]) == child.sex, child.text[:200]
    styled = [r for r in train_records if "-style-" in r.case_id]
    assert 0.1 * len(train_records) <= len(styled) <= 0.2 * len(train_records)
    pronoun_answers = [r for r in styled if r.kind == "sex" and pronoun_sex(r.answer)]
    assert len(pronoun_answers) > 200
    # The reader's target is the pronoun as a whole word (find_span), never "he" inside "the".
    for r in pronoun_answers:
        a, b = find_span(r.context, r.answer)
        assert r.context[a:b] == r.answer and not r.context[b:b + 1].isalpha() and not r.context[a - 1:a].isalpha()
    # Extra rows from a stream of their own: without them, every other row is the same.
    rest = [r for r in syn.generate_qa("train", 400, SHIPPED_SEED) if "-style-" not in r.case_id]
    assert len(rest) < 400
    monkeypatch.setattr(questions, "STYLE_SHARE", {})
    assert rest == syn.generate_qa("train", len(rest), SHIPPED_SEED)
    assert not any("-style-" in r.case_id for s in syn.SPLITS if s not in ("train", "val")
                   for r in syn.generate_qa(s, 200, SHIPPED_SEED))


# --------------------------------------------------------------------------- shipped files
def test_shipped_files_exist_and_fit_the_budget() -> None:
    total = 0
    for rel, rows in SHIPPED_ROWS.items():
        path = ASSETS / rel
        assert path.is_file(), rel
        total += path.stat().st_size
        df = _read(rel)
        assert len(df) == rows, rel
        assert all(df[c].str.isascii().all() for c in df.columns), rel  # a char-level model meets no exotic characters
    assert total <= BUDGET_BYTES
    assert 2_500_000 <= (ASSETS / "corpora/clinical_cases.csv").stat().st_size <= 6_500_000
    readme = (ASSETS / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in readme and f"--seed {SHIPPED_SEED}" in readme


def test_shipped_files_are_reproduced_by_the_generator() -> None:
    corpus = _read("corpora/clinical_cases.csv")
    assert list(corpus.columns) == ["id", "text"]
    cases = syn.generate_cases(PREFIX, seed=SHIPPED_SEED)
    assert corpus["id"].tolist()[:PREFIX] == [c.id for c in cases]
    assert corpus["text"].tolist()[:PREFIX] == [c.text for c in cases]
    for split in syn.SPLITS:
        df = _read_qa(split)
        rows = [[r.question, r.context, r.answer, r.kind] for r in syn.generate_qa(split, PREFIX, SHIPPED_SEED)]
        assert df.head(PREFIX).values.tolist() == rows, split


def test_cli_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    syn.add_parser(sub)
    args = parser.parse_args(
        [
            "generate-corpus",
            "--out",
            str(tmp_path),
            "--cases",
            "12",
            "--qa-train",
            "10",
            "--qa-val",
            "4",
            "--qa-test",
            "4",
            "--seed",
            "2",
        ]
    )
    assert args.handler(args) == 0
    assert "clinical_cases.csv: 12 rows" in capsys.readouterr().out
    assert len(_read_at(tmp_path / "qa/test_unseen_phrasing.csv")) == 4
    assert len(_read_at(tmp_path / syn.qa_file("train"))) == 10
    assert syn.main(["--out", str(tmp_path / "x"), "--cases", "-1"]) == 2


def _read_at(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- the question grammar
def test_the_grammar_never_says_a_held_out_phrasing_and_speaks_the_core_words() -> None:
    import random

    rng = random.Random(0)
    reserved = [syn.question_pattern(t) for k in (*syn.QUESTIONS, *syn.ABSENT_QUESTIONS)
                for t in syn.questions(k, "reserved")]
    said: dict[str, list[str]] = {}
    for kind in syn.SLOT_WORDS:
        said[kind] = [syn.sample_question(kind, rng, drug="Zoravimab", sex=rng.choice(["male", "female"]),
                                          age=rng.choice([6, 15, 60]))
                      for _ in range(600)]
        for q in said[kind]:
            for variant in (q, q.rstrip("?.") + "?", q.rstrip("?.") + "."):
                assert not any(p.match(variant) for p in reserved), q
        assert len(set(said[kind])) > 50, kind  # a language, not a list
    text = {k: " ".join(v).lower() for k, v in said.items()}
    for kind, words in {"sex": ("sex", "gender", "male or female"), "age": ("age", "how old"),
                        "drug": ("drug", "medication", "medicine"), "dose": ("dose", "how much")}.items():
        assert all(w in text[kind] for w in words), (kind, words)
    # In the shipped training file: many more distinct questions than fixed phrasings, none held out.
    train_q = _read_qa("train")["question"]
    assert train_q.nunique() > 2000
    assert not any(any(p.match(q) for p in reserved) for q in train_q)
    assert all(r.template != syn.GRAMMAR_TEMPLATE for r in syn.generate_qa("test_unseen_phrasing", 100))


# --------------------------------------------------------------------------- the sentence grammar
def test_the_sentence_grammar_never_writes_a_held_out_sentence_family(template_cases: dict[str, list[Case]]) -> None:
    """The treatment and other-drug sentences of the train pool are composed (opening + frame + tail); none of
    the compositions holds a reserved template's clause, with any opening or tail, and the training contexts
    really use the compositions (the held-out unseen-wording contexts do not)."""
    from genai_core.clinical.cases import compositions, template_id
    from genai_core.clinical.tables.sentences import SENTENCE_GRAMMARS

    for slot, registers in SENTENCE_GRAMMARS.items():
        for register, grammar in registers.items():
            composed = set(compositions(grammar))
            assert len(composed) > 30, (slot, register)  # a language, not a list
            reserved = syn.templates(slot, register, "reserved")
            assert reserved and not composed & set(reserved)
            # "{He} received {treatment}." is the family "{he} received {treatment}", wherever it sits
            clauses = [t.rstrip(".").replace("{He}", "{he}").lower() for t in reserved]
            for sentence in composed:
                assert not any(c in sentence.replace("{He}", "{he}").lower() for c in clauses), sentence
    train_ids = {t for c in template_cases["train"] for t in c.template_ids}
    composed_ids = {template_id(slot, reg, t) for slot, regs in SENTENCE_GRAMMARS.items()
                    for reg, g in regs.items() for t in compositions(g)}
    assert len(train_ids & composed_ids) > 100
    assert not {t for c in template_cases["test_unseen_phrasing"] for t in c.template_ids} & composed_ids
