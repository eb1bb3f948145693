"""Objectives: which metric a study optimises and in which direction.

A string objective's direction is inferred as Keras Tuner does (strip one `val_`, then one
`weighted_`; `loss`/`crossentropy`/`ce` are minimised, `acc` maximised, then Keras's metric
and loss names), with fixes where Keras Tuner minimises a metric whose larger values are
better: `f1_score`, `fbeta_score`, `r2_score`, `cosine_similarity`, the IoU family and the
Pearson/concordance correlations are maximised. A list of objectives is one value to minimise:
the sum of the minimised metrics minus the sum of the maximised ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MIN, MAX = "min", "max"
MULTI_OBJECTIVE = "multi_objective"

# Keras metrics (functions and classes, in snake case) whose larger values are better.
_MAX_NAMES = frozenset(
    {
        "acc",
        "accuracy",
        "binary_accuracy",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
        "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
        "true_positives",
        "true_negatives",
        "precision",
        "recall",
        "auc",
        "sensitivity_at_specificity",
        "specificity_at_sensitivity",
        "precision_at_recall",
        "recall_at_precision",
        # Keras Tuner infers "min" for the metrics below; a service should know better.
        "f1_score",
        "fbeta_score",
        "f_beta_score",
        "pearson_correlation",
        "concordance_correlation",
        "r2_score",
        "cosine_similarity",
        "iou",
        "binary_iou",
        "mean_iou",
        "one_hot_iou",
        "one_hot_mean_iou",
    }
)

# Keras metric and loss names (functions, aliases and classes) whose smaller values are better.
_MIN_NAMES = frozenset(
    {
        "loss",
        "crossentropy",
        "ce",
        "false_positives",
        "false_negatives",
        "mean",
        "sum",
        "mean_squared_error",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error",
        "root_mean_squared_error",
        "mse",
        "mae",
        "mape",
        "msle",
        "hinge",
        "squared_hinge",
        "categorical_hinge",
        "kl_divergence",
        "kld",
        "kullback_leibler_divergence",
        "poisson",
        "log_cosh",
        "logcosh",
        "log_cosh_error",
        "huber",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "binary_focal_crossentropy",
        "categorical_focal_crossentropy",
        "categorical_generalized_cross_entropy",
        "ctc",
        "dice",
        "tversky",
        "circle",
    }
)


class ObjectiveError(ValueError):
    """An objective that cannot be used; the message says how to fix it."""


def _snake(name: str) -> str:
    """`SparseCategoricalAccuracy` -> `sparse_categorical_accuracy`; `AUC` -> `auc`."""
    if name.isupper() or "_" in name or name.islower():
        return name.lower()
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def infer_direction(metric: str) -> str | None:
    """ "min", "max" or None (unknown metric) for a metric name such as `val_accuracy`."""
    name = metric.removeprefix("val_").removeprefix("weighted_")
    if name in {"loss", "crossentropy", "ce"}:
        return MIN
    if name == "acc":
        return MAX
    snake = _snake(name.replace("IoU", "Iou"))
    if snake in _MAX_NAMES:
        return MAX
    if snake in _MIN_NAMES:
        return MIN
    return None


@dataclass(frozen=True)
class Objective:
    """What to optimise. `parts` lists (metric, direction); one part for a single metric."""

    name: str
    direction: str
    parts: tuple[tuple[str, str], ...]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.parts)

    def value(self, metrics: Mapping[str, float]) -> float | None:
        """The objective's value in one epoch's metrics, or None if a metric is missing."""
        if len(self.parts) == 1 and self.name != MULTI_OBJECTIVE:
            raw = metrics.get(self.name)
            return None if raw is None else float(raw)
        total = 0.0
        for name, direction in self.parts:
            if name not in metrics:
                return None
            total += float(metrics[name]) if direction == MIN else -float(metrics[name])
        return total

    def key(self, score: float) -> float:
        """A sort key where smaller is better, whatever the direction."""
        return score if self.direction == MIN else -score

    def better(self, a: float, b: float | None) -> bool:
        """Whether `a` is strictly better than `b` (None is worse than anything)."""
        if b is None or math.isnan(b):
            return not math.isnan(a)
        return self.key(a) < self.key(b)

    def best(self, values: Iterable[float]) -> float | None:
        """The best non-NaN value (Keras Tuner's nanmin/nanmax), or None."""
        best: float | None = None
        for value in values:
            if self.better(value, best):
                best = value
        return best

    def to_wire(self) -> Any:
        if self.name == MULTI_OBJECTIVE:
            return [{"name": n, "direction": d} for n, d in self.parts]
        return {"name": self.name, "direction": self.direction}


def _single(spec: Any, where: str) -> tuple[str, str]:
    if isinstance(spec, str):
        if not spec:
            raise ObjectiveError(f"{where}: the metric name must not be empty")
        direction = infer_direction(spec)
        if direction is None:
            raise ObjectiveError(
                f"{where}: cannot infer whether {spec!r} should be minimised or maximised; "
                f'pass {{"name": "{spec}", "direction": "min"}} or "max"'
            )
        return spec, direction
    if isinstance(spec, Mapping):
        name, direction = spec.get("name"), spec.get("direction")
        if not isinstance(name, str) or not name:
            raise ObjectiveError(f"{where}.name: must be a non-empty string")
        if direction is None:
            return _single(name, where)
        if direction not in (MIN, MAX):
            raise ObjectiveError(f'{where}.direction: must be "min" or "max", found {direction!r}')
        return name, direction
    raise ObjectiveError(f"{where}: must be a metric name or {{name, direction}}")


def parse_objective(spec: Any) -> Objective:
    """Build an Objective from a string, a {name, direction} mapping or a list of them."""
    if isinstance(spec, list | tuple):
        if not spec:
            raise ObjectiveError("objective: the list must not be empty")
        parts = tuple(_single(item, f"objective[{i}]") for i, item in enumerate(spec))
        names = [name for name, _ in parts]
        if len(set(names)) != len(names):
            raise ObjectiveError("objective: a metric appears twice in the list")
        return Objective(MULTI_OBJECTIVE, MIN, parts)
    name, direction = _single(spec, "objective")
    return Objective(name, direction, ((name, direction),))
