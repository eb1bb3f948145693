"""The Tuner: Keras Tuner's `Hyperband` with the oracle in a Rung server (the package's
docstring, `rung.keras`, shows its use)."""

from __future__ import annotations

import contextvars
import gc
import logging
import os
import shutil
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from ..client import Client
from ..errors import RungError
from ..handles import StudyHandle, TrialSession
from ..hyperparameters import HyperParameters, discover_space
from ..schemas import Trial
from . import checkpoint
from .callbacks import KeepBestEpoch, ReportEpochs, copy_callbacks
from .fit_results import (
    Execution,
    Objective,
    average,
    objective_spec,
    read_fit_result,
)
from .hypermodel import as_hypermodel

log = logging.getLogger("rung.keras")
_current_trial: contextvars.ContextVar[Trial | None] = contextvars.ContextVar(
    "rung_trial", default=None
)
DEFAULT_KEEP_BEST_CHECKPOINTS = 10  # what get_best_models(num_models=k) can return, k ≤ this


def current_trial() -> Trial | None:
    """The trial being trained in this context (for callbacks and logging)."""
    return _current_trial.get()


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
    """Keras Tuner's `Hyperband`, with the oracle in a Rung server.

    Keras Tuner's arguments keep their meaning. `project_name` (or `study`) names the study;
    `directory` holds this process's local files (`<directory>/<project_name>`);
    `overwrite=True` deletes the study and those files and starts over, otherwise running the
    script again continues the study. Rung's own: `server`, `token`, `worker_id`,
    `checkpoint_dir` (a directory all workers share; unset: checkpoints go through the
    server), `verbose` (Rung's progress lines; unset: they follow `search(verbose=…)`, as
    Keras Tuner's output does), and any other study setting (`lease_seconds`,
    `keep_best_checkpoints` (default 10 here), ...). The reference is docs/keras.md."""

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_epochs: int = 100,
        factor: int = 3,
        hyperband_iterations: int | None = 1,
        seed: int | None = None,
        hyperparameters: Any = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        *,
        directory: str | os.PathLike[str] | None = None,
        project_name: str | None = None,
        overwrite: bool = False,
        executions_per_trial: int = 1,
        study: str | None = None,
        server: str | None = None,
        token: str | None = None,
        client: Client | None = None,
        worker_id: str | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        verbose: int | None = None,
        **study_settings: Any,
    ):
        if hypermodel is None:
            raise ValueError("a hypermodel (build_model(hp) or a HyperModel) is required")
        if executions_per_trial < 1:
            raise ValueError(f"executions_per_trial must be at least 1, got {executions_per_trial}")
        self.hypermodel = as_hypermodel(hypermodel)
        self.project_name = study or project_name or "untitled_project"  # the study's name
        self.directory = Path(directory or ".")
        self.executions_per_trial = executions_per_trial
        study_settings.setdefault("keep_best_checkpoints", DEFAULT_KEEP_BEST_CHECKPOINTS)
        self.settings: dict[str, Any] = {
            "objective": objective_spec(objective),
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
        self.verbose = verbose
        self.handle: StudyHandle | None = None
        self.timings: list[TrialTiming] = []
        if overwrite:
            self._overwrite()
        self._scratch = Path(tempfile.mkdtemp(prefix="rung-checkpoints-"))

    @property
    def project_dir(self) -> Path:
        return self.directory / self.project_name

    def _overwrite(self) -> None:
        """Keras Tuner's `overwrite=True`: the study and this project's local files go."""
        existing = self.client.find_study(self.project_name)
        if existing is not None:
            self.client.delete_study(existing.id)
        shutil.rmtree(self.project_dir, ignore_errors=True)

    # -- the study ------------------------------------------------------------------------
    def study(self) -> StudyHandle:
        """The study on the server, created on first use (its space discovered by building
        the model, conditional branches included)."""
        if self.handle is None:
            if self.settings["tune_new_entries"]:
                space = discover_space(self.hypermodel.build, self.known)
            else:
                space = self.known or HyperParameters()
            self.handle = self.client.study(
                self.project_name,
                hyperparameters=space,
                worker_id=self.worker_id,
                **self.settings,
            )
        return self.handle

    @property
    def objective(self) -> Objective:
        return Objective.from_wire(self.study().study.objective)

    def stop(self) -> None:
        """Stop the study: no new trials; running ones (other workers') may finish."""
        self.study().stop()

    def resume(self) -> None:
        """Resume a stopped or failed study (after a fix), its results kept."""
        self.study().resume()

    def checkpoint_path(self, trial_id: str) -> Path:
        """Where this worker writes or reads a trial's checkpoint file."""
        if self.checkpoint_dir is None:
            return self._scratch / f"trial-{trial_id}.npz"
        return self.checkpoint_dir / f"study-{self.study().id}" / f"trial-{trial_id}.npz"

    def _save(self, model: keras.Model, trial: Trial, best: KeepBestEpoch) -> None:
        path = self.checkpoint_path(trial.id)
        checkpoint.save(model, path, best_weights=best.best_weights())
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

    def _load(self, model: keras.Model, trial_id: str, *, best: bool = False) -> None:
        """Load a trial's checkpoint into `model`; OSError/RungError when it is not there."""
        path = self.checkpoint_path(trial_id)
        if self.checkpoint_dir is None:
            self.study().download(trial_id, path)
        try:
            checkpoint.load(model, path, best=best)
        finally:
            if self.checkpoint_dir is None:
                path.unlink(missing_ok=True)

    def _build(self, hp: HyperParameters) -> keras.Model:
        model = self.hypermodel.build(hp)
        if not isinstance(model, keras.Model):
            raise TypeError(
                "the model-building function, or HyperModel.build(), must return a Keras "
                f"Model; it returned {type(model).__name__}"
            )
        return model

    # -- searching ------------------------------------------------------------------------
    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """Run trials until the study is done. Takes what `model.fit` takes; `epochs` and
        `initial_epoch` are each trial's (Keras Tuner overrides them the same way). Raises
        RuntimeError when the study has failed (too many trials failed in a row)."""
        verbose = self.verbose if self.verbose is not None else fit_kwargs.get("verbose", 1)
        handle = self.study()
        self._raise_if_failed(handle.refresh())
        self.timings = []  # this search's trials
        gc.freeze()  # what exists now lives on: later collections skip it (fast clear_session)
        while (trial := handle.next_trial()) is not None:
            outcome = self.run_trial(trial, *fit_args, **fit_kwargs)
            if verbose:
                self._progress(trial, outcome)
        study = handle.refresh()
        if verbose:
            self._summary(handle.done_reason)
        self._raise_if_failed(study)

    def _raise_if_failed(self, study: Any) -> None:
        if study.status == "failed":
            limit = study.settings.max_consecutive_failed_trials
            raise RuntimeError(
                f"Number of consecutive failures exceeded the limit of {limit}.\n"
                f"{study.reason}\n(study {study.name!r} has failed; fix the cause, then "
                "tuner.resume() or POST /v1/studies/{id}/resume continues it with its results)"
            )

    def run_trial(self, trial: Trial, *fit_args: Any, **fit_kwargs: Any) -> _Outcome:
        handle = self.study()
        started = time.perf_counter()
        keras.backend.clear_session()
        if set(trial.hyperparameters) - {hp.name for hp in handle.space}:
            handle.refresh()  # another worker's trial added new entries
        hp = HyperParameters(
            handle.space,
            trial.hyperparameters,
            allow_new_entries=handle.study.settings.allow_new_entries,
        )
        outcome = _Outcome()
        token = _current_trial.set(trial)
        fit_s = 0.0
        objective = self.objective
        best = KeepBestEpoch(objective)
        callbacks = list(fit_kwargs.pop("callbacks", None) or [])
        fit_kwargs.pop("epochs", None)
        fit_kwargs.pop("initial_epoch", None)
        try:
            executions: list[Execution] = []
            with handle.session(trial) as session:
                for execution in range(self.executions_per_trial):
                    model = self._build(hp)
                    initial_epoch = self._resume(model, trial)
                    per_trial = copy_callbacks(callbacks, trial_id=trial.id, execution=execution)
                    best.more_executions = execution + 1 < self.executions_per_trial
                    if self.executions_per_trial == 1:
                        per_trial.append(ReportEpochs(session))
                    fit_started = time.perf_counter()
                    result = self.hypermodel.fit(
                        hp,
                        model,
                        *fit_args,
                        epochs=trial.epochs,
                        initial_epoch=initial_epoch,
                        callbacks=[*per_trial, best],
                        **fit_kwargs,
                    )
                    fit_s += time.perf_counter() - fit_started
                    executions += read_fit_result(result, objective, initial_epoch)
                    if session.lost.is_set():
                        break
                if self.executions_per_trial > 1:
                    self._report_average(session, executions)
            outcome.lost = session.lost.is_set()
            if not outcome.lost:
                self._save(model, trial, best)
                outcome.told = self._tell(handle, trial, executions, hp, objective)
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

    @staticmethod
    def _report_average(session: TrialSession, executions: list[Execution]) -> None:
        """With several executions, each epoch's metrics averaged over them (the history)."""
        by_epoch: dict[int, list[dict[str, float]]] = {}
        for execution in executions:
            for offset, metrics in enumerate(execution.epochs):
                by_epoch.setdefault(execution.first_epoch + offset, []).append(metrics)
        for epoch, per_execution in sorted(by_epoch.items()):
            if averaged := average(per_execution):
                session.report(epoch, averaged)

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

    def _tell(
        self,
        handle: StudyHandle,
        trial: Trial,
        executions: list[Execution],
        hp: HyperParameters,
        objective: Objective,
    ) -> Trial:
        """Keras Tuner's result: the best epoch's metrics, averaged over the executions."""
        metrics = average([e.best for e in executions])
        if objective.value(metrics) is None:
            seen = sorted({name for e in executions for m in [e.best, *e.epochs] for name in m})
            missing = [name for name in objective.names if name not in metrics]
            return handle.fail(
                trial,
                f"objective {', '.join(missing)} was not reported or was NaN in every epoch; "
                f"the metrics reported were: {', '.join(seen) or 'none'}",
            )
        return handle.tell(trial, metrics, new_hyperparameters=hp.new_entries)

    # -- results --------------------------------------------------------------------------
    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        """The hyperparameters of the best `num_trials` trials, best first."""
        handle = self.study()
        handle.refresh()
        return [self._hyperparameters(handle, t) for t in handle.best(num_trials)]

    @staticmethod
    def _hyperparameters(handle: StudyHandle, trial: Trial) -> HyperParameters:
        """A trial's values, with the defaults of the entries that joined the space after
        it was sampled (its model was built with them, as in Keras Tuner)."""
        hp = HyperParameters(handle.space, trial.hyperparameters)
        hp.ensure_active_values()
        return hp

    def get_best_models(self, num_models: int = 1) -> list[keras.Model]:
        """The best trials' models with their best epoch's weights (Keras Tuner's rule), so
        each evaluates to its trial's score. The study keeps the checkpoints of its
        `keep_best_checkpoints` best trials (10 by default with this tuner)."""
        handle = self.study()
        handle.refresh()
        models = []
        for trial in handle.best(num_models):
            keras.backend.clear_session(free_memory=False)
            model = self._build(self._hyperparameters(handle, trial))
            self._load(model, trial.id, best=True)
            models.append(model)
        return models

    def search_space_summary(self, extended: bool = False) -> None:
        """Print the search space, as Keras Tuner does."""
        handle = self.study()
        handle.refresh()
        space = handle.space
        print("Search space summary")
        print(f"Default search space size: {len(space)}")
        for hp in space:
            config = hp.to_dict()
            name, kind = config.pop("name"), config.pop("type")
            config.setdefault("conditions", [])
            print(f"{name} ({kind.capitalize()})")
            print(config)

    def results_summary(self, num_trials: int = 10) -> None:
        """Print the best trials, as Keras Tuner does."""
        handle = self.study()
        print("Results summary")
        print(f"Results in study {handle.study.name!r} (id {handle.id}) at {self.client.base_url}")
        print(f"Showing {num_trials} best trials")
        print(f"{self.objective}")
        for trial in handle.best(num_trials):
            print()
            print(f"Trial {trial.id} summary")
            print("Hyperparameters:")
            values = {
                **trial.hyperparameters,
                "tuner/epochs": trial.epochs,
                "tuner/initial_epoch": trial.initial_epoch,
                "tuner/bracket": trial.bracket,
                "tuner/round": trial.round,
            }
            if trial.parent_trial_id is not None:
                values["tuner/trial_id"] = trial.parent_trial_id
            for name, value in values.items():
                print(f"{name}:", value)
            if trial.score is not None:
                print(f"Score: {trial.score}")

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
