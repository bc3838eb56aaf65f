"""Answer scores on hand-made examples whose values are worked out by hand in the comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from genai_core.evaluate.scoring import aggregate, exact_match, normalize_answer, rouge_l, score_answer, token_f1


@pytest.mark.parametrize(("text", "normalized"), [
    ("The Cat!", "cat"),                               # case, punctuation, article
    ("  An   apple, the  pear. ", "apple pear"),       # articles anywhere, runs of blanks
    ("Theatre", "theatre"),                            # "the" only as a whole word
    ("a perforated appendix", "perforated appendix"),
    ("(250 mg)", "250 mg"),
    ("SpO2 93%", "spo2 93"),
    ("x10^9/L", "x109l"),                              # SQuAD deletes punctuation, it does not split on it
    ("2.5 mg", "2.5 mg"),                              # ...except a decimal point between digits
    ("Fever. 38.5 C.", "fever 38.5 c"),                # a full stop after a word or number still goes
    ("", ""),
])
def test_normalize_answer(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


def test_exact_match_after_normalisation() -> None:
    assert exact_match("The Cat.", "cat") == 1.0
    assert exact_match("Calfiformin 500 mg SC bd", "calfiformin 500 mg sc BD") == 1.0
    assert exact_match("cats", "cat") == 0.0
    # A tenfold dose error is not an exact match (SQuAD's own rule would make both "25 mg").
    assert exact_match("2.5 mg", "25 mg") == 0.0


def test_a_lone_pronoun_answer_is_the_sex_it_gives() -> None:
    # Where a text gives the sex only by pronouns, the span head points at one and the reader says the sex.
    assert exact_match("She", "female") == exact_match("his", "male") == exact_match("her", "she") == 1.0
    assert exact_match("her", "male") == 0.0
    assert exact_match("her mother", "female") == 0.0  # only a lone pronoun reads as a sex
    assert normalize_answer("He.") == "male"


def test_the_answer_shapes_of_sex_and_age() -> None:
    from genai_core.evaluate.scoring import ANSWER_SHAPES, sex_in

    assert sex_in("58-year-old woman") == "female" and sex_in("He") == "male" and sex_in("63") is None
    assert sex_in("his wife") == "male" and sex_in("a man and a woman") is None  # both named: not an answer
    sex, age = ANSWER_SHAPES["sex"], ANSWER_SHAPES["age"]
    assert sex("boy") and sex("58-year-old man") and not sex("IV") and not sex("the woman who was brought in")
    assert age("3-month-old") and age("58") and not age("woman")


def test_token_f1_on_partial_overlaps() -> None:
    # [cat, sat] vs [cat, sat, on, mat]: 2 shared; P = 2/2, R = 2/4, F1 = 2PR/(P+R) = 2/3.
    assert token_f1("the cat sat", "cat sat on mat") == pytest.approx(2 / 3)
    # Counts are clipped: [mg, mg, mg] vs [250, mg] share 1; P = 1/3, R = 1/2, F1 = (1/3)/(5/6) = 0.4.
    assert token_f1("mg mg mg", "250 mg") == pytest.approx(0.4)
    # "DBE, IS" vs "DBE": P = 1/2, R = 1, F1 = 2/3.
    assert token_f1("DBE, IS", "DBE") == pytest.approx(2 / 3)
    assert token_f1("dog", "cat") == 0.0
    # Nothing left after normalisation: 1 when both sides are empty, else 0 (as SQuAD).
    assert token_f1("the", "a") == 1.0
    assert token_f1("", "cat") == 0.0


def test_rouge_l_rewards_order_where_f1_does_not() -> None:
    ref = "the cat sat on the mat"  # ROUGE's tokenizer keeps articles: 6 tokens
    # In order: LCS = [cat, sat, mat] = 3; P = 3/3, R = 3/6, F = 2/3.
    assert rouge_l("cat sat mat", ref) == pytest.approx(2 / 3)
    # Reversed: LCS = 1; P = 1/3, R = 1/6, F = 2 * (1/18) / (1/2) = 2/9.
    assert rouge_l("mat sat cat", ref) == pytest.approx(2 / 9)
    # F1 ignores order (and articles): [mat, sat, cat] vs [cat, sat, on, mat] gives 6/7 for both.
    assert token_f1("cat sat mat", ref) == token_f1("mat sat cat", ref) == pytest.approx(6 / 7)
    assert rouge_l("Cat sat.", "cat sat") == 1.0
    assert rouge_l("", "") == 1.0 and rouge_l("", "cat") == 0.0 and rouge_l("cat", " ") == 0.0


def test_score_answer_and_aggregate_in_percent() -> None:
    s = score_answer("the cat sat", "cat sat on mat")
    assert (s.exact_match, s.f1) == (0.0, pytest.approx(2 / 3))
    # LCS of [the, cat, sat] and [cat, sat, on, mat] = 2: P = 2/3, R = 2/4, F = 4/7.
    assert s.rougeL == pytest.approx(4 / 7)
    assert s.percent() == {"exact_match": 0.0, "f1": pytest.approx(200 / 3), "rougeL": pytest.approx(400 / 7)}

    m = aggregate([("cat", "The cat"), ("the cat sat", "cat sat on mat"), ("dog", "cat")])
    assert m["count"] == 3
    assert m["exact_match"] == pytest.approx(100 / 3)
    assert m["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    # ROUGE-L: "cat" vs [the, cat] is P 1, R 1/2, F 2/3; then 4/7; then 0.
    assert m["rougeL"] == pytest.approx(100 * (2 / 3 + 4 / 7 + 0) / 3)
    assert aggregate([]) == {"exact_match": 0.0, "f1": 0.0, "rougeL": 0.0, "count": 0}


def test_every_generated_sex_question_names_its_subject_and_out_of_scope_ones_do_not() -> None:
    import glob

    import pandas as pd

    from genai_core.evaluate.scoring import names_subject

    root = Path(__file__).resolve().parent.parent / "assets" / "qa"
    frames = [pd.read_parquet(root / "train.parquet"), *(pd.read_csv(f) for f in glob.glob(str(root / "*.csv")))]
    questions = pd.concat(frames).query("kind == 'sex'")["question"].unique()
    assert len(questions) > 400  # every wording and typo the generator writes, in every split
    assert [q for q in questions if not names_subject(q, "sex")] == []
    for q in ("Which school does she attend?", "Who performed the endoscopy?", "Who witnessed the seizure?",
              "How much weight was she lifting?", "Which nursery does he attend?"):
        assert not names_subject(q, "sex"), q
    assert names_subject("M or F?", "sex") and names_subject("Males?", "sex") and names_subject("gendr?", "sex")
    assert names_subject("Which school does she attend?", "drug")  # kinds without a list: always
