"""Keras Tuner's rules that `rung.keras` follows, one by one and without a server: what
`HyperModel.fit` may return, how objectives are given, how callbacks are copied per trial,
and how the best epoch's weights are kept."""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest

from rung.keras.callbacks import KeepBestEpoch, copy_callbacks
from rung.keras.fit_results import Execution, Objective, average, objective_spec, read_fit_result
from rung.keras.hypermodel import as_hypermodel

pytestmark = pytest.mark.keras
ACCURACY = Objective((("val_accuracy", "max"),))


def test_objectives_are_taken_as_keras_tuner_takes_them():
    assert objective_spec("val_loss") == "val_loss"
    assert objective_spec(keras_tuner.Objective("val_loss", "min")) == {
        "name": "val_loss",
        "direction": "min",
    }
    assert objective_spec([keras_tuner.Objective("a", "max"), "val_loss"]) == [
        {"name": "a", "direction": "max"},
        "val_loss",
    ]
    assert objective_spec(None) == {"name": "default_objective", "direction": "min"}
    with pytest.raises(TypeError, match="objective must be"):
        objective_spec(3.5)
    both = Objective((("loss", "min"), ("acc", "max")))
    assert both.value({"loss": 0.5, "acc": 0.75}) == pytest.approx(-0.25)
    assert both.value({"loss": 0.5}) is None


def test_what_fit_returns_becomes_metrics_by_keras_tuners_rules():
    history = keras.callbacks.History()
    history.history = {"val_accuracy": [0.5, 0.9, 0.7], "loss": [3.0, 2.0, float("nan")]}
    (execution,) = read_fit_result(history, ACCURACY, initial_epoch=3)
    assert execution.best == {"val_accuracy": 0.9, "loss": 2.0}  # the best epoch's metrics
    assert execution.first_epoch == 3 and len(execution.epochs) == 3
    assert execution.epochs[2] == {"val_accuracy": 0.7}  # NaN left out
    assert read_fit_result(0.25, ACCURACY, 0) == [Execution([], {"val_accuracy": 0.25})]
    assert read_fit_result({"val_accuracy": 0.5, "x": 1}, ACCURACY, 0)[0].best == {
        "val_accuracy": 0.5,
        "x": 1.0,
    }
    several = read_fit_result([0.25, {"val_accuracy": 0.75}], ACCURACY, 0)
    assert average([e.best for e in several]) == {"val_accuracy": 0.5}
    with pytest.raises(TypeError, match="Did you forget to return the metrics"):
        read_fit_result(None, ACCURACY, 0)
    with pytest.raises(TypeError, match="returned str"):
        read_fit_result("0.5", ACCURACY, 0)


def test_callbacks_are_deep_copied_per_trial_and_tensorboard_gets_a_directory_each(tmp_path):
    class Counts(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = 0

    counter = Counts()
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))
    first = copy_callbacks([counter, board], trial_id="7", execution=0)
    second = copy_callbacks([counter, board], trial_id="8", execution=1)
    first[0].epochs += 1
    assert counter.epochs == 0 and second[0].epochs == 0
    assert first[1].log_dir == str(tmp_path / "logs" / "7" / "execution0")
    assert second[1].log_dir == str(tmp_path / "logs" / "8" / "execution1")
    assert board.log_dir == str(tmp_path / "logs")

    class NotCopyable(keras.callbacks.Callback):
        def __deepcopy__(self, memo):
            raise TypeError("no")

    with pytest.raises(ValueError, match="deep-copyable"):
        copy_callbacks([NotCopyable()], trial_id="1", execution=0)


def test_the_best_epochs_weights_are_kept_across_executions():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    keep = KeepBestEpoch(ACCURACY)
    keep.set_model(model)

    def epoch(value, weight):
        keep.on_epoch_begin(0)
        model.set_weights([np.full((1, 1), weight, "float32"), np.zeros(1, "float32")])
        keep.on_epoch_end(0, {"val_accuracy": value})

    keep.more_executions = True  # a second execution follows
    epoch(0.5, 1.0)
    epoch(0.9, 2.0)
    assert keep.best_weights() is None  # the model's own weights are the best
    epoch(0.7, 3.0)
    assert keep.best_weights()[0][0, 0] == 2.0
    keep.on_train_end()
    keep.more_executions = False  # the second, last execution trains a new model
    assert keep.best_weights()[0][0, 0] == 2.0
    epoch(0.95, 4.0)
    assert keep.best_weights() is None
    epoch(0.1, 5.0)
    keep.on_train_end()
    assert keep.best_weights()[0][0, 0] == 4.0


def test_a_function_becomes_a_hypermodel_and_hypermodels_are_kept():
    def build(hp):
        return keras.Sequential([keras.layers.Dense(1)])

    wrapped = as_hypermodel(build)
    assert isinstance(wrapped.build(None), keras.Model)
    hypermodel = keras_tuner.HyperModel()
    assert as_hypermodel(hypermodel) is hypermodel
    with pytest.raises(TypeError, match="hypermodel must be"):
        as_hypermodel(42)
