"""A study kept in memory: the scheduler's reference store for simulations and tests.

It asks the core for decisions and writes the core's transitions (`transitions.py`) as
they are, exactly as the SQL store does, with no I/O and no clock of its own (leases are
lost when a test says so), so that the core can be checked against Keras Tuner and by
property tests. Its records have the SQL rows' field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import bohb
from . import transitions as t
from .bohb import read_results
from .decisions import Done, NewBracket, Promote, Retry, StartTrial, Wait
from .hyperband import decide
from .state import BracketState, StudyConfig, StudyState, TrialRef
from .transitions import COMPLETED, FAILED, PENDING, RUNNING, Changes

__all__ = ["COMPLETED", "FAILED", "PENDING", "RUNNING", "MemoryStudy", "MemoryTrial"]


@dataclass
class MemoryTrial:
    id: int  # the same as its number: one study per store
    number: int
    bracket_id: int
    iteration: int
    bracket: int
    round: int
    epochs: int
    initial_epoch: int
    parent_id: int | None
    parent_number: int | None
    values: dict[str, Any]
    values_hash: str | None
    status: str
    worker_id: str | None
    lease_expires_at: datetime | None
    started_at: datetime
    created_at: datetime
    runs: int
    failed_runs: int
    lost_leases: int
    promoted: bool
    score: float | None = None
    score_key: float | None = None
    error: str | None = None
    queue_seq: int | None = None
    finished_at: datetime | None = None
    best_value: float | None = None
    best_epoch: int | None = None
    result_seq: int | None = None


@dataclass
class MemoryBracket:
    id: int
    iteration: int
    bracket: int
    sizes: list[int]
    created: list[int]
    completed: list[int]
    active: int
    is_open: bool

    def frozen(self) -> BracketState:
        return BracketState(
            key=self.id,
            iteration=self.iteration,
            bracket=self.bracket,
            sizes=tuple(self.sizes),
            created=tuple(self.created),
            completed=tuple(self.completed),
            active=self.active,
        )


@dataclass
class MemoryStudy:
    config: StudyConfig
    seed: int
    trials: list[MemoryTrial] = field(default_factory=list)
    brackets: list[MemoryBracket] = field(default_factory=list)
    status: str = "running"
    reason: str | None = None
    seed_state: int = 0
    exhausted: bool = False
    last_iteration: int | None = None
    last_bracket: int | None = None
    trial_count: int = 0
    pending_count: int = 0
    queue_counter: int = 0
    consecutive_failures: int = 0
    result_count: int = 0
    # Indexes, so that one decision costs the same however long the history is.
    _tried: set[str] = field(default_factory=set)
    _running: set[int] = field(default_factory=set)
    _pending: dict[int, int] = field(default_factory=dict)  # trial id -> queue_seq
    _rounds: dict[tuple[int, int], list[MemoryTrial]] = field(default_factory=dict)
    _open: list[int] = field(default_factory=list)  # ids of the open brackets, oldest first
    _results: list[MemoryTrial] = field(default_factory=list)  # by result_seq
    _history: bohb.History = field(default_factory=bohb.History)

    def __post_init__(self) -> None:
        self.seed_state = self.seed

    @property
    def failed_reason(self) -> str | None:
        return self.reason if self.status == FAILED else None

    # -- the view the core reads -------------------------------------------------------
    @property
    def state(self) -> StudyState:
        last = None if self.last_iteration is None else (self.last_iteration, self.last_bracket)
        return StudyState(
            seed_state=self.seed_state,
            last_opened=last,  # type: ignore[arg-type]
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

    def best_promotable(self, bracket: int, round: int) -> TrialRef | None:
        candidates = [
            trial
            for trial in self._rounds.get((bracket, round), ())
            if trial.status == COMPLETED and not trial.promoted
        ]
        if not candidates:
            return None
        return TrialRef(min(candidates, key=lambda t: (t.score_key, t.number)).id)

    def promotable_in_top(self, bracket: int, round: int, top: int) -> TrialRef | None:
        best = self.best_promotable(bracket, round)
        if best is None:
            return None
        ahead = sorted(
            (t.score_key, t.number)  # type: ignore[misc]
            for t in self._rounds.get((bracket, round), ())
            if t.status == COMPLETED and t.promoted
        )
        candidate = self.trials[best.key]
        rank = sum(1 for key in ahead if key < (candidate.score_key, candidate.number))
        return best if rank < top else None

    def history(self) -> bohb.History:
        read_results(self._history, self.config.space, self._results[self._history.seen :])
        return self._history

    # -- the use cases -------------------------------------------------------------------
    def ask(self, worker: str) -> MemoryTrial | Wait | Done:
        for number in self._running:
            if self.trials[number].worker_id == worker:
                return self.trials[number]
        if self.status != "running":
            failed = self.status == FAILED
            return Done(seed_state=self.seed_state, reason=self.reason or "", failed=failed)
        decision = decide(self.config, self)
        study_changes, bracket_changes = t.sampler_changes(decision)
        _assign(self, study_changes)
        for key, values in bracket_changes.items():
            _assign(self.brackets[key], values)
            if not self.brackets[key].is_open:
                self._open.remove(key)
        now = datetime.now(UTC)
        if isinstance(decision, Wait):
            return decision
        if isinstance(decision, Done):
            status = FAILED if decision.failed else "done"
            _assign(self, {"status": status, "reason": decision.reason})
            return decision
        if isinstance(decision, Retry):
            trial = self.trials[decision.trial]
            started = t.start_run(self, trial, worker_id=worker, now=now, lease_expires_at=None)
            self._write(started, trial)
            return trial
        parent: MemoryTrial | None = None
        if isinstance(decision, StartTrial):
            bracket = self._bracket(decision.bracket)
            self._tried.add(decision.values_hash)
        else:
            assert isinstance(decision, Promote)
            bracket, parent = self.brackets[decision.bracket], self.trials[decision.parent]
        new = t.new_trial(
            decision, self, bracket, parent=parent, worker_id=worker, now=now, lease_expires_at=None
        )
        return self._insert(new, bracket, parent=parent)

    def tell(self, number: int, *, score: float | None = None, error: str | None = None) -> None:
        trial = self.trials[number]
        assert trial.status == RUNNING, f"trial {number} is {trial.status}"
        bracket = self.brackets[trial.bracket_id]
        changes = t.end_run(
            self.config, self, bracket, trial, score=score, error=error, now=datetime.now(UTC)
        )
        self._write(changes, trial, bracket)

    def lose_lease(self, number: int) -> None:
        """The worker running `number` vanished and its lease expired."""
        trial = self.trials[number]
        bracket = self.brackets[trial.bracket_id]
        changes = t.lose_lease(self.config, self, bracket, trial, now=datetime.now(UTC))
        self._write(changes, trial, bracket)

    # -- writing what the core returns -----------------------------------------------------
    def _bracket(self, ref: int | NewBracket) -> MemoryBracket:
        if not isinstance(ref, NewBracket):
            return self.brackets[ref]
        fields, study_changes = t.new_bracket(ref)
        bracket = MemoryBracket(id=len(self.brackets), **fields)
        self.brackets.append(bracket)
        self._open.append(bracket.id)
        _assign(self, study_changes)
        return bracket

    def _insert(
        self, new: t.NewTrial, bracket: MemoryBracket, *, parent: MemoryTrial | None
    ) -> MemoryTrial:
        trial = MemoryTrial(id=len(self.trials), **new.fields)
        assert trial.id == trial.number
        self.trials.append(trial)
        self._rounds.setdefault((bracket.id, trial.round), []).append(trial)
        self._write(new.changes, trial, bracket, parent=parent)
        return trial

    def _write(
        self,
        changes: Changes,
        trial: MemoryTrial,
        bracket: MemoryBracket | None = None,
        *,
        parent: MemoryTrial | None = None,
    ) -> None:
        assert bracket is not None or not changes.bracket
        assert parent is not None or not changes.parent
        _assign(self, changes.study)
        _assign(trial, changes.trial)
        _assign(bracket, changes.bracket)
        _assign(parent, changes.parent)
        if "result_seq" in changes.trial:
            self._results.append(trial)
        self._running.discard(trial.id)
        self._pending.pop(trial.id, None)
        if trial.status == RUNNING:
            self._running.add(trial.id)
        elif trial.status == PENDING:
            assert trial.queue_seq is not None
            self._pending[trial.id] = trial.queue_seq


def _assign(record: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        assert hasattr(record, key), f"{type(record).__name__} has no field {key!r}"
        setattr(record, key, value)
