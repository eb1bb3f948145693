"""API tokens. With `RUNG_TOKENS` set, every call but /healthz (and the pages' files: the
API docs and the dashboard, which hold no data) needs
`Authorization: Bearer <token>`: 401 without a known token, 403 for a token whose role lacks
the right. Roles: `admin` (everything), `worker` (read, ask/report/heartbeat/tell), `reader`
(read). Tokens are compared in constant time and never logged."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from fastapi import Request, Security, params
from fastapi.security import HTTPBearer

from service.errors import Forbidden, Unauthorized

log = logging.getLogger("rung.auth")
READ, WORK, ADMIN = "read", "work", "admin"
ROLES = {"admin": {READ, WORK, ADMIN}, "worker": {READ, WORK}, "reader": {READ}}


@dataclass(frozen=True)
class Token:
    role: str
    digest: bytes  # sha256 of the token: equal lengths make the comparison constant-time


def parse_tokens(spec: str | None) -> list[Token]:
    """`role:token,role:token` -> tokens; a clear error for anything else."""
    tokens: list[Token] = []
    entries = [item.strip() for item in (spec or "").split(",") if item.strip()]
    for position, item in enumerate(entries, start=1):
        role, sep, secret = item.partition(":")
        if not sep or role not in ROLES:  # the entry may be a secret: never echo it
            raise ValueError(
                f"RUNG_TOKENS: entry {position} does not start with one of "
                f"{', '.join(f'{r}:' for r in ROLES)} (expected role:token pairs separated "
                "by commas)"
            )
        if len(secret) < 8:
            raise ValueError(f"RUNG_TOKENS: the {role} token is shorter than 8 characters")
        digest = hashlib.sha256(secret.encode()).digest()
        if any(hmac.compare_digest(t.digest, digest) for t in tokens):
            raise ValueError(
                f"RUNG_TOKENS: entry {position} ({role}) repeats the token of an earlier "
                "entry; each role needs a token of its own"
            )
        tokens.append(Token(role, digest))
    return tokens


def role_of(tokens: list[Token], presented: str) -> str | None:
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for token in tokens:  # no early exit: the time does not depend on which one matched
        if hmac.compare_digest(token.digest, digest):
            found = token.role
    return found


class Require(HTTPBearer):
    """A route dependency that lets the call through only with a token that has
    `permission`. It is the bearer scheme itself (one dependency, not the scheme as a
    sub-dependency of a check: FastAPI resolves each dependency on every call), so the
    OpenAPI document still declares the scheme, under its usual name."""

    def __init__(self, permission: str):
        super().__init__(
            auto_error=False,
            scheme_name="HTTPBearer",
            description="an API token (RUNG_TOKENS)",
        )
        self.permission = permission

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        tokens: list[Token] = request.app.state.tokens
        if not tokens:
            return
        credentials = await super().__call__(request)
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("authorization: a bearer token is required")
        role = role_of(tokens, credentials.credentials)
        if role is None:
            raise Unauthorized("authorization: unknown token")
        if self.permission not in ROLES[role]:
            raise Forbidden(
                f"authorization: a {role} token cannot do this (needs {self.permission})"
            )


def allowed(permission: str) -> list[params.Depends]:
    """Route dependencies that require `permission`."""
    return [Security(Require(permission))]
