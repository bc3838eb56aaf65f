"""The scheduler's keeper: restarts the queue's scheduler if it dies with runs still waiting.

`launcher.ensure_scheduler` starts one beside each scheduler it starts:

    python -m genai_core.train.queue_keeper RUNS_DIR SCHEDULER_PID

It waits for that process to end, however it ends (done, crashed, killed outright), then calls
`launcher.heal_queue`, which starts a new scheduler (and its keeper) only if queued runs wait with none serving
them. Without it a scheduler killed while nothing else was alive (no server, no trainer, no CLI following a run)
would strand the queue until the next command. Kept to the standard library and psutil until the scheduler dies,
so that waiting costs a bare interpreter, not torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil


def keep(root: Path, pid: int) -> bool:
    """Wait for process `pid` to end, then heal `root`'s queue; True if a scheduler was started."""
    try:
        scheduler = psutil.Process(pid)
        # Not our child: psutil polls it. A dead scheduler its parent has not reaped yet is a zombie, which
        # psutil's wait would take for alive until the parent (a server, say) next looks.
        while scheduler.status() != psutil.STATUS_ZOMBIE:
            try:
                scheduler.wait(timeout=1.0)
                break
            except psutil.TimeoutExpired:
                continue
    except psutil.NoSuchProcess:
        pass
    if not _anything_queued(root):
        return False  # the usual end: the queue ran dry and the scheduler left
    from genai_core.train.launcher import heal_queue

    return heal_queue(root)


def _anything_queued(root: Path) -> bool:
    """Whether any run folder's status says queued, read without the engine (which imports torch). An unreadable
    status counts: heal_queue, which reads it properly, decides."""
    for status in root.glob("*/status.json"):
        try:
            if '"queued"' in status.read_text(encoding="utf-8"):
                return True
        except (OSError, UnicodeDecodeError):
            return True
    return False


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m genai_core.train.queue_keeper RUNS_DIR SCHEDULER_PID", file=sys.stderr)
        return 2
    keep(Path(argv[0]), int(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
