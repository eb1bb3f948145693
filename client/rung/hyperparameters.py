"""Keras Tuner's `HyperParameters` API, so that a `build_model(hp)` written for Keras Tuner
runs unchanged: `hp.Int`, `hp.Float`, `hp.Choice`, `hp.Boolean`, `hp.Fixed`,
`hp.conditional_scope`, `hp.name_scope`, `hp.get`, `hp[...]`, `hp.values`.

The search space is discovered as Keras Tuner does it (`discover_space`): build the model
with the defaults, then again with values that activate every conditional scope not yet
seen, until every scope has been active once. Hyperparameters first requested while
building a trial's model are "new entries"; they are reported to the server with the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .space import (
    Boolean,
    Choice,
    Condition,
    Fixed,
    Float,
    HyperParameter,
    Int,
    Scalar,
    SearchSpace,
    from_dict,
)

MAX_DISCOVERY_BUILDS = 100


class NewEntryError(ValueError):
    """The study does not allow hyperparameters that are not in its search space."""


class HyperParameters:
    def __init__(
        self,
        space: SearchSpace | Sequence[HyperParameter] = (),
        values: dict[str, Any] | None = None,
        *,
        allow_new_entries: bool = True,
    ):
        self._space: list[HyperParameter] = list(space)
        self.values: dict[str, Any] = dict(values or {})
        self.allow_new_entries = allow_new_entries
        self.new_entries: list[HyperParameter] = []
        self._conditions: list[Condition] = []
        self._name_scopes: list[str] = []
        self.active_scopes: list[tuple[Condition, ...]] = []
        self.inactive_scopes: list[tuple[Condition, ...]] = []

    # -- the space -----------------------------------------------------------------------
    @property
    def space(self) -> list[HyperParameter]:
        return list(self._space)

    def to_space(self) -> SearchSpace:
        return SearchSpace(tuple(self._space))

    def to_dicts(self) -> list[dict[str, Any]]:
        return [hp.to_dict() for hp in self._space]

    def copy(self) -> HyperParameters:
        return HyperParameters(self._space, self.values, allow_new_entries=self.allow_new_entries)

    def is_active(self, hyperparameter: HyperParameter | str) -> bool:
        if isinstance(hyperparameter, HyperParameter):
            return hyperparameter.is_active(self.values)
        return any(hp.is_active(self.values) for hp in self._space if hp.name == hyperparameter)

    def _find(self, name: str, conditions: tuple[Condition, ...]) -> HyperParameter | None:
        for hp in self._space:
            if hp.name == name and hp.conditions == conditions:
                return hp
        return None

    def _retrieve(self, hp: HyperParameter) -> Any:
        if self._find(hp.name, hp.conditions) is None:
            if not self.allow_new_entries:
                raise NewEntryError(
                    f"hyperparameter {hp.name!r} is not in the study's search space and the "
                    "study does not allow new entries (allow_new_entries=False)"
                )
            self._space.append(hp)
            self.new_entries.append(hp)
        if not hp.is_active(self.values):
            return None  # inactive values must not be relied on
        return self.values.setdefault(hp.name, self._find(hp.name, hp.conditions).default)  # type: ignore[union-attr]

    def _name(self, name: str) -> str:
        return "/".join([*self._name_scopes, str(name)])

    @contextlib.contextmanager
    def _maybe_scope(self, parent_name: str | None, parent_values: Any) -> Iterator[None]:
        if parent_name:
            with self.conditional_scope(parent_name, parent_values):
                yield
        else:
            yield

    # -- Keras Tuner's API ----------------------------------------------------------------
    @contextlib.contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        self._name_scopes.append(name)
        try:
            yield
        finally:
            self._name_scopes.pop()

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Hyperparameters created inside are active only when the parent's value is one of
        `parent_values`; while inactive they return None."""
        parent_name = self._name(parent_name)
        if not any(hp.name == parent_name for hp in self._space):
            raise ValueError(f"`HyperParameter` named: {parent_name} not defined.")
        values = parent_values if isinstance(parent_values, list | tuple) else [parent_values]
        self._conditions.append(Condition(parent_name, tuple(values)))
        scope = tuple(self._conditions)
        if all(c.is_active(self.values) for c in scope):
            self.active_scopes.append(scope)
        else:
            self.inactive_scopes.append(scope)
        try:
            yield
        finally:
            self._conditions.pop()

    def _define(
        self,
        cls: type[HyperParameter],
        name: str,
        args: tuple[Any, ...],
        parent_name: str | None,
        parent_values: Any,
    ) -> Any:
        """Register (or find) a hyperparameter and return its value (None while inactive)."""
        with self._maybe_scope(parent_name, parent_values):
            return self._retrieve(cls(self._name(name), *args, conditions=tuple(self._conditions)))

    def Int(
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str = "linear",
        default: int | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        args = (min_value, max_value, step, sampling, default)
        return self._define(Int, name, args, parent_name, parent_values)

    def Float(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        args = (min_value, max_value, step, sampling, default)
        return self._define(Float, name, args, parent_name, parent_values)

    def Choice(
        self,
        name: str,
        values: Sequence[Scalar],
        ordered: bool | None = None,
        default: Scalar | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        args = (tuple(values), ordered, default)
        return self._define(Choice, name, args, parent_name, parent_values)

    def Boolean(
        self,
        name: str,
        default: bool = False,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        return self._define(Boolean, name, (default,), parent_name, parent_values)

    def Fixed(
        self, name: str, value: Scalar, parent_name: str | None = None, parent_values: Any = None
    ) -> Any:
        return self._define(Fixed, name, (value,), parent_name, parent_values)

    def get(self, name: str) -> Any:
        name = self._name(name)
        if name in self.values:
            return self.values[name]
        if any(hp.name == name for hp in self._space):
            raise ValueError(f"{name} is currently inactive.")
        raise KeyError(f"{name} does not exist.")

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except (KeyError, ValueError):
            return False

    def ensure_active_values(self) -> None:
        """Drop the values of inactive hyperparameters; give missing active ones their
        default (Keras Tuner draws them at random: the same script must describe the same
        space in every process)."""
        for hp in self._space:
            if hp.is_active(self.values):
                self.values.setdefault(hp.name, hp.default)
            else:
                self.values.pop(hp.name, None)

    # -- conversions ----------------------------------------------------------------------
    @classmethod
    def from_keras_tuner(cls, hps: Any) -> HyperParameters:
        """From a `keras_tuner.HyperParameters` (through its config; no import needed)."""
        config = hps.get_config()
        space = []
        for entry in config["space"]:
            kind, item = entry["class_name"].lower(), dict(entry["config"])
            conditions = [
                {"parent_name": c["config"]["name"], "parent_values": list(c["config"]["values"])}
                for c in item.pop("conditions", [])
            ]
            if kind == "fixed":
                item.pop("default", None)
            item = {k: v for k, v in item.items() if v is not None}
            space.append(from_dict({"type": kind, **item, "conditions": conditions}))
        return cls(space, dict(config.get("values", {})))


def discover_space(
    build: Callable[[HyperParameters], Any], known: HyperParameters | None = None
) -> HyperParameters:
    """The search space a `build(hp)` function declares, conditional branches included.

    Keras Tuner's `_activate_all_conditions`: build with the defaults, then, while some
    conditional scope has never been active, set its parents to their first listed values
    and build again. Where Keras Tuner fills the other values at random, they take their
    defaults here, so that every process running the same script describes the same space
    (and so joins the same study).
    """
    known = known or HyperParameters()
    space = list(known.space)
    never_active: list[tuple[Condition, ...]] = []
    once_active: list[tuple[Condition, ...]] = []
    hp = HyperParameters(space)
    for _ in range(MAX_DISCOVERY_BUILDS):
        build(hp)
        for entry in hp.space:
            if entry not in space and not any(
                h.name == entry.name and h.conditions == entry.conditions for h in space
            ):
                space.append(entry)
        for scope in hp.active_scopes:
            if scope not in once_active:
                once_active.append(scope)
            if scope in never_active:
                never_active.remove(scope)
        for scope in hp.inactive_scopes:
            if scope not in once_active and scope not in never_active:
                never_active.append(scope)
        if not never_active:
            return HyperParameters(space)
        hp = HyperParameters(space)
        for condition in never_active[0]:
            hp.values[condition.parent_name] = condition.parent_values[0]
        hp.ensure_active_values()
    raise ValueError(
        f"some conditional scopes never became active in {MAX_DISCOVERY_BUILDS} builds: "
        f"{never_active}"
    )
