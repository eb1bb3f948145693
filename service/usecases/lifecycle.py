"""A trial's state changes, shared by ask (start, lost lease) and tell (complete, retry,
fail), with the bracket and study counters that the scheduler reads kept in step. Every
change of a trial's status goes through `_set_status`; rows change through `repo.change`."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from service.core.outcomes import after_final
from service.core.state import StudyConfig
from service.db import repository as repo
from service.db.models import BracketRow, StudyRow, TrialRow
from service.db.repository import change


def lease_until(config: StudyConfig, now: datetime) -> datetime:
    return now + timedelta(seconds=config.lease_seconds)


def bump(counts: list[int], index: int, delta: int = 1) -> list[int]:
    """A copy of `counts` with one entry changed (JSON columns are replaced, not mutated)."""
    changed = list(counts)
    changed[index] += delta
    return changed


def _set_status(study: StudyRow, trial: TrialRow, status: str) -> None:
    """Change a trial's status, keeping the study's count of pending trials."""
    delta = (status == "pending") - (trial.status == "pending")
    if delta:
        change(study, pending_count=study.pending_count + delta)
    change(trial, status=status)


def start_run(
    session: Session,
    config: StudyConfig,
    study: StudyRow,
    trial: TrialRow,
    *,
    worker_id: str,
    now: datetime,
) -> None:
    if trial.runs > 0:  # offered again: the new run starts with a clean history
        repo.delete_metrics(session, trial.id)
    _set_status(study, trial, "running")
    change(
        trial,
        worker_id=worker_id,
        lease_expires_at=lease_until(config, now),
        started_at=now,
        queue_seq=None,
        best_value=None,
        best_epoch=None,
        runs=trial.runs + 1,
    )


def put_back(study: StudyRow, trial: TrialRow, *, keep_worker: bool) -> None:
    """Queue the trial to be offered again (same id and values), newest first. A trial whose
    lease was lost remembers that worker, whose late tell is then still accepted."""
    change(study, queue_counter=study.queue_counter + 1)
    _set_status(study, trial, "pending")
    change(trial, queue_seq=study.queue_counter, lease_expires_at=None)
    if not keep_worker:
        change(trial, worker_id=None)


def complete(
    config: StudyConfig,
    study: StudyRow,
    bracket: BracketRow,
    trial: TrialRow,
    *,
    score: float,
    now: datetime,
) -> None:
    _set_status(study, trial, "completed")
    change(trial, score=score, score_key=config.objective.key(score))
    change(bracket, completed=bump(bracket.completed, trial.round))
    _end(config, study, bracket, trial, now=now, failure=None)


def fail(
    config: StudyConfig,
    study: StudyRow,
    bracket: BracketRow,
    trial: TrialRow,
    *,
    reason: str,
    now: datetime,
) -> None:
    _set_status(study, trial, "failed")
    change(trial, error=reason)
    _end(config, study, bracket, trial, now=now, failure=reason)


def _end(
    config: StudyConfig,
    study: StudyRow,
    bracket: BracketRow,
    trial: TrialRow,
    *,
    now: datetime,
    failure: str | None,
) -> None:
    change(trial, finished_at=now, lease_expires_at=None, queue_seq=None)
    change(bracket, active=bracket.active - 1)
    failures, reason = after_final(
        config, consecutive_failures=study.consecutive_failures, failure=failure
    )
    if failures != study.consecutive_failures:
        change(study, consecutive_failures=failures)
    if reason is not None and study.status == "running":
        change(study, status="failed", reason=reason)
