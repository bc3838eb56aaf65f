"""The reliability goals of issue 25, measured on real processes: races of two resumes of one run, and a
scheduler killed at random moments with no server running.

    python benchmarks/reliability.py races [--n 100]      # two resumes of one run started together
    python benchmarks/reliability.py scheduler [--n 20]   # kill -9 the scheduler at a random moment

`races`: a tiny run is trained to a checkpoint and killed; then, n times, two contestants resume it at the same
moment (a random 0-150 ms apart): the CLI (`train --resume`) or a server (a process with a `JobManager` that
resumes it in a thread, as the app's thread runner does), in every pairing. The one that trains is stopped after
a second. Counted: races where exactly one trained and the other was refused with one message, steps logged twice
in `metrics.jsonl`, tracebacks anywhere (stderr, error.log).

`scheduler`: three runs are queued for the scheduler from a process that then exits (no server); the scheduler
is killed (SIGKILL) at a random moment in the first 8 s; nothing else is typed. Counted: trials where every run
completes within two minutes, and runs started twice.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genai_core.runs.folder import Run  # noqa: E402
from genai_core.runs.status import writer_of  # noqa: E402

TINY = ["--d-model", "32", "--n-heads", "2", "--n-layers", "1", "--seq-len", "32", "--batch-size", "8",
        "--recipe", "classic", "--tokenizer", "char", "--log-interval", "5", "--eval-interval", "1000000",
        "--threads", "1", "--device", "cpu"]

_SERVER = """
import sys, time
from genai_core.errors import GenAIError
from genai_core.train.jobs import JobManager
jm = JobManager(sys.argv[1])
try:
    jm.resume(sys.argv[2])
except GenAIError as e:
    print("refused:", e, flush=True)
    sys.exit(2)
print("resumed", flush=True)
while jm.status(sys.argv[2]).active:
    time.sleep(0.05)
job = jm._jobs[sys.argv[2]]
jm.shutdown()
if job.error:
    print("refused:" if "is being trained by" in job.error else "failed:", job.error, flush=True)
    sys.exit(2)
"""


def _env(runs: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "GENAI_RUNS_DIR": str(runs), "OMP_NUM_THREADS": "1"}


def _steps(run: Path) -> list[int]:
    steps = []
    for line in (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return steps


def _contestant(kind: str, runs: Path, name: str) -> subprocess.Popen[str]:
    cmd = ([sys.executable, "-m", "genai_core", "train", "--out", name, "--resume"] if kind == "cli" else
           [sys.executable, "-c", _SERVER, str(runs), name])
    return subprocess.Popen(cmd, cwd=runs.parent, env=_env(runs), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def races(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="genai-races-") as tmp:
        work = Path(tmp)
        runs = work / "runs"
        corpus = work / "corpus.txt"
        corpus.write_text((ROOT / "assets" / "corpora" / "shakespeare.txt").read_text(encoding="utf-8")[:200_000])
        first = subprocess.Popen([sys.executable, "-m", "genai_core", "train", "--corpus", str(corpus), "--out",
                                  "race", *TINY, "--max-steps", "10000000", "--checkpoint-seconds", "0.5"],
                                 cwd=work, env=_env(runs), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = runs / "race"
        while not (run / "checkpoints" / "latest").is_file():
            if first.poll() is not None:
                raise SystemExit(f"the first training ended ({first.returncode}) before its first checkpoint")
            time.sleep(0.1)
        first.kill()
        first.wait()
        pairings = [("cli", "cli"), ("cli", "server"), ("server", "cli"), ("server", "server")]
        one_trainer = twice = tracebacks = 0
        rng = random.Random(0)
        t0 = time.perf_counter()
        for i in range(n):
            a_kind, b_kind = pairings[i % len(pairings)]
            a = _contestant(a_kind, runs, "race")
            time.sleep(rng.uniform(0, 0.15))
            b = _contestant(b_kind, runs, "race")
            before = len(_steps(run))
            deadline = time.monotonic() + 60
            while len(_steps(run)) < before + 4 and time.monotonic() < deadline and (a.poll() is None or
                                                                                    b.poll() is None):
                time.sleep(0.05)
            Run(run).request_stop()  # whoever trains, in whichever process
            outs = [p.communicate(timeout=120) for p in (a, b)]
            codes = sorted(p.returncode for p in (a, b))
            refused = sum("is being trained by" in (o + e) or "is running" in (o + e) or "is queued" in (o + e)
                          for o, e in outs)
            one_trainer += sum(c in (0, 130) for c in codes) == 1 and refused == 1  # 130: stopped by request
            steps = _steps(run)
            twice += len(steps) - len(set(steps))
            tracebacks += sum("Traceback" in e for _, e in outs) + (run / "error.log").exists()
            (run / "error.log").unlink(missing_ok=True)
            while writer_of(run) is not None:
                time.sleep(0.05)
            print(f"race {i + 1:3d} {a_kind:>6s} vs {b_kind:<6s} exit codes {codes} refused {refused} "
                  f"state {Run(run).status().get('state')}", flush=True)
        print(f"\n{n} races in {time.perf_counter() - t0:.0f} s: exactly one trainer in {one_trainer}; steps logged "
              f"twice: {twice}; tracebacks: {tracebacks}", flush=True)


def scheduler(n: int) -> None:
    from genai_core.train.counts import count_params  # noqa: F401  (warm the import outside the timings)

    completed = started_twice = 0
    rng = random.Random(0)
    for trial in range(n):
        with tempfile.TemporaryDirectory(prefix="genai-sched-") as tmp:
            work = Path(tmp)
            runs = work / "runs"
            runs.mkdir()
            corpus = work / "corpus.txt"
            shutil.copy(ROOT / "assets" / "corpora" / "shakespeare.txt", corpus)
            queue = ("from genai_core.train.jobs import JobManager\n"
                     "from genai_core.config import RunConfig, DataConfig, ModelConfig, TrainConfig\n"
                     f"c = RunConfig(data=DataConfig(corpus={str(corpus)!r}), model=ModelConfig(d_model=32, n_heads=2,"
                     " n_layers=1, seq_len=32), train=TrainConfig(max_steps=150, batch_size=8, runner='process',"
                     " device='cpu', num_threads=1, eval_interval=50, optimizer='adamw'))\n"
                     "jm = JobManager()\n"
                     "for name in 'abc': jm.submit(c, name)\n")
            subprocess.run([sys.executable, "-c", queue], env=_env(runs), cwd=work, check=True)
            when = rng.uniform(0, 8)
            time.sleep(when)
            killed = 0
            import psutil

            for p in psutil.process_iter(["cmdline"]):
                if p.info["cmdline"] and "scheduler" in p.info["cmdline"] and str(runs) in p.info["cmdline"]:
                    p.kill()
                    killed += 1
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not all(Run(runs / x).state == "completed" for x in "abc"):
                time.sleep(0.2)
            states = [Run(runs / x).state for x in "abc"]
            starts = [(runs / x / "train.log").read_text().count(" started on ") if (runs / x / "train.log").exists()
                      else 0 for x in "abc"]
            completed += all(s == "completed" for s in states)
            started_twice += sum(s > 1 for s in starts)
            print(f"trial {trial + 1:2d}: scheduler killed at {when:4.1f} s ({killed} killed); states {states}; "
                  f"starts {starts}", flush=True)
            for p in psutil.process_iter(["cmdline"]):  # leave nothing running behind the trial
                if p.info["cmdline"] and any(str(runs) in a for a in p.info["cmdline"]):
                    p.send_signal(signal.SIGKILL)
    print(f"\n{n} trials: every queued run completed in {completed}; runs started twice: {started_twice}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["races", "scheduler"])
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    if args.what == "races":
        races(args.n or 100)
    else:
        scheduler(args.n or 20)


if __name__ == "__main__":
    main()
