"""Keras Tuner's `HyperModel`, and a `build_model(hp)` function taken as one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from ..hyperparameters import HyperParameters


class HyperModel:
    """Keras Tuner's `HyperModel`: override `build(hp)`, and `fit(hp, model, *args, **kwargs)`
    to tune the training itself. `fit` may return a `History`, a number (the objective) or a
    dict of metrics (or a list of these, averaged), as in Keras Tuner."""

    def __init__(self, name: str | None = None, tunable: bool = True):
        self.name, self.tunable = name, tunable

    def build(self, hp: HyperParameters) -> keras.Model:
        raise NotImplementedError

    def fit(self, hp: HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        return model.fit(*args, **kwargs)


class _FunctionHyperModel(HyperModel):
    """A `build_model(hp)` function as a HyperModel (Keras Tuner's `DefaultHyperModel`)."""

    def __init__(self, build: Callable[[HyperParameters], keras.Model]):
        super().__init__(name=getattr(build, "__name__", None))
        self._build = build

    def build(self, hp: HyperParameters) -> keras.Model:
        return self._build(hp)


def as_hypermodel(hypermodel: Any) -> Any:
    """A HyperModel (Rung's or Keras Tuner's, anything with `build` and `fit`) as it is; a
    function wrapped in one."""
    if callable(getattr(hypermodel, "build", None)) and callable(getattr(hypermodel, "fit", None)):
        return hypermodel
    if callable(hypermodel):
        return _FunctionHyperModel(hypermodel)
    raise TypeError(
        "hypermodel must be a function build_model(hp) or a HyperModel with build(hp), "
        f"found {type(hypermodel).__name__}"
    )
