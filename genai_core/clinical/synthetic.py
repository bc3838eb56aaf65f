"""Synthetic clinical case reports and extractive QA sets: the generator behind the bundled demo data.

Everything here is invented. No record describes a real patient; the numbers are plausible
illustrations, not clinical guidance. The point is a corpus that *reads* like case reports (so a
small character-level model trained for two minutes produces case-report-like text) and QA sets
that test copying from the context rather than recall of a memorised list.

How the text varies:

- A case is drawn from a `Condition` (COVID-19 ARDS, pneumonia, COPD, stroke, hip fracture, ...)
  with its own symptoms, history, vitals ranges, findings, treatments, respiratory support,
  physiotherapy, outcomes and discharge destinations.
- Each sentence slot (intro, history, vitals, ...) has a pool of templates in two registers
  (narrative case report, terse ward note), sentence order is perturbed, and filler sentences are
  inserted, so thousands of distinct surface forms arise. The treatment and other-drug sentences are
  composed by a small grammar (an opening or a tail around one of many frames; `SENTENCE_GRAMMARS`).
- Many values are procedural: invented drug names built from syllables ("Zoravimab"), invented
  eponymous lesions and facilities, numbers, doses with units. A model has to copy them.

Held-out values and phrasings (for the QA splits):

- Values: ages with ``age % 7 == 3``, invented drug names whose CRC32 is divisible by 5, and a
  CRC32-chosen quarter of each condition's symptom combinations are *reserved*.
- Phrasings: for every sentence slot and register a fifth, and for every question kind a quarter,
  of the templates (those with the smallest CRC32, never the first, canonical one) are reserved. A slot
  with a sentence grammar never composes a reserved template's clause, with any opening or tail.
- QA train/val use only non-reserved values and phrasings; `test` uses reserved values with train
  phrasings; `test_unseen_phrasing` uses reserved values and reserved phrasings. The unlabeled
  corpus uses everything, like a real case-report corpus would.

Determinism: every case and every QA row is drawn from its own `random.Random` seeded with a string
(``"{seed}/{stream}/{index}"``), which Python hashes with SHA-512, so output is byte-identical across
runs and processes, and the first N rows of a stream do not depend on how many rows follow
(a prefix can be regenerated without generating the whole file).

Where things are:

- `tables/` holds the data only: word lists (`vocabulary`), conditions and labs (`conditions`), sentence
  templates (`sentences`), question phrasings and the question grammar's words (`phrasings`);
- `pools` says which values and phrasings are reserved; `values` draws names, doses, vitals and labs;
- `cases` draws and writes one case (`make_case`); `questions` words questions and makes the QA rows of a split;
- this module writes the corpus and the QA files (`write_dataset`) and is the command line.

Command line: ``python -m genai_core.clinical.synthetic --out assets`` (or
``python -m genai_core generate-corpus --out assets``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from genai_core.clinical.cases import DEFAULT_SEED, generate_cases, reserved_template_ids, templates
from genai_core.clinical.pools import is_reserved_age, is_reserved_combo, is_reserved_drug
from genai_core.clinical.questions import (
    GRAMMAR_TEMPLATE,
    SPLITS,
    QARecord,
    generate_qa,
    qa_cases,
    question_pattern,
    questions,
    sample_question,
)
from genai_core.clinical.tables.phrasings import ABSENT_QUESTIONS, QUESTIONS, SLOT_WORDS
from genai_core.clinical.tables.sentences import TEMPLATES
from genai_core.evaluate.scoring import NOT_STATED

# Re-exported: this module is the generator's front door (tests, qa.store and cli.py import from here).
__all__ = [
    "ABSENT_QUESTIONS", "CORPUS_FILE", "DEFAULT_CASES", "DEFAULT_QA", "DEFAULT_SEED", "GRAMMAR_TEMPLATE",
    "NOT_STATED", "QA_DIR", "QA_HEADER", "QUESTIONS", "SLOT_WORDS", "SPLITS", "TEMPLATES", "QARecord", "add_parser",
    "generate_cases", "generate_qa", "is_reserved_age", "is_reserved_combo", "is_reserved_drug", "main", "qa_cases",
    "qa_file", "question_pattern", "questions", "reserved_template_ids", "run_cli", "sample_question", "templates",
    "write_dataset",
]

DEFAULT_CASES = 4000
DEFAULT_QA = {"train": 28_800, "val": 500, "test": 500, "test_unseen_phrasing": 500, "test_unanswerable": 300,
              "test_note_style": 500}
"""Rows per QA split. 28,800 training rows are the demo fine-tune's 1,800 steps x 16 examples: each row is drawn
about once, so the model reads new cases and wordings to the end instead of revisiting 7,000 rows four times
(measured against 7,000 rows, same pretrained run, mean of four fine-tuning seeds: unseen wording 60.1 -> 64.5,
test 94.3 -> 95.3, note style 93.2 -> 94.8; see docs/clinical-qa.md)."""
QA_HEADER = ("question", "context", "answer", "kind")
CORPUS_FILE = Path("corpora") / "clinical_cases.csv"
QA_DIR = Path("qa")


def qa_file(split: str) -> Path:
    """Where `write_dataset` puts a QA split, relative to its folder: qa/train.parquet, the rest qa/<split>.csv.

    The training split is Parquet (zstd) because as CSV it would be 16 MB of a 10 MB budget; as Parquet it is
    2.8 MB. The splits a person reads or evaluates on stay CSV."""
    return QA_DIR / (f"{split}.parquet" if split == "train" else f"{split}.csv")


def _write_parquet(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write string rows as one zstd Parquet file; pyarrow writes the same bytes for the same rows (per version)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(zip(*rows, strict=True)) or [()] * len(header)
    table = pa.table({name: pa.array(col, type=pa.string()) for name, col in zip(header, columns, strict=True)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


# =========================================================================== files
def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write rows with fixed settings (\\n line ends, minimal quoting) so files are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def write_dataset(
    out_dir: str | Path,
    *,
    cases: int = DEFAULT_CASES,
    qa_train: int = DEFAULT_QA["train"],
    qa_val: int = DEFAULT_QA["val"],
    qa_test: int = DEFAULT_QA["test"],
    qa_test_unseen: int = DEFAULT_QA["test_unseen_phrasing"],
    qa_test_unanswerable: int = DEFAULT_QA["test_unanswerable"],
    qa_test_note_style: int = DEFAULT_QA["test_note_style"],
    seed: int = DEFAULT_SEED,
) -> dict[str, dict]:
    """Write the corpus and the QA splits under `out_dir`; returns rows and bytes per file.

    Layout: corpora/clinical_cases.csv (id,text), qa/train.parquet and qa/{val,test,test_unseen_phrasing,
    test_unanswerable,test_note_style}.csv (question,context,answer,kind; the answer NOT_STATED where the context
    holds none; `qa_file`).
    """
    out = Path(out_dir)
    report: dict[str, dict] = {}
    path = out / CORPUS_FILE
    n = _write_csv(path, ("id", "text"), ((c.id, c.text) for c in generate_cases(cases, seed)))
    report[str(CORPUS_FILE)] = {"rows": n, "bytes": path.stat().st_size}
    sizes = {"train": qa_train, "val": qa_val, "test": qa_test, "test_unseen_phrasing": qa_test_unseen,
             "test_unanswerable": qa_test_unanswerable, "test_note_style": qa_test_note_style}
    for split, count in sizes.items():
        path = out / qa_file(split)
        write = _write_parquet if path.suffix == ".parquet" else _write_csv
        n = write(path, QA_HEADER, ((r.question, r.context, r.answer, r.kind) for r in generate_qa(split, count, seed)))
        report[str(qa_file(split))] = {"rows": n, "bytes": path.stat().st_size}
    return report


# =========================================================================== command line
def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `generate-corpus` on the main CLI's subparsers (handler: run_cli)."""
    p = subparsers.add_parser(
        "generate-corpus",
        help="write the synthetic clinical case corpus and QA splits",
        description="Write SYNTHETIC clinical case reports (corpora/clinical_cases.csv) and extractive QA splits "
        "(qa/train.parquet, val.csv, test.csv, test_unseen_phrasing.csv, test_unanswerable.csv, test_note_style.csv) "
        "under --out. "
        "Deterministic by seed.",
    )
    _add_arguments(p)
    p.set_defaults(handler=run_cli)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags shared by `generate-corpus` and `python -m genai_core.clinical.synthetic`."""
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (corpora/ and qa/ are made inside it)")
    p.add_argument(
        "--cases", type=int, default=DEFAULT_CASES, metavar="N", help=f"cases in the corpus (default: {DEFAULT_CASES})"
    )
    p.add_argument(
        "--qa-train",
        type=int,
        default=DEFAULT_QA["train"],
        metavar="N",
        help=f"QA train rows (default: {DEFAULT_QA['train']})",
    )
    p.add_argument(
        "--qa-val", type=int, default=DEFAULT_QA["val"], metavar="N", help=f"QA val rows (default: {DEFAULT_QA['val']})"
    )
    p.add_argument(
        "--qa-test",
        type=int,
        default=DEFAULT_QA["test"],
        metavar="N",
        help=f"rows in test.csv, test_unseen_phrasing.csv and test_note_style.csv each (default: {DEFAULT_QA['test']})",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S", help=f"random seed (default: {DEFAULT_SEED})")


def run_cli(args: argparse.Namespace) -> int:
    """Handler of `generate-corpus`: write the files and print one line per file."""
    for name in ("cases", "qa_train", "qa_val", "qa_test"):
        if getattr(args, name) < 0:
            print(f"error: --{name.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2
    report = write_dataset(
        args.out,
        cases=args.cases,
        qa_train=args.qa_train,
        qa_val=args.qa_val,
        qa_test=args.qa_test,
        qa_test_unseen=args.qa_test,
        qa_test_note_style=args.qa_test,
        seed=args.seed,
    )
    for name, info in report.items():
        print(f"{Path(args.out) / name}: {info['rows']} rows, {info['bytes'] / 1e6:.2f} MB")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m genai_core.clinical.synthetic --out DIR ...` (same flags as `generate-corpus`)."""
    parser = argparse.ArgumentParser(prog="python -m genai_core.clinical.synthetic",
                                     description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
