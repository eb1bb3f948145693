"""Routes: ask, report, heartbeat, tell, and reading trials."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from rung import schemas as w
from service.usecases import asking, trials
from service.usecases.context import Context

from .auth import READ, WORK, allowed
from .deps import context, cursor_key, errors, reply, served, study_key, trial_key

log = logging.getLogger("rung.trials")
router = APIRouter(prefix="/v1/studies/{study_id}", tags=["trials"])
HELD = (
    "lease_lost: another worker holds the trial now (this one's lease expired); "
    "not_running: the trial is not running"
)
Ctx = Annotated[Context, Depends(context)]


@router.post(
    "/ask",
    summary="Ask for a trial to run",
    response_model=w.AskResponse,
    dependencies=allowed(WORK),
    responses=errors(404, 413, 422),
)
def ask(study_id: str, body: w.AskRequest, request: Request) -> Response:
    """`run` with a trial (its hyperparameters, `epochs` to train to, `initial_epoch` and the
    parent to continue from), `wait` with `retry_after_s`, or `done` with the reason. The
    trial is leased to `worker_id`; asking again answers the same trial."""
    ctx, meter = served(request)
    result = asking.ask(ctx, study_key(study_id), body.worker_id)
    meter.asks.labels(result.status).inc()
    meter.lease_expiries.inc(result.lease_expiries)
    trial = result.trial
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


@router.post(
    "/trials/{trial_id}/report",
    summary="Report one epoch's metrics",
    response_model=w.Trial,
    dependencies=allowed(WORK),
    responses=errors(404, 413, 422, conflict=HELD),
)
def report(study_id: str, trial_id: str, body: w.ReportRequest, request: Request) -> Response:
    """Store the metrics of one epoch (Keras's 0-based index, within the trial's budget) and
    renew the lease."""
    ctx, meter = served(request)
    trial = trials.report(ctx, study_key(study_id), trial_key(study_id, trial_id), body)
    meter.reports.inc()
    return reply(trial)


@router.post(
    "/trials/{trial_id}/heartbeat",
    summary="Renew a trial's lease",
    response_model=w.Trial,
    dependencies=allowed(WORK),
    responses=errors(404, 413, 422, conflict=HELD),
)
def heartbeat(study_id: str, trial_id: str, body: w.HeartbeatRequest, request: Request) -> Response:
    """Keep the trial held by `worker_id` while it trains."""
    ctx, meter = served(request)
    trial = trials.heartbeat(
        ctx, study_key(study_id), trial_key(study_id, trial_id), body.worker_id
    )
    meter.heartbeats.inc()
    return reply(trial)


@router.post(
    "/trials/{trial_id}/tell",
    summary="Tell a trial's result",
    response_model=w.Trial,
    dependencies=allowed(WORK),
    responses=errors(
        404,
        413,
        422,
        conflict=f"{HELD}; already_finished: the trial has a different result (the stored "
        "trial is in `details`)",
    ),
)
def tell(study_id: str, trial_id: str, body: w.TellRequest, request: Request) -> Response:
    """The trial's final metrics (its score is the best of these and the reported epochs),
    or `status: failed` with the error; hyperparameters first seen while building the model
    join the space. The same tell again answers the stored trial."""
    ctx, meter = served(request)
    trial = trials.tell(ctx, study_key(study_id), trial_key(study_id, trial_id), body)
    meter.tells.labels(trial.status).inc()
    log.info(
        "tell",
        extra={
            "study_id": study_id,
            "trial_id": trial_id,
            "worker_id": body.worker_id,
            "status": trial.status,
            "score": trial.score,
        },
    )
    return reply(trial)


@router.get(
    "/trials",
    summary="List a study's trials",
    response_model=w.Page[w.Trial],
    dependencies=allowed(READ),
    responses=errors(404, 422),
)
def list_trials(
    study_id: str,
    ctx: Ctx,
    status: w.TrialStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    iteration: Annotated[int | None, Query(ge=0, le=10**9)] = None,
    bracket: Annotated[int | None, Query(ge=0, le=10**9)] = None,
    round: Annotated[int | None, Query(ge=0, le=10**9)] = None,
    history: Annotated[bool, Query(description="false: leave out each `history`")] = True,
) -> Response:
    """Trials in the order they were handed out, with their per-epoch `history`, a page at
    a time (at most `limit` trials and 16 MiB; `next_cursor` gives the rest). `status`,
    `iteration`, `bracket` and `round` narrow the list."""
    place = {"iteration": iteration, "bracket": bracket, "round": round}
    items, last = trials.list_trials(
        ctx,
        study_key(study_id),
        status=status,
        after=cursor_key(cursor, digits=9),
        limit=limit,
        place={key: value for key, value in place.items() if value is not None},
        history=history,
    )
    return reply(w.Page[w.Trial](items=items, next_cursor=None if last is None else str(last)))


@router.get(
    "/trials/{trial_id}",
    summary="Get a trial",
    response_model=w.Trial,
    dependencies=allowed(READ),
    responses=errors(404),
)
def get_trial(study_id: str, trial_id: str, ctx: Ctx) -> Response:
    """The trial with its per-epoch `history`."""
    return reply(trials.get_trial(ctx, study_key(study_id), trial_key(study_id, trial_id)))


@router.get(
    "/best",
    summary="The best trials",
    response_model=w.Page[w.Trial],
    dependencies=allowed(READ),
    responses=errors(
        404, 413, 422, _413="the k best trials with their histories are over the 16 MiB page"
    ),
)
def best(study_id: str, ctx: Ctx, k: Annotated[int, Query(ge=1, le=1000)] = 1) -> Response:
    """The `k` best completed trials, best first (ties to the earliest), with histories."""
    return reply(w.Page[w.Trial](items=trials.best_trials(ctx, study_key(study_id), k)))
