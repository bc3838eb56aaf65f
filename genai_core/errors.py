"""User-facing errors.

Anything a person can cause (a bad file, an impossible hyperparameter, a broken checkpoint) raises
`GenAIError` with a message written for that person. The CLI prints it as one `error:` line and the
app shows it with `st.error`; neither ever shows a traceback for it.
"""

from __future__ import annotations

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
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return (
            "out of memory: lower batch_size, seq_len, d_model or n_layers "
            "(the estimate shows what a configuration needs)"
        )
    return None
