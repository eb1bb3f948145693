"""Hyperparameter definitions with Keras Tuner's semantics, in plain Python.

One definition of each hyperparameter type, shared by the client's `build_model(hp)` DSL
and the server's sampler. Values are produced from a probability in [0, 1) exactly as
Keras Tuner 1.4.8 does (`prob_to_value`), so the same seed gives the same values.

Every invalid definition raises `SpaceError`, whose message names the hyperparameter
and the rule it breaks. Nothing here imports pydantic, SQL or HTTP code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

Scalar: TypeAlias = int | float | str | bool
SAMPLINGS = ("linear", "log", "reverse_log")
MAX_NAME_LENGTH = 256


class SpaceError(ValueError):
    """An invalid search space: names the hyperparameter and the broken rule."""

    def __init__(self, name: str | None, message: str, *, field: str | None = None):
        self.name = name
        self.field = field
        prefix = f"hyperparameter {name!r}: " if name is not None else ""
        super().__init__(prefix + message)


@dataclass(frozen=True)
class Condition:
    """Active when the parent's value is one of `parent_values` (Keras Tuner's `Parent`)."""

    parent_name: str
    parent_values: tuple[Scalar, ...]

    def is_active(self, values: Mapping[str, Any]) -> bool:
        return self.parent_name in values and values[self.parent_name] in self.parent_values

    def to_dict(self) -> dict[str, Any]:
        return {"parent_name": self.parent_name, "parent_values": list(self.parent_values)}


def _prob_to_index(prob: float, n: int) -> int:
    index = math.floor(prob / (1 / n))
    return n - 1 if index == n else index


def _is_number(value: object) -> bool:
    """A finite int or float (NaN and ±inf cannot be sampled, compared or stored as JSON;
    an int too large for a float cannot be sampled either)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _is_scalar(value: object) -> bool:
    """A value a hyperparameter can take: a string, a boolean or a finite number."""
    return isinstance(value, str | bool) or _is_number(value)


MAX_GRID = 2**53  # values on a stepped range: beyond this, indexes are not exact in a float


@dataclass(frozen=True)
class HyperParameter:
    name: str
    conditions: tuple[Condition, ...] = field(default=(), kw_only=True)
    type: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(None, "name must be a non-empty string", field="name")
        if len(self.name) > MAX_NAME_LENGTH:
            raise SpaceError(
                self.name[:40] + "…", f"name is longer than {MAX_NAME_LENGTH} characters"
            )
        for condition in self.conditions:
            if condition.parent_name == self.name:
                raise SpaceError(
                    self.name, "a conditional hyperparameter cannot be named like its parent"
                )

    @property
    def default(self) -> Scalar:
        raise NotImplementedError

    def prob_to_value(self, prob: float) -> Scalar:
        """Map a probability in [0, 1) to a value, as Keras Tuner does."""
        raise NotImplementedError

    def contains(self, value: object) -> bool:
        """Whether `value` is a value this hyperparameter can take."""
        raise NotImplementedError

    def is_active(self, values: Mapping[str, Any]) -> bool:
        return all(condition.is_active(values) for condition in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "name": self.name}
        data.update(self._fields())
        if self.conditions:
            data["conditions"] = [c.to_dict() for c in self.conditions]
        return data

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class _Numerical(HyperParameter):
    min_value: float
    max_value: float
    step: float | None = None
    sampling: str = "linear"
    default_value: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for attr in ("min_value", "max_value"):
            if not _is_number(getattr(self, attr)):
                raise SpaceError(self.name, f"{attr} must be a finite number", field=attr)
        if self.step is not None and not _is_number(self.step):
            raise SpaceError(self.name, "step must be a finite number", field="step")
        if self.min_value > self.max_value:
            raise SpaceError(
                self.name,
                f"min_value {self.min_value} is greater than max_value {self.max_value}",
                field="min_value",
            )
        if self.sampling not in SAMPLINGS:
            raise SpaceError(
                self.name, f"sampling must be one of {', '.join(SAMPLINGS)}", field="sampling"
            )
        if self.sampling != "linear" and self.min_value <= 0:
            raise SpaceError(
                self.name,
                f"sampling={self.sampling!r} needs min_value > 0, found {self.min_value}",
                field="min_value",
            )
        if self.step is not None:
            if self.sampling != "linear" and self.step <= 1:
                raise SpaceError(
                    self.name,
                    f"sampling={self.sampling!r} needs step > 1, found {self.step}",
                    field="step",
                )
            if self.step <= 0:
                raise SpaceError(self.name, f"step must be > 0, found {self.step}", field="step")
        self._check_representable()
        if self.default_value is not None:
            if not _is_number(self.default_value):
                raise SpaceError(self.name, "default must be a finite number", field="default")
            if not self.min_value <= self.default_value <= self.max_value:
                raise SpaceError(
                    self.name,
                    f"default {self.default_value} is outside [{self.min_value}, {self.max_value}]",
                    field="default",
                )

    def _check_representable(self) -> None:
        """Every value the sampler can draw is a finite float: the range (and, for log
        sampling, the ratio) fits in a float, and a step leaves at most 2**53 values."""
        lo, hi = float(self.min_value), float(self.max_value)
        if not math.isfinite(hi - lo):
            raise SpaceError(
                self.name,
                f"max_value - min_value overflows a float ([{lo}, {hi}] is too wide)",
                field="max_value",
            )
        if self.sampling != "linear" and not math.isfinite(hi / lo):
            raise SpaceError(
                self.name,
                f"max_value / min_value overflows a float ({self.sampling} sampling of "
                f"[{lo}, {hi}])",
                field="max_value",
            )
        if self.step is not None and self.sampling == "linear":
            values = (hi - lo) / float(self.step)
            if not values < MAX_GRID:
                raise SpaceError(
                    self.name,
                    f"step {self.step} is too small: [{lo}, {hi}] would have {values:.3g} "
                    f"values (at most 2**53)",
                    field="step",
                )

    def _sample_numerical(self, prob: float, max_value: float) -> float:
        lo = self.min_value
        if self.sampling == "linear":
            return prob * (max_value - lo) + lo
        if self.sampling == "log":
            return lo * math.pow(max_value / lo, prob)
        return max_value + lo - lo * math.pow(max_value / lo, 1 - prob)

    def n_values(self) -> int:
        """How many values a range with a `step` has (its grid, from min_value)."""
        assert self.step is not None
        if self.sampling == "linear":
            return int((self.max_value - self.min_value) // self.step + 1)
        return int(math.log(self.max_value / self.min_value, self.step) + 1e-8) + 1

    def _value_at(self, index: int) -> float:
        assert self.step is not None
        lo, hi = self.min_value, self.max_value
        if self.sampling == "linear":
            return lo + index * self.step
        if self.sampling == "log":
            return lo * math.pow(self.step, index)
        return hi + lo - lo * math.pow(self.step, index)

    def _sample_with_step(self, prob: float) -> float:
        return self._value_at(_prob_to_index(prob, self.n_values()))

    def contains(self, value: object) -> bool:
        return _is_number(value) and self.min_value <= value <= self.max_value  # type: ignore[operator]

    def _fields(self) -> dict[str, Any]:
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "step": self.step,
            "sampling": self.sampling,
            "default": self.default_value,
        }


def _check_int(name: str, value: object, attr: str) -> int:
    if not _is_number(value) or int(value) != value:  # type: ignore[call-overload]
        raise SpaceError(name, f"{attr} must be an integer, found {value!r}", field=attr)
    return int(value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Int(_Numerical):
    """Integer in [min_value, max_value], both included (Keras Tuner's `hp.Int`)."""

    type: ClassVar[str] = "int"

    def __post_init__(self) -> None:
        name = self.name if isinstance(self.name, str) else None
        for attr in ("min_value", "max_value"):
            object.__setattr__(self, attr, _check_int(str(name), getattr(self, attr), attr))
        if self.step is not None:
            object.__setattr__(self, "step", _check_int(str(name), self.step, "step"))
        elif self.sampling == "linear":
            object.__setattr__(self, "step", 1)
        if self.default_value is not None:
            object.__setattr__(
                self, "default_value", _check_int(str(name), self.default_value, "default")
            )
        super().__post_init__()

    @property
    def default(self) -> int:
        return int(self.default_value if self.default_value is not None else self.min_value)

    def prob_to_value(self, prob: float) -> int:
        if self.step is None:
            return int(self._sample_numerical(prob, self.max_value + 1))
        return int(self._sample_with_step(prob))

    def contains(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and super().contains(value)


@dataclass(frozen=True)
class Float(_Numerical):
    """Real number in [min_value, max_value] (Keras Tuner's `hp.Float`)."""

    type: ClassVar[str] = "float"

    def __post_init__(self) -> None:
        for attr in ("min_value", "max_value", "step", "default_value"):
            value = getattr(self, attr)
            if _is_number(value):
                object.__setattr__(self, attr, float(value))
        super().__post_init__()

    @property
    def default(self) -> float:
        return float(self.default_value if self.default_value is not None else self.min_value)

    def prob_to_value(self, prob: float) -> float:
        if self.step is None:
            return self._sample_numerical(prob, self.max_value)
        return self._sample_with_step(prob)


@dataclass(frozen=True)
class Choice(HyperParameter):
    """One of `values`, all of one type (Keras Tuner's `hp.Choice`)."""

    values: tuple[Scalar, ...] = ()
    ordered: bool | None = None
    default_value: Scalar | None = None
    type: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        super().__post_init__()
        values = tuple(self.values) if isinstance(self.values, list | tuple) else None
        if not values:
            raise SpaceError(self.name, "values must be a non-empty list", field="values")
        kinds = {type(v) for v in values}
        if len(kinds) > 1:
            names = ", ".join(sorted(k.__name__ for k in kinds))
            raise SpaceError(
                self.name, f"values must all have one type, found {names}", field="values"
            )
        if not all(_is_scalar(v) for v in values):
            raise SpaceError(
                self.name,
                "values must be strings, booleans or finite numbers",
                field="values",
            )
        if len(set(values)) != len(values):
            raise SpaceError(self.name, "values must not repeat", field="values")
        object.__setattr__(self, "values", values)
        numeric = _is_number(values[0])
        if self.ordered and not numeric:
            raise SpaceError(
                self.name, "ordered must be false for non-numeric values", field="ordered"
            )
        if self.ordered is None:
            object.__setattr__(self, "ordered", numeric)
        if self.default_value is not None and not self.contains(self.default_value):
            raise SpaceError(
                self.name,
                f"default {self.default_value!r} is not one of the values",
                field="default",
            )

    @property
    def default(self) -> Scalar:
        return self.values[0] if self.default_value is None else self.default_value

    def prob_to_value(self, prob: float) -> Scalar:
        return self.values[_prob_to_index(prob, len(self.values))]

    def contains(self, value: object) -> bool:
        return type(value) is type(self.values[0]) and value in self.values

    def _fields(self) -> dict[str, Any]:
        return {"values": list(self.values), "ordered": self.ordered, "default": self.default_value}


@dataclass(frozen=True)
class Boolean(HyperParameter):
    """True or False (Keras Tuner's `hp.Boolean`)."""

    default_value: bool = False
    type: ClassVar[str] = "boolean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.default_value, bool):
            raise SpaceError(self.name, "default must be true or false", field="default")

    @property
    def default(self) -> bool:
        return self.default_value

    def prob_to_value(self, prob: float) -> bool:
        return bool(prob >= 0.5)

    def contains(self, value: object) -> bool:
        return isinstance(value, bool)

    def _fields(self) -> dict[str, Any]:
        return {"default": self.default_value}


@dataclass(frozen=True)
class Fixed(HyperParameter):
    """A value that is not tuned (Keras Tuner's `hp.Fixed`)."""

    value: Scalar = 0
    type: ClassVar[str] = "fixed"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not _is_scalar(self.value):
            raise SpaceError(
                self.name, "value must be a string, a boolean or a finite number", field="value"
            )

    @property
    def default(self) -> Scalar:
        return self.value

    def prob_to_value(self, prob: float) -> Scalar:
        return self.value

    def contains(self, value: object) -> bool:
        return type(value) is type(self.value) and value == self.value

    def _fields(self) -> dict[str, Any]:
        return {"value": self.value}


TYPES: dict[str, type[HyperParameter]] = {
    cls.type: cls for cls in (Int, Float, Choice, Boolean, Fixed)
}
_FIELDS: dict[str, set[str]] = {
    "int": {"min_value", "max_value", "step", "sampling", "default"},
    "float": {"min_value", "max_value", "step", "sampling", "default"},
    "choice": {"values", "ordered", "default"},
    "boolean": {"default"},
    "fixed": {"value"},
}


def _condition_from_dict(name: str, data: object) -> Condition:
    if not isinstance(data, Mapping) or set(data) != {"parent_name", "parent_values"}:
        raise SpaceError(
            name,
            "each condition must be {parent_name, parent_values}",
            field="conditions",
        )
    parent, values = data["parent_name"], data["parent_values"]
    if not isinstance(parent, str) or not parent:
        raise SpaceError(name, "parent_name must be a non-empty string", field="conditions")
    if isinstance(values, int | float | str | bool):
        values = [values]
    if not isinstance(values, list | tuple) or not values:
        raise SpaceError(name, "parent_values must be a non-empty list", field="conditions")
    if not all(_is_scalar(v) for v in values):
        raise SpaceError(
            name,
            "parent_values must be strings, booleans or finite numbers",
            field="conditions",
        )
    return Condition(parent, tuple(values))


def from_dict(data: Mapping[str, Any]) -> HyperParameter:
    """Build one hyperparameter from its wire form (Keras Tuner's names)."""
    name = data.get("name")
    label = name if isinstance(name, str) else None
    kind = data.get("type")
    if kind not in TYPES:
        raise SpaceError(
            label, f"type must be one of {', '.join(TYPES)}, found {kind!r}", field="type"
        )
    assert isinstance(kind, str)
    unknown = set(data) - _FIELDS[kind] - {"type", "name", "conditions"}
    if unknown:
        raise SpaceError(label, f"unknown field(s) for type {kind!r}: {', '.join(sorted(unknown))}")
    conditions = data.get("conditions") or []
    if not isinstance(conditions, list | tuple):
        raise SpaceError(label, "conditions must be a list", field="conditions")
    kwargs: dict[str, Any] = {
        "conditions": tuple(_condition_from_dict(str(label), c) for c in conditions)
    }
    for key in _FIELDS[kind]:
        if key in data and data[key] is not None:
            kwargs["default_value" if key == "default" else key] = data[key]
    if kind == "choice" and isinstance(kwargs.get("values"), list):
        kwargs["values"] = tuple(kwargs["values"])
    required = {
        "int": ("min_value", "max_value"),
        "float": ("min_value", "max_value"),
        "choice": ("values",),
        "fixed": ("value",),
    }.get(kind, ())
    for key in required:
        if key not in kwargs:
            raise SpaceError(label, f"{key} is required for type {kind!r}", field=key)
    if not isinstance(name, str):
        raise SpaceError(None, "name must be a non-empty string", field="name")
    try:
        return TYPES[kind](name, **kwargs)
    except TypeError as exc:  # a wrong type that a comparison or int() tripped on
        raise SpaceError(label, f"invalid definition: {exc}") from None


@dataclass(frozen=True)
class SearchSpace:
    """An ordered list of hyperparameters: every parent comes before its children."""

    hyperparameters: tuple[HyperParameter, ...] = ()

    def __post_init__(self) -> None:
        seen: set[tuple[str, tuple[Condition, ...]]] = set()
        names: set[str] = set()
        for hp in self.hyperparameters:
            key = (hp.name, hp.conditions)
            if key in seen:
                raise SpaceError(hp.name, "is defined twice with the same conditions")
            for condition in hp.conditions:
                if condition.parent_name not in names:
                    raise SpaceError(
                        hp.name,
                        f"unknown parent {condition.parent_name!r} "
                        "(a parent must be defined before its children)",
                        field="conditions",
                    )
            seen.add(key)
            names.add(hp.name)

    @classmethod
    def from_dicts(cls, items: Iterable[Mapping[str, Any]]) -> SearchSpace:
        return cls(tuple(from_dict(item) for item in items))

    def to_dicts(self) -> list[dict[str, Any]]:
        return [hp.to_dict() for hp in self.hyperparameters]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.hyperparameters)

    def __len__(self) -> int:
        return len(self.hyperparameters)

    def contains(self, hp: HyperParameter) -> bool:
        return any(
            h.name == hp.name and h.conditions == hp.conditions for h in self.hyperparameters
        )

    def merge(self, new: Sequence[HyperParameter]) -> SearchSpace:
        """The space with `new` entries appended (ones already present are ignored)."""
        added = tuple(hp for hp in new if not self.contains(hp))
        return SearchSpace(self.hyperparameters + added) if added else self

    def defaults(self) -> dict[str, Scalar]:
        """The active values when every hyperparameter takes its default."""
        values: dict[str, Scalar] = {}
        for hp in self.hyperparameters:
            if hp.is_active(values):
                values[hp.name] = hp.default
        return values
