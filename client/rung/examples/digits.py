"""A small Keras classifier of scikit-learn's handwritten digits (8x8 images, 10 classes),
tuned with Hyperband. Needs `rung[demo]` (Keras and scikit-learn) and a Keras backend.

    rung worker rung.examples.digits --server http://127.0.0.1:8000
"""

from __future__ import annotations

from typing import Any

STUDY: dict[str, Any] = {
    "study": "digits",
    "objective": "val_accuracy",
    "max_epochs": 9,
    "factor": 3,
    "seed": 1,
}


def build_model(hp: Any) -> Any:
    import keras

    model = keras.Sequential([keras.Input(shape=(64,))])
    for i in range(hp.Int("layers", 1, 3)):
        model.add(
            keras.layers.Dense(
                hp.Int(f"units_{i}", 16, 128, step=16),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(0.2))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit_kwargs() -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        (x / 16.0).astype("float32"), y, test_size=0.25, random_state=0, stratify=y
    )
    return {
        "x": x_train,
        "y": y_train,
        "validation_data": (x_val, y_val),
        "batch_size": 64,
        "verbose": 0,
    }
