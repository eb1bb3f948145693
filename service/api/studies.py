"""Routes: create, list, get and delete studies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from rung import schemas as w
from service.usecases import studies
from service.usecases.context import Context

from .auth import ADMIN, READ, allowed
from .deps import context, cursor_key, errors, reply, study_key

router = APIRouter(prefix="/v1/studies", tags=["studies"])
Ctx = Annotated[Context, Depends(context)]


@router.post(
    "",
    summary="Create a study",
    response_model=w.Study,
    status_code=status.HTTP_201_CREATED,
    dependencies=allowed(ADMIN),
    responses={
        200: {"model": w.Study, "description": "the study exists with these settings"},
        **errors(
            413,
            422,
            conflict="a study of this name exists with other settings: `details.differences` "
            "names each one with its stored and requested values",
        ),
    },
)
def create_study(body: w.StudyCreate, response: Response, ctx: Ctx) -> w.Study:
    """Create a study from its name, search space, objective and Hyperband settings. Creating
    it again with the same settings answers the existing study (200), so every worker may
    run the same creating call."""
    study, created = studies.create_study(ctx, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return study


@router.get(
    "",
    summary="List studies",
    response_model=w.Page[w.Study],
    dependencies=allowed(READ),
    responses=errors(422),
)
def list_studies(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str | None, Query(max_length=w.MAX_NAME, description="exact name")] = None,
    summary: Annotated[bool, Query(description="add each study's `summary`")] = False,
) -> Response:
    """Studies in the order they were created, a page at a time: pass `next_cursor` back as
    `cursor` for the next page. `name` finds one study by its exact name."""
    items, last = studies.list_studies(
        ctx, after=cursor_key(cursor), limit=limit, name=name, summary=summary
    )
    return reply(w.Page[w.Study](items=items, next_cursor=None if last is None else str(last)))


@router.get(
    "/{study_id}",
    summary="Get a study and its progress",
    response_model=w.Study,
    dependencies=allowed(READ),
    responses=errors(404),
)
def get_study(study_id: str, ctx: Ctx) -> Response:
    """The study with its `progress` (trials by status, each bracket's rounds: planned,
    created, completed, epochs; the best trial so far) and its `summary`."""
    return reply(studies.get_study(ctx, study_key(study_id)))


@router.get(
    "/{study_id}/best-so-far",
    summary="The best score as it improved",
    response_model=w.BestSoFar,
    dependencies=allowed(READ),
    responses=errors(404),
)
def best_so_far(study_id: str, ctx: Ctx) -> Response:
    """Each completed trial that beat all those completed before it, in the order they
    finished, with the epochs the study had trained by then (computed in SQL: the answer
    grows with the improvements, not with the trials)."""
    return reply(studies.best_so_far(ctx, study_key(study_id)))


@router.post(
    "/{study_id}/stop",
    summary="Stop a study",
    response_model=w.Study,
    dependencies=allowed(ADMIN),
    responses=errors(404),
)
def stop_study(study_id: str, ctx: Ctx) -> w.Study:
    """No new trials; running trials may still report and tell. Asks answer "done"."""
    return studies.stop_study(ctx, study_key(study_id))


@router.post(
    "/{study_id}/resume",
    summary="Resume a stopped or failed study",
    response_model=w.Study,
    dependencies=allowed(ADMIN),
    responses=errors(404, conflict="the study is done: it has nothing left to run"),
)
def resume_study(study_id: str, ctx: Ctx) -> w.Study:
    """A stopped or failed study runs again, its results kept (409 if it is done)."""
    return studies.resume_study(ctx, study_key(study_id))


@router.delete(
    "/{study_id}",
    summary="Delete a study",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=allowed(ADMIN),
    responses=errors(404),
)
def delete_study(study_id: str, ctx: Ctx) -> Response:
    """Delete the study with its trials, histories and checkpoints (the files first: if the
    store cannot delete them, 503 and the study is kept)."""
    studies.delete_study(ctx, study_key(study_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
