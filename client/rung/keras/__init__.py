"""Keras 3 (any backend): Keras Tuner's `Hyperband`, with the oracle in a Rung server.

    tuner = rung.keras.Tuner(build_model, objective="val_accuracy", max_epochs=27,
                             project_name="digits", server="http://rung:8000")
    tuner.search(x, y, epochs=50, validation_data=(x_val, y_val), batch_size=64)
    best_hp = tuner.get_best_hyperparameters()[0]
    model = tuner.hypermodel.build(best_hp)

It takes `keras_tuner.Hyperband`'s arguments with their meaning; run the same script on
every machine and each process is one worker of the study. A promoted trial resumes from its
parent's checkpoint, weights *and* optimizer state, and trains only `epochs - initial_epoch`
more epochs (Keras Tuner restores the best epoch's weights only). Checkpoints travel through
the service (uploaded after training, downloaded by the worker that continues the trial), or
live in `checkpoint_dir` when the workers share a directory. A parent checkpoint that cannot
be found means training from scratch to `epochs`, with a warning.

The package: `tuner` (the Tuner), `hypermodel`, `fit_results` (objectives and what `fit`
returns), `callbacks`, `checkpoint` (the checkpoint file format) and `backend` (which Keras
backend is used when KERAS_BACKEND is unset: importing `rung.keras` chooses it, see
`backend.choose`, before Keras is first imported).
"""

from . import backend

backend.choose()

from .callbacks import KeepBestEpoch  # noqa: E402
from .fit_results import Objective  # noqa: E402
from .hypermodel import HyperModel  # noqa: E402
from .tuner import Tuner, current_trial  # noqa: E402

__all__ = ["HyperModel", "KeepBestEpoch", "Objective", "Tuner", "current_trial"]
