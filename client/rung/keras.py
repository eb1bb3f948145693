"""Keras 3 (any backend): a tuner whose trials come from a Rung server.

    tuner = rung.keras.Tuner(build_model, objective="val_accuracy", max_epochs=27,
                             study="digits", server="http://rung:8000")
    tuner.search(x, y, validation_data=(x_val, y_val), batch_size=64)
    best_hp = tuner.get_best_hyperparameters()[0]

Run the same script on every machine: each process is one worker. A promoted trial resumes
from its parent's checkpoint, weights *and* optimizer state, and trains only
`epochs - initial_epoch` more epochs (Keras Tuner restores weights only). Checkpoints travel
through the service (uploaded after training, downloaded by the worker that continues the
trial), or live in `checkpoint_dir` when the workers share a directory. A parent checkpoint
that cannot be found means training from scratch to `epochs`, with a warning.
"""

from __future__ import annotations

import contextvars
import gc
import importlib.util
import json
import logging
import math
import os
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import Client, StudyHandle, TrialSession
from .errors import RungError
from .hyperparameters import HyperParameters, discover_space
from .schemas import Trial


def _pick_backend() -> None:
    """Without KERAS_BACKEND, use the backend of ~/.keras/keras.json if it is installed, else
    the first installed one (Keras would insist on TensorFlow, which it writes there)."""
    if "KERAS_BACKEND" in os.environ:
        return
    try:
        configured = json.loads(Path("~/.keras/keras.json").expanduser().read_text())["backend"]
    except (OSError, ValueError, KeyError, TypeError):
        configured = None
    for backend in (configured, "tensorflow", "jax", "torch"):
        if backend and importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return


_pick_backend()

import keras  # noqa: E402
import numpy as np  # noqa: E402

log = logging.getLogger("rung.keras")
_current_trial: contextvars.ContextVar[Trial | None] = contextvars.ContextVar(
    "rung_trial", default=None
)


def current_trial() -> Trial | None:
    """The trial being trained in this context (for callbacks and logging)."""
    return _current_trial.get()


def finite_metrics(logs: dict[str, Any] | None) -> dict[str, float]:
    """The metrics of an epoch that JSON can carry: NaN and ±inf are left out (a score is the
    best finite value over the epochs, as Keras Tuner's nanmin/nanmax)."""
    metrics = {}
    for name, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            metrics[name] = number
    return metrics


# -- checkpoints -------------------------------------------------------------------------------
def save_checkpoint(model: keras.Model, path: Path) -> None:
    """Weights and optimizer state, written atomically (a reader sees all of it or none)."""
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        for i, variable in enumerate(optimizer.variables):
            arrays[f"o{i}"] = keras.ops.convert_to_numpy(variable)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(partial, path)


def load_checkpoint(model: keras.Model, path: Path) -> None:
    with np.load(path) as data:
        weights = [data[f"w{i}"] for i in range(sum(k.startswith("w") for k in data.files))]
        state = [data[f"o{i}"] for i in range(sum(k.startswith("o") for k in data.files))]
    model.set_weights(weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and state:
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        for variable, value in zip(optimizer.variables, state, strict=True):
            variable.assign(value)


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


@dataclass
class TrialTiming:
    trial_id: str
    total_s: float
    fit_s: float

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.fit_s


@dataclass
class _Outcome:
    error: str | None = None
    lost: bool = False
    timing: TrialTiming | None = None
    told: Trial | None = None


class Tuner:
    """Keras Tuner's Hyperband tuner, with the oracle in a Rung server."""

    def __init__(
        self,
        hypermodel: Any,
        *,
        objective: Any,
        max_epochs: int = 100,
        factor: int = 3,
        hyperband_iterations: int | None = 1,
        seed: int | None = None,
        hyperparameters: Any = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        study: str | None = None,
        project_name: str | None = None,
        server: str | None = None,
        token: str | None = None,
        client: Client | None = None,
        worker_id: str | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        verbose: int = 1,
        **study_settings: Any,
    ):
        self.hypermodel = hypermodel
        self.study_name = study or project_name or "untitled_project"
        self.settings: dict[str, Any] = {
            "objective": objective,
            "max_epochs": max_epochs,
            "factor": factor,
            # Keras Tuner treats 0 as "no limit" and seed 0 as "no seed".
            "hyperband_iterations": hyperband_iterations or None,
            "seed": seed or None,
            "tune_new_entries": tune_new_entries,
            "allow_new_entries": allow_new_entries,
            "max_retries_per_trial": max_retries_per_trial,
            "max_consecutive_failed_trials": max_consecutive_failed_trials,
            **study_settings,
        }
        if (not tune_new_entries or not allow_new_entries) and hyperparameters is None:
            raise ValueError(
                "with tune_new_entries or allow_new_entries False, pass the "
                "search space as `hyperparameters`"
            )
        self.known = (
            hyperparameters
            if isinstance(hyperparameters, HyperParameters) or hyperparameters is None
            else HyperParameters.from_keras_tuner(hyperparameters)
        )
        self.client = client or Client(server, token=token)
        self.worker_id = worker_id
        shared = checkpoint_dir or os.environ.get("RUNG_CHECKPOINT_DIR")
        self.checkpoint_dir = Path(shared) if shared else None  # None: through the service
        self._scratch = Path(tempfile.mkdtemp(prefix="rung-checkpoints-"))
        self.verbose = verbose
        self.handle: StudyHandle | None = None
        self.timings: list[TrialTiming] = []

    # -- the study ------------------------------------------------------------------------
    def _build(self, hp: HyperParameters) -> keras.Model:
        build = getattr(self.hypermodel, "build", self.hypermodel)
        return build(hp)

    def _fit(self, hp: HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        fit = getattr(self.hypermodel, "fit", None)
        if callable(fit):
            return fit(hp, model, *args, **kwargs)
        return model.fit(*args, **kwargs)

    def study(self) -> StudyHandle:
        """The study on the server, created on first use (its space discovered by building
        the model, conditional branches included)."""
        if self.handle is None:
            if self.settings["tune_new_entries"]:
                space = discover_space(self._build, self.known)
            else:
                space = self.known or HyperParameters()
            self.handle = self.client.study(
                self.study_name,
                hyperparameters=space,
                worker_id=self.worker_id,
                **self.settings,
            )
        return self.handle

    def checkpoint_path(self, trial_id: str) -> Path:
        """Where this worker writes or reads a trial's checkpoint file."""
        if self.checkpoint_dir is None:
            return self._scratch / f"trial-{trial_id}.npz"
        return self.checkpoint_dir / f"study-{self.study().id}" / f"trial-{trial_id}.npz"

    def _save(self, model: keras.Model, trial: Trial) -> None:
        path = self.checkpoint_path(trial.id)
        save_checkpoint(model, path)
        if self.checkpoint_dir is not None:
            return
        try:
            self.study().upload(trial, path)
        except RungError as exc:  # the result still counts; a promotion trains from scratch
            warnings.warn(
                f"trial {trial.id}: its checkpoint could not be uploaded ({exc})", stacklevel=2
            )
        finally:
            path.unlink(missing_ok=True)

    def _load(self, model: keras.Model, trial_id: str) -> None:
        """Load a trial's checkpoint into `model`; OSError/RungError when it is not there."""
        path = self.checkpoint_path(trial_id)
        if self.checkpoint_dir is None:
            self.study().download(trial_id, path)
        try:
            load_checkpoint(model, path)
        finally:
            if self.checkpoint_dir is None:
                path.unlink(missing_ok=True)

    def objective_names(self) -> list[str]:
        objective = self.study().study.objective
        parts = objective if isinstance(objective, list) else [objective]
        return [part["name"] for part in parts]

    # -- searching ------------------------------------------------------------------------
    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """Run trials until the study is done."""
        handle = self.study()
        gc.freeze()  # what exists now lives on: later collections skip it (fast clear_session)
        while (trial := handle.next_trial()) is not None:
            outcome = self.run_trial(trial, *fit_args, **fit_kwargs)
            if self.verbose:
                self._progress(trial, outcome)
        if self.verbose:
            self._summary(handle.done_reason)

    def run_trial(self, trial: Trial, *fit_args: Any, **fit_kwargs: Any) -> _Outcome:
        handle = self.study()
        started = time.perf_counter()
        keras.backend.clear_session()
        if set(trial.hyperparameters) - {hp.name for hp in handle.space}:
            handle.refresh()  # another worker's trial added new entries
        hp = HyperParameters(
            handle.space,
            trial.hyperparameters,
            allow_new_entries=bool(handle.study.settings["allow_new_entries"]),
        )
        outcome = _Outcome()
        token = _current_trial.set(trial)
        fit_s = 0.0
        try:
            model = self._build(hp)
            initial_epoch = self._resume(model, trial)
            callbacks = list(fit_kwargs.pop("callbacks", None) or [])
            with handle.session(trial) as session:
                fit_started = time.perf_counter()
                history = self._fit(
                    hp,
                    model,
                    *fit_args,
                    epochs=trial.epochs,
                    initial_epoch=initial_epoch,
                    callbacks=[*callbacks, ReportEpochs(session)],
                    **fit_kwargs,
                )
                fit_s = time.perf_counter() - fit_started
            outcome.lost = session.lost.is_set()
            if not outcome.lost:
                self._save(model, trial)
                outcome.told = self._tell(handle, trial, history, hp)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the trial failed: report it, keep working
            log.warning("trial %s failed:\n%s", trial.id, traceback.format_exc())
            outcome.error = f"{type(exc).__name__}: {exc}"
            outcome.told = handle.fail(trial, outcome.error)
        finally:
            _current_trial.reset(token)
        outcome.timing = TrialTiming(trial.id, time.perf_counter() - started, fit_s)
        self.timings.append(outcome.timing)
        return outcome

    def _resume(self, model: keras.Model, trial: Trial) -> int:
        """The epoch to start from: the parent's, if its checkpoint is at hand."""
        if trial.parent_trial_id is None:
            return 0
        try:
            self._load(model, trial.parent_trial_id)
        except (OSError, ValueError, KeyError, RungError) as exc:
            warnings.warn(
                f"trial {trial.id}: the checkpoint of its parent trial {trial.parent_trial_id} "
                f"cannot be loaded ({exc}); training from scratch to epoch {trial.epochs}",
                stacklevel=2,
            )
            return 0
        return trial.initial_epoch

    def _tell(self, handle: StudyHandle, trial: Trial, history: Any, hp: HyperParameters) -> Trial:
        epochs = getattr(history, "history", {}) or {}
        names = self.objective_names()
        finite = [
            all(math.isfinite(float(v)) for v in values)
            for values in zip(*(epochs.get(n, []) for n in names), strict=False)
        ]
        if not any(finite):
            return handle.fail(
                trial, f"objective {', '.join(names)} was NaN or missing in every epoch"
            )
        last = finite_metrics({k: v[-1] for k, v in epochs.items() if v})
        return handle.tell(trial, last, new_hyperparameters=hp.new_entries)

    # -- results --------------------------------------------------------------------------
    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        handle = self.study()
        handle.refresh()
        return [HyperParameters(handle.space, t.hyperparameters) for t in handle.best(num_trials)]

    def get_best_models(self, num_models: int = 1) -> list[keras.Model]:
        """The best trials' models, rebuilt and loaded from their checkpoints."""
        handle = self.study()
        models = []
        for trial in handle.best(num_models):
            keras.backend.clear_session(free_memory=False)
            model = self._build(HyperParameters(handle.space, trial.hyperparameters))
            self._load(model, trial.id)
            models.append(model)
        return models

    # -- output -----------------------------------------------------------------------------
    def _progress(self, trial: Trial, outcome: _Outcome) -> None:
        told = outcome.told
        if outcome.lost:
            result = "lease lost: another worker runs it now"
        elif told is not None and told.status == "completed":
            result = f"score {told.score:.4f}"
        else:
            result = f"failed ({outcome.error or (told.error if told else '')})"
        best = self.study().best(1)
        best_text = f"best {best[0].score:.4f} (trial {best[0].id})" if best else "best -"
        timing = outcome.timing
        assert timing is not None
        print(
            f"[rung {self.study().worker_id}] trial {trial.id:>4}  bracket {trial.bracket} "
            f"round {trial.round}  epochs {trial.initial_epoch}->{trial.epochs}  {result}  "
            f"{best_text}  fit {timing.fit_s:.2f}s + {timing.overhead_s * 1000:.0f} ms",
            flush=True,
        )

    def _summary(self, reason: str | None) -> None:
        timings = self.timings
        if not timings:
            print(f"[rung] nothing to do: {reason}", flush=True)
            return
        overhead = sorted(t.overhead_s for t in timings)
        print(
            f"[rung {self.study().worker_id}] done ({reason}). {len(timings)} trials here, "
            f"{sum(t.fit_s for t in timings):.1f}s in fit, time outside fit per trial: "
            f"median {overhead[len(overhead) // 2] * 1000:.0f} ms, "
            f"max {overhead[-1] * 1000:.0f} ms",
            flush=True,
        )
