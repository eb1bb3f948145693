"""A study kept in memory: the scheduler's reference store for simulations and tests.

It applies the core's decisions with the same rules as the SQL application layer (one
trial per worker, promotion of the best unpromoted completed trial, retries, lost leases)
without any I/O, so the core can be checked against Keras Tuner and by property tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from .decisions import Decision, Done, NewBracket, Promote, Retry, StartTrial, Wait
from .hyperband import decide
from .outcomes import Completed, Failed, RetryLater, after_final, judge_lost_lease, judge_run
from .state import BracketState, StudyConfig, StudyState, TrialRef

PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"


@dataclass
class MemoryTrial:
    number: int
    bracket_key: int
    iteration: int
    bracket: int
    round: int
    epochs: int
    initial_epoch: int
    values: dict[str, Any]
    values_hash: str | None
    parent: int | None
    status: str = RUNNING
    worker: str | None = None
    failed_runs: int = 0
    lost_leases: int = 0
    score: float | None = None
    promoted: bool = False
    queued: int = 0  # order in which pending trials were put back


@dataclass
class _Bracket:
    key: int
    iteration: int
    bracket: int
    sizes: tuple[int, ...]
    created: list[int]
    completed: list[int]
    active: int = 0
    open: bool = True

    def frozen(self) -> BracketState:
        return BracketState(
            key=self.key,
            iteration=self.iteration,
            bracket=self.bracket,
            sizes=self.sizes,
            created=tuple(self.created),
            completed=tuple(self.completed),
            active=self.active,
        )


@dataclass
class MemoryStudy:
    config: StudyConfig
    seed: int
    trials: list[MemoryTrial] = field(default_factory=list)
    brackets: list[_Bracket] = field(default_factory=list)
    seed_state: int = 0
    exhausted: bool = False
    failed_reason: str | None = None
    consecutive_failures: int = 0
    _tried: set[str] = field(default_factory=set)
    _queue_order: itertools.count = field(default_factory=itertools.count)
    # Indexes, so that one decision costs the same however long the history is.
    _running: set[int] = field(default_factory=set)
    _pending: dict[int, int] = field(default_factory=dict)  # number -> queue order
    _rounds: dict[tuple[int, int], list[MemoryTrial]] = field(default_factory=dict)
    _open: list[int] = field(default_factory=list)  # keys of the open brackets, oldest first

    def __post_init__(self) -> None:
        self.seed_state = self.seed

    # -- the view the core reads -------------------------------------------------------
    @property
    def state(self) -> StudyState:
        last = self.brackets[-1] if self.brackets else None
        return StudyState(
            seed_state=self.seed_state,
            last_opened=(last.iteration, last.bracket) if last else None,
            open_brackets=tuple(self.brackets[key].frozen() for key in self._open),
            exhausted=self.exhausted,
            failed_reason=self.failed_reason,
        )

    def newest_pending(self) -> TrialRef | None:
        if not self._pending:
            return None
        return TrialRef(max(self._pending, key=self._pending.__getitem__))

    def is_tried(self, values_hash: str) -> bool:
        return values_hash in self._tried

    def has_running(self) -> bool:
        return bool(self._running)

    # -- the use cases -------------------------------------------------------------------
    def ask(self, worker: str) -> MemoryTrial | Wait | Done:
        for number in self._running:
            if self.trials[number].worker == worker:
                return self.trials[number]
        decision = decide(self.config, self)
        self._book(decision)
        if isinstance(decision, Wait | Done):
            return decision
        assert isinstance(decision, Retry | StartTrial | Promote)
        trial = self._apply(decision)
        trial.status, trial.worker = RUNNING, worker
        self._pending.pop(trial.number, None)
        self._running.add(trial.number)
        return trial

    def tell(self, number: int, *, score: float | None = None, error: str | None = None) -> None:
        trial = self.trials[number]
        assert trial.status == RUNNING, f"trial {number} is {trial.status}"
        self._running.discard(number)
        outcome = judge_run(self.config, score=score, error=error, failed_runs=trial.failed_runs)
        if isinstance(outcome, RetryLater):
            trial.failed_runs += 1
            self._put_back(trial)
        elif isinstance(outcome, Completed):
            trial.status, trial.score, trial.worker = COMPLETED, outcome.score, None
            bracket = self.brackets[trial.bracket_key]
            bracket.completed[trial.round] += 1
            self._end(trial, None)
        else:
            trial.failed_runs += 1
            self._fail(trial, outcome)

    def lose_lease(self, number: int) -> None:
        """The worker running `number` vanished and its lease expired."""
        trial = self.trials[number]
        assert trial.status == RUNNING
        self._running.discard(number)
        trial.lost_leases += 1
        failed = judge_lost_lease(self.config, lost_leases=trial.lost_leases)
        if failed is None:
            self._put_back(trial)
        else:
            self._fail(trial, failed)

    def best_promotable(self, bracket_key: int, round: int) -> MemoryTrial:
        candidates = [
            t
            for t in self._rounds[(bracket_key, round)]
            if t.status == COMPLETED and not t.promoted
        ]
        key = self.config.objective.key
        return min(candidates, key=lambda t: (key(t.score), t.number))  # type: ignore[arg-type]

    # -- applying decisions --------------------------------------------------------------
    def _book(self, decision: Decision) -> None:
        self.seed_state = decision.seed_state
        self.exhausted = decision.exhausted
        for key, sizes in decision.resized:
            self.brackets[key].sizes = sizes  # type: ignore[call-overload]
        for key in decision.closed:
            self.brackets[key].open = False  # type: ignore[call-overload]
            self._open.remove(key)  # type: ignore[arg-type]

    def _apply(self, decision: Retry | StartTrial | Promote) -> MemoryTrial:
        if isinstance(decision, Retry):
            return self.trials[decision.trial]  # type: ignore[call-overload]
        schedule = self.config.schedule
        if isinstance(decision, StartTrial):
            bracket = self._bracket(decision.bracket)
            trial = self._new_trial(
                bracket,
                round=0,
                epochs=decision.epochs,
                initial_epoch=0,
                values=dict(decision.values),
                values_hash=decision.values_hash,
                parent=None,
            )
            self._tried.add(decision.values_hash)
            return trial
        bracket = self.brackets[decision.bracket]  # type: ignore[call-overload]
        parent = self.best_promotable(bracket.key, decision.round - 1)
        parent.promoted = True
        assert decision.epochs == schedule.epochs(bracket.bracket, decision.round)
        return self._new_trial(
            bracket,
            round=decision.round,
            epochs=decision.epochs,
            initial_epoch=decision.initial_epoch,
            values=dict(parent.values),
            values_hash=None,
            parent=parent.number,
        )

    def _bracket(self, ref: Hashable | NewBracket) -> _Bracket:
        if not isinstance(ref, NewBracket):
            return self.brackets[ref]  # type: ignore[call-overload]
        bracket = _Bracket(
            key=len(self.brackets),
            iteration=ref.iteration,
            bracket=ref.bracket,
            sizes=ref.sizes,
            created=[0] * len(ref.sizes),
            completed=[0] * len(ref.sizes),
        )
        self.brackets.append(bracket)
        self._open.append(bracket.key)
        return bracket

    def _new_trial(self, bracket: _Bracket, **fields: Any) -> MemoryTrial:
        trial = MemoryTrial(
            number=len(self.trials),
            bracket_key=bracket.key,
            iteration=bracket.iteration,
            bracket=bracket.bracket,
            **fields,
        )
        self.trials.append(trial)
        self._rounds.setdefault((bracket.key, trial.round), []).append(trial)
        bracket.created[trial.round] += 1
        bracket.active += 1
        return trial

    def _put_back(self, trial: MemoryTrial) -> None:
        trial.status, trial.worker, trial.queued = PENDING, None, next(self._queue_order)
        self._pending[trial.number] = trial.queued

    def _fail(self, trial: MemoryTrial, failed: Failed) -> None:
        trial.status, trial.worker = FAILED, None
        self._end(trial, failed.reason)

    def _end(self, trial: MemoryTrial, failure: str | None) -> None:
        self.brackets[trial.bracket_key].active -= 1
        self.consecutive_failures, reason = after_final(
            self.config, consecutive_failures=self.consecutive_failures, failure=failure
        )
        if reason is not None and self.failed_reason is None:
            self.failed_reason = reason
