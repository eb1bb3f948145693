"""A pure ASGI middleware that refuses request bodies over a size limit with 413, whether
the client sent Content-Length or streamed the body in chunks."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

from .errors import send_error

Scope = dict[str, Any]


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing lets it through as a 413."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"body: larger than the limit of {max_bytes} bytes")


class BodySizeLimit:
    def __init__(self, app: Any, *, max_bytes: int, exempt: tuple[str, ...] = ()):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or any(scope["path"].endswith(p) for p in self.exempt):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        await send_error(
            send,
            413,
            "too_large",
            f"body: larger than the limit of {self.max_bytes} bytes",
            {"max_bytes": self.max_bytes},
        )
