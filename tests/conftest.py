"""Shared fixtures: databases with the real migrations applied, and the app in-process.

SQLite always runs. PostgreSQL runs when RUNG_TEST_POSTGRES_URL names a server (CI sets it
and RUNG_TEST_REQUIRE_POSTGRES=1, so that there a missing server fails instead of skipping).
Each test session gets its own PostgreSQL database, migrated once and truncated per test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("RUNG_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("RUNG_TEST_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
LOCAL = "http://localhost"  # a server without tokens answers only to local Host names
TABLES = ("checkpoints", "trial_metrics", "trials", "brackets", "studies")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if POSTGRES_URL:
        return
    if REQUIRE_POSTGRES:
        raise pytest.UsageError("RUNG_TEST_REQUIRE_POSTGRES=1 but RUNG_TEST_POSTGRES_URL is unset")
    skip = pytest.mark.skip(reason="PostgreSQL tests need RUNG_TEST_POSTGRES_URL (CI sets it)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def _migrate(url: str) -> None:
    from service.db import migrate

    migrate.upgrade(url)


@contextmanager
def new_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    assert POSTGRES_URL is not None
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"rung_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database for this test session, migrated to head."""
    with new_postgres_database() as url:
        _migrate(url)
        yield url


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    with new_postgres_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A new database of each kind with no schema at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("template") / "rung.db"
    _migrate(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A migrated, empty database of each kind, one per test."""
    if request.param == "sqlite":
        path = tmp_path / "rung.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def settings(database_url: str, tmp_path):
    from service.settings import Settings

    return Settings(database_url=database_url, data_dir=tmp_path, wait_seconds=0.05)


@pytest.fixture
def client(settings):
    """The app in-process (lifespan included) behind a TestClient."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(settings), base_url=LOCAL) as test_client:
        yield test_client
