"""Rung's client: the SDK (`Client`, `AsyncClient`), Keras Tuner's search-space API
(`HyperParameters`), and, with the `keras` extra, `rung.keras.Tuner`."""

from .client import AsyncClient, Client, RetryPolicy
from .hyperparameters import HyperParameters

__all__ = ["AsyncClient", "Client", "HyperParameters", "RetryPolicy"]
