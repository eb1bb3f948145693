"""Use cases on checkpoints: check who may upload, record an upload, find one to download,
collect the ones no longer needed (service.core.retention decides which), and sweep the
files nothing references.

Files are deleted before their rows, in the transaction that deletes the rows: a store that
fails rolls the transaction back and leaves rows to try again, never a file nothing points
to. Only a crash (or a failing store) right after an upload or a replacement can leave such
a file; `sweep` deletes it once it is older than any upload still being recorded."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.checkpoints import PARTIAL, CheckpointStore, Stored
from service.core.retention import CheckpointOwner, needed
from service.db import repository as repo
from service.db.models import CheckpointRow, TrialRow, utcnow
from service.errors import NotFound, StoreUnavailable, TooLarge

from .context import Context
from .lookups import check_holder, find_study, find_trial

log = logging.getLogger("rung.checkpoints")


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


async def upload(
    ctx: Context,
    study_id: int,
    number: int,
    worker_id: str,
    chunks: AsyncIterator[bytes],
    *,
    length: str | None,
    sha256: str | None,
    max_bytes: int,
) -> Checkpoint:
    """Store a trial's checkpoint sent by the worker holding it: who may upload and the
    announced length are checked before the body is read; the body is streamed to the
    store, then recorded."""
    await run_in_threadpool(check_uploader, ctx, study_id, number, worker_id)
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise TooLarge(
            f"checkpoint: larger than the limit of {max_bytes} bytes",
            details={"max_bytes": max_bytes},
        )
    stored = await _store(ctx).save(study_id, number, chunks, max_bytes=max_bytes, sha256=sha256)
    return await run_in_threadpool(record_upload, ctx, study_id, number, worker_id, stored)


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
        with contextlib.suppress(StoreUnavailable):  # if it stays, `sweep` deletes it
            store.delete(stored.location)
        raise
    with contextlib.suppress(StoreUnavailable):
        for location in replaced:
            store.delete(location)
    return checkpoint


def read(ctx: Context, study_id: int, number: int) -> tuple[Checkpoint, Iterator[bytes]]:
    """The trial's checkpoint and its bytes, the file already opened (404 before any byte is
    sent when there is none, or when its file is gone from the store)."""
    with ctx.db.read() as session:
        find_study(session, study_id)
        row = repo.checkpoint_of(session, find_trial(session, study_id, number).id)
        if row is None:
            raise NotFound(
                f"trial {number} has no checkpoint (none was uploaded, or it is "
                "no longer needed and was deleted)"
            )
        found = Checkpoint(str(number), row.size, row.sha256, row.location)
    try:
        return found, _store(ctx).read(found.location)
    except FileNotFoundError:
        log.warning("study %s: the file of trial %s's checkpoint is gone", study_id, number)
        raise NotFound(
            f"trial {number}'s checkpoint is recorded but its file is missing from the "
            "checkpoint store"
        ) from None


def _store(ctx: Context) -> CheckpointStore:
    assert ctx.store is not None, "the app sets up the checkpoint store"
    return ctx.store


def collect(ctx: Context) -> int:
    """Delete the checkpoints no study needs any more; returns how many. A store that fails
    stops the collection (StoreUnavailable), the rest left for the next one."""
    with ctx.db.read() as session:
        studies = [
            study_id
            for study_id in repo.studies_with_checkpoints(session)
            if _not_needed(session, study_id)
        ]
    return sum(_collect_study(ctx, study_id) for study_id in studies)


def _collect_study(ctx: Context, study_id: int) -> int:
    """Decide again and delete under the study's row lock: no ask or tell can change what
    the study needs in between (a tell that makes a new best waits for this to commit)."""

    def work(session: Session) -> int:
        if repo.lock_study(session, study_id) is None:
            return 0
        doomed = _not_needed(session, study_id)
        for row in doomed:
            _store(ctx).delete(row.location)
        repo.delete_checkpoints(session, [row.id for row in doomed])
        return len(doomed)

    return ctx.db.transaction(work)


def _not_needed(session: Session, study_id: int) -> list[CheckpointRow]:
    study = repo.get_study(session, study_id, with_config=True)
    if study is None:
        return []
    keep = study.settings.get("keep_best_checkpoints", 1)
    best = {t.id for t in repo.best_trials(session, study_id, keep)} if keep else set()
    doomed = []
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
            doomed.append(row)
    return doomed


def sweep(ctx: Context, older_than_s: float) -> int:
    """Delete the files no checkpoint row points to (the debris of crashes) and `.partial`
    uploads, once older than `older_than_s`; returns how many."""
    store = _store(ctx)
    old = store.old_files(older_than_s)
    complete = [location for location in old if not location.endswith(PARTIAL)]
    with ctx.db.read() as session:
        referenced = repo.referenced_locations(session, complete)
    orphans = [location for location in old if location not in referenced]
    for location in orphans:
        store.delete(location)
    return len(orphans)
