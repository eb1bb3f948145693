"""Use cases on studies: create (idempotent by name and settings), list, get with progress,
stop, resume, delete."""

from __future__ import annotations

import random
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rung.schemas import (
    MAX_SEED,
    BestPoint,
    BestSoFar,
    Study,
    StudyCreate,
    StudySummary,
    TrialCounts,
    current_settings,
    differing_settings,
)
from service.core.objective import ObjectiveError, parse_objective
from service.db import repository as repo
from service.db.changes import change
from service.db.models import StudyRow, TrialRow
from service.errors import Conflict, Invalid, NotFound

from . import shown
from .context import Context
from .lookups import find_study


def create_study(ctx: Context, body: StudyCreate) -> tuple[Study, bool]:
    """The study and whether it was created (False: it existed with the same settings)."""
    settings = body.model_dump(mode="json", exclude={"name"})
    try:
        parse_objective(settings["objective"])
    except ObjectiveError as exc:
        raise Invalid(str(exc)) from None
    space = body.space.to_dicts()

    def work(session: Session) -> tuple[StudyRow, bool]:
        existing = repo.study_by_name(session, body.name)
        if existing is not None:
            differences = differing_settings(current_settings(existing.settings), settings)
            if differences:
                listed = "; ".join(
                    f"{key}: stored {diff['stored']!r}, requested {diff['requested']!r}"
                    for key, diff in differences.items()
                )
                raise Conflict(
                    f"a study named {body.name!r} exists with other settings ({listed})",
                    details={"study_id": str(existing.id), "differences": differences},
                )
            return existing, False
        seed = body.seed if body.seed is not None else random.randint(1, MAX_SEED)
        study = StudyRow(
            name=body.name,
            settings=settings,
            space=space,
            space_version=0,
            seed=seed,
            seed_state=seed,
            status="running",
            exhausted=False,
            consecutive_failures=0,
            trial_count=0,
            queue_counter=0,
        )
        return repo.add(session, study), True

    try:
        row, created = ctx.db.transaction(work)
    except IntegrityError:  # created by a concurrent request between our read and insert
        row, created = ctx.db.transaction(work)
    return shown.study(ctx, row), created


def list_studies(
    ctx: Context, *, after: int | None, limit: int, name: str | None = None, summary: bool = False
) -> tuple[list[Study], int | None]:
    """A page of studies (with their summaries when `summary`) and the next page's cursor."""
    with ctx.db.read() as session:
        rows = list(repo.list_studies(session, after=after, limit=limit + 1, name=name))
        more = len(rows) > limit
        rows = rows[:limit]
        ids = [row.id for row in rows]
        summaries = _summaries(session, ids, _best_rows(session, ids)) if summary else {}
    studies = [shown.study(ctx, row, summary=summaries.get(row.id)) for row in rows]
    return studies, (rows[-1].id if more else None)


def get_study(ctx: Context, study_id: int) -> Study:
    """The study with its progress (trials by status, each bracket's rounds, the best
    trial) and its summary."""
    with ctx.db.read() as session:
        study = repo.get_study(session, study_id, with_config=True)
        if study is None:
            raise NotFound(f"study {study_id} not found")
        best_rows = _best_rows(session, [study_id])
        found = best_rows[study_id]
        best = None
        if found is not None:
            best = shown.trial(found, repo.metrics_of(session, [found.id])[found.id])
        summary = _summaries(session, [study_id], best_rows)[study_id]
        brackets = repo.brackets_of(session, study_id)
        progress = shown.progress(ctx, study, summary.trials, brackets, best)
        return shown.study(ctx, study, progress, summary=summary)


def _best_rows(session: Session, study_ids: list[int]) -> dict[int, TrialRow | None]:
    """Each study's best completed trial (an indexed look-up each), or None."""
    return {sid: next(iter(repo.best_trials(session, sid, 1)), None) for sid in study_ids}


def _summaries(
    session: Session, study_ids: list[int], best_rows: dict[int, TrialRow | None]
) -> dict[int, StudySummary]:
    """Each study's summary: two aggregate statements, and the best trials as found."""
    counts: dict[int, dict[str, int]] = {sid: {} for sid in study_ids}
    activity: dict[int, datetime | None] = dict.fromkeys(study_ids)
    for sid, status, count, *times in repo.trial_activity(session, study_ids):
        counts[sid][status] = count
        activity[sid] = max((t for t in (activity[sid], *times) if t is not None), default=None)
    brackets: dict[int, dict[bool, int]] = {sid: {} for sid in study_ids}
    for sid, is_open, count in repo.bracket_counts(session, study_ids):
        brackets[sid][bool(is_open)] = count
    summaries = {}
    for sid in study_ids:
        best = best_rows[sid]
        summaries[sid] = StudySummary(
            trials=TrialCounts(**counts[sid]),
            brackets_open=brackets[sid].get(True, 0),
            brackets_closed=brackets[sid].get(False, 0),
            best_score=None if best is None else best.score,
            best_trial_id=None if best is None else str(best.number),
            last_activity_at=activity[sid],
        )
    return summaries


def best_so_far(ctx: Context, study_id: int) -> BestSoFar:
    """The best score each time it improved, with wall time and epochs trained."""
    points: list[BestPoint] = []
    best = None
    with ctx.db.read() as session:
        find_study(session, study_id)
        for number, at, score, key, trained in repo.best_so_far(session, study_id):
            if best is None or key < best:  # not a tie with the best before it
                best = key
                points.append(
                    BestPoint(
                        trial_id=str(number), finished_at=at, score=score, epochs_trained=trained
                    )
                )
        trained, last = repo.epochs_trained(session, study_id)
    return BestSoFar(points=points, epochs_trained=trained, last_finished_at=last)


def trials_by_status(ctx: Context) -> dict[str, int]:
    """All studies' trials, counted by status."""
    with ctx.db.read() as session:
        return repo.trial_counts(session)


def _with_config(session: Session, study: StudyRow) -> StudyRow:
    """The study with its settings and space loaded, to be read after the transaction."""
    loaded = repo.get_study(session, study.id, with_config=True)
    assert loaded is not None
    return loaded


def stop_study(ctx: Context, study_id: int) -> Study:
    """No new trials from now on; running trials may still report and tell. Stopping a
    study that is no longer running changes nothing."""

    def work(session: Session) -> StudyRow:
        study = repo.lock_study(session, study_id)
        if study is None:
            raise NotFound(f"study {study_id} not found")
        if study.status == "running":
            change(study, status="stopped", reason="stopped on request")
        return _with_config(session, study)

    return shown.study(ctx, ctx.db.transaction(work, study=study_id))


def resume_study(ctx: Context, study_id: int) -> Study:
    """A stopped or failed study runs again, its results kept; the count of consecutive
    failed trials starts over (the limit applies to the failures after the resume)."""

    def work(session: Session) -> StudyRow:
        study = repo.lock_study(session, study_id)
        if study is None:
            raise NotFound(f"study {study_id} not found")
        if study.status == "done":
            raise Conflict(
                f"study {study_id} is done: every bracket of its "
                f"hyperband_iterations has run; nothing to resume",
                details={"status": study.status},
            )
        if study.status != "running":
            change(study, status="running", reason=None, consecutive_failures=0)
        return _with_config(session, study)

    return shown.study(ctx, ctx.db.transaction(work, study=study_id))


def delete_study(ctx: Context, study_id: int) -> None:
    """Delete the study with its brackets, trials, metrics and checkpoints. The files go
    first, in the transaction: if the store fails, the study is kept and the call can be
    made again."""

    def work(session: Session) -> None:
        if repo.lock_study(session, study_id) is None:
            raise NotFound(f"study {study_id} not found")
        if ctx.store is not None:
            for location in repo.checkpoint_locations(session, study_id):
                ctx.store.delete(location)
        repo.delete_study(session, study_id)

    ctx.db.transaction(work, study=study_id)
