"""How a trial's run ends, with Keras Tuner's failure rules.

A run that failed, or whose score is missing or NaN, is retried (same id and values) until
it has run `max_retries_per_trial + 1` times; then the trial is FAILED and never promoted.
`max_consecutive_failed_trials` FAILED trials in a row (in the order they end; retried runs
do not count) fail the whole study. A lost lease is not a failed run: it is counted apart,
and only `max_lost_leases_per_trial` losses fail the trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .state import StudyConfig


@dataclass(frozen=True)
class Completed:
    score: float


@dataclass(frozen=True)
class RetryLater:
    reason: str


@dataclass(frozen=True)
class Failed:
    reason: str


Outcome = Completed | RetryLater | Failed


def judge_run(
    config: StudyConfig, *, score: float | None, error: str | None, failed_runs: int
) -> Outcome:
    """The end of one run. `failed_runs` counts this trial's earlier failed runs."""
    if error is None and score is not None and not math.isnan(score):
        return Completed(score)
    reason = (
        error if error is not None else f"objective {config.objective.name!r} is NaN or missing"
    )
    runs = failed_runs + 1
    if runs >= config.max_retries_per_trial + 1:
        return Failed(f"failed {runs} time(s): {reason}")
    return RetryLater(reason)


def judge_lost_lease(config: StudyConfig, *, lost_leases: int) -> Failed | None:
    """A lease just expired; `lost_leases` counts this loss. Failed once over the limit."""
    if lost_leases > config.max_lost_leases_per_trial:
        return Failed(
            f"lost its lease {lost_leases} time(s) (limit {config.max_lost_leases_per_trial})"
        )
    return None


def after_final(
    config: StudyConfig, *, consecutive_failures: int, failure: str | None
) -> tuple[int, str | None]:
    """The consecutive-failure count after a trial ends for good (`failure` is None when it
    completed), and the study's failure reason when that count reaches the limit."""
    if failure is None:
        return 0, None
    count = consecutive_failures + 1
    if count >= config.max_consecutive_failed_trials:
        return count, (
            f"{count} trials failed in a row (max_consecutive_failed_trials="
            f"{config.max_consecutive_failed_trials}); last: {failure}"
        )
    return count, None
