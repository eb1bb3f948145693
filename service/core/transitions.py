"""A trial's state machine: every change of a trial's state, with the bracket and study
counters it moves, as data.

    new trial ──▶ running ──end_run──▶ completed
                   ▲   │  └─────────▶ failed (runs or lost leases over the limit)
       start_run   │   ▼ end_run (a failed run to retry) / lose_lease
                  pending

Each function reads the trial, its bracket and its study (any objects with the fields
named in the protocols below: the SQL rows or the in-memory store's records) and returns
the new values as `Changes`. The in-memory store and the SQL store write them as they
are; neither decides anything about a transition itself. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .decisions import Decision, NewBracket, Promote, StartTrial
from .outcomes import Completed, Failed, RetryLater, after_final, judge_lost_lease, judge_run
from .state import StudyConfig

PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"


class StudyFields(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def trial_count(self) -> int: ...
    @property
    def pending_count(self) -> int: ...
    @property
    def queue_counter(self) -> int: ...
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def result_count(self) -> int: ...


class BracketFields(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def iteration(self) -> int: ...
    @property
    def bracket(self) -> int: ...
    @property
    def created(self) -> Sequence[int]: ...
    @property
    def completed(self) -> Sequence[int]: ...
    @property
    def active(self) -> int: ...


class TrialFields(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def number(self) -> int: ...
    @property
    def values(self) -> Mapping[str, Any]: ...
    @property
    def status(self) -> str: ...
    @property
    def round(self) -> int: ...
    @property
    def runs(self) -> int: ...
    @property
    def failed_runs(self) -> int: ...
    @property
    def lost_leases(self) -> int: ...


@dataclass(frozen=True)
class Changes:
    """New values for the fields of a trial, its bracket, its study, and (for a promotion)
    the trial it continues."""

    trial: dict[str, Any] = field(default_factory=dict)
    bracket: dict[str, Any] = field(default_factory=dict)
    study: dict[str, Any] = field(default_factory=dict)
    parent: dict[str, Any] = field(default_factory=dict)

    def __add__(self, other: Changes) -> Changes:
        """Both sets of changes; a field may be set by one of them only."""
        merged = {}
        for part in ("trial", "bracket", "study", "parent"):
            mine, theirs = getattr(self, part), getattr(other, part)
            assert not mine.keys() & theirs.keys(), f"{part} field set twice"
            merged[part] = {**mine, **theirs}
        return Changes(**merged)


@dataclass(frozen=True)
class NewTrial:
    """The fields of a trial to insert (it starts running), and the changes that hold if,
    and only if, it is inserted."""

    fields: dict[str, Any]
    changes: Changes


def new_trial(
    decision: StartTrial | Promote,
    study: StudyFields,
    bracket: BracketFields,
    *,
    parent: TrialFields | None,
    worker_id: str,
    now: datetime,
    lease_expires_at: datetime | None,
) -> NewTrial:
    """The trial a decision makes, running for `worker_id` in `bracket`: a sampled
    configuration in round 0, or the continuation of `parent` (a promotion, which names it)."""
    values: Mapping[str, Any]
    if isinstance(decision, StartTrial):
        assert parent is None
        round, initial_epoch = 0, 0
        values, values_hash = decision.values, decision.values_hash
    else:
        assert parent is not None and parent.id == decision.parent
        round, initial_epoch = decision.round, decision.initial_epoch
        values, values_hash = parent.values, None
    fields = {
        "number": study.trial_count,
        "bracket_id": bracket.id,
        "iteration": bracket.iteration,
        "bracket": bracket.bracket,
        "round": round,
        "epochs": decision.epochs,
        "initial_epoch": initial_epoch,
        "parent_id": parent.id if parent else None,
        "parent_number": parent.number if parent else None,
        "values": dict(values),
        "values_hash": values_hash,
        "status": RUNNING,
        "worker_id": worker_id,
        "lease_expires_at": lease_expires_at,
        "started_at": now,
        "created_at": now,
        "runs": 1,
        "failed_runs": 0,
        "lost_leases": 0,
        "promoted": False,
    }
    changes = Changes(
        study={"trial_count": study.trial_count + 1},
        bracket={"created": _plus_one(bracket.created, round), "active": bracket.active + 1},
        parent={"promoted": True} if parent else {},
    )
    return NewTrial(fields, changes)


def start_run(
    study: StudyFields,
    trial: TrialFields,
    *,
    worker_id: str,
    now: datetime,
    lease_expires_at: datetime | None,
) -> Changes:
    """A pending trial offered again: its next run starts, with a clean history."""
    assert trial.status == PENDING, f"trial {trial.number} is {trial.status}"
    return _to_status(study, trial, RUNNING) + Changes(
        trial={
            "worker_id": worker_id,
            "lease_expires_at": lease_expires_at,
            "started_at": now,
            "queue_seq": None,
            "best_value": None,
            "best_epoch": None,
            "runs": trial.runs + 1,
        }
    )


def end_run(
    config: StudyConfig,
    study: StudyFields,
    bracket: BracketFields,
    trial: TrialFields,
    *,
    score: float | None,
    error: str | None,
    now: datetime,
) -> Changes:
    """A run's result: the trial completes, goes back to be retried, or fails."""
    assert trial.status in (RUNNING, PENDING), f"trial {trial.number} is {trial.status}"
    outcome = judge_run(config, score=score, error=error, failed_runs=trial.failed_runs)
    if isinstance(outcome, Completed):
        return (
            _to_status(study, trial, COMPLETED)
            + Changes(
                trial={"score": outcome.score, "score_key": config.objective.key(outcome.score)},
                bracket={"completed": _plus_one(bracket.completed, trial.round)},
            )
            + _finish(config, study, bracket, now=now, failure=None)
        )
    failed_run = Changes(trial={"failed_runs": trial.failed_runs + 1})
    if isinstance(outcome, RetryLater):
        return failed_run + _put_back(study, trial, keep_worker=False, reason=outcome.reason)
    return failed_run + _fail(config, study, bracket, trial, outcome, now=now)


def lose_lease(
    config: StudyConfig,
    study: StudyFields,
    bracket: BracketFields,
    trial: TrialFields,
    *,
    now: datetime,
) -> Changes:
    """The worker running the trial stopped renewing its lease: the trial goes back to be
    offered again (that worker's late tell is still taken), or fails past the limit."""
    assert trial.status == RUNNING, f"trial {trial.number} is {trial.status}"
    lost = Changes(trial={"lost_leases": trial.lost_leases + 1})
    failed = judge_lost_lease(config, lost_leases=trial.lost_leases + 1)
    if failed is None:
        return lost + _put_back(study, trial, keep_worker=True, reason=None)
    return lost + _fail(config, study, bracket, trial, failed, now=now)


def sampler_changes(decision: Decision) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """The sampler's bookkeeping that comes with every decision: the study's changes, and
    each bracket's (by id) that shrank or closed."""
    study = {"seed_state": decision.seed_state, "exhausted": decision.exhausted}
    brackets: dict[int, dict[str, Any]] = {}
    for key, sizes in decision.resized:
        brackets.setdefault(key, {})["sizes"] = list(sizes)
    for key in decision.closed:
        brackets.setdefault(key, {})["is_open"] = False
    return study, brackets


def new_bracket(ref: NewBracket) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields of a bracket to open, and the study's changes (its newest bracket)."""
    fields = {
        "iteration": ref.iteration,
        "bracket": ref.bracket,
        "sizes": list(ref.sizes),
        "created": [0] * len(ref.sizes),
        "completed": [0] * len(ref.sizes),
        "active": 0,
        "is_open": True,
    }
    return fields, {"last_iteration": ref.iteration, "last_bracket": ref.bracket}


# -- the parts the transitions are made of --------------------------------------------------


def _to_status(study: StudyFields, trial: TrialFields, status: str) -> Changes:
    """The trial's new status, with the study's count of pending trials."""
    delta = (status == PENDING) - (trial.status == PENDING)
    return Changes(
        trial={"status": status},
        study={"pending_count": study.pending_count + delta} if delta else {},
    )


def _put_back(
    study: StudyFields, trial: TrialFields, *, keep_worker: bool, reason: str | None
) -> Changes:
    """Queue the trial to be offered again (same id and values), newest first."""
    queued = study.queue_counter + 1
    fields: dict[str, Any] = {"queue_seq": queued, "lease_expires_at": None}
    if not keep_worker:
        fields["worker_id"] = None
    if reason is not None:
        fields["error"] = reason
    return _to_status(study, trial, PENDING) + Changes(
        trial=fields, study={"queue_counter": queued}
    )


def _fail(
    config: StudyConfig,
    study: StudyFields,
    bracket: BracketFields,
    trial: TrialFields,
    failed: Failed,
    *,
    now: datetime,
) -> Changes:
    return (
        _to_status(study, trial, FAILED)
        + Changes(trial={"error": failed.reason})
        + _finish(config, study, bracket, now=now, failure=failed.reason)
    )


def _finish(
    config: StudyConfig,
    study: StudyFields,
    bracket: BracketFields,
    *,
    now: datetime,
    failure: str | None,
) -> Changes:
    """A trial ends for good: its bracket has one trial less in play; the study counts
    failures in a row and fails past the limit."""
    failures, reason = after_final(
        config, consecutive_failures=study.consecutive_failures, failure=failure
    )
    study_changes: dict[str, Any] = {}
    trial_changes: dict[str, Any] = {
        "finished_at": now,
        "lease_expires_at": None,
        "queue_seq": None,
    }
    if config.sampler == "bohb":  # BOHB's model reads the results in the order told
        study_changes["result_count"] = study.result_count + 1
        trial_changes["result_seq"] = study.result_count + 1
    if failures != study.consecutive_failures:
        study_changes["consecutive_failures"] = failures
    if reason is not None and study.status == "running":
        study_changes.update(status="failed", reason=reason)
    return Changes(
        trial=trial_changes,
        bracket={"active": bracket.active - 1},
        study=study_changes,
    )


def _plus_one(counts: Sequence[int], index: int) -> list[int]:
    """A copy of `counts` with one more at `index` (stored lists are replaced, not mutated)."""
    changed = list(counts)
    changed[index] += 1
    return changed
