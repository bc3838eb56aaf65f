"""Why Optuna, not Ray Tune, drives a sweep here: the cost of the search machinery itself on one machine.

    python benchmarks/sweep_frameworks.py [--trials 100]

Both run the same trivial objective (a quadratic of two knobs, no training) for N trials, one at a time:
- Optuna, the way `genai_core.explore.sweep` uses it: TPE, ask-and-tell, the study in a journal file;
- Ray Tune (`tune.Tuner`, its default searcher, a local Ray started by the benchmark and shut down after),
  timed from `ray.init` to the results, since a sweep on one laptop would pay for both.

Prints the wall seconds of each, and per trial. Run it alone: Ray's start-up is CPU-bound.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def objective(lr: float, width: int) -> float:
    return (lr - 0.003) ** 2 * 1e4 + (width - 96) ** 2 / 1e3


def optuna_seconds(trials: int, folder: Path) -> float:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    storage = JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
             "width": optuna.distributions.IntDistribution(32, 256)}
    for _ in range(trials):
        trial = study.ask(space)
        study.tell(trial, objective(trial.params["lr"], trial.params["width"]))
    return time.perf_counter() - t0


def ray_tune_seconds(trials: int, folder: Path) -> float:
    import ray
    from ray import tune

    def trainable(config: dict) -> dict:
        return {"loss": objective(config["lr"], config["width"])}

    # Without it a new local Ray writes ~/.ray/auth_token, and every `ray start` on this machine afterwards turns
    # token authentication on (the tests' cluster among them).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    t0 = time.perf_counter()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        tuner = tune.Tuner(trainable, param_space={"lr": tune.loguniform(1e-4, 1e-2), "width": tune.randint(32, 257)},
                           tune_config=tune.TuneConfig(num_samples=trials, metric="loss", mode="min",
                                                       max_concurrent_trials=1),
                           run_config=tune.RunConfig(storage_path=str(folder / "ray"), verbose=0))
        best = tuner.fit().get_best_result()
        assert best.metrics is not None
    finally:
        ray.shutdown()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        optuna_s = optuna_seconds(args.trials, Path(d))
        ray_s = ray_tune_seconds(args.trials, Path(d))
    print(f"{args.trials} trivial trials, one at a time, on {platform.processor() or platform.machine()}:")
    for name, seconds in (("Optuna (TPE, ask-and-tell, journal file)", optuna_s),
                          ("Ray Tune (local Ray, from ray.init)", ray_s)):
        print(f"  {name:<42} {seconds:6.2f} s ({1000 * seconds / args.trials:.1f} ms a trial)")


if __name__ == "__main__":
    main()
