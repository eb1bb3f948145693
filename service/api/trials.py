"""Routes: ask, report, heartbeat, tell, and reading trials."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from rung import schemas as w

from service.usecases import asking, trials
from service.usecases.context import Context

from . import mapping
from .deps import context, cursor_key, study_key, trial_key

router = APIRouter(prefix="/v1/studies/{study_id}", tags=["trials"])
Ctx = Annotated[Context, Depends(context)]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": w.ErrorResponse},
    409: {"model": w.ErrorResponse},
    422: {"model": w.ErrorResponse},
}


@router.post("/ask", response_model=w.AskResponse, responses=ERRORS)
def ask(study_id: str, body: w.AskRequest, ctx: Ctx) -> w.AskResponse:
    result = asking.ask(ctx, study_key(study_id), body.worker_id)
    return w.AskResponse(
        status=result.status,  # type: ignore[arg-type]
        trial=None if result.trial is None else mapping.trial(result.trial),
        retry_after_s=result.retry_after_s,
        reason=result.reason,
    )


@router.post("/trials/{trial_id}/report", response_model=w.Trial, responses=ERRORS)
def report(study_id: str, trial_id: str, body: w.ReportRequest, ctx: Ctx) -> w.Trial:
    row = trials.report(ctx, study_key(study_id), trial_key(study_id, trial_id), body)
    return mapping.trial(row)


@router.post("/trials/{trial_id}/heartbeat", response_model=w.Trial, responses=ERRORS)
def heartbeat(study_id: str, trial_id: str, body: w.HeartbeatRequest, ctx: Ctx) -> w.Trial:
    row = trials.heartbeat(ctx, study_key(study_id), trial_key(study_id, trial_id), body.worker_id)
    return mapping.trial(row)


@router.post("/trials/{trial_id}/tell", response_model=w.Trial, responses=ERRORS)
def tell(study_id: str, trial_id: str, body: w.TellRequest, ctx: Ctx) -> w.Trial:
    row = trials.tell(ctx, study_key(study_id), trial_key(study_id, trial_id), body)
    return mapping.trial(row)


@router.get("/trials", response_model=w.Page[w.Trial], responses=ERRORS)
def list_trials(
    study_id: str,
    ctx: Ctx,
    status: w.TrialStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> w.Page[w.Trial]:
    items, last = trials.list_trials(
        ctx, study_key(study_id), status=status, after=cursor_key(cursor), limit=limit
    )
    return w.Page[w.Trial](
        items=[mapping.trial(t.trial, t.history) for t in items],
        next_cursor=None if last is None else str(last),
    )


@router.get("/trials/{trial_id}", response_model=w.Trial, responses=ERRORS)
def get_trial(study_id: str, trial_id: str, ctx: Ctx) -> w.Trial:
    details = trials.get_trial(ctx, study_key(study_id), trial_key(study_id, trial_id))
    return mapping.trial(details.trial, details.history)


@router.get("/best", response_model=w.Page[w.Trial], responses=ERRORS)
def best(study_id: str, ctx: Ctx, k: Annotated[int, Query(ge=1, le=1000)] = 1) -> w.Page[w.Trial]:
    items = trials.best_trials(ctx, study_key(study_id), k)
    return w.Page[w.Trial](items=[mapping.trial(t.trial, t.history) for t in items])
