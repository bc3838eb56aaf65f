"""How a sweep searches (`SweepSettings`): a module of its own, light enough for the CLI to build its `--help`
from the fields' docstrings without importing the engine (torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TRIALS = 1000
MAX_PARALLEL = 64
MAX_SEED_RERUNS = 4
MAX_BUDGET_MINUTES = 100_000


class SweepSettings(BaseModel):
    """How a sweep searches: how many trials, how many at once, which sampler and which early stopping."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    trials: int = Field(default=12, ge=1, le=MAX_TRIALS)
    """Trials to train at most (a grid sampler stops earlier when its grid is done)."""
    budget_minutes: float | None = Field(default=None, gt=0, le=MAX_BUDGET_MINUTES)
    """Stop asking for new trials once the trials have trained this many minutes in all (None: no limit)."""
    parallel: int = Field(default=1, ge=1, le=MAX_PARALLEL)
    """Trials submitted at once: one per device (or Ray worker); more only queue."""
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    """tpe: learns from finished trials (Bergstra et al. 2011); random; grid: every combination of the choices."""
    pruner: Literal["hyperband", "asha", "median", "none"] = "hyperband"
    """Early stopping at the rungs. hyperband (Li et al. 2018): successive halving in brackets whose first cut comes
    at different steps, so a ranking that early rungs get wrong is caught by a later bracket; asha: successive
    halving alone (Li et al. 2020), keeps the best third at each rung from the first; median: stops a trial worse
    than the median of earlier trials at the same step; none: every trial to the end."""
    seed: int = Field(default=0, ge=0)
    """Seed of the sampler (the trials' own training seed is the base config's)."""
    seed_reruns: int = Field(default=0, ge=0, le=MAX_SEED_RERUNS)
    """After the search, train the best config again with this many other training seeds: their spread is the
    seed noise, and trials closer than that are a tie (0: off)."""
