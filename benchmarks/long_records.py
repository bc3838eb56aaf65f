"""Peak memory of preparing a corpus whose records are huge: one 200 MB line (.txt and .jsonl) and a 50 MB CSV
field, from the bundled Shakespeare (text no one here wrote), on the CLI and through the Data page.

    python benchmarks/long_records.py [--mb 200] [--only cli|page]

Each figure comes from a fresh child process (`ru_maxrss` of that child alone). The Data page figure is the
growth of a process running the app through AppTest from its first page view to the end of upload + prepare
(the upload's bytes, which a server holds too, included). The goal (issue 25): under 1 GB for the CLI, and a
server growing by under 1 GB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "assets" / "corpora" / "shakespeare.txt"

_CLI = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-m", "genai_core", "prepare", "--corpus", sys.argv[1], "--out", sys.argv[2]],
               check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""

_PAGE = """
import os, resource, sys, time
sys.path.insert(0, os.path.join(sys.argv[3], "tests"))
from conftest import app_test
from test_app_data import upload
path = sys.argv[1]
at = app_test("pages/data.py", timeout=3600)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = open(path, "rb").read()
t0 = time.perf_counter()
upload(at, os.path.basename(path), data)
del data
assert not at.exception, [e.value for e in at.exception]
at.button(key="data_prepare").click().run()
errors = [e.value for e in at.error]
assert not errors and not at.exception, (errors, [e.value for e in at.exception])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, base, round(time.perf_counter() - t0, 1))
"""


def write_corpora(folder: Path, mb: float) -> dict[str, Path]:
    """One line of `mb` MB (.txt), the same as one JSON record (.jsonl), and a CSV with one `mb / 4` MB field."""
    one = " ".join(SOURCE.read_text(encoding="utf-8").split())
    size = int(mb * 1e6)
    text = (one + " ") * (size // (len(one) + 1) + 1)
    text = text[:size]
    paths = {"txt": folder / "one_line.txt", "jsonl": folder / "one_record.jsonl", "csv": folder / "one_field.csv"}
    paths["txt"].write_text(text, encoding="utf-8")
    paths["jsonl"].write_text(json.dumps({"text": text}) + "\n", encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerow([1, text[: size // 4]])
        w.writerow([2, "A short record beside it."])
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=200.0)
    ap.add_argument("--only", choices=["cli", "page"])
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENAI_RUNNER": "thread"}
    with tempfile.TemporaryDirectory(prefix="genai-long-") as tmp:
        work = Path(tmp)
        paths = write_corpora(work, args.mb)
        print(f"corpora from {SOURCE.name}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.0f} MB"
                                                          for p in paths.values()), flush=True)
        if args.only in (None, "cli"):
            for kind, path in paths.items():
                out = subprocess.run([sys.executable, "-c", _CLI, str(path), str(work / f"store-{kind}")],
                                     env=env, capture_output=True, text=True, check=True, cwd=ROOT)
                print(f"cli prepare {path.name:18s} peak RSS {int(out.stdout.split()[-1]) / 1024:7.0f} MB",
                      flush=True)
        if args.only in (None, "page"):
            for kind in ("txt", "jsonl"):
                runs = work / f"runs-{kind}"
                runs.mkdir()
                out = subprocess.run([sys.executable, "-c", _PAGE, str(paths[kind]), str(runs), str(ROOT)],
                                     env={**env, "GENAI_RUNS_DIR": str(runs)}, capture_output=True, text=True,
                                     cwd=ROOT)
                if out.returncode != 0:
                    print(f"data page {paths[kind].name}: failed\n{out.stderr[-3000:]}", flush=True)
                    continue
                grew, base, seconds = out.stdout.split()[-3:]
                print(f"data page upload + prepare {paths[kind].name:18s} process grew {int(grew) / 1024:7.0f} MB "
                      f"(from {int(base) / 1024:.0f} MB) in {seconds} s", flush=True)


if __name__ == "__main__":
    main()
