"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.db import migrate

from .auth import READ, allowed
from .deps import ERRORS

router = APIRouter(tags=["health"])
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {status: ERRORS[status] for status in (401, 403)}


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no token needed)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    dependencies=allowed(READ),
    responses={**AUTH_ERRORS, 503: {"description": "not ready"}},
)
def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is the one this server needs."""
    try:
        status = migrate.schema_status(request.app.state.ctx.db.engine)
    except Exception as exc:  # any database error means "not ready"
        return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, 503)
    if not status.up_to_date:
        return JSONResponse({"status": "unavailable", "detail": status.message()}, 503)
    return JSONResponse({"status": "ok", "schema": status.current})


@router.get(
    "/metrics",
    dependencies=allowed(READ),
    response_class=Response,
    responses={**AUTH_ERRORS, 200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
