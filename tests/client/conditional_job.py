"""A Keras Tuner-style script (`python conditional_job.py SERVER WORKER_ID STUDY`) whose
`build_model` has layers built in a loop next to conditional scopes: every process that runs
it must describe the same study, whatever the order they start in."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
from sklearn.datasets import load_digits

import rung.keras


def build_model(hp):
    model = keras.Sequential([keras.Input((64,))])
    for i in range(hp.Int("layers", 1, 3)):
        model.add(keras.layers.Dense(hp.Int(f"units_{i}", 8, 32, step=8), activation="relu"))
    if hp.Boolean("dropout"):
        with hp.conditional_scope("dropout", [True]):
            model.add(keras.layers.Dropout(hp.Float("rate", 0.1, 0.5)))
    model.add(keras.layers.Dense(10, activation="softmax"))
    optimizer = hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", ["sgd"]):
        momentum = hp.Float("momentum", 0.0, 0.9)
    with hp.conditional_scope("optimizer", ["adam"]):
        beta_1 = hp.Float("beta_1", 0.8, 0.99)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=momentum)
        if optimizer == "sgd"
        else keras.optimizers.Adam(0.01, beta_1=beta_1),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    server, worker_id, study = sys.argv[1:4]
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    tuner = rung.keras.Tuner(
        build_model,
        objective="val_accuracy",
        max_epochs=9,
        factor=3,
        project_name=study,
        server=server,
        worker_id=worker_id,
        lease_seconds=30,
    )
    tuner.search(x[:500], y[:500], validation_data=(x[1400:], y[1400:]), verbose=0)


if __name__ == "__main__":
    main()
