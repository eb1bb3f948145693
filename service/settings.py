"""Server settings, read from `RUNG_*` environment variables (pydantic-settings)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNG_", extra="ignore")

    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: an SQLite file in data_dir"
    )
    data_dir: Path = Field(Path("rung-data"), description="where the embedded database lives")
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_format: str = Field("text", pattern="^(text|json)$", description="text or json lines")
    tokens: str | None = Field(
        None,
        description="API tokens as role:token pairs, comma-separated; roles: admin, worker, "
        "reader. Unset: no authorization (embedded, local use).",
        repr=False,
    )
    allowed_hosts: str | None = Field(
        None,
        description="Host names the server answers to, comma-separated (`*.example.com`, "
        "`*`); unset: any with tokens, else only local names and the address it binds",
    )
    db_pool_size: int = Field(20, ge=1, le=1000)
    wait_seconds: float = Field(
        1.0, gt=0, description="retry-after hint of a 'wait' answer (workers add jitter)"
    )
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="largest request head (request line and headers)"
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="time a client has to send a request's head"
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest JSON body accepted")
    checkpoint_store: str | None = Field(
        None, description="fsspec URL of the checkpoint store; default: data_dir/checkpoints"
    )
    max_checkpoint_bytes: int = Field(4 << 30, ge=1, description="largest checkpoint accepted")
    checkpoint_gc_seconds: float = Field(
        5.0, gt=0, description="how often checkpoints no longer needed are deleted"
    )
    checkpoint_orphan_seconds: float = Field(
        3600.0,
        gt=0,
        description="files in the checkpoint store that no checkpoint points to (a crash's "
        "debris) are deleted once this old; the sweep runs at start and this often",
    )

    def resolved_checkpoint_store(self) -> str:
        return self.checkpoint_store or str((self.data_dir / "checkpoints").resolve())

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rung.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")


_SECRET_PARAMETER = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def safe_url(url: str) -> str:
    """A database URL fit for logs and errors: its password, and the values of query
    parameters that may hold secrets (`?password=…`, `sslpassword`, …), shown as ***."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    hidden = {name: "***" for name in parsed.query if _SECRET_PARAMETER.search(name)}
    if hidden:
        parsed = parsed.update_query_dict(hidden)
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
