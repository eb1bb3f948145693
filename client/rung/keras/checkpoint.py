"""The checkpoint file format: one `.npz` with the last epoch's weights and optimizer state,
the best epoch's weights when they differ, and the model's build config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..files import atomic_file


def save(model: keras.Model, path: Path, *, best_weights: list[np.ndarray] | None = None) -> None:
    """Weights and optimizer state of the last epoch (to resume from), the best epoch's
    weights when they differ (for `get_best_models`), and the model's build config (to build
    a model that has no `Input` before loading); written atomically."""
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        for i, variable in enumerate(optimizer.variables):
            arrays[f"o{i}"] = keras.ops.convert_to_numpy(variable)
    for i, w in enumerate(best_weights or ()):
        arrays[f"b{i}"] = np.asarray(w)
    build_config = model.get_build_config() if model.built else None
    arrays["build_config"] = np.array(json.dumps(build_config))
    with atomic_file(path) as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def _arrays(data: Any, prefix: str) -> list[np.ndarray]:
    count = sum(k.startswith(prefix) and k[1:].isdigit() for k in data.files)
    return [data[f"{prefix}{i}"] for i in range(count)]


def load(model: keras.Model, path: Path, *, best: bool = False) -> None:
    """Load a checkpoint into `model`: the last epoch's weights and optimizer state (to
    resume training), or with `best` the best epoch's weights (to evaluate)."""
    with np.load(path) as data:
        weights, state = _arrays(data, "w"), _arrays(data, "o")
        best_weights = _arrays(data, "b")
        build_config = json.loads(str(data["build_config"])) if "build_config" in data else None
    if not model.built and build_config:
        model.build_from_config(build_config)
    if best:
        model.set_weights(best_weights or weights)
        return
    model.set_weights(weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and state:
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        for variable, value in zip(optimizer.variables, state, strict=True):
            variable.assign(value)
