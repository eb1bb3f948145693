"""Alembic revisions against real databases: upgrade from empty, no drift, downgrade; and a
server that faces an outdated schema says so."""

import pytest
from sqlalchemy import create_engine, inspect

from service.app import create_app
from service.db import migrate
from service.errors import SchemaOutdated
from service.settings import Settings


def tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_check_downgrade(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url)
    assert {"studies", "brackets", "trials", "trial_metrics", "alembic_version"} <= tables(url)
    migrate.check(url)  # the models and the migrations agree: no drift
    engine = create_engine(url)
    status = migrate.schema_status(engine)
    engine.dispose()
    assert status.up_to_date and status.current == migrate.head_revision()
    migrate.downgrade(url, "base")
    assert tables(url) <= {"alembic_version"}
    migrate.upgrade(url)  # and up again
    assert "trials" in tables(url)


def test_a_server_facing_an_empty_or_outdated_schema_says_so(empty_database_url):
    from fastapi.testclient import TestClient

    app = create_app(Settings(database_url=empty_database_url))
    with (
        pytest.raises(SchemaOutdated, match="no Rung schema yet: run `rung db upgrade`"),
        TestClient(app),
    ):
        pass
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")
    engine = create_engine(empty_database_url)
    status = migrate.schema_status(engine)
    engine.dispose()
    assert not status.up_to_date
    assert "run `rung db upgrade`" in status.message()
