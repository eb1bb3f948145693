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

# What each error status means, for the OpenAPI document. Every /v1 route may answer 400
# (a Host the server does not answer to), 401 and 403 (with API tokens) and 503 (the
# database or the checkpoint store cannot be reached now: retry after Retry-After); each
# route adds the others it can answer (`errors`).
ERROR_MEANINGS = {
    400: "malformed JSON, or a Host this server does not answer to (host_not_allowed)",
    401: "a missing or unknown API token (only when tokens are configured)",
    403: "the token's role may not make this call",
    404: "no such study or trial",
    413: "the body is over its limit",
    422: "invalid input: the message names the field",
    503: "the database or the checkpoint store cannot be reached now; retry after Retry-After",
}
ALWAYS = (400, 401, 403, 503)


def errors(
    *statuses: int,
    conflict: str | None = None,
    always: tuple[int, ...] = ALWAYS,
    **meanings: str,
) -> dict[int | str, Any]:
    """The error answers of one route: those every /v1 route has (`always`), `statuses`,
    and 409 with what `conflict` means; `meanings` (`_413="…"`) say more than the default."""
    codes = sorted({*always, *statuses, *([409] if conflict else [])})
    described = {int(key.lstrip("_")): text for key, text in meanings.items()}
    return {
        code: {
            "model": ErrorResponse,
            "description": described.get(code)
            or (conflict if code == 409 else None)
            or ERROR_MEANINGS[code],
        }
        for code in codes
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
