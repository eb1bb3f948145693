"""Domain errors. The API maps each to one HTTP status (service/api/errors.py)."""

from __future__ import annotations

from typing import Any


class RungError(Exception):
    code = "error"

    def __init__(self, message: str, *, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(RungError):
    code = "not_found"


class Invalid(RungError):
    """Input that is well-formed but cannot be accepted; the message names the field."""

    code = "invalid"


class Conflict(RungError):
    code = "conflict"


class AlreadyFinished(Conflict):
    """A different result for a trial that already has one; `details` holds the stored
    trial as the API shows it."""

    code = "already_finished"


class LeaseLost(Conflict):
    """The caller no longer holds the trial: its lease expired and it was offered again."""

    code = "lease_lost"


class NotRunning(Conflict):
    code = "not_running"


class Unauthorized(RungError):
    code = "unauthorized"


class Forbidden(RungError):
    code = "forbidden"


class TooLarge(RungError):
    code = "too_large"


class Unavailable(RungError):
    """The database cannot be reached (or is too busy) right now: worth retrying later."""

    code = "unavailable"
    retry_after_s = 5


class StoreUnavailable(Unavailable):
    """The checkpoint store failed to write, read or delete a file; nothing that depends on
    it was recorded or dropped, so the call can be tried again."""

    code = "store_unavailable"


class SchemaOutdated(RungError):
    """The database schema is not the one this server was built for."""

    code = "schema_outdated"
