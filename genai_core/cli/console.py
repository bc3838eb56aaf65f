"""What the commands show on the terminal: notes, tables, JSON, the progress line, training lines,
and the Ctrl-C handling that turns a first interrupt into a clean stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from genai_core.files import json_safe

if TYPE_CHECKING:
    from genai_core.train.trainer import TrainEvent


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, without importing torch."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def kv_lines(rows: Sequence[tuple[str, str]]) -> str:
    """`key  value` lines, the values aligned in one column."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A plain-text table; the columns numbered in `right` are right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    return "\n".join([fmt(headers), *(fmt(r) for r in rows)])


def num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


class ProgressLine:
    """One self-overwriting progress line on stderr; only on a terminal, so logs and pipes stay clean."""

    def __init__(self) -> None:
        self.width = 0

    @classmethod
    def for_terminal(cls) -> ProgressLine | None:
        return cls() if sys.stderr.isatty() else None

    def __call__(self, fraction: float, message: str) -> None:
        text = f"{100 * fraction:5.1f}%  {message}"[:100]
        sys.stderr.write("\r" + text.ljust(self.width))
        sys.stderr.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


@contextmanager
def terminal_progress(enabled: bool = True) -> Iterator[ProgressLine | None]:
    """A progress line for the block (None off a terminal, or when not `enabled`), cleared however it ends."""
    progress = ProgressLine.for_terminal() if enabled else None
    try:
        yield progress
    finally:
        if progress is not None:
            progress.close()


def print_result(result: dict[str, Any], as_json: bool) -> bool:
    """With --json, the whole result as JSON (True: nothing more to print); otherwise its notes on stderr."""
    if as_json:
        print(json.dumps(json_safe(result), indent=2))
        return True
    for message in result.get("notes", ()):
        note(message)
    return False


class TrainPrinter:
    """Turns trainer events into one compact line per log step (rank 0 only)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, ev: TrainEvent) -> None:
        if not self.enabled:
            return
        d = ev.data
        if ev.kind == "start":
            extra = f", resuming at step {ev.step:,}" if d.get("resumed") else ""
            procs = f" x{d['world_size']} processes" if d.get("world_size", 1) > 1 else ""
            print(f"training: {d['params']:,} parameters, {d['total_steps']:,} steps "
                  f"({d['steps_per_epoch']:,} per epoch), {d['device']}{procs} {d['precision']}{extra}", flush=True)
        elif ev.kind == "log":
            total = int(d.get("total_steps") or 0)
            parts = [f"step {ev.step:>{len(str(total))}}/{total}", f"loss {d['train_loss']:.4f}"]
            if d.get("val_loss") is not None:
                parts.append(f"val {d['val_loss']:.4f}")
            parts += [f"{d.get('tokens_per_s') or 0:,.0f} tok/s", f"lr {d['lr']:.2e}"]
            print(" | ".join(parts), flush=True)
        elif ev.kind == "notice":
            note(str(d.get("message", "")))


class StopOnCtrlC:
    """First Ctrl-C (or SIGTERM: how the app, the scheduler and Ray stop a run) asks the trainer to stop after the
    current step (it saves a checkpoint); a second aborts."""

    def __init__(self, event: threading.Event, announce: bool) -> None:
        self.event = event
        self.announce = announce
        self._previous: Any = None
        self._previous_term: Any = None
        self._installed = False

    def __enter__(self) -> StopOnCtrlC:
        if threading.current_thread() is threading.main_thread():  # signal.signal only works there
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._previous_term = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)
            signal.signal(signal.SIGTERM, self._previous_term if self._previous_term is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        if self.announce:
            # os.write, not print: the handler can run while the main thread is inside a write to
            # stderr, and re-entering a buffered stream raises RuntimeError.
            os.write(2, b"\nstopping after the current step and saving a checkpoint (Ctrl-C again to abort)\n")
