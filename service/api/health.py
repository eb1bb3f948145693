"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.db import migrate

from .auth import READ, allowed
from .deps import errors

router = APIRouter(tags=["health"])
AUTH_ERRORS = errors(always=(400, 401, 403))


@router.get("/healthz", summary="Liveness", responses=errors(always=(400,)))
def healthz() -> dict[str, str]:
    """The process is up (no token needed)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    dependencies=allowed(READ),
    responses={
        **AUTH_ERRORS,
        503: {"description": "not ready: the database does not answer or its schema is old"},
    },
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
    summary="Prometheus metrics",
    dependencies=allowed(READ),
    response_class=Response,
    responses={**AUTH_ERRORS, 200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
