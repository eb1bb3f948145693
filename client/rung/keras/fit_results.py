"""Objectives as Keras Tuner takes them, and what `fit` returns read as Keras Tuner reads it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def finite_metrics(logs: dict[str, Any] | None) -> dict[str, float]:
    """The metrics of an epoch that JSON can carry: NaN and ±inf are left out (a score is the
    best finite value over the epochs, as Keras Tuner's nanmin/nanmax)."""
    metrics = {}
    for name, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            metrics[name] = number
    return metrics


def objective_spec(objective: Any) -> Any:
    """The wire form of an objective given as Keras Tuner accepts it: a name, a
    `keras_tuner.Objective` (or anything with `name` and `direction`), a dict, a list of
    these, or None (Keras Tuner's `default_objective`, minimised: `fit` returns a number)."""
    if objective is None:
        return {"name": "default_objective", "direction": "min"}
    if isinstance(objective, str):
        return objective
    if isinstance(objective, dict):
        return dict(objective)
    if isinstance(objective, list | tuple):
        return [objective_spec(part) for part in objective]
    name, direction = getattr(objective, "name", None), getattr(objective, "direction", None)
    if isinstance(name, str) and direction in ("min", "max"):
        return {"name": name, "direction": direction}
    raise TypeError(
        "objective must be a metric name, a keras_tuner.Objective, a list of them or None, "
        f"found {objective!r}"
    )


@dataclass(frozen=True)
class Objective:
    """The study's objective as the server resolved it: one or more (name, direction)."""

    parts: tuple[tuple[str, str], ...]

    @classmethod
    def from_wire(cls, wire: dict[str, Any] | list[dict[str, Any]]) -> Objective:
        parts = wire if isinstance(wire, list) else [wire]
        return cls(tuple((part["name"], part["direction"]) for part in parts))

    @property
    def name(self) -> str:
        return self.parts[0][0] if len(self.parts) == 1 else "multi_objective"

    @property
    def direction(self) -> str:
        return self.parts[0][1] if len(self.parts) == 1 else "min"

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.parts]

    def value(self, metrics: dict[str, float]) -> float | None:
        """The objective's value in these metrics (a list: Σmin − Σmax); None if missing."""
        if len(self.parts) == 1 and self.name in metrics:
            return float(metrics[self.name])
        if any(name not in metrics for name in self.names):
            return None
        return sum(
            float(metrics[name]) * (1 if direction == "min" else -1)
            for name, direction in self.parts
        )

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "max" else a < b

    def __str__(self) -> str:
        if len(self.parts) == 1:
            return f'Objective(name="{self.name}", direction="{self.direction}")'
        inner = ", ".join(f'Objective(name="{n}", direction="{d}")' for n, d in self.parts)
        return f'MultiObjective(name="multi_objective", direction="min"): [{inner}]'


@dataclass
class Execution:
    """What one `fit` of a trial produced, in Keras Tuner's terms: its per-epoch metrics
    (a History's, empty when `fit` returned a number or a dict) and its best epoch's."""

    epochs: list[dict[str, float]]
    best: dict[str, float]
    first_epoch: int = 0  # the epoch index of epochs[0]


def read_fit_result(result: Any, objective: Objective, initial_epoch: int) -> list[Execution]:
    """Keras Tuner's rules for what `HyperModel.fit` returns: a `History` (its best epoch by
    the objective), a number (the objective), a dict of metrics, or a list of these (one per
    execution). ValueError/TypeError says what is wrong."""
    if isinstance(result, list):
        return [e for part in result for e in read_fit_result(part, objective, initial_epoch)]
    if result is None:
        raise TypeError(
            "the return value of HyperModel.fit() is None. Did you forget to return the "
            "metrics (a History, a number or a dict)?"
        )
    if isinstance(result, int | float | np.floating | np.integer) and not isinstance(result, bool):
        return [Execution([], {objective.name: float(result)})]
    if isinstance(result, dict):
        return [Execution([], finite_metrics(result))]
    history = getattr(result, "history", None)
    if isinstance(history, dict):
        length = max((len(v) for v in history.values()), default=0)
        epochs = [
            finite_metrics({k: v[i] for k, v in history.items() if i < len(v)})
            for i in range(length)
        ]
        best: dict[str, float] = epochs[-1] if epochs else {}
        best_value = None
        for metrics in epochs:
            value = objective.value(metrics)
            if value is not None and (best_value is None or objective.better(value, best_value)):
                best, best_value = metrics, value
        return [Execution(epochs, best, initial_epoch)]
    raise TypeError(
        "HyperModel.fit() must return a History, a number, a dict of metrics or a list of "
        f"these; it returned {type(result).__name__}"
    )


def average(dicts: Sequence[dict[str, float]]) -> dict[str, float]:
    """Keras Tuner's `average_metrics_dicts`: each metric's mean over the dicts that have it."""
    names = {name for d in dicts for name in d}
    return {name: float(np.mean([d[name] for d in dicts if name in d])) for name in sorted(names)}
