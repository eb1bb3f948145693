"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.db import migrate

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is the one this server needs."""
    try:
        status = migrate.schema_status(request.app.state.ctx.db.engine)
    except Exception as exc:  # any database error means "not ready"
        return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, 503)
    if not status.up_to_date:
        return JSONResponse({"status": "unavailable", "detail": status.message()}, 503)
    return JSONResponse({"status": "ok", "schema": status.current})
