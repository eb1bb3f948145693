"""Alembic, driven from code: apply the revisions in migrations/ and tell whether a
database's schema is the one this server needs."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

# A PostgreSQL session advisory lock that migrations hold (migrations/env.py): replicas
# starting at once migrate in turn, the later ones finding the schema already at head.
MIGRATION_LOCK = 727274


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("service.migrations")))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["url"] = url  # not a main option: configparser would mangle '%'
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def revision(url: str, message: str) -> None:
    """Write a new revision from the difference between the models and the database."""
    command.revision(alembic_config(url), message=message, autogenerate=True)


def check(url: str) -> None:
    """Raise if the models and the migrated schema differ (`alembic check`)."""
    command.check(alembic_config(url))


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    empty: bool  # no tables at all: a new database

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def message(self) -> str:
        if self.up_to_date:
            return f"database schema is at revision {self.head}"
        if self.empty:
            return "the database has no Rung schema yet: run `rung db upgrade`"
        return (
            f"the database schema is at revision {self.current or 'none'}, this server needs "
            f"{self.head}: run `rung db upgrade` (with the same RUNG_DATABASE_URL)"
        )


def schema_status(engine: Engine) -> SchemaStatus:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        empty = not inspect(connection).get_table_names()
    return SchemaStatus(current=current, head=head_revision(), empty=empty)
