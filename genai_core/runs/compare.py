"""Comparing runs: a summary row per run in lineage order, and ablations (which runs differ from a baseline
in one knob, and what that knob changed).

Runs are grouped by their configuration with the seed (and the settings that do not change what is
learned: name, threads, device, logging cadence) left out, so the seeds of one arm fall into one
group. Against a baseline group, every other group is an arm whose label is its difference from the
baseline ("pos_encoding: learned -> rope"); its final validation loss is the mean and standard deviation
over its seeds, and the change is that mean minus the baseline's. The Runs page draws this; the recipe
benchmark (`bench --recipes --out DIR`) writes runs that fill it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from genai_core.errors import user_message
from genai_core.runs.folder import Run

IGNORED = {"name", "train.seed", "train.num_threads", "train.device", "train.log_interval", "train.sample_interval",
           "train.sample_tokens", "train.checkpoint_interval", "train.compile", "model.vocab_size"}
"""Config keys that do not define an arm (the vocabulary comes from the corpus, which is compared itself)."""


def flat_config(run: Run) -> dict[str, Any]:
    """The run's config as {"section.field": value}, without the IGNORED keys."""
    out: dict[str, Any] = {}
    for section, values in run.config().model_dump(mode="json").items():
        if isinstance(values, dict):
            out.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            out[section] = values
    return {k: v for k, v in out.items() if k not in IGNORED}


def config_diff(base: dict[str, Any], other: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (base value, other value)} for every key whose value differs."""
    return {k: (base.get(k), other.get(k)) for k in sorted(set(base) | set(other)) if base.get(k) != other.get(k)}


@dataclass
class Arm:
    """Runs sharing one configuration but for the seed."""

    runs: list[str]
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Difference from the baseline (empty for the baseline itself)."""
    finals: list[float] = field(default_factory=list)
    """Final validation loss of each run that has one."""
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Per run: (step, validation loss)."""

    @property
    def label(self) -> str:
        if not self.changes:
            return "baseline"
        return ", ".join(f"{k.split('.', 1)[-1]}: {_short(a)} → {_short(b)}" for k, (a, b) in self.changes.items())

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.finals) if self.finals else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.finals) if len(self.finals) > 1 else None

    def mean_curve(self) -> list[tuple[int, float]]:
        """Validation loss at each step that every run of the arm evaluated, averaged over its runs."""
        per_step: dict[int, list[float]] = {}
        for curve in self.curves.values():
            for s, v in curve:
                per_step.setdefault(s, []).append(v)
        n = len(self.curves)
        return [(s, statistics.fmean(v)) for s, v in sorted(per_step.items()) if len(v) == n]


def _short(v: Any) -> str:
    return "off" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _val_curve(run: Run) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["val_loss"])) for r in run.metrics() if r.get("val_loss") is not None]


Flats = dict[str, tuple[Run, dict[str, Any]]]
"""Readable runs by name, each with its `flat_config` (read once, then shared by `baselines` and `ablation`)."""


def flat_configs(runs: Iterable[Run] | Flats) -> Flats:
    """Each readable run with its flat config (runs that cannot be read are left out; the Runs table reports
    them). Given the result of an earlier call, returns it as it is."""
    if isinstance(runs, dict):
        return runs
    out: Flats = {}
    for run in runs:
        try:
            out[run.name] = (run, flat_config(run))
        except Exception:  # a damaged run has no place in a comparison
            continue
    return out


def ablation(runs: Iterable[Run] | Flats, baseline: str, max_changes: int = 1) -> list[Arm]:
    """The baseline's arm first, then every arm differing from it in 1..`max_changes` config keys, smallest
    change first, then by final loss. Runs that cannot be read are skipped."""
    groups: dict[str, tuple[dict[str, Any], list[Run]]] = {}
    base_key = None
    for name, (run, flat) in flat_configs(runs).items():
        key = repr(sorted(flat.items()))
        groups.setdefault(key, (flat, []))[1].append(run)
        if name == baseline:
            base_key = key
    if base_key is None:
        return []
    base_flat = groups[base_key][0]
    arms = []
    for key, (flat, members) in groups.items():
        changes = {} if key == base_key else config_diff(base_flat, flat)
        if key != base_key and not 1 <= len(changes) <= max_changes:
            continue
        arm = Arm(runs=sorted(r.name for r in members), changes=changes)
        for r in members:
            curve = _val_curve(r)
            if curve:
                arm.curves[r.name] = curve
                arm.finals.append(curve[-1][1])
        arms.append(arm)
    arms.sort(key=lambda a: (bool(a.changes), len(a.changes), a.mean if a.mean is not None else float("inf")))
    return arms


def baselines(runs: Iterable[Run] | Flats) -> list[str]:
    """Runs that have at least one one-knob neighbour (the candidates for an ablation's baseline)."""
    flats = {name: flat for name, (_run, flat) in flat_configs(runs).items()}
    return [name for name, flat in flats.items()
            if any(len(config_diff(flat, other)) == 1 for o, other in flats.items() if o != name)]


# --------------------------------------------------------------------------- the runs table
def summary_rows(runs: Iterable[Run]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """One summary row per readable run (`Run.summary()` with the knobs a comparison needs and the held-out
    perplexity), in lineage order; and (name, reason) for the runs that cannot be read."""
    rows, broken = [], []
    for run in runs:
        try:
            s = run.summary()
            cfg = run.config()
        except Exception as e:  # a damaged run must not take the page down
            msg = user_message(e)
            if msg is None:
                raise
            broken.append((run.name, msg))
            continue
        heldout = next((e for e in run.saved_evaluations() if e.get("kind") == "perplexity" and e.get("name") == "val"),
                       None)
        rows.append({**s, "dropout": cfg.model.dropout, "weight_decay": cfg.train.weight_decay,
                     "grad_accum": cfg.train.grad_accum_steps,
                     "heldout_ppl": heldout.get("perplexity") if heldout else None})
    return lineage_order(rows), broken


def lineage_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs in the given order (newest first), except that each run is followed by the runs started from it.

    A run whose parent is not in the list (deleted, or elsewhere) stays where it is.
    """
    names = {r["name"] for r in rows}
    children: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("parent") in names and r["parent"] != r["name"]:
            children.setdefault(r["parent"], []).append(r)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(r: dict[str, Any]) -> None:
        if r["name"] in seen:  # a renamed folder could make a cycle: list each run once
            return
        seen.add(r["name"])
        out.append(r)
        for c in children.get(r["name"], []):
            visit(c)

    for r in rows:
        if not (r.get("parent") in names and r["parent"] != r["name"]):
            visit(r)
    for r in rows:  # runs caught in a cycle have no root: keep them anyway
        visit(r)
    return out


def qa_score_keys(row: dict[str, Any], metric: str) -> list[tuple[str, str]]:
    """(column, file name) of the QA scores `metric` in a summary row (`qa_<file>_<metric>`)."""
    suffix = f"_{metric}"
    return sorted((k, k[3:-len(suffix)]) for k in row if k.startswith("qa_") and k.endswith(suffix))
