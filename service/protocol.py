"""uvicorn's httptools protocol with bounds on a request's head (its request line and
headers), which uvicorn does not set: past `max_bytes` the server answers 431 and closes the
connection instead of buffering all it is sent; a head not complete `timeout_s` after its
first byte (or after the connection opened) closes the connection, so that a client sending
a byte at a time cannot hold a connection open for ever."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.errors import error_body

LINGER_S = 1.0


def bounded_http(max_bytes: int, timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`), with these bounds."""

    class BoundedHttpTools(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._reading_head = True
            self._head_timer: asyncio.TimerHandle | None = None
            self._answered = False  # a refusal was sent: what still arrives is dropped

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._answered:
                return
            if self._reading_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._reading_head and self._head_bytes > max_bytes:
                self._refuse_head()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading_head = True
            if self._head_timer is None:
                self._start_head_timer()

        def on_headers_complete(self) -> None:
            self._reading_head, self._head_bytes = False, 0
            self._stop_head_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_head = True  # what comes next is the next request's head

        def _start_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(timeout_s, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self._reading_head or self._answered or self.transport.is_closing():
                return
            if not self._head_bytes:  # nothing was sent: no answer is owed
                self.transport.close()
                return
            message = f"headers: the request head did not arrive within {timeout_s} seconds"
            self._answer("408 Request Timeout", "timeout", message, {"timeout_s": timeout_s})

        def _refuse_head(self) -> None:
            if not self._answered and not self.transport.is_closing():
                message = f"headers: the request head is larger than the limit of {max_bytes} bytes"
                self._answer(
                    "431 Request Header Fields Too Large",
                    "too_large",
                    message,
                    {"max_bytes": max_bytes},
                )

        def _answer(self, status: str, code: str, message: str, details: dict[str, Any]) -> None:
            """Answer, and close a second later while dropping what still arrives: closing
            at once, with the client's bytes still unread, resets the connection, and the
            client can lose the answer (nginx's lingering close)."""
            body = error_body(code, message, details)
            self.transport.write(
                f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            self._answered = True
            self._stop_head_timer()
            self.loop.call_later(LINGER_S, self.transport.close)

    return BoundedHttpTools
