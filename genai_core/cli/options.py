"""Flags <-> config fields: which flag set which field, reading them back, and naming run folders.

The parser fills `FLAGS` while it adds one flag per config field; the commands read the given
fields back with `given`, validate them with `validated` (errors name the flag, `--lr`, not the
field path) and resolve run folder arguments with `run_path` / `existing_run`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from genai_core.config import DataConfig, ModelConfig, SampleConfig, TrainConfig
from genai_core.errors import GenAIError

if TYPE_CHECKING:
    from genai_core.runs.folder import Run

PROG = "python -m genai_core"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"

SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataConfig, "model": ModelConfig, "train": TrainConfig, "sample": SampleConfig,
}
# (section, field) -> flag, filled while the parser is built; turns `train.lr` back into `--lr` in messages.
FLAGS: dict[tuple[str, str], str] = {}


def given(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The fields of one config section that were given on the command line."""
    prefix = f"{section}__"
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}


def describe_invalid(err: ValidationError, section: str | None = None) -> str:
    """Like errors.describe_validation_error, but naming the flag (`--lr`) instead of the field path."""
    parts = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        if section:
            loc = (section, *loc)
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        flag = FLAGS.get((loc[0], loc[1])) if len(loc) >= 2 else None
        if flag:
            got = e.get("input")
            shown = f" (got {got!r})" if isinstance(got, int | float | str) and not isinstance(got, bool) else ""
            parts.append(f"{flag}: {msg}{shown}")
        else:
            rest = loc[1:] if loc and loc[0] in SECTIONS else loc
            parts.append(f"{'.'.join(rest)}: {msg}" if rest else msg)
    return "; ".join(parts)


def validated(model: type[BaseModel], values: dict[str, Any], section: str | None = None) -> Any:
    """`model` built from the given values; a mistake becomes a GenAIError that names the flags."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        raise GenAIError(describe_invalid(e, section)) from None


def run_path(arg: str) -> Path:
    """A bare name means a folder under the runs root; anything with a separator is a path."""
    # Test the raw text: pathlib turns "./name" into "name", but "./name" clearly means a path.
    separators = [s for s in (os.sep, os.altsep) if s]
    if arg not in ("", ".", "..") and not any(s in arg for s in separators):
        from genai_core.runs.folder import runs_dir

        return runs_dir() / arg
    return Path(arg)


def existing_run(arg: str) -> Run:
    """The run folder an argument names, or a GenAIError that says where it was looked for."""
    path = run_path(arg)
    from genai_core.runs.status import RUN_CONFIG, is_run_folder  # no torch: the cheap checks come first

    if not is_run_folder(path) and is_run_folder(Path(arg)):
        path = Path(arg)  # a run folder in the working directory, named without ./
    if not is_run_folder(path):
        where = f" (bare names are looked up in {path.parent})" if path != Path(arg) else ""
        raise GenAIError(f"{arg} is not a run folder: there is no {path / RUN_CONFIG}{where}")
    from genai_core.runs.folder import Run  # imports torch: only once the cheap checks have passed

    return Run(path)
