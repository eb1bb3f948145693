"""Request-scoped helpers shared by the routers."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from rung.schemas import ErrorResponse
from service.errors import Invalid, NotFound
from service.metrics import Metrics
from service.usecases.context import Context

# Every error status an API route can answer, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422)
}


def context(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


def metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def study_key(study_id: str) -> int:
    """Ids are opaque strings to clients; one that could never exist is simply not found."""
    if not study_id.isdigit() or len(study_id) > 18:
        raise NotFound(f"study {study_id!r} not found")
    return int(study_id)


def trial_key(study_id: str, trial_id: str) -> int:
    if not trial_id.isdigit() or len(trial_id) > 9:
        raise NotFound(f"study {study_id!r} has no trial {trial_id!r}")
    return int(trial_id)


def cursor_key(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise Invalid(f"cursor: {cursor!r} is not a cursor this API returned")
    return int(cursor)
