"""The database layer's tests: a `Database` on each kind of database (tests/conftest.py)."""

import pytest

from service.db.transactions import Database


@pytest.fixture
def db(database_url):
    database = Database(database_url, pool_size=2)
    yield database
    database.dispose()
