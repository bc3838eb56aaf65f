"""Crash-safe writes: every file and folder the engine publishes appears whole or not at all.

A file is written to a temporary name beside it, flushed to disk and renamed into place; a folder (a token
store, a QA store, a checkpoint) is built in a temporary folder beside it and renamed into place. Rename is
atomic on POSIX, so a kill at any moment leaves the previous version readable, and a reader never sees
half a file.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genai_core.errors import CheckpointError, GenAIError
from genai_core.units import format_bytes


def json_safe(obj: Any) -> Any:
    """`obj` as strict JSON values all the way down: NaN and infinities (a diverged loss) become null, as strict
    JSON has neither; keys become strings, tuples lists, paths strings, numpy and torch scalars Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy or torch scalar
        return json_safe(obj.item())
    return obj


def atomic_write_bytes(path: Path, data: bytes, *, make_parent: bool = True) -> None:
    """`make_parent` off: a missing folder raises FileNotFoundError (a run folder deleted under its trainer must
    not come back holding one file)."""
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, make_parent: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), make_parent=make_parent)


def atomic_write_json(path: Path, obj: Any, *, make_parent: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=str), make_parent=make_parent)


def read_json(path: Path) -> Any:
    """The parsed file; a missing file raises FileNotFoundError, an unreadable one a CheckpointError."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def jsonl_record(line: str, where: str, lineno: int, error: type[GenAIError] = GenAIError) -> dict[str, Any] | None:
    """One line of a JSON-lines file as an object, None for a blank line; every JSON-lines reader (corpora,
    imported metrics) says the same thing about a bad line."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise error(f"{where}: line {lineno} is not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise error(f"{where}: line {lineno} is not a JSON object")
    return obj


@contextmanager
def staged_folder(final: Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; when the block ends cleanly it replaces `final`.

    The temporary folder is hidden (`.name.xxxx`) so listings skip it; on any error, Ctrl-C included, it is
    removed and `final` is left as it was. `fsync` flushes each file first (checkpoints: a power cut must
    not leave a renamed folder of empty files).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        yield tmp
        if fsync:
            for f in tmp.iterdir():
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive `flock` on `path` for the block; yields False (holding nothing) when `blocking` is
    off and another process holds it. The kernel drops the lock when its holder dies, so it never goes stale.
    `path` may be a folder: a lock no one can delete or replace while the folder's contents change."""
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if not path.is_file():
                raise
            fd = os.open(path, os.O_RDONLY)  # a read-only folder: an existing lock can still be probed
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the runs folder's disk cap
RUNS_CAP_ENV = "GENAI_RUNS_MAX_GB"
"""Cap on the disk the runs folder may use (GB, decimal), for a demo server shared with a room; unset = none."""


def folder_bytes(path: Path) -> int:
    """Bytes of every file under `path` (0 if it does not exist)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:  # removed while walking
                continue
    return total


def runs_cap_bytes() -> int | None:
    """The runs folder's disk cap from $GENAI_RUNS_MAX_GB (None when unset); a bad value is an error."""
    raw = os.environ.get(RUNS_CAP_ENV, "").strip()
    if not raw:
        return None
    try:
        cap = float(raw)
    except ValueError:
        raise GenAIError(f"{RUNS_CAP_ENV}={raw!r} is not a number of GB") from None
    if cap <= 0:
        raise GenAIError(f"{RUNS_CAP_ENV} must be positive, not {raw}")
    return int(cap * 1e9)


class RunsCapReached(GenAIError):
    """Writing would take the runs folder past its cap ($GENAI_RUNS_MAX_GB)."""


def check_runs_cap(root: Path, adding: int = 0) -> None:
    """Refuse to write `adding` more bytes into the runs folder `root` when it would then hold more than its cap
    ($GENAI_RUNS_MAX_GB). Every writer asks first: starts and resumes (for what their runs will write), each
    checkpoint, uploads, imports and prepared corpora."""
    cap = runs_cap_bytes()
    if cap is None:
        return
    used = folder_bytes(root)
    if used + adding > cap:
        more = f" and this needs {format_bytes(adding)} more" if adding else ""
        raise RunsCapReached(f"the runs folder {root} reached its cap of {cap / 1e9:g} GB ({RUNS_CAP_ENV}): it "
                             f"holds {format_bytes(used)}{more}; delete runs on the Runs page to make room")
