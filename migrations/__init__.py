"""Alembic revisions of Rung's schema (installed as the package `service.migrations`)."""
