"""What the scheduler reads: a study's settings and a compact, read-only view of its state.

The view holds only what one decision needs: the open brackets' counters and indexed
look-ups. Its size does not grow with the study's history (BOHB's results, which do, are
kept by the store between asks and read incrementally).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rung.space import SearchSpace

from .bohb import History
from .objective import Objective
from .schedule import Schedule


@dataclass(frozen=True)
class StudyConfig:
    """A study's settings, as the scheduler needs them."""

    schedule: Schedule
    objective: Objective
    space: SearchSpace
    max_retries_per_trial: int = 0
    max_consecutive_failed_trials: int = 3
    max_lost_leases_per_trial: int = 3
    max_collisions: int = 20
    tune_new_entries: bool = True
    allow_new_entries: bool = True
    scheduler: str = "hyperband"  # "hyperband" (Keras Tuner's) | "async" (asha.py)
    sampler: str = "random"  # "random" (Keras Tuner's) | "bohb" (bohb.py)

    @property
    def longest_first(self) -> bool:
        """Whether each iteration opens its longest trials' bracket first: the async
        scheduler's order under a finite budget (asha.py)."""
        return self.scheduler == "async" and self.schedule.hyperband_iterations is not None


@dataclass(frozen=True)
class BracketState:
    """One open bracket. `created`/`completed` count trials per round; `active` counts its
    trials that are running or waiting to be offered again."""

    key: int
    iteration: int
    bracket: int
    sizes: tuple[int, ...]
    created: tuple[int, ...]
    completed: tuple[int, ...]
    active: int = 0

    def promotable(self, round: int) -> int:
        """Completed trials of `round - 1` not yet promoted into `round`."""
        return self.completed[round - 1] - self.created[round]

    def is_complete(self) -> bool:
        """Every round has all its trials created. Keras Tuner's rule is "the last round
        has": the same under its promotions, which fill a round only once the one before
        is complete. (An async bracket closes on its own rule, `hyperband.decide`.)"""
        return all(c >= s for c, s in zip(self.created, self.sizes, strict=True))


@dataclass(frozen=True)
class StudyState:
    seed_state: int
    last_opened: tuple[int, int] | None  # (iteration, bracket) of the newest bracket, if any
    open_brackets: tuple[BracketState, ...]  # oldest first
    exhausted: bool = False  # the sampler found no new configuration
    failed_reason: str | None = None  # set once the study has failed


@dataclass(frozen=True)
class TrialRef:
    key: int


class StudyView(Protocol):
    """Read-only access to a study, for one decision."""

    @property
    def state(self) -> StudyState: ...

    def newest_pending(self) -> TrialRef | None:
        """The trial most recently put back to be offered again (retry queue, LIFO)."""

    def is_tried(self, values_hash: str) -> bool:
        """Whether a sampled trial of the study already has this configuration."""

    def has_running(self) -> bool:
        """Whether any trial of the study is running."""

    def best_promotable(self, bracket: int, round: int) -> TrialRef | None:
        """The best completed trial of `round` in `bracket` not yet promoted (best score
        first, ties to the earliest created)."""

    def promotable_in_top(self, bracket: int, round: int, top: int) -> TrialRef | None:
        """`best_promotable(bracket, round)` if it is among the `top` best completed trials
        of the round (promoted ones included), else None (the async scheduler's rule)."""

    def history(self) -> History:
        """The study's results for BOHB's model (only read when the sampler is "bohb")."""
