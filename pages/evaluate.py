"""Evaluate: score a run on question answering (exact match, F1, ROUGE-L) and measure its held-out perplexity.

The numbers come from `genai_core.evaluate.perplexity`; every result is saved in the run folder (eval/), so this
page draws what is on disk: a fresh result and one from last week look the same, and the Runs page shows
the same scores as columns. An evaluation runs in the script itself, with a progress bar: a few hundred
questions take seconds to a minute on a laptop CPU.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.uploaded_file_manager import UploadedFile

from genai_core.clinical.demo import QA_DIR
from genai_core.clinical.questions import question_kind
from genai_core.config import RunConfig
from genai_core.errors import GenAIError
from genai_core.evaluate.answers import evaluate_qa
from genai_core.evaluate.perplexity import evaluate_run
from genai_core.evaluate.results import checkpoint_step
from genai_core.qa.store import QA_FILE_TYPES
from genai_core.runs.folder import Run, list_runs, slugify
from pages.ui import can_change, change_kwargs, presenter_only, progress_to, runs_root, table, user_errors

UPLOAD = "Upload a file…"
EMPTY = "(empty answer)"


# --------------------------------------------------------------------------- data
def evaluable_runs() -> list[Run]:
    """Runs with a checkpoint, newest first (a run still training is evaluated at its latest checkpoint)."""
    out = []
    for run in list_runs(runs_root()):
        try:
            if run.latest_checkpoint() is not None:
                run.config()  # a damaged config is not offered
                out.append(run)
        except (GenAIError, OSError):
            continue
    return out


def bundled_files() -> dict[str, Path]:
    """The bundled QA splits by file name, in the order a person evaluates them (val, test, the rest)."""
    files = {p.name: p for p in sorted(QA_DIR.glob("*.csv"))}
    order = ("val.csv", "test.csv", "test_unseen_phrasing.csv", "test_unanswerable.csv", "test_note_style.csv")
    first = [n for n in order if n in files]
    return {n: files[n] for n in [*first, *sorted(set(files) - set(first))]}


def when(ts: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def saved_table(saved: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per saved result: what was measured, on what, and its headline numbers."""
    rows = []
    for e in saved:
        m = e.get("metrics") or {}
        rows.append({
            "when": when(e.get("timestamp")),
            "kind": "question answering" if e.get("kind") == "qa" else "perplexity",
            "data": e.get("file") or e.get("source") or e.get("name"),
            "rows": e.get("rows") if e.get("kind") == "qa" else e.get("tokens"),
            "step": e.get("checkpoint_step"),
            "exact_match": m.get("exact_match"),
            "f1": m.get("f1"),
            "rougeL": m.get("rougeL"),
            "perplexity": e.get("perplexity"),
        })
    return pd.DataFrame(rows)


SAVED_COLUMNS = {
    "when": st.column_config.TextColumn("When"),
    "kind": st.column_config.TextColumn("Measure"),
    "data": st.column_config.TextColumn("Data"),
    "rows": st.column_config.NumberColumn("Questions / tokens", format="%,d"),
    "step": st.column_config.NumberColumn("Checkpoint step", format="%,d"),
    "exact_match": st.column_config.NumberColumn("EM (%)", format="%.1f"),
    "f1": st.column_config.NumberColumn("F1 (%)", format="%.1f"),
    "rougeL": st.column_config.NumberColumn("ROUGE-L (%)", format="%.1f"),
    "perplexity": st.column_config.NumberColumn("Perplexity", format="%.2f"),
}


# --------------------------------------------------------------------------- drawing a result
def show_qa(result: dict[str, Any]) -> None:
    """Metrics, per-kind scores, the worst answers and the predictions download of one saved QA result."""
    questions = f"{result['rows']:,}" + (f" of {result['available_rows']:,}" if result.get("truncated") else "")
    st.caption(f"**{result.get('file')}** · {questions} questions · checkpoint step {result['checkpoint_step']:,} · "
               f"{when(result.get('timestamp'))}")
    m = result.get("metrics")
    if m:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Exact match", f"{m['exact_match']:.1f} %", help="Answers equal to the expected one after "
                  "SQuAD normalisation (case, punctuation, articles, spaces)")
        c2.metric("F1", f"{m['f1']:.1f} %", help="Word overlap with the expected answer (harmonic mean of "
                  "precision and recall), averaged over questions")
        c3.metric("ROUGE-L", f"{m['rougeL']:.1f} %", help="Longest common word subsequence F-measure: like F1, "
                  "but words must come in the right order")
        c4.metric("Copied from the context", f"{result.get('in_context', 0):.0f} %",
                  help="Answers that are a span of their context (an extractive model should copy)")
    else:
        st.info("This file has no answer column: the questions were answered, not scored. Download the "
                "predictions below.", icon=":material/info:")
    ab = result.get("abstention") or {}
    if ab.get("abstained") is not None or ab.get("false_abstention") is not None:
        a1, a2, _, _ = st.columns(4)
        if ab.get("abstained") is not None:
            a1.metric("Said “not stated”", f"{ab['abstained']:.0f} %",
                      help=f"Of the {ab['unanswerable']:,} questions whose context does not hold the answer: the "
                           "model said so instead of inventing one (higher is better)")
        if ab.get("false_abstention") is not None:
            a2.metric("“Not stated” when it was", f"{ab['false_abstention']:.0f} %",
                      help=f"Of the {ab['answerable']:,} answerable questions: the model wrongly said the context "
                           "does not answer (lower is better)")
    for note in result.get("notes", []):
        st.caption(f"Note: {note}")
    if result.get("by_kind"):
        st.markdown("**By question kind** (percent)")
        kinds = pd.DataFrame([{"kind": k, "count": v["count"], "exact_match": v["exact_match"], "f1": v["f1"],
                               "rougeL": v["rougeL"]} for k, v in result["by_kind"].items()])
        table(kinds, hide_index=True, key="eval_by_kind", column_config={
            "kind": st.column_config.TextColumn("Kind"), "count": st.column_config.NumberColumn("Questions"),
            "exact_match": st.column_config.NumberColumn("EM", format="%.1f"),
            "f1": st.column_config.NumberColumn("F1", format="%.1f"),
            "rougeL": st.column_config.NumberColumn("ROUGE-L", format="%.1f")})
    if result.get("worst"):
        st.markdown("**Worst answers** (lowest F1)")
        worst = pd.DataFrame(result["worst"])
        worst["predicted"] = worst["predicted"].replace("", EMPTY)  # a blank cell would look like a display bug
        table(worst, hide_index=True, key="eval_worst", column_config={
            "question": st.column_config.TextColumn("Question", width="medium"),
            "expected": st.column_config.TextColumn("Expected"),
            "predicted": st.column_config.TextColumn("Predicted"),
            "f1": st.column_config.NumberColumn("F1 (%)", format="%.1f"),
            "rougeL": st.column_config.NumberColumn("ROUGE-L (%)", format="%.1f"),
            "kind": st.column_config.TextColumn("Kind")})
    elif m:
        st.success("Every answer is an exact match.", icon=":material/check_circle:")
    saved = Path(result["saved_to"])  # the predictions sit next to it (found from here, so a renamed run works)
    preds = saved.with_name(f"{saved.stem}.predictions.csv")
    if preds.is_file():
        st.download_button("Predictions (.csv)", data=preds.read_bytes(), key="eval_download",
                           file_name=f"{result['run']}-{result['name']}-predictions.csv", mime="text/csv",
                           icon=":material/download:", on_click="ignore",
                           help="Every question: question, answer, prediction, em, f1, rougeL (percent)")


def show_perplexity(result: dict[str, Any]) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric("Validation loss", f"{result['loss']:.4f}", help="Mean cross-entropy, nats per token")
    ppl = result.get("perplexity")
    c2.metric("Perplexity", "∞" if ppl is None else f"{ppl:.2f}", help="exp(loss)")
    c3.metric("Tokens", f"{result['tokens']:,}")
    st.caption(f"{result.get('source')} · checkpoint step {result['checkpoint_step']:,} · "
               f"{when(result.get('timestamp'))}")
    for note in result.get("notes", []):
        st.caption(f"Note: {note}")


# --------------------------------------------------------------------------- page sections
def choose_run() -> tuple[Run, RunConfig]:
    """Title, and the run to evaluate (with what it is); stops with a pointer to Train when none can be."""
    st.title("Evaluate")
    st.caption("Score a run on question answering: exact match, F1 and ROUGE-L against the expected answers, "
               "the worst answers, and every prediction to download. Results are saved with the run and appear "
               "as columns on the Runs page.")
    runs = evaluable_runs()
    if not runs:
        st.info("No run has a checkpoint yet: train one on the Train page (or import one on the Runs page).",
                icon=":material/info:")
        st.page_link("pages/train.py", label="Go to the Train page", icon=":material/fitness_center:")
        st.stop()

    by_name = {r.name: r for r in runs}
    if st.session_state.get("eval_run") not in by_name:
        st.session_state["eval_run"] = runs[0].name
    cfg_of = {name: r.config() for name, r in by_name.items()}

    def run_label(name: str) -> str:
        return f"{name} · {'QA fine-tune' if cfg_of[name].task == 'qa' else 'language model'}"

    name = st.selectbox("Run", list(by_name), key="eval_run", format_func=run_label,
                        help="Runs with a checkpoint, newest first; the latest checkpoint is evaluated.")
    run, cfg = by_name[name], cfg_of[name]
    lineage = f"started from **{cfg.parent.name}**" if cfg.parent else "trained from scratch"
    step = checkpoint_step(run) if run.latest_checkpoint() is not None else 0
    st.caption(f"Task **{cfg.task}** · {lineage} · checkpoint step {step:,} · context window "
               f"{cfg.model.seq_len} tokens")
    if cfg.task == "lm":
        st.caption("A language model was never taught to answer: expect low scores until it is fine-tuned for QA "
                   "(the prompt is `Context: …` / `Q: …` / `A:`).")
    return run, cfg


def qa_section(run: Run) -> None:
    """Question answering: pick a file (bundled split or upload), evaluate it, and show a saved result."""
    st.subheader("Question answering")
    files = bundled_files()
    c1, c2 = st.columns([3, 1])
    choice = c1.selectbox("Questions", [*files, UPLOAD], key="eval_file",
                          help="Bundled synthetic splits (question, context, answer), or your own file. A file "
                               "without an answer column is answered, not scored.")
    limit = c2.number_input("Questions to answer (0 = all)", min_value=0, value=100, step=50, key="eval_limit",
                            help="The first N rows of the file; all 500 of a bundled split take longer on a CPU.")
    upload = None
    if choice == UPLOAD:
        upload = st.file_uploader("QA file with question and context columns (answer to be scored)",
                                  type=list(QA_FILE_TYPES), key="eval_upload", disabled=not can_change())
    lock = change_kwargs("Answers the questions and saves the result with the run "
                         "(replacing this file's previous result)")
    clicked = st.button("Evaluate", type="primary", icon=":material/target:", key="eval_qa",
                        **{**lock, "disabled": lock.get("disabled", False) or (choice == UPLOAD and upload is None)})
    shown_key = f"eval_shown_{run.name}"  # which saved result of this run is drawn
    slot = st.container()
    if clicked and presenter_only():
        run_qa(run, files.get(choice), upload, int(limit), shown_key, slot)
    show_saved_qa(run, shown_key)


def run_qa(run: Run, bundled: Path | None, upload: UploadedFile | None, limit: int, shown_key: str,
           slot: DeltaGenerator) -> None:
    """Evaluate the run on a bundled split or an upload (with a progress bar); the result is then shown."""
    bar = slot.progress(0.0, text="Answering…")
    try:
        with user_errors(slot), tempfile.TemporaryDirectory(prefix="genai-eval-") as tmp:
            if upload is not None:
                # The engine reads paths; the copy keeps the upload's (sanitised) name, which names the result.
                stem = slugify(Path(upload.name).stem)
                path = Path(tmp) / f"{stem}{Path(upload.name).suffix.lower()}"
                path.write_bytes(upload.getvalue())
                result_name: str | None = f"upload-{stem}"  # never replaces the result of a bundled split
            else:
                assert bundled is not None
                path, result_name = bundled, None
            result = evaluate_qa(run, path, limit=limit or None, name=result_name, progress=progress_to(bar),
                                 kind_of=question_kind)  # a file without a kind column: the demo's phrasings
            st.session_state[shown_key] = result["saved_to"]  # show what was just measured
    finally:
        bar.empty()


def show_saved_qa(run: Run, shown_key: str) -> None:
    """The saved QA result chosen (the latest evaluated, unless the person picks another)."""
    qa_saved = [e for e in run.saved_evaluations() if e.get("kind") == "qa"]
    if not qa_saved:
        st.caption("No question answering result for this run yet: pick a file and press Evaluate.")
        return
    labels = {e["saved_to"]: f"{e.get('file') or e.get('name')} · {when(e.get('timestamp'))}" for e in qa_saved}
    if st.session_state.get(shown_key) not in labels:
        st.session_state[shown_key] = qa_saved[0]["saved_to"]
    if len(labels) > 1:
        st.selectbox("Result shown", list(labels), format_func=labels.__getitem__, key=shown_key,
                     help="The latest evaluation of each file is kept")
    show_qa(next(e for e in qa_saved if e["saved_to"] == st.session_state[shown_key]))


def perplexity_section(run: Run, cfg: RunConfig) -> None:
    """Held-out perplexity of a language model (a QA fine-tune is measured by its QA score instead)."""
    st.subheader("Held-out perplexity")
    if cfg.task == "qa":
        st.caption("A QA fine-tune learned from question/answer pairs, not running text: its held-out measure is "
                   "the question answering score above (its validation loss on answers is on the Runs page).")
        return
    st.caption("Exact mean loss over the whole validation split of the run's corpus (every token predicted once), "
               "not the sampled estimate of the training curves.")
    if st.button("Measure perplexity", icon=":material/straighten:", key="eval_ppl",
                 **change_kwargs("Saved with the run")) and presenter_only():
        bar = st.progress(0.0, text="Measuring…")
        try:
            with user_errors():
                evaluate_run(run, progress=progress_to(bar))
        finally:
            bar.empty()
    ppl = next((e for e in run.saved_evaluations() if e.get("kind") == "perplexity" and e.get("name") == "val"),
               None)
    if ppl is not None:
        show_perplexity(ppl)
    else:
        st.caption("Not measured yet.")


def saved_section(run: Run) -> None:
    """Everything saved for the run, one row per result."""
    everything = run.saved_evaluations()
    with st.expander(f"All saved results of {run.name} ({len(everything)})"):
        if everything:
            table(saved_table(everything), hide_index=True, column_config=SAVED_COLUMNS, key="eval_saved")
            st.caption(f"Files in {run.eval_path}; the latest evaluation of each file replaces the previous one.")
        else:
            st.caption("Nothing saved yet.")


# --------------------------------------------------------------------------- the page
run, cfg = choose_run()
qa_section(run)
perplexity_section(run, cfg)
saved_section(run)
