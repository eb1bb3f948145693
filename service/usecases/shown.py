"""Rows as the HTTP API shows them (the wire schemas of rung.schemas). The use cases answer
with these, so no ORM row leaves the use-case layer."""

from __future__ import annotations

from collections.abc import Sequence

from rung import schemas as w
from service.core.schedule import Schedule
from service.db.models import BracketRow, StudyRow, TrialMetricRow, TrialRow

from .context import Context


def trial(row: TrialRow, history: Sequence[TrialMetricRow] | None = None) -> w.Trial:
    return w.Trial(
        id=str(row.number),
        study_id=str(row.study_id),
        status=row.status,  # type: ignore[arg-type]
        hyperparameters=row.values,
        epochs=row.epochs,
        initial_epoch=row.initial_epoch,
        parent_trial_id=None if row.parent_number is None else str(row.parent_number),
        iteration=row.iteration,
        bracket=row.bracket,
        round=row.round,
        worker_id=row.worker_id,
        lease_expires_at=row.lease_expires_at,
        score=row.score,
        best_epoch=row.best_epoch,
        metrics=row.metrics,
        error=row.error,
        runs=row.runs,
        failed_runs=row.failed_runs,
        lost_leases=row.lost_leases,
        created_at=row.created_at,
        finished_at=row.finished_at,
        history=None
        if history is None
        else [w.EpochMetrics(epoch=m.epoch, metrics=m.metrics) for m in history],
    )


def _bracket(schedule: Schedule, row: BracketRow) -> w.BracketProgress:
    return w.BracketProgress(
        iteration=row.iteration,
        bracket=row.bracket,
        open=row.is_open,
        rounds=[
            w.RoundProgress(
                round=r,
                size=row.sizes[r],
                created=row.created[r],
                completed=row.completed[r],
                epochs=schedule.epochs(row.bracket, r),
            )
            for r in range(len(row.sizes))
        ],
    )


def progress(
    ctx: Context,
    row: StudyRow,
    counts: w.TrialCounts,
    brackets: Sequence[BracketRow],
    best: w.Trial | None,
) -> w.Progress:
    schedule = ctx.config(row).schedule
    return w.Progress(
        trials=counts,
        brackets=[_bracket(schedule, b) for b in brackets],
        best_trial=best,
    )


def study(
    ctx: Context,
    row: StudyRow,
    progress: w.Progress | None = None,
    *,
    summary: w.StudySummary | None = None,
) -> w.Study:
    config = ctx.config(row)
    return w.Study(
        id=str(row.id),
        name=row.name,
        status=row.status,  # type: ignore[arg-type]
        reason=row.reason,
        created_at=row.created_at,
        settings=w.StudyOptionsShown.model_validate(w.current_settings(row.settings)),
        hyperparameters=row.space,
        objective=config.objective.to_wire(),
        seed=row.seed,
        progress=progress,
        summary=summary,
    )
