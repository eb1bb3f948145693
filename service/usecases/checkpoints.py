"""Use cases on checkpoints: check who may upload, record an upload, find one to download,
and collect the ones no longer needed (service.core.retention decides which)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.checkpoints import CheckpointStore, Stored
from service.core.retention import CheckpointOwner, needed
from service.db import repository as repo
from service.db.models import CheckpointRow, TrialRow, utcnow
from service.errors import NotFound

from .context import Context
from .lookups import check_holder, find_study, find_trial


@dataclass(frozen=True)
class Checkpoint:
    trial_id: str
    size: int
    sha256: str
    location: str


def _holder_trial(session: Session, study_id: int, number: int, worker_id: str) -> TrialRow:
    find_study(session, study_id)
    trial = find_trial(session, study_id, number, for_update=True)
    check_holder(trial, worker_id)
    return trial


def check_uploader(ctx: Context, study_id: int, number: int, worker_id: str) -> None:
    """Refuse an upload before its body is read (404, 409)."""
    with ctx.db.read() as session:
        _holder_trial(session, study_id, number, worker_id)


def record_upload(
    ctx: Context, study_id: int, number: int, worker_id: str, stored: Stored
) -> Checkpoint:
    """Point the trial at its new checkpoint, if the worker still holds the lease; the one
    it replaces is deleted. The upload is deleted if it may not be recorded."""
    replaced: list[str] = []

    def work(session: Session) -> Checkpoint:
        trial = _holder_trial(session, study_id, number, worker_id)
        row = repo.checkpoint_of(session, trial.id)
        if row is None:
            row = CheckpointRow(
                study_id=study_id,
                trial_id=trial.id,
                size=stored.size,
                sha256=stored.sha256,
                location=stored.location,
            )
            session.add(row)
        else:
            replaced.append(row.location)
            row.size, row.sha256, row.location = stored.size, stored.sha256, stored.location
            row.created_at = utcnow()
        return Checkpoint(str(number), stored.size, stored.sha256, stored.location)

    store = _store(ctx)
    try:
        checkpoint = ctx.db.transaction(work)
    except BaseException:
        store.delete(stored.location)
        raise
    for location in replaced:
        store.delete(location)
    return checkpoint


def find(ctx: Context, study_id: int, number: int) -> Checkpoint:
    with ctx.db.read() as session:
        find_study(session, study_id)
        row = repo.checkpoint_of(session, find_trial(session, study_id, number).id)
        if row is None:
            raise NotFound(
                f"trial {number} has no checkpoint (none was uploaded, or it is "
                "no longer needed and was deleted)"
            )
        return Checkpoint(str(number), row.size, row.sha256, row.location)


def _store(ctx: Context) -> CheckpointStore:
    assert ctx.store is not None, "the app sets up the checkpoint store"
    return ctx.store


def collect(ctx: Context) -> int:
    """Delete the checkpoints no study needs any more; returns how many."""
    with ctx.db.read() as session:
        doomed = []
        for study_id in repo.studies_with_checkpoints(session):
            study = repo.get_study(session, study_id, with_config=True)
            assert study is not None
            keep = study.settings.get("keep_best_checkpoints", 1)
            best = {t.id for t in repo.best_trials(session, study_id, keep)} if keep else set()
            for row, trial, bracket, child_status in repo.checkpoint_owners(session, study_id):
                owner = CheckpointOwner(
                    status=trial.status,
                    promoted=trial.promoted,
                    round=trial.round,
                    bracket_open=bracket.is_open,
                    sizes=tuple(bracket.sizes),
                    created=tuple(bracket.created),
                    child_status=child_status,
                    among_best=trial.id in best,
                )
                if not needed(owner):
                    doomed.append((row.id, row.location))
    if not doomed:
        return 0

    def work(session: Session) -> None:
        repo.delete_checkpoints(session, [checkpoint_id for checkpoint_id, _ in doomed])

    ctx.db.transaction(work)
    for _, location in doomed:
        _store(ctx).delete(location)
    return len(doomed)
