"""Request-scoped helpers shared by the routers."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from rung.schemas import ErrorResponse
from service.errors import Invalid, NotFound
from service.metrics import Metrics
from service.usecases.context import Context

# Every error status an API route can answer, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422)
}


# Dependencies are `async def` although they never await: FastAPI runs a plain `def`
# dependency in the thread pool, one thread hop per dependency per request.


async def context(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


def served(request: Request) -> tuple[Context, Metrics]:
    """The workers' routes (ask, report, heartbeat, tell) read the context and the metrics
    here instead of taking them as dependencies: FastAPI resolves each dependency on every
    call, and these two cost about 3 % of a request's instructions
    (benchmarks/instructions.py)."""
    state = request.app.state
    return state.ctx, state.metrics


def reply(model: BaseModel) -> Response:
    """The hot path's answer (ask, report, heartbeat, tell): the wire model as built,
    serialized once. A route returning the model itself has FastAPI validate it again
    against the route's `response_model`, in a second trip through the thread pool; the
    `response_model` still documents the answer."""
    return Response(model.model_dump_json(), media_type="application/json")


def _number(text: str, digits: int) -> int | None:
    """The non-negative integer `text` spells in ASCII digits, or None ("²" is a digit to
    str.isdigit, not to int())."""
    return int(text) if re.fullmatch(rf"[0-9]{{1,{digits}}}", text) else None


def study_key(study_id: str) -> int:
    """Ids are opaque strings to clients; one that could never exist is simply not found."""
    key = _number(study_id, 18)
    if key is None:
        raise NotFound(f"study {study_id!r} not found")
    return key


def trial_key(study_id: str, trial_id: str) -> int:
    key = _number(trial_id, 9)
    if key is None:
        raise NotFound(f"study {study_id!r} has no trial {trial_id!r}")
    return key


def cursor_key(cursor: str | None, *, digits: int = 18) -> int | None:
    """A page's cursor: the last key of the page before. `digits` bounds it to what the
    key's column holds (18 for ids; 9 for trial numbers, a 32-bit column)."""
    if cursor is None:
        return None
    key = _number(cursor, digits)
    if key is None:
        raise Invalid(f"cursor: {cursor!r} is not a cursor this API returned")
    return key
