"""One table from domain errors to HTTP statuses, and the error envelope
`{"error": {"code", "message", "details"}}` for every 4xx/5xx the server sends: from the
app's handlers, and (`send_error`, `error_body`) from middleware and the HTTP protocol that
answer before the app."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import errors as e

log = logging.getLogger("rung.api")

STATUS: dict[type[e.RungError], int] = {
    e.NotFound: 404,
    e.Invalid: 422,
    e.Conflict: 409,
    e.Unauthorized: 401,
    e.Forbidden: 403,
    e.TooLarge: 413,
    e.SchemaOutdated: 503,
    e.Unavailable: 503,
}
OUTAGE_LOG_EVERY_S = 60.0  # while the database stays unreachable, one line this often


def status_of(exc: e.RungError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


def error_body(code: str, message: str, details: Any = None) -> bytes:
    """The API's error envelope, `{"error": {"code", "message", "details"}}`, as JSON: the
    one encoding of every error the server sends, from the app or from before it."""
    envelope = {"error": {"code": code, "message": message, "details": details}}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


async def send_error(send: Any, status: int, code: str, message: str, details: Any = None) -> None:
    body = error_body(code, message, details)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    body = error_body(code, message, jsonable_encoder(details))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "body"


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str, int]:
    """(code, message naming the first offending field, status) for pydantic errors."""
    first = errors[0]
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx") or {}
        return "malformed_json", f"body: invalid JSON ({ctx.get('error', 'cannot parse')})", 400
    where = _where(tuple(first.get("loc", ())))
    message = first.get("msg", "invalid")
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return "invalid", f"{where}: {message}{more}", 422


def install(app: FastAPI) -> None:
    last_outage_line = [-OUTAGE_LOG_EVERY_S]  # monotonic time of the last outage log line

    @app.exception_handler(e.RungError)
    async def _domain(_: Request, exc: e.RungError) -> Response:
        details = exc.details
        headers = None
        if type(exc) is e.Unauthorized:
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(exc, e.Unavailable):
            headers = {"Retry-After": str(exc.retry_after_s)}
            now = time.monotonic()
            if now - last_outage_line[0] >= OUTAGE_LOG_EVERY_S:  # one line, not one per call
                last_outage_line[0] = now
                log.warning("%s; answering 503 with Retry-After until it is back", exc.message)
        return error_response(status_of(exc), exc.code, exc.message, details, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        code, message, status = validation_message(errors)
        details = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
            for err in errors
        ]
        return error_response(status, code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(
            exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal server error")
