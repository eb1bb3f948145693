"""Finding a study or a trial for a use case, and checking who holds a trial: one place for
the 404 and 409 answers these give."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.db import repository as repo
from service.db.models import StudyRow, TrialRow
from service.errors import Invalid, LeaseLost, NotFound, NotRunning


def find_study(session: Session, study_id: int) -> StudyRow:
    study = repo.get_study(session, study_id)
    if study is None:
        raise NotFound(f"study {study_id} not found")
    return study


def find_trial(
    session: Session, study_id: int, number: int, *, for_update: bool = False
) -> TrialRow:
    trial = repo.get_trial(session, study_id, number, for_update=for_update)
    if trial is None:
        raise NotFound(f"study {study_id} has no trial {number}")
    return trial


def check_holder(trial: TrialRow, worker_id: str | None) -> None:
    """The trial runs, held by `worker_id`; else 409 (422 when the caller names no worker:
    only the holder may change a trial that is held)."""
    if trial.status != "running":
        raise NotRunning(f"trial {trial.number} is {trial.status}, not running")
    if worker_id is None:
        raise Invalid(
            f"worker_id: trial {trial.number} is held by a worker, and only that worker may "
            "report or tell its result: send the worker_id it asked with"
        )
    if trial.worker_id != worker_id:
        raise LeaseLost(
            f"trial {trial.number} is not held by worker {worker_id!r}: only the worker "
            "holding its lease may do this (a lease that expired went to another worker)"
        )
