"""The Keras backend `rung.keras` runs on, chosen before Keras is first imported."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path


def choose() -> None:
    """Without KERAS_BACKEND, and before Keras is imported, use the backend of
    ~/.keras/keras.json if it is installed, else the first installed of TensorFlow, JAX and
    PyTorch (Keras itself would insist on TensorFlow, which it writes there). Set
    KERAS_BACKEND to choose yourself; once Keras is imported its backend is left as is."""
    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return
    try:
        configured = json.loads(Path("~/.keras/keras.json").expanduser().read_text())["backend"]
    except (OSError, ValueError, KeyError, TypeError):
        configured = None
    for backend in (configured, "tensorflow", "jax", "torch"):
        if backend and importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return
