"""The callbacks a trial's training runs with: reports to the server, the best epoch kept."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from ..handles import TrialSession
from .fit_results import Objective, finite_metrics


class ReportEpochs(keras.callbacks.Callback):
    """Queues each epoch's metrics for the server; stops training if the lease was lost."""

    def __init__(self, session: TrialSession):
        super().__init__()
        self.session = session

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = finite_metrics(logs)
        if metrics:
            self.session.report(epoch, metrics)
        if self.session.lost.is_set():
            self.model.stop_training = True


class KeepBestEpoch(keras.callbacks.Callback):
    """Keeps the weights of the best epoch by the objective (Keras Tuner's `SaveBestEpoch`,
    in memory; shared by a trial's executions). Without the objective in an epoch's logs,
    every epoch counts as the best so far, as in Keras Tuner. The weights are copied only
    when training goes on past the best epoch."""

    def __init__(self, objective: Objective):
        super().__init__()
        self.objective = objective
        self.best_value: float | None = None
        self.copy: list[np.ndarray] | None = None
        self.best_is_current = False  # the model's weights now are the best epoch's
        self.more_executions = False  # set while another execution will train a new model

    def _keep(self) -> None:
        self.copy = [np.array(w, copy=True) for w in self.model.get_weights()]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = self.objective.value(finite_metrics(logs))
        best = self.best_value
        if value is None or best is None or self.objective.better(value, best):
            self.best_value = value if value is not None else best
            self.best_is_current = True

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.best_is_current:  # this epoch changes the best weights: keep them
            self._keep()
            self.best_is_current = False

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.best_is_current and self.more_executions:  # the next one trains a new model
            self._keep()
            self.best_is_current = False

    def best_weights(self) -> list[np.ndarray] | None:
        """The best epoch's weights when they are not the model's current ones."""
        return None if self.best_is_current else self.copy


def copy_callbacks(callbacks: Sequence[Any], *, trial_id: str, execution: int) -> list[Any]:
    """Keras Tuner's per-trial callbacks: deep copies (a callback keeps state across epochs),
    each TensorBoard writing under `<its log_dir>/<trial id>/execution<n>`."""
    try:
        copies = copy.deepcopy(list(callbacks))
    except Exception as exc:
        raise ValueError(
            "all callbacks given to search() must be deep-copyable (each trial gets its own "
            f"copies, as in Keras Tuner); copy.deepcopy failed: {exc}"
        ) from exc
    for callback in copies:
        if isinstance(callback, keras.callbacks.TensorBoard):
            callback.log_dir = os.path.join(
                str(callback.log_dir), trial_id, f"execution{execution}"
            )
    return copies
