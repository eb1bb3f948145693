"""Tabulate real Keras learning curves for the search-efficiency benchmark's `digits` job.

Every configuration of a small grid (224 of them) trains a Keras classifier of
scikit-learn's handwritten digits for 27 epochs, once, on this machine's CPU (PyTorch
backend, one thread); the validation loss after each epoch and the measured seconds per
epoch are written to `benchmarks/data/digits_curves.json`. `search_efficiency.py` then
answers "this configuration after t epochs" from the table: a continuation from epoch t0
to t follows the same curve, as a warm start from the checkpoint of epoch t0 would.

    KERAS_BACKEND=torch python -m benchmarks.digits_table   # about 15 minutes on one core
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "data" / "digits_curves.json"
EPOCHS = 27
GRID: dict[str, list[Any]] = {
    "learning_rate": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    "units": [16, 32, 64, 128],
    "layers": [1, 2],
    "dropout": [0.0, 0.3],
    "batch_size": [32, 128],
}


def curve(values: dict[str, Any], data: tuple[Any, ...]) -> tuple[list[float], float]:
    import keras

    x_train, x_val, y_train, y_val = data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(64,))])
    for _ in range(values["layers"]):
        model.add(keras.layers.Dense(values["units"], activation="relu"))
        if values["dropout"]:
            model.add(keras.layers.Dropout(values["dropout"]))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(values["learning_rate"]),
        loss="sparse_categorical_crossentropy",
    )
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=values["batch_size"],
        epochs=EPOCHS,
        verbose=0,
    )
    seconds = (time.perf_counter() - started) / EPOCHS
    return [round(float(v), 6) for v in history.history["val_loss"]], round(seconds, 5)


def main() -> None:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    data = train_test_split(
        (x / 16.0).astype("float32"), y, test_size=0.25, random_state=0, stratify=y
    )
    rows = []
    for combo in itertools.product(*GRID.values()):
        values = dict(zip(GRID, combo, strict=True))
        losses, seconds = curve(values, data)
        rows.append({"values": values, "val_loss": losses, "seconds_per_epoch": seconds})
        print(len(rows), values, losses[-1], seconds, flush=True)
    head = {"epochs": EPOCHS, "grid": GRID, "backend": os.environ.get("KERAS_BACKEND")}
    lines = ",\n".join(json.dumps(row) for row in rows)  # one configuration per line
    OUT.write_text(json.dumps(head)[:-1] + ', "configurations": [\n' + lines + "\n]}\n")


if __name__ == "__main__":
    main()
