"""Every error the Rung client raises, in one tree:

RungError
├── TransportError          the server could not be reached (after retries)
│   └── ChecksumError       a downloaded checkpoint did not match its SHA-256 (after retries)
├── ServerError             5xx or 429 (after retries)
├── ProtocolError           a 2xx answer whose body is not what the call returns
└── APIError                the server refused the request (4xx); .status, .code, .details
    ├── InvalidError        400, 413, 422: bad input; the message names the field
    ├── NotFoundError       404
    ├── ConflictError       409
    │   ├── LeaseLostError        the trial was offered to another worker
    │   └── AlreadyFinishedError  a different result was told before; .trial is it
    └── UnauthorizedError   401 (no or unknown token)
        └── ForbiddenError  403 (a token without the right)
"""

from __future__ import annotations

from typing import Any


class RungError(Exception):
    """Base of every error raised by the Rung client."""


class TransportError(RungError):
    """The server could not be reached, even after retrying."""


class ChecksumError(TransportError):
    """A downloaded checkpoint does not have the SHA-256 the server announced, even after
    downloading it again."""


class ProtocolError(RungError):
    """The server answered 2xx with a body that is not what the call returns (a proxy's
    page, another version's schema…); `status` is the HTTP status."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


class ServerError(RungError):
    """The server failed (5xx) or kept asking to slow down (429), even after retrying."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


class APIError(RungError):
    """The server refused the request; `code` is the error code of the API."""

    def __init__(self, message: str, *, status: int, code: str, details: Any = None):
        super().__init__(message)
        self.message, self.status, self.code, self.details = message, status, code, details


class InvalidError(APIError):
    pass


class NotFoundError(APIError):
    pass


class ConflictError(APIError):
    pass


class LeaseLostError(ConflictError):
    """This worker no longer holds the trial: stop training it."""


class AlreadyFinishedError(ConflictError):
    """The trial already has a different result; `trial` is the stored one."""

    @property
    def trial(self) -> Any:
        from .schemas import Trial

        return Trial.model_validate((self.details or {}).get("trial"))


class UnauthorizedError(APIError):
    pass


class ForbiddenError(UnauthorizedError):
    pass


def from_response(status: int, body: Any) -> APIError:
    """The APIError for a 4xx answer with Rung's error envelope (or without one)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code", "http_error"))
    message = str(error.get("message", f"HTTP {status}"))
    details = error.get("details")
    cls: type[APIError]
    if status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = {"lease_lost": LeaseLostError, "already_finished": AlreadyFinishedError}.get(
            code, ConflictError
        )
    elif status == 401:
        cls = UnauthorizedError
    elif status == 403:
        cls = ForbiddenError
    elif status in (400, 413, 422):
        cls = InvalidError
    else:
        cls = APIError
    return cls(message, status=status, code=code, details=details)
