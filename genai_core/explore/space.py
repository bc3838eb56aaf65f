"""A sweep's search space: which knobs vary, over what range or choices, read from JSON and checked before a run.

The space file maps a knob to a list of choices or to a range:

    {"lr": {"low": 1e-4, "high": 1e-2, "log": true}, "d_model": [64, 128], "n_layers": {"low": 1, "high": 4}}

A range samples integers for integer knobs (n_layers) and reals for the others (lr); `log` samples on a log scale
(learning rates). The knobs are config fields (`SWEEPABLE`), so their bounds are the config's own: a space is
accepted only if every corner of it (each range's ends, each choice, in every combination) is a config the
trainer takes, and a bad space gets one message before anything trains.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from genai_core.config import ModelConfig, RunConfig, TrainConfig
from genai_core.errors import GenAIError, user_message

Section = Literal["model", "train"]
SWEEPABLE: dict[str, Section] = {
    "lr": "train", "muon_lr": "train", "batch_size": "train", "warmup_steps": "train", "weight_decay": "train",
    "optimizer": "train", "d_model": "model", "n_layers": "model", "n_heads": "model", "seq_len": "model",
    "dropout": "model", "pos_encoding": "model", "mlp": "model", "norm": "model",
}
"""Knobs a sweep may vary, with the config section that holds each (its bounds and its help are there)."""
MAX_CORNERS = 512
"""Corner configs checked before a sweep starts: a space with more (10 knobs of choices) checks the first ones."""

_SECTIONS: dict[Section, type[ModelConfig] | type[TrainConfig]] = {"model": ModelConfig, "train": TrainConfig}



def read_values(raw: str, kind: type) -> list[Any]:
    """`"64, 128"` -> `[64, 128]`: the values of a knob's type, in order, separated by commas, spaces or ;
    (a whole float such as "64.0" reads as an int; "1.5" does not). How a sweep's space reads typed choices."""
    parts = [p for p in re.split(r"[,\s;]+", raw.strip()) if p]
    try:
        return [kind(float(p)) if kind is int and float(p).is_integer() else kind(p) for p in parts]
    except ValueError:
        raise GenAIError(f"could not read {raw!r} as {kind.__name__} values separated by commas") from None


@dataclass(frozen=True)
class Knob:
    """One knob of the space: a list of choices, or a range [low, high] (integers for integer knobs)."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def section(self) -> Section:
        return SWEEPABLE[self.name]

    def corners(self) -> tuple[Any, ...]:
        """The values a space check tries: every choice, or both ends of the range."""
        if self.choices is not None:
            return self.choices
        return (self.low, self.high)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {list(self.choices)}"
        return f"{self.name} from {_number(self.low)} to {_number(self.high)}" + (" (log scale)" if self.log else "")

    def as_json(self) -> Any:
        if self.choices is not None:
            return list(self.choices)
        return {"low": self.low, "high": self.high, "log": self.log}


def _number(x: float | None) -> str:
    return "?" if x is None else f"{x:g}"


def _cell(value: Any) -> Any:
    """A number from a form's cell (an empty one is None, a whole float an int)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _field_type(name: str) -> Any:
    """The knob's type as the config declares it (int, float, a Literal of choices), without Optional."""
    annotation = _SECTIONS[SWEEPABLE[name]].model_fields[name].annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and args:
        annotation = args[0]
    return annotation


def _knob(name: str, spec: Any) -> Knob:
    """One knob from its JSON value, with a message naming the knob for anything wrong."""
    if name not in SWEEPABLE:
        raise GenAIError(f"the space names {name!r}, which a sweep cannot vary; it can vary "
                         f"{', '.join(SWEEPABLE)}")
    kind = _field_type(name)
    integer = kind is int
    if isinstance(spec, list):
        if not spec:
            raise GenAIError(f"{name}: the list of choices is empty")
        if len({json.dumps(v) for v in spec}) != len(spec):
            raise GenAIError(f"{name}: a choice is listed twice")
        return Knob(name, choices=tuple(spec), integer=integer)
    if not isinstance(spec, dict):
        raise GenAIError(f"{name}: give a list of choices or {{\"low\": …, \"high\": …}}, not {spec!r}")
    unknown = set(spec) - {"low", "high", "log"}
    if unknown:
        raise GenAIError(f"{name}: unknown key {sorted(unknown)[0]!r} (a range has low, high and log)")
    if kind not in (int, float):
        raise GenAIError(f"{name} takes one of a few values, not a range: list the choices")
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    for bound, value in (("low", low), ("high", high)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise GenAIError(f"{name}: {bound} must be a number, not {value!r}")
        if integer and value != int(value):
            raise GenAIError(f"{name} is a whole number: {bound} {value!r} is not")
    if not isinstance(log, bool):
        raise GenAIError(f"{name}: log must be true or false")
    if low >= high:
        raise GenAIError(f"{name}: the range is empty (low {low:g} is not below high {high:g})")
    if log and low <= 0:
        raise GenAIError(f"{name}: a log-scale range must start above 0 (low is {low:g})")
    if integer:
        low, high = int(low), int(high)
    return Knob(name, low=low, high=high, log=log, integer=integer)


@dataclass(frozen=True)
class SearchSpace:
    """The knobs a sweep varies; everything else is the base config's."""

    knobs: tuple[Knob, ...]

    @classmethod
    def from_dict(cls, data: Any) -> SearchSpace:
        if not isinstance(data, dict) or not data:
            raise GenAIError("a search space is a JSON object mapping at least one knob to its choices or range")
        return cls(tuple(_knob(str(k), v) for k, v in data.items()))

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> SearchSpace:
        """A space from a form's rows (knob, low, high, log, choices as "64, 128"): choices when given, else the
        range. Rows with no knob are skipped."""
        data: dict[str, Any] = {}
        for row in rows:
            name = str(row.get("knob") or "").strip()
            if not name:
                continue
            if name in data:
                raise GenAIError(f"{name} is in the space twice")
            if name not in SWEEPABLE:
                raise GenAIError(f"the space names {name!r}, which a sweep cannot vary")
            text = str(row.get("choices") or "").strip()
            if text:
                kind = _field_type(name)
                try:
                    data[name] = read_values(text, kind if kind in (int, float) else str)
                except GenAIError as e:
                    raise GenAIError(f"{name}: {e}") from None
            else:
                data[name] = {"low": _cell(row.get("low")), "high": _cell(row.get("high")),
                              "log": bool(row.get("log"))}
        return cls.from_dict(data)

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenAIError(f"the space is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def as_json(self) -> dict[str, Any]:
        return {k.name: k.as_json() for k in self.knobs}

    def grid(self) -> dict[str, list[Any]] | None:
        """Every value of every knob (choices, or each whole number of a linear integer range); None when a knob
        is a range of reals or a log-scale range (no grid)."""
        values: dict[str, list[Any]] = {}
        for k in self.knobs:
            if k.choices is not None:
                values[k.name] = list(k.choices)
            elif k.integer and not k.log:
                values[k.name] = list(range(int(k.low), int(k.high) + 1))
            else:
                return None
        return values

    def grid_size(self) -> int | None:
        """Cells of the full grid (None: no grid)."""
        grid = self.grid()
        return None if grid is None else math.prod(len(v) for v in grid.values())

    def config_for(self, base: RunConfig, params: dict[str, Any]) -> RunConfig:
        """`base` with the knobs set to `params`, validated; GenAIError naming the values it refuses."""
        values = base.model_dump()
        for name, value in params.items():
            values[SWEEPABLE[name]][name] = value
        try:
            return RunConfig.model_validate(values)
        except (ValidationError, ValueError) as e:
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            raise GenAIError(f"{shown}: {user_message(e) or e}") from None

    def largest(self) -> dict[str, Any]:
        """The corner of the space that costs the most to train (the highest of every number; the first of other
        choices): what bounds a trial's time."""
        out: dict[str, Any] = {}
        for k in self.knobs:
            values = k.corners()
            numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            out[k.name] = max(numbers) if numbers else values[0]
        return out

    def check(self, base: RunConfig) -> int:
        """Refuse a space with a corner the trainer would refuse (one message, before anything trains). Returns
        the number of corners checked."""
        corners = itertools.islice(itertools.product(*(k.corners() for k in self.knobs)), MAX_CORNERS)
        n = 0
        for values in corners:
            params = dict(zip((k.name for k in self.knobs), values, strict=True))
            try:
                self.config_for(base, params)
            except GenAIError as e:
                raise GenAIError(f"the space holds a config the trainer refuses: {e}") from None
            n += 1
        return n
