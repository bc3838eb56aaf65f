"""User-facing errors.

Anything a person can cause (a bad file, an impossible hyperparameter, a broken checkpoint) raises
`GenAIError` with a message written for that person. The CLI prints it as one `error:` line and the
app shows it with `st.error`; neither ever shows a traceback for it.
"""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

from pydantic import ValidationError


class GenAIError(Exception):
    """An error caused by input, with a message meant for the person who gave it."""


class CorpusError(GenAIError):
    """The corpus file cannot be read or holds no usable text."""


class CheckpointError(GenAIError):
    """A checkpoint or run folder is missing, malformed or does not match its config."""


class TrainingError(GenAIError):
    """Training cannot go on (diverged loss, out of memory, ...)."""


def describe_validation_error(err: ValidationError) -> str:
    """One line naming each offending field and why, e.g. `d_model: must be divisible by n_heads`."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p != "__root__")
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def user_message(err: BaseException) -> str | None:
    """The message to show for an error a person caused, or None if it is a bug."""
    if isinstance(err, GenAIError):
        return str(err)
    if isinstance(err, ValidationError):
        return describe_validation_error(err)
    if (isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"
            or (isinstance(err, RuntimeError) and "can't allocate memory" in str(err))):  # torch's CPU allocator
        return (
            "out of memory: lower batch_size, seq_len, d_model or n_layers "
            "(the estimate shows what a configuration needs)"
        )
    return storage_message(err)


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def storage_message(err: BaseException) -> str | None:
    """One line for a disk that is full or read-only, or a folder without write permission (OSError, or the
    same from numpy or safetensors, which say it in their own words); None for anything else."""
    text = str(err)
    code = err.errno if isinstance(err, OSError) else None
    where = getattr(err, "filename", None) or "the runs folder"
    if Path(str(where)).name.startswith("."):  # an atomic write's temporary file: name the folder it was in
        where = str(Path(str(where)).parent)
    if code == errno.EROFS or "Read-only file system" in text:
        return (f"cannot write {where}: it is on a read-only file system (runs can be browsed and chatted with, "
                "not trained); set GENAI_RUNS_DIR to a writable folder to train")
    if code in _FULL or "No space left on device" in text or re.search(r"\d+ requested and \d+ written", text):
        return (f"the disk holding {where} is full ({_free(where)} free): free some space (delete runs or the "
                "token cache .tokens), then resume; the last good checkpoint is kept")
    if isinstance(err, PermissionError):
        return f"no permission to write {where}"
    return None


def _free(where: str) -> str:
    path = Path(where).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown"
    return f"{free / 1e6:,.0f} MB"  # "N MB free" whatever the size, as the disk-full message reads
