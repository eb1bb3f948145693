"""A worker spec for the Keras tests (`rung worker tests/client/digits_job.py`): a tiny
classifier of scikit-learn's digits, and a callback that records how each trial starts."""

from __future__ import annotations

import hashlib
import json
import os
import time

import keras
import numpy as np

from rung.keras import current_trial

STUDY = {
    "study": os.environ.get("RUNG_TEST_STUDY", "keras-e2e"),
    "objective": "val_accuracy",
    "max_epochs": int(os.environ.get("RUNG_TEST_MAX_EPOCHS", "9")),
    "factor": 3,
    "seed": 5,
    "lease_seconds": float(os.environ.get("RUNG_TEST_LEASE", "30")),
}


QUIT_AT_PROMOTED = 3  # the exit code of a worker told to quit at its first promoted trial


def weights_digest(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


class Recorder(keras.callbacks.Callback):
    """Appends one JSON line per trial: the weights and optimizer step it started from, the
    epochs it ran. Sleeps RUNG_TEST_EPOCH_SLEEP seconds per epoch. With
    RUNG_TEST_QUIT_AT_PROMOTED set, the process exits when handed a promoted trial; with
    RUNG_TEST_HANG_AT_TRIAL=N, it records `hanging` in its Nth trial and waits there to be
    killed; with RUNG_TEST_START_TOGETHER=N, its first trial waits for N processes to start
    one."""

    started = 0  # trials this process has started

    def on_train_begin(self, logs=None):
        trial = current_trial()
        self.record = {
            "trial": trial.id,
            "parent": trial.parent_trial_id,
            "initial_epoch": trial.initial_epoch,
            "epochs": trial.epochs,
            "pid": os.getpid(),
            "weights": weights_digest(self.model.get_weights()),
            "iterations": int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)),
            "ran": [],
        }
        self._write({"started": trial.id, "pid": os.getpid()})
        self._wait_for_the_others()
        if trial.parent_trial_id is not None and os.environ.get("RUNG_TEST_QUIT_AT_PROMOTED"):
            os._exit(QUIT_AT_PROMOTED)  # dies holding the lease: another worker takes it over
        Recorder.started += 1
        if Recorder.started == int(os.environ.get("RUNG_TEST_HANG_AT_TRIAL", "0")):
            self._write({"hanging": trial.id, "pid": os.getpid()})
            while True:  # holding the lease, heartbeating, until the test kills the process
                time.sleep(1)

    def _wait_for_the_others(self):
        """With RUNG_TEST_START_TOGETHER=N, each process's first trial waits until N processes
        have started one, so that every worker trains something however slowly it started."""
        wanted = int(os.environ.get("RUNG_TEST_START_TOGETHER", "0"))
        deadline = time.monotonic() + 120
        while len(self._started_by()) < wanted and time.monotonic() < deadline:
            time.sleep(0.05)

    @staticmethod
    def _started_by():
        with open(os.environ["RUNG_TEST_RECORD"]) as f:
            return {json.loads(line)["pid"] for line in f if '"started"' in line}

    def on_epoch_begin(self, epoch, logs=None):
        self.record["ran"].append(epoch)
        time.sleep(float(os.environ.get("RUNG_TEST_EPOCH_SLEEP", "0")))

    def on_train_end(self, logs=None):
        self.record["final_weights"] = weights_digest(self.model.get_weights())
        self.record["final_iterations"] = int(
            keras.ops.convert_to_numpy(self.model.optimizer.iterations)
        )
        self._write(self.record)

    def _write(self, line):
        with open(os.environ["RUNG_TEST_RECORD"], "a") as f:
            f.write(json.dumps(line) + "\n")


def build_model(hp):
    model = keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(hp.Int("units", 8, 64, step=8), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit_kwargs():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return {
        "x": x[:800],
        "y": y[:800],
        "validation_data": (x[800:1100], y[800:1100]),
        "batch_size": 64,
        "verbose": 0,
        "callbacks": [Recorder()],
    }
