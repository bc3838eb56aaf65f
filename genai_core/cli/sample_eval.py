"""`sample` (text from a trained run) and `eval` (its perplexity, or its question answering scores)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from genai_core.cli.console import kv_lines, note, print_result, table, terminal_progress
from genai_core.cli.options import FLAGS, existing_run, given, validated
from genai_core.config import SampleConfig
from genai_core.errors import GenAIError

_SAMPLING_ONLY = ("temperature", "top_k", "top_p", "seed")
_BEAM_ONLY = ("length_penalty", "num_return")


def cmd_sample(args: argparse.Namespace) -> int:
    """`sample`: stream a continuation of --prompt, or print the best beams with --beams."""
    values = given(args, "sample")
    beam = "num_beams" in values
    if beam and values.get("num_return", 1) > values["num_beams"] > 0:  # in the flags' words, not the fields'
        raise GenAIError(f"--num-return ({values['num_return']}) cannot exceed --beams ({values['num_beams']})")
    if not beam and any(k in values for k in _BEAM_ONLY):
        raise GenAIError(f"{', '.join(FLAGS[('sample', k)] for k in _BEAM_ONLY if k in values)} "
                         "needs --beams (beam search)")
    cfg: SampleConfig = validated(SampleConfig, values, "sample")
    run = existing_run(args.run)
    from genai_core.generate.sampling import Sampler

    sampler = Sampler.from_run(run, device=args.device)
    if beam:
        ignored = [FLAGS[("sample", k)] for k in _SAMPLING_ONLY if k in values]
        if ignored:
            note(f"beam search is deterministic: ignoring {', '.join(ignored)}")
        return _print_beams(sampler, args, cfg)
    generation = sampler.stream(args.prompt, cfg)
    for warning in generation.info.warnings():
        note(warning)
    out = sys.stdout
    last = ""
    if args.echo and args.prompt:
        out.write(args.prompt)
        last = args.prompt[-1]
    for piece in generation:
        if piece:
            out.write(piece)
            out.flush()
            last = piece[-1]
    if last != "\n":
        out.write("\n")
    out.flush()
    return 0


def _print_beams(sampler: Any, args: argparse.Namespace, cfg: SampleConfig) -> int:
    """The n best hypotheses of a beam search, best first: a header line with the scores, then the text."""
    result = sampler.beam_search(args.prompt, cfg)
    for warning in result.info.warnings():
        note(warning)
    out = sys.stdout
    for rank, h in enumerate(result.hypotheses, 1):
        out.write(f"#{rank}  score {h.score:.4f}  log-prob {h.logprob:.4f}  {h.length} tokens  "
                  f"({h.finish_reason})\n")
        text = (args.prompt if args.echo else "") + h.text
        out.write(text if text.endswith("\n") else text + "\n")
    out.flush()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """`eval`: perplexity on the validation split or --corpus, or question answering scores with --qa."""
    if args.qa is None:
        stray = [flag for flag, v in (("--predictions", args.predictions), ("--limit", args.limit)) if v is not None]
        if stray:
            raise GenAIError(f"{' and '.join(stray)}: only used with --qa (question answering); add --qa FILE.csv")
    else:
        stray = [flag for flag, v in (("--corpus", args.corpus), ("--text-column", args.text_column),
                                      ("--max-tokens", args.max_tokens), ("--batch-size", args.batch_size))
                 if v is not None]
        if stray:
            raise GenAIError(f"{', '.join(stray)}: perplexity options, not used with --qa; leave them out")
        if args.limit is not None and args.limit < 1:
            raise GenAIError(f"--limit must be at least 1 (got {args.limit})")
        return _cmd_eval_qa(args)
    run = existing_run(args.run)
    from genai_core.evaluate.perplexity import evaluate_run

    with terminal_progress() as progress:
        res = evaluate_run(run, corpus=args.corpus, max_tokens=args.max_tokens, device=args.device,
                           text_column=args.text_column, batch_size=args.batch_size, progress=progress)
    if print_result(res, args.json):
        return 0
    tokens = f"{res['tokens']:,}" + (f" (of {res['available_tokens']:,})" if res["truncated"] else "")
    rows = [
        ("run", res["run"]),
        ("checkpoint", f"step {res['checkpoint_step']:,}"),
        ("data", res["source"]),
        ("tokens", tokens),
        ("val loss" if res["split"] == "val" else "loss", f"{res['loss']:.4f}"),
        ("perplexity", f"{res['perplexity']:.2f}"),
        ("bits/token", f"{res['bits_per_token']:.3f}"),
    ]
    if res["unknown_fraction"] is not None:
        rows.append(("unknown", f"{res['unknown_fraction']:.2%} of tokens"))
    rows.append(("saved", res["saved_to"]))
    print(kv_lines(rows))
    return 0


def _cmd_eval_qa(args: argparse.Namespace) -> int:
    run = existing_run(args.run)
    from genai_core.clinical.questions import question_kind
    from genai_core.evaluate.answers import evaluate_qa

    with terminal_progress() as progress:
        # kind_of: files without a kind column are grouped by the demo's phrasings
        res = evaluate_qa(run, args.qa, limit=args.limit, predictions_path=args.predictions, device=args.device,
                          progress=progress, kind_of=question_kind, method=args.method)
    res.pop("predictions")  # every row is in the CSV files (predictions_file, --predictions), not on screen
    if print_result(res, args.json):
        return 0
    questions = f"{res['rows']:,}" + (f" (of {res['available_rows']:,})" if res["truncated"] else "")
    rows = [("run", res["run"]), ("checkpoint", f"step {res['checkpoint_step']:,}"), ("data", res["file"]),
            ("questions", questions)]
    m = res["metrics"]
    if m is not None:
        rows += [("exact match", f"{m['exact_match']:.2f} %"), ("F1", f"{m['f1']:.2f} %"),
                 ("ROUGE-L", f"{m['rougeL']:.2f} %")]
    rows += [("from context", f"{res['in_context']:.1f} % of answers are spans of their context"),
             ("saved", res["saved_to"])]
    if args.predictions:
        rows.append(("predictions", args.predictions))
    print(kv_lines(rows))
    if res["by_kind"]:
        print("\nby question kind (percent):")
        print(table(["KIND", "N", "EM", "F1", "ROUGE-L"],
                     [[k, f"{v['count']:,}", f"{v['exact_match']:.1f}", f"{v['f1']:.1f}", f"{v['rougeL']:.1f}"]
                      for k, v in res["by_kind"].items()], right={1, 2, 3, 4}))
    if res["worst"]:
        print("\nworst answers (lowest F1):")
        for w in res["worst"][:5]:
            print(f"  Q: {w['question']}\n     expected {w['expected']!r}, predicted {w['predicted']!r} "
                  f"(F1 {w['f1']:.1f})")
    return 0

