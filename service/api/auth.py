"""API tokens. With `RUNG_TOKENS` set, every call but /healthz (and the API docs) needs
`Authorization: Bearer <token>`: 401 without a known token, 403 for a token whose role lacks
the right. Roles: `admin` (everything), `worker` (read, ask/report/heartbeat/tell), `reader`
(read). Tokens are compared in constant time and never logged."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends, Request, Security, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import Forbidden, Unauthorized

log = logging.getLogger("rung.auth")
READ, WORK, ADMIN = "read", "work", "admin"
ROLES = {"admin": {READ, WORK, ADMIN}, "worker": {READ, WORK}, "reader": {READ}}
bearer = HTTPBearer(auto_error=False, description="an API token (RUNG_TOKENS)")


@dataclass(frozen=True)
class Token:
    role: str
    digest: bytes  # sha256 of the token: equal lengths make the comparison constant-time


def parse_tokens(spec: str | None) -> list[Token]:
    """`role:token,role:token` -> tokens; a clear error for anything else."""
    tokens = []
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        role, sep, secret = item.strip().partition(":")
        if not sep or role not in ROLES:
            raise ValueError(
                f"RUNG_TOKENS: {role!r} is not one of {', '.join(ROLES)} "
                "(expected role:token pairs separated by commas)"
            )
        if len(secret) < 8:
            raise ValueError(f"RUNG_TOKENS: the {role} token is shorter than 8 characters")
        tokens.append(Token(role, hashlib.sha256(secret.encode()).digest()))
    return tokens


def role_of(tokens: list[Token], presented: str) -> str | None:
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for token in tokens:  # no early exit: the time does not depend on which one matched
        if hmac.compare_digest(token.digest, digest):
            found = token.role
    return found


def require(permission: str) -> Callable[..., Awaitable[None]]:
    """A dependency that lets the call through only with a token that has `permission`."""

    async def check(  # async: FastAPI would run a plain function in the thread pool
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> None:
        tokens: list[Token] = request.app.state.tokens
        if not tokens:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("authorization: a bearer token is required")
        role = role_of(tokens, credentials.credentials)
        if role is None:
            raise Unauthorized("authorization: unknown token")
        if permission not in ROLES[role]:
            raise Forbidden(f"authorization: a {role} token cannot do this (needs {permission})")

    return check


def allowed(permission: str) -> list[params.Depends]:
    """Route dependencies that require `permission`."""
    return [Depends(require(permission))]
