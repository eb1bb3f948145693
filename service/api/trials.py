"""Routes: ask, report, heartbeat, tell, and reading trials."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from rung import schemas as w
from service.usecases import asking, trials
from service.usecases.context import Context

from . import mapping
from .auth import READ, WORK, allowed
from .deps import ERRORS, context, cursor_key, reply, served, study_key, trial_key

log = logging.getLogger("rung.trials")
router = APIRouter(prefix="/v1/studies/{study_id}", tags=["trials"], responses=ERRORS)
Ctx = Annotated[Context, Depends(context)]


@router.post("/ask", response_model=w.AskResponse, dependencies=allowed(WORK))
def ask(study_id: str, body: w.AskRequest, request: Request) -> Response:
    ctx, meter = served(request)
    result = asking.ask(ctx, study_key(study_id), body.worker_id)
    meter.asks.labels(result.status).inc()
    meter.lease_expiries.inc(result.lease_expiries)
    trial = None if result.trial is None else mapping.trial(result.trial)
    log.info(
        "ask",
        extra={
            "study_id": study_id,
            "worker_id": body.worker_id,
            "status": result.status,
            "trial_id": trial and trial.id,
            "bracket": trial and trial.bracket,
            "round": trial and trial.round,
            "lease_expiries": result.lease_expiries,
        },
    )
    return reply(
        w.AskResponse(
            status=result.status,  # type: ignore[arg-type]
            trial=trial,
            retry_after_s=result.retry_after_s,
            reason=result.reason,
        )
    )


@router.post("/trials/{trial_id}/report", response_model=w.Trial, dependencies=allowed(WORK))
def report(study_id: str, trial_id: str, body: w.ReportRequest, request: Request) -> Response:
    ctx, meter = served(request)
    row = trials.report(ctx, study_key(study_id), trial_key(study_id, trial_id), body)
    meter.reports.inc()
    return reply(mapping.trial(row))


@router.post("/trials/{trial_id}/heartbeat", response_model=w.Trial, dependencies=allowed(WORK))
def heartbeat(study_id: str, trial_id: str, body: w.HeartbeatRequest, request: Request) -> Response:
    ctx, meter = served(request)
    row = trials.heartbeat(ctx, study_key(study_id), trial_key(study_id, trial_id), body.worker_id)
    meter.heartbeats.inc()
    return reply(mapping.trial(row))


@router.post("/trials/{trial_id}/tell", response_model=w.Trial, dependencies=allowed(WORK))
def tell(study_id: str, trial_id: str, body: w.TellRequest, request: Request) -> Response:
    ctx, meter = served(request)
    row = trials.tell(ctx, study_key(study_id), trial_key(study_id, trial_id), body)
    meter.tells.labels(row.status).inc()
    log.info(
        "tell",
        extra={
            "study_id": study_id,
            "trial_id": trial_id,
            "worker_id": body.worker_id,
            "status": row.status,
            "score": row.score,
        },
    )
    return reply(mapping.trial(row))


@router.get("/trials", response_model=w.Page[w.Trial], dependencies=allowed(READ))
def list_trials(
    study_id: str,
    ctx: Ctx,
    status: w.TrialStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> w.Page[w.Trial]:
    items, last = trials.list_trials(
        ctx, study_key(study_id), status=status, after=cursor_key(cursor, digits=9), limit=limit
    )
    return w.Page[w.Trial](
        items=[mapping.trial(t.trial, t.history) for t in items],
        next_cursor=None if last is None else str(last),
    )


@router.get("/trials/{trial_id}", response_model=w.Trial, dependencies=allowed(READ))
def get_trial(study_id: str, trial_id: str, ctx: Ctx) -> w.Trial:
    details = trials.get_trial(ctx, study_key(study_id), trial_key(study_id, trial_id))
    return mapping.trial(details.trial, details.history)


@router.get("/best", response_model=w.Page[w.Trial], dependencies=allowed(READ))
def best(study_id: str, ctx: Ctx, k: Annotated[int, Query(ge=1, le=1000)] = 1) -> w.Page[w.Trial]:
    items = trials.best_trials(ctx, study_key(study_id), k)
    return w.Page[w.Trial](items=[mapping.trial(t.trial, t.history) for t in items])
