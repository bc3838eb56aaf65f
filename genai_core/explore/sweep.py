"""A sweep: the trials of a search space trained as ordinary runs, searched by Optuna, losing trials stopped early.

    sweep = Sweep.create(out, runs_root, base_config, SearchSpace.from_json(text), SweepSettings(trials=12))
    summary = sweep.run()            # blocks until the sweep ends; Sweep.open(out, runs_root).run() resumes it

Optuna does the search by ask-and-tell: the controller (this process, the only one that writes the study) asks
for a trial's knobs, trains them as the run `<sweep>-tNN` through the job manager (the runs folder's scheduler
trains it in its own process, counted by the disk cap like any run), reports each validation loss as the run
logs it (the rungs are the base config's evaluation steps, the same in every trial), and tells the result. A
trial the pruner cuts is stopped through the job manager, keeps its curve and checkpoint, and reads `pruned`
with the step and the value that cut it.

The sweep folder holds only `sweep.json` (space, base config, settings), the study's journal (Optuna's
append-only journal file: no SQLite to lock) and `summary.json`. The runs hold everything else, so a killed
controller loses nothing: trials keep training, and the next `run` re-attaches to them (a trial is never
started twice: its run's name is its number). Trials run one per device (or Ray worker): `parallel` submits
that many at once, and on one CPU they queue. With `seed_reruns`, the search ends by training the best trial's
config again with other seeds (runs `<best>-seedK`, not trials of the study): the summary's seed noise.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai_core.config import RunConfig, child_env
from genai_core.errors import GenAIError
from genai_core.explore.settings import SweepSettings
from genai_core.explore.space import SearchSpace
from genai_core.files import atomic_write_json, file_lock, read_json
from genai_core.runs.folder import Run, run_writer, validate_run_name
from genai_core.runs.status import is_run_folder
from genai_core.train.counts import flops_per_token

SWEEPS_FOLDER = ".sweeps"
"""Where a runs folder keeps its sweeps (beside their trials; a hidden folder, so not in the runs list)."""
SWEEP_FILE = "sweep.json"
JOURNAL_FILE = "study.journal"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".controller.lock"
STOP_FILE = "stop.request"
LOG_FILE = "controller.log"
MIN_TRIALS_FOR_IMPORTANCE = 4


def sweeps_dir(runs_root: Path | str) -> Path:
    return Path(runs_root) / SWEEPS_FOLDER


def list_sweeps(runs_root: Path | str) -> list[Sweep]:
    """The sweeps of a runs folder, newest first (a damaged one is left out)."""
    folders = [p for p in sweeps_dir(runs_root).glob("*") if (p / SWEEP_FILE).is_file()]
    out = []
    for p in sorted(folders, key=lambda p: (p / SWEEP_FILE).stat().st_mtime, reverse=True):
        try:
            out.append(Sweep(p, runs_root))
        except (GenAIError, KeyError, ValueError):
            continue
    return out


@dataclass
class _Live:
    """A trial the controller follows: its Optuna trial, its run, the last step it reported."""

    trial: Any  # optuna.trial.Trial
    run: Run
    reported: int = -1


def trial_name(sweep: str, number: int) -> str:
    return f"{sweep}-t{number:02d}"


def rerun_name(best_run: str, k: int) -> str:
    """The k-th seed rerun of the best trial's config (seed = the trial's seed + k)."""
    return f"{best_run}-seed{k}"


def flops_per_step(config: RunConfig) -> float:
    """Training FLOPs of one optimizer step of `config` (the analytic count)."""
    t, m = config.train, config.model
    return flops_per_token(m) * t.batch_size * t.grad_accum_steps * m.seq_len


def grid_cells(space: SearchSpace, base: RunConfig, settings: SweepSettings) -> list[dict[str, Any]]:
    """The cells a grid sweep trains, in the order it asks for them (trial 0 first): the first `settings.trials`
    of the space's grid, or with parallel trials and no early stopping the costliest first (longest-processing-
    time order), so the slots finish together instead of one training the last big cell alone."""
    grid = space.grid()
    if grid is None:
        raise GenAIError("the grid sampler needs every knob as a list of choices or a whole-number range")
    cells = [dict(zip(grid, c, strict=True))
             for c in itertools.islice(itertools.product(*grid.values()), settings.trials)]
    if settings.parallel > 1 and settings.pruner == "none":

        def cost(params: dict[str, Any]) -> float:  # 0 for a config the trainer refuses: it fails when submitted
            try:
                return flops_per_step(space.config_for(base, params))
            except GenAIError:
                return 0.0

        cells.sort(key=cost, reverse=True)
    return cells


class Sweep:
    """A sweep folder and the controller that drives it (see the module docstring)."""

    def __init__(self, out: Path | str, runs_root: Path | str) -> None:
        self.out = Path(out)
        self.runs_root = Path(runs_root)
        self.name = self.out.name
        saved = read_json(self.out / SWEEP_FILE)
        self.space = SearchSpace.from_dict(saved["space"])
        self.base = RunConfig.model_validate(saved["base"])
        self.settings = SweepSettings.model_validate(saved["settings"])
        self._exhausted = False
        self._importance_of: tuple[tuple[int, int], dict[str, Any] | None] = ((-1, -1), None)  # ((step, trials), it)

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, out: Path | str, runs_root: Path | str, base: RunConfig, space: SearchSpace,
               settings: SweepSettings) -> Sweep:
        """A new sweep folder, after checking the space against `base` (one message for a bad space)."""
        out = Path(out)
        # The longest names it will give fit too.
        validate_run_name(rerun_name(trial_name(out.name, settings.trials), settings.seed_reruns or 1))
        if (out / SWEEP_FILE).exists():
            raise GenAIError(f"a sweep already exists in {out}; resume it, or choose another folder")
        space.check(base)
        if settings.sampler == "grid":
            grid_cells(space, base, settings)  # refuses a space without a grid
        taken = [p.name for p in Path(runs_root).glob(f"{out.name}-t*") if is_run_folder(p)]
        if taken:
            raise GenAIError(f"runs named like this sweep's trials already exist ({taken[0]}); choose another name")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / SWEEP_FILE, {"space": space.as_json(), "base": base.model_dump(mode="json"),
                                             "settings": settings.model_dump(mode="json")})
        return cls(out, runs_root)

    @classmethod
    def open(cls, out: Path | str, runs_root: Path | str) -> Sweep:
        if not (Path(out) / SWEEP_FILE).is_file():
            raise GenAIError(f"{out} is not a sweep folder (no {SWEEP_FILE})")
        return cls(out, runs_root)

    # ------------------------------------------------------------------ the study
    def _study(self) -> Any:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        s = self.settings
        storage = JournalStorage(JournalFileBackend(str(self.out / JOURNAL_FILE)))
        try:  # a resumed sweep's sampler draws on from where it was, not its first draws again
            seed = s.seed + len(optuna.load_study(study_name=self.name, storage=storage).trials)
        except KeyError:  # no study yet
            seed = s.seed
        if s.sampler in ("grid", "random"):
            # A grid is its cells enqueued in order (below): Optuna's GridSampler stops the study from inside
            # `tell`, which ask-and-tell does not allow.
            sampler: Any = optuna.samplers.RandomSampler(seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, s.trials))
        rung = self.base.train.eval_interval
        if s.pruner == "hyperband":
            pruner: Any = optuna.pruners.HyperbandPruner(
                min_resource=rung, max_resource=self.base.train.max_steps or "auto", reduction_factor=3)
        elif s.pruner == "asha":
            pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=rung, reduction_factor=3)
        elif s.pruner == "median":
            pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=rung - 1)
        else:
            pruner = optuna.pruners.NopPruner()
        study = optuna.create_study(study_name=self.name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction="minimize", load_if_exists=True)
        if s.sampler == "grid" and self.space.grid() is not None and not study.trials:
            for cell in grid_cells(self.space, self.base, s):
                study.enqueue_trial(cell)
        return study

    @staticmethod
    def _asked(study: Any) -> list[Any]:
        """The trials asked for so far, in order (a grid's cells wait in the study until asked)."""
        from optuna.trial import TrialState

        return [t for t in study.get_trials(deepcopy=False)
                if t.state != TrialState.WAITING and "duplicate_of" not in t.user_attrs]

    def _distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        for k in self.space.knobs:
            if k.choices is not None:
                out[k.name] = CategoricalDistribution(list(k.choices))
            elif k.integer:
                out[k.name] = IntDistribution(int(k.low), int(k.high), log=k.log)
            else:
                out[k.name] = FloatDistribution(float(k.low), float(k.high), log=k.log)
        return out

    # ------------------------------------------------------------------ the controller
    def run(self, *, stop: threading.Event | None = None, on_tick: Callable[[dict[str, Any]], None] | None = None,
            poll_s: float = 1.0) -> dict[str, Any]:
        """Drive the sweep to its end (or until `stop` is set: its trials are stopped, to resume later) and
        return its summary. One controller per sweep: a second is refused."""
        from optuna.trial import Trial, TrialState

        from genai_core.train.jobs import JobManager

        with file_lock(self.out / LOCK_FILE, blocking=False) as mine:
            if not mine:
                raise GenAIError(f"sweep {self.name} is being run by another process")
            (self.out / STOP_FILE).unlink(missing_ok=True)  # a stop asked of an earlier controller is done
            study = self._study()
            jm = JobManager(self.runs_root)
            try:
                live: dict[int, _Live] = {}
                for ft in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    if "duplicate_of" in ft.user_attrs:  # asked, found a repeat, not told before a crash
                        study.tell(ft.number, state=TrialState.FAIL)
                        continue
                    # Optuna's ask-and-tell has no public way back from a stored trial to a Trial to report on.
                    live[ft.number] = self._attach(Trial(study, ft._trial_id), ft, jm)
                while True:
                    for number, trial in list(live.items()):
                        if self._follow(study, trial, jm):
                            del live[number]
                    if (stop is not None and stop.is_set()) or (self.out / STOP_FILE).exists():
                        for trial in live.values():
                            trial.trial.set_user_attr("paused", True)  # the next controller resumes it
                            if jm.status(trial.run.name).active:
                                jm.stop(trial.run.name)
                        for rerun in self._reruns(self.summary().get("best")):  # the next controller resumes it
                            if jm.status(rerun["run"]).active:
                                jm.stop(rerun["run"])
                        break
                    while len(live) < self.settings.parallel and self._may_ask(study):
                        trial = self._ask(study, jm)
                        if trial is not None:
                            live[trial.trial.number] = trial
                    summary = self.write_summary(study)
                    if on_tick is not None:
                        on_tick(summary)
                    if not live and not self._may_ask(study) and self._follow_reruns(jm, summary["best"]):
                        break
                    time.sleep(poll_s)
            finally:
                jm.shutdown(stop_running=False, timeout=0)
            return self.write_summary(study)

    def _reruns(self, best: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The seed reruns of the best completed trial `best` (none without one, or when off)."""
        if not best or not self.settings.seed_reruns:
            return []
        return [{"run": rerun_name(best["run"], k), "of": best["run"], "k": k}
                for k in range(1, self.settings.seed_reruns + 1)]

    def _follow_reruns(self, jm: Any, best: dict[str, Any] | None) -> bool:
        """Once the search is over: queue the best config's seed reruns, carry on any a restart or a stop left
        behind, and say whether they have all ended."""
        done = True
        for rerun in self._reruns(best):
            run = Run(self.runs_root / rerun["run"])
            if not run.exists():
                self._submit_rerun(jm, rerun)
                done = False
                continue
            st = jm.status(rerun["run"])
            if st.active:
                done = False
            elif st.state in ("interrupted", "stopped"):  # killed with its server, or stopped with the sweep
                _carry_on(jm, run, lambda rerun=rerun: self._submit_rerun(jm, rerun, replace=True))
                done = False
        return done

    def _submit_rerun(self, jm: Any, rerun: dict[str, Any], *, replace: bool = False) -> None:
        """Queue a seed rerun: the best trial's config with its seed moved by k, with the sweep's lineage."""
        config = Run(self.runs_root / rerun["of"]).config()
        train = config.train.model_copy(update={"seed": config.train.seed + rerun["k"]})
        jm.submit(config.model_copy(update={"name": rerun["run"], "train": train}), rerun["run"], replace=replace,
                  note={"sweep": self.name, "rerun_of": rerun["of"]})

    def best_config(self, longer: float = 1.0) -> RunConfig | None:
        """The best completed trial's config (with `longer` times its steps), None before one completed."""
        best = self.summary().get("best")
        if not best:
            return None
        config = Run(self.runs_root / best["run"]).config()
        steps = max(1, round((config.train.max_steps or best["total_steps"]) * longer))
        return config.model_copy(update={"name": "", "train": config.train.model_copy(update={"max_steps": steps})})

    # ------------------------------------------------------------------ from another process (the app)
    def controlled(self) -> bool:
        """A controller is driving this sweep now (in any process of this machine)."""
        with file_lock(self.out / LOCK_FILE, blocking=False) as free:
            return not free

    def start_controller(self) -> bool:
        """Drive the sweep from a detached process (`sweep --resume`), which outlives the caller (the app's
        server); False when one already drives it."""
        if self.controlled():
            return False
        (self.out / STOP_FILE).unlink(missing_ok=True)
        env = child_env(GENAI_RUNS_DIR=str(self.runs_root.absolute()))
        with open(self.out / LOG_FILE, "ab") as log:
            subprocess.Popen([sys.executable, "-m", "genai_core", "sweep", "--out", str(self.out.absolute()),
                              "--resume"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        return True

    def request_stop(self) -> None:
        """Ask the controller to stop the trials (each saves a checkpoint) and exit; `start_controller` resumes."""
        atomic_write_json(self.out / STOP_FILE, {"at": time.time()})

    def _may_ask(self, study: Any) -> bool:
        s = self.settings
        limit = min(s.trials, self.space.grid_size() or s.trials)  # no config is trained twice
        if self._exhausted or len(self._asked(study)) >= limit:
            return False
        return s.budget_minutes is None or self._train_seconds(study) < 60 * s.budget_minutes

    def _ask(self, study: Any, jm: Any) -> _Live | None:
        """A new trial, submitted as its run; a config the trainer refuses is told failed (None)."""
        from optuna.trial import TrialState

        trial = self._ask_new(study)
        if trial is None:
            self._exhausted = True  # the sampler only repeats itself: the search is over
            return None
        try:
            run = self._submit(jm, trial.number, trial.params)
        except GenAIError as e:
            trial.set_user_attr("message", str(e))
            study.tell(trial, state=TrialState.FAIL)
            return None
        trial.set_user_attr("run", run.name)
        return _Live(trial, run)

    def _submit(self, jm: Any, number: int, params: dict[str, Any], *, replace: bool = False) -> Run:
        """Queue trial `number` (the base config with `params`) as its run, with the sweep's lineage."""
        name = trial_name(self.name, number)
        config = self.space.config_for(self.base, params).model_copy(update={"name": name})
        jm.submit(config, name, replace=replace, note={"sweep": self.name, "trial": number})
        return Run(self.runs_root / name)

    def _ask_new(self, study: Any, tries: int = 50) -> Any | None:
        """A trial whose knobs no earlier trial had. TPE and random search draw choices with replacement; a
        repeat would train a config again, so it is told the earlier trial's outcome (what TPE learns from)
        and left out of the sweep's trials. None when `tries` draws were all repeats."""
        from optuna.trial import TrialState

        seen = {json.dumps(t.params, sort_keys=True): t for t in self._asked(study)}
        for _ in range(tries):
            trial = study.ask(self._distributions())
            earlier = seen.get(json.dumps(trial.params, sort_keys=True))
            if earlier is None:
                return trial
            trial.set_user_attr("duplicate_of", earlier.number)
            if earlier.state == TrialState.COMPLETE:
                study.tell(trial, earlier.value)
            else:
                study.tell(trial, state=TrialState.PRUNED if earlier.state == TrialState.PRUNED else TrialState.FAIL)
        return None

    def _attach(self, trial: Any, frozen: Any, jm: Any) -> _Live:
        """A trial an earlier controller left running: follow its run (submitted now if it never was)."""
        run = Run(self.runs_root / trial_name(self.name, trial.number))
        if not run.exists():
            run = self._submit(jm, trial.number, trial.params)
        return _Live(trial, run, max(frozen.intermediate_values, default=-1))

    def _follow(self, study: Any, live: _Live, jm: Any) -> bool:
        """Report the run's new validation losses, stop it if the pruner says so, and tell the study how it
        ended once it has. True when the trial is over."""
        from optuna.trial import TrialState

        trial, name = live.trial, live.run.name
        st = jm.status(name)
        pruning = "pruned_at" in trial.user_attrs
        for row in live.run.metrics():
            step, value = row.get("step"), row.get("val_loss")
            if value is None or step is None or step <= live.reported or not math.isfinite(value):
                continue
            trial.report(value, step)
            live.reported = step
            if not pruning and trial.should_prune():
                trial.set_user_attr("pruned_at", {"step": step, "value": value})
                pruning = True
                if st.active:
                    jm.stop(name)
        if st.active:
            return False
        if pruning and st.state != "completed":  # a trial that ended before the stop reached it trained in full
            cut = trial.user_attrs["pruned_at"]
            if st.state != "pruned" and not _mark_pruned(live.run, cut):
                return False
            study.tell(trial, state=TrialState.PRUNED)
            return True
        if st.state == "completed":
            values = [r["val_loss"] for r in live.run.metrics() if r.get("val_loss") is not None]
            if values and math.isfinite(values[-1]):
                study.tell(trial, values[-1])
            else:
                trial.set_user_attr("message", "completed without a validation loss")
                study.tell(trial, state=TrialState.FAIL)
            return True
        if st.state == "interrupted" or (st.state == "stopped" and trial.user_attrs.get("paused")):
            # Its trainer was killed (a server or machine restart), or the sweep was stopped: carry on.
            trial.set_user_attr("paused", False)
            _carry_on(jm, live.run, lambda: self._submit(jm, trial.number, trial.params, replace=True))
            return False
        trial.set_user_attr("message", f"{st.state}: {st.message}" if st.message else st.state)
        study.tell(trial, state=TrialState.FAIL)
        return True

    # ------------------------------------------------------------------ the summary
    def _train_seconds(self, study: Any) -> float:
        total = 0.0
        for ft in self._asked(study):
            rows = Run(self.runs_root / trial_name(self.name, ft.number)).metrics()
            total += float(rows[-1].get("elapsed_s") or 0.0) if rows else 0.0
        return total

    def summary(self) -> dict[str, Any]:
        """The summary as last written (`summary.json`), or None fields before the first."""
        try:
            data = read_json(self.out / SUMMARY_FILE)
        except FileNotFoundError:
            data = None
        return data if isinstance(data, dict) else {"sweep": self.name, "trials": [], "best": None}

    def write_summary(self, study: Any) -> dict[str, Any]:
        """Trials with their knobs, state, final (or last) validation loss and steps; the best trial; the compute
        spent against the same trials run to the end; which knobs mattered. Written to summary.json."""
        trials: list[dict[str, Any]] = []
        flops: list[float] = []  # trained, per trial
        trained = full = seconds = 0.0
        for ft in self._asked(study):
            name = trial_name(self.name, ft.number)
            run = Run(self.runs_root / name)
            rows = run.metrics() if run.exists() else []
            vals = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
            status = run.status() if run.exists() else {}
            state = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}.get(
                ft.state.name, str(status.get("state", "queued")))
            steps = int(rows[-1]["step"]) if rows else 0
            total = int(status.get("total_steps") or (self.base.train.max_steps or 0))
            entry = {"number": ft.number, "run": name, "params": ft.params, "state": state,
                     "val_loss": ft.value if ft.value is not None else (vals[-1] if vals else None),
                     "steps": steps, "total_steps": total,
                     # A trial that ended before the pruner's stop reached it trained in full: not cut.
                     "pruned_at": ft.user_attrs.get("pruned_at") if state == "pruned" else None,
                     "message": ft.user_attrs.get("message")}
            trials.append(entry)
            seconds += float(rows[-1].get("elapsed_s") or 0.0) if rows else 0.0
            per_step = flops_per_step(run.config()) if run.exists() else 0.0
            flops.append(steps * per_step)
            if state in ("completed", "pruned"):
                trained += steps * per_step
                full += max(total, steps) * per_step
        done = [t for t in trials if t["state"] == "completed" and t["val_loss"] is not None]
        best = min(done, key=lambda t: t["val_loss"]) if done else None
        best_so_far, spent, lowest = [], 0.0, math.inf
        for t, f in zip(trials, flops, strict=True):  # in trial order: what the search had found per compute spent
            spent += f
            if t["state"] == "completed" and t["val_loss"] is not None:
                lowest = min(lowest, t["val_loss"])
            if t["state"] in ("completed", "pruned") and math.isfinite(lowest):
                best_so_far.append({"trial": t["number"], "flops": spent, "best_val_loss": lowest})
        searched = not self._may_ask(study) and all(t["state"] in ("completed", "pruned", "failed") for t in trials)
        reruns = self._rerun_results(best) if searched and best else []
        seeds = [best["val_loss"]] + [r["val_loss"] for r in reruns] if best else []
        summary = {
            "sweep": self.name, "space": self.space.as_json(), "settings": self.settings.model_dump(mode="json"),
            "trials": trials, "best": best, "best_so_far": best_so_far,
            "seed_reruns": reruns,
            "seed_spread": max(seeds) - min(seeds) if reruns and None not in seeds else None,
            "finished": searched and all(r["state"] in ("completed", "failed") for r in reruns)
                        and len(reruns) == (self.settings.seed_reruns if best else 0),
            "compute": {"flops_trained": trained, "flops_if_run_to_the_end": full,
                        "saved_by_pruning": 1.0 - trained / full if full else 0.0, "train_seconds": seconds},
            "importance": self._importance(study),
        }
        atomic_write_json(self.out / SUMMARY_FILE, summary)
        return summary

    def _rerun_results(self, best: dict[str, Any]) -> list[dict[str, Any]]:
        """The best config's seed reruns as they stand: run, seed, state, final validation loss."""
        out = []
        for rerun in self._reruns(best):
            run = Run(self.runs_root / rerun["run"])
            if not run.exists():
                continue
            vals = [r["val_loss"] for r in run.metrics() if r.get("val_loss") is not None]
            state = str(run.status().get("state", "queued"))
            out.append({"run": run.name, "seed": run.config().train.seed, "state": state,
                        "val_loss": vals[-1] if vals and state == "completed" else None})
        return out

    def _importance(self, study: Any) -> dict[str, Any] | None:
        """Which knobs mattered, by PED-ANOVA (Watanabe et al. 2023; Optuna's, no scikit-learn needed, unlike its
        fANOVA): {"knobs": {knob: importance}, "step": S, "trials": N}, None with fewer than
        MIN_TRIALS_FOR_IMPORTANCE trials at any rung, or one knob.

        Measured on the validation loss at the latest step S that at least that many trials reached, pruned
        ones included: with early stopping few trials run to the end, and importance from those few alone
        would say little (or nothing, long after the first rungs could)."""
        import optuna
        from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
        from optuna.trial import TrialState, create_trial

        if len(self.space.knobs) < 2:
            return None
        ended = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                      TrialState.RUNNING))
                 if t.intermediate_values and "duplicate_of" not in t.user_attrs]
        reached: dict[int, int] = {}
        for t in ended:
            for step in t.intermediate_values:
                reached[step] = reached.get(step, 0) + 1
        steps = [step for step, n in reached.items() if n >= MIN_TRIALS_FOR_IMPORTANCE]
        if not steps:
            return None
        step = max(steps)
        at = [t for t in ended if step in t.intermediate_values]
        key = (step, len(at))
        if self._importance_of[0] != key:  # it changes only when a trial reaches a rung, not every tick
            scratch = optuna.create_study(direction="minimize")
            distributions = self._distributions()
            scratch.add_trials([create_trial(params=t.params, distributions=distributions,
                                             value=t.intermediate_values[step]) for t in at])
            try:
                knobs = {k: float(v) for k, v in get_param_importances(
                    scratch, evaluator=PedAnovaImportanceEvaluator()).items()}
                importance: dict[str, Any] | None = {"knobs": knobs, "step": step, "trials": len(at)}
            except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. every trial took one value of a knob
                importance = None
            self._importance_of = (key, importance)
        return self._importance_of[1]


def _carry_on(jm: Any, run: Run, resubmit: Callable[[], None]) -> None:
    """Train on a run that a restart or a stop interrupted: from its checkpoint, or `resubmit` it when it stopped
    before its first (still queued, perhaps)."""
    if run.latest_checkpoint() is not None:
        jm.resume(run.name)
    else:
        resubmit()


def _mark_pruned(run: Run, cut: dict[str, Any]) -> bool:
    """Write a stopped trial's `pruned` status, with the step and the value that cut it; False while its trainer
    is still on its way out (it holds the run)."""
    try:
        with run_writer(run.path):
            run.write_status("pruned", f"pruned by the sweep at step {cut['step']:,}: val loss {cut['value']:.4f} "
                                       "was behind the other trials there", pruned_at=cut["step"],
                             pruned_value=cut["value"])
    except GenAIError:
        return False
    return True


def sweep_estimate(base: RunConfig, space: SearchSpace, settings: SweepSettings,
                   runs_root: Path | str) -> dict[str, float]:
    """What a sweep may cost before it starts: a trial of the space's largest corner trained to the end, and
    the whole sweep so (early stopping only cuts this; a budget caps it)."""
    from genai_core.train.estimates import estimate

    config = space.config_for(base, space.largest())
    est = estimate(config, runs_root=Path(runs_root), background=True)  # the page must not wait on timing
    trial = est.total_seconds or 0.0
    total = trial * settings.trials
    if settings.budget_minutes is not None:
        total = min(total, 60 * settings.budget_minutes + trial * settings.parallel)
    return {"trial_seconds": trial, "sweep_seconds": total, "params": float(est.params)}
