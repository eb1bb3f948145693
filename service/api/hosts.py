"""The Host names the server answers to (`RUNG_ALLOWED_HOSTS`). A server without tokens
trusts every caller that reaches it, so by default it answers only to local names: a web
page on another site cannot then reach it through DNS rebinding. With tokens, any Host is
accepted unless the setting says otherwise."""

from __future__ import annotations

from typing import Any

from .errors import send_error

LOCAL = ("localhost", "127.0.0.1", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def allowed_hosts(setting: str | None, *, has_tokens: bool, bind_host: str) -> tuple[str, ...]:
    """The patterns allowed: the setting's (comma-separated names, `*.domain` or `*`), or
    the default (`*` with tokens; else the local names and the address the server binds)."""
    if setting is not None:
        return tuple(name.strip().lower() for name in setting.split(",") if name.strip())
    if has_tokens:
        return ("*",)
    return LOCAL + (() if bind_host in ANY_ADDRESS else (bind_host.lower(),))


def host_name(header: str) -> str:
    """The Host header without its port (`[::1]:8000` -> `::1`)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class AllowedHosts:
    """Refuse a request whose Host is not allowed with 400 (before any other work)."""

    def __init__(self, app: Any, *, patterns: tuple[str, ...]):
        self.app, self.patterns = app, patterns

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.patterns:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"host"), b"")
        name = host_name(header.decode("latin-1"))
        if matches(name, self.patterns):
            await self.app(scope, receive, send)
            return
        await send_error(
            send,
            400,
            "host_not_allowed",
            f"host: {name[:100]!r} is not one of the names this server answers to; add it "
            "to RUNG_ALLOWED_HOSTS (a server without RUNG_TOKENS answers only to local names)",
            {"allowed": list(self.patterns)},
        )
