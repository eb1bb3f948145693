"""Routes: create, list, get and delete studies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from rung import schemas as w
from service.usecases import studies
from service.usecases.context import Context

from . import mapping
from .auth import ADMIN, READ, allowed
from .deps import ERRORS, context, cursor_key, study_key

router = APIRouter(prefix="/v1/studies", tags=["studies"], responses=ERRORS)
Ctx = Annotated[Context, Depends(context)]


@router.post(
    "",
    response_model=w.Study,
    status_code=status.HTTP_201_CREATED,
    dependencies=allowed(ADMIN),
    responses={200: {"model": w.Study, "description": "the study exists with these settings"}},
)
def create_study(body: w.StudyCreate, response: Response, ctx: Ctx) -> w.Study:
    row, created = studies.create_study(ctx, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return mapping.study(ctx, row)


@router.get("", response_model=w.Page[w.Study], dependencies=allowed(READ))
def list_studies(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str | None, Query(max_length=w.MAX_NAME, description="exact name")] = None,
) -> w.Page[w.Study]:
    rows, last = studies.list_studies(ctx, after=cursor_key(cursor), limit=limit, name=name)
    return w.Page[w.Study](
        items=[mapping.study(ctx, row) for row in rows],
        next_cursor=None if last is None else str(last),
    )


@router.get("/{study_id}", response_model=w.Study, dependencies=allowed(READ))
def get_study(study_id: str, ctx: Ctx) -> w.Study:
    details = studies.get_study(ctx, study_key(study_id))
    return mapping.study(ctx, details.study, details)


@router.post("/{study_id}/stop", response_model=w.Study, dependencies=allowed(ADMIN))
def stop_study(study_id: str, ctx: Ctx) -> w.Study:
    """No new trials; running trials may still report and tell. Asks answer "done"."""
    return mapping.study(ctx, studies.stop_study(ctx, study_key(study_id)))


@router.post("/{study_id}/resume", response_model=w.Study, dependencies=allowed(ADMIN))
def resume_study(study_id: str, ctx: Ctx) -> w.Study:
    """A stopped or failed study runs again, its results kept (409 if it is done)."""
    return mapping.study(ctx, studies.resume_study(ctx, study_key(study_id)))


@router.delete("/{study_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=allowed(ADMIN))
def delete_study(study_id: str, ctx: Ctx) -> Response:
    studies.delete_study(ctx, study_key(study_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
