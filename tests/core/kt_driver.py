"""Drive Keras Tuner's real HyperbandOracle and Rung's core side by side with the same scores.

Both get the same search space, seed and settings; simulated workers ask, train (a score
computed from the values and epochs) and report, in an order drawn from a seeded random
generator. Every hand-out is compared: values, epochs, initial epoch, round, parent and
the real bracket (Keras Tuner labels promoted trials with its newest bracket; Rung with
the one they belong to, so Keras Tuner's real bracket is read from the parent chain).
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
from dataclasses import dataclass
from typing import Any

import keras_tuner as kt
from keras_tuner.src.engine.trial import TrialStatus
from keras_tuner.src.tuners.hyperband import HyperbandOracle

from rung.space import Boolean, Choice, Fixed, Float, HyperParameter, Int, SearchSpace
from service.core.decisions import Done, Wait
from service.core.memory import MemoryStudy
from service.core.objective import parse_objective
from service.core.schedule import Schedule
from service.core.state import StudyConfig

TUNER_KEYS = (
    "tuner/epochs",
    "tuner/initial_epoch",
    "tuner/bracket",
    "tuner/round",
    "tuner/trial_id",
)


def to_keras_tuner(space: SearchSpace) -> kt.HyperParameters:
    hps = kt.HyperParameters()
    for hp in space:
        with contextlib.ExitStack() as scopes:
            for condition in hp.conditions:
                scopes.enter_context(
                    hps.conditional_scope(condition.parent_name, list(condition.parent_values))
                )
            _register(hps, hp)
    return hps


def _register(hps: kt.HyperParameters, hp: HyperParameter) -> None:
    if isinstance(hp, Int | Float):
        method = hps.Int if isinstance(hp, Int) else hps.Float
        step = None if isinstance(hp, Int) and hp.sampling == "linear" and hp.step == 1 else hp.step
        method(
            hp.name,
            hp.min_value,
            hp.max_value,
            step=step,
            sampling=hp.sampling,
            default=hp.default_value,
        )
    elif isinstance(hp, Choice):
        hps.Choice(hp.name, list(hp.values), ordered=hp.ordered, default=hp.default_value)
    elif isinstance(hp, Boolean):
        hps.Boolean(hp.name, default=hp.default_value)
    elif isinstance(hp, Fixed):
        hps.Fixed(hp.name, hp.value)


def score_of(values: dict[str, Any], epochs: int, salt: int) -> float:
    """A deterministic learning-curve-like score for a configuration at some epoch budget."""
    text = repr(sorted((k, v) for k, v in values.items() if not k.startswith("tuner/")))
    base = random.Random(f"{text}/{salt}").random()
    return base + 0.3 * (1 - math.exp(-epochs / 10))


@dataclass
class Scenario:
    space: SearchSpace
    max_epochs: int
    factor: int
    hyperband_iterations: int | None = 1
    seed: int = 1
    workers: int = 1
    order_seed: int = 0
    direction: str = "max"
    crash_rate: float = 0.0  # chance that a run fails (retried as Keras Tuner does)
    nan_rate: float = 0.0  # chance that a run reports a NaN score
    tie_scores: bool = False  # many equal scores, to check ties go to the earliest trial
    max_retries_per_trial: int = 0
    max_consecutive_failed_trials: int = 10_000
    finish_at_once: int = 1  # when no worker is idle, 1 to this many trials finish in a row


@dataclass
class Handout:
    number: int
    values: dict[str, Any]
    epochs: int
    initial_epoch: int
    round: int
    bracket: int
    parent: int | None


class Mismatch(AssertionError):
    pass


def run_both(
    sc: Scenario, *, max_steps: int = 20_000, make_rung: Any = None
) -> tuple[list[Handout], Any]:
    """Run the scenario on both; raise Mismatch at the first difference. Returns Rung's
    hand-outs in order, and Rung's study. `make_rung(scenario, config)` builds the Rung side
    (default: the in-memory reference store); it answers `ask(worker)` with a trial, Wait or
    Done, takes `tell(number, score=…, error=…)` and has `failed_reason`."""
    objective = {"name": "score", "direction": sc.direction}
    with tempfile.TemporaryDirectory() as tmp:
        oracle = HyperbandOracle(
            objective=kt.Objective("score", sc.direction),
            max_epochs=sc.max_epochs,
            factor=sc.factor,
            hyperband_iterations=sc.hyperband_iterations,
            seed=sc.seed,
            hyperparameters=to_keras_tuner(sc.space),
            max_retries_per_trial=sc.max_retries_per_trial,
            max_consecutive_failed_trials=sc.max_consecutive_failed_trials,
        )
        oracle._set_project_dir(tmp, "p")
        oracle.verbose = 0
        config = StudyConfig(
            schedule=Schedule(sc.max_epochs, sc.factor, sc.hyperband_iterations),
            objective=parse_objective(objective),
            space=sc.space,
            max_retries_per_trial=sc.max_retries_per_trial,
            max_consecutive_failed_trials=sc.max_consecutive_failed_trials,
        )
        rung = make_rung(sc, config) if make_rung else MemoryStudy(config, seed=sc.seed)
        return _drive(sc, oracle, rung, max_steps), rung


def _drive(
    sc: Scenario, oracle: HyperbandOracle, rung: MemoryStudy, max_steps: int
) -> list[Handout]:
    rng = random.Random(sc.order_seed)
    kt_bracket: dict[str, int] = {}
    holding: dict[str, tuple[Any, Any]] = {}
    idle = [f"w{i}" for i in range(sc.workers)]
    handouts: list[Handout] = []
    for _ in range(max_steps):
        if idle:
            worker = idle.pop(0)
            kt_trial = oracle.create_trial(worker)
            ours = rung.ask(worker)
            if kt_trial.status == TrialStatus.STOPPED:
                if not isinstance(ours, Done):
                    raise Mismatch(f"Keras Tuner stopped, Rung answered {ours}")
                if not holding and not idle:
                    return handouts
                continue
            if kt_trial.status == TrialStatus.IDLE:
                if not isinstance(ours, Wait):
                    raise Mismatch(f"Keras Tuner was idle, Rung answered {ours}")
                idle.append(worker)
                if not holding:
                    raise Mismatch("both wait with nothing running")
                _finish_one(sc, rng, oracle, rung, holding, idle)
                continue
            if isinstance(ours, Wait | Done):
                raise Mismatch(f"Keras Tuner ran trial {kt_trial.trial_id}, Rung answered {ours}")
            handouts.append(_compare(kt_trial, ours, kt_bracket))
            holding[worker] = (kt_trial, ours)
            continue
        if not holding:
            return handouts
        finishing = rng.randint(1, sc.finish_at_once) if sc.finish_at_once > 1 else 1
        for _ in range(min(finishing, len(holding))):
            if _finish_one(sc, rng, oracle, rung, holding, idle):
                if rung.failed_reason is None:
                    raise Mismatch("Keras Tuner stopped on consecutive failures, Rung did not")
                return handouts
            if rung.failed_reason is not None:
                raise Mismatch(f"Rung failed the study ({rung.failed_reason}), Keras Tuner did not")
    raise Mismatch("did not finish")


def _finish_one(sc, rng, oracle, rung, holding, idle) -> bool:
    worker = rng.choice(sorted(holding))
    kt_trial, ours = holding.pop(worker)
    idle.append(worker)
    values = kt_trial.hyperparameters.values
    epochs = values["tuner/epochs"]
    draw = rng.random()
    if draw < sc.crash_rate:
        kt_trial.status = TrialStatus.INVALID
        kt_trial.message = "crashed"
        rung.tell(ours.number, error="crashed")
    else:
        score = score_of(values, epochs, sc.seed)
        if sc.tie_scores:
            score = round(score * 3) / 3
        if draw < sc.crash_rate + sc.nan_rate:
            score = float("nan")
        # Keras Tuner keeps a failed run's metrics and averages a retry's values into the
        # same steps (so a NaN run poisons its retries); Rung starts a retried run afresh.
        # A step of its own per run keeps the two comparable.
        step = epochs + 1000 * ours.failed_runs
        oracle.update_trial(kt_trial.trial_id, {"score": score}, step=step)
        kt_trial.status = TrialStatus.COMPLETED
        rung.tell(ours.number, score=score)
    try:
        oracle.end_trial(kt_trial)
    except RuntimeError:  # Keras Tuner's consecutive-failure stop
        return True
    return False


def _compare(kt_trial: Any, ours: Any, kt_bracket: dict[str, int]) -> Handout:
    values = dict(kt_trial.hyperparameters.values)
    parent = values.get("tuner/trial_id")
    bracket = kt_bracket[parent] if parent is not None else values["tuner/bracket"]
    kt_bracket[kt_trial.trial_id] = bracket
    expected = Handout(
        number=int(kt_trial.trial_id),
        values={k: v for k, v in values.items() if k not in TUNER_KEYS},
        epochs=values["tuner/epochs"],
        initial_epoch=values["tuner/initial_epoch"],
        round=values["tuner/round"],
        bracket=bracket,
        parent=int(parent) if parent is not None else None,
    )
    got = Handout(
        number=ours.number,
        values=dict(ours.values),
        epochs=ours.epochs,
        initial_epoch=ours.initial_epoch,
        round=ours.round,
        bracket=ours.bracket,
        parent=ours.parent_number,
    )
    if expected != got:
        raise Mismatch(f"Keras Tuner handed out {expected}, Rung {got}")
    return got
