"""The FastAPI application, built by `create_app(settings)`; nothing happens at import time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service.api import checkpoints, errors, health, pages, studies, trials
from service.api.auth import parse_tokens
from service.api.hosts import AllowedHosts, allowed_hosts
from service.api.limits import BodySizeLimit
from service.checkpoints import CheckpointStore
from service.db import migrate
from service.db.transactions import Database
from service.errors import SchemaOutdated, Unavailable
from service.metrics import Metrics, RequestTimer
from service.settings import Settings, safe_url
from service.usecases import checkpoints as checkpoint_usecases
from service.usecases.context import Context
from service.usecases.studies import trials_by_status

log = logging.getLogger("rung")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    tokens = parse_tokens(settings.tokens)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url(), pool_size=settings.db_pool_size)
        status = migrate.schema_status(db.engine)
        if not status.up_to_date:
            db.dispose()
            raise SchemaOutdated(status.message())
        store = CheckpointStore(settings.resolved_checkpoint_store())
        ctx = app.state.ctx = Context(db=db, store=store, wait_seconds=settings.wait_seconds)
        await run_in_threadpool(_sweep, ctx, settings.checkpoint_orphan_seconds)
        log.info(
            "Rung is serving %s (%s)", safe_url(settings.resolved_database_url()), status.message()
        )
        if not tokens:
            log.warning(
                "no API tokens are set: every caller has full access "
                "(set RUNG_TOKENS to require them)"
            )
        collector = asyncio.create_task(_tidy_checkpoints(ctx, settings))
        try:
            yield
        finally:
            collector.cancel()
            app.state.ctx = None
            db.dispose()

    app = FastAPI(
        title="Rung",
        version="1",
        summary="Keras Tuner's Hyperband as a service: ask for a trial, tell its result.",
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect would name the caller's Host back to it
        docs_url=None,  # served by api.pages from installed files, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.ctx = None
    app.state.metrics = Metrics(lambda: trials_by_status(app.state.ctx) if app.state.ctx else None)
    errors.install(app)
    app.include_router(trials.router)  # first: routes are matched in order, workers call these
    app.include_router(studies.router)
    app.include_router(checkpoints.router)
    app.include_router(health.router)
    pages.install(app)
    app.add_middleware(RequestTimer, metrics=app.state.metrics)
    # checkpoint uploads have their own, larger limit (RUNG_MAX_CHECKPOINT_BYTES)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, exempt=("/checkpoint",))
    hosts = allowed_hosts(settings.allowed_hosts, has_tokens=bool(tokens), bind_host=settings.host)
    app.add_middleware(AllowedHosts, patterns=hosts)  # last added: runs first
    _document_only_declared_errors(app)
    return app


def _document_only_declared_errors(app: FastAPI) -> None:
    """FastAPI lists a 422 of its own on every route with a parameter, even where no input
    can be invalid (a path's string id). Each route lists the errors it can answer
    (`api.deps.errors`, our 422 an ErrorResponse): FastAPI's is taken out of the document."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = make()
            for operations in document["paths"].values():
                for operation in operations.values():
                    answer = operation["responses"].get("422", {})
                    if "HTTPValidationError" in str(answer):
                        del operation["responses"]["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                document["components"]["schemas"].pop(name, None)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _tidy_checkpoints(ctx: Context, settings: Settings) -> None:
    """Delete the checkpoints no study needs any more every `checkpoint_gc_seconds`, and
    the files nothing references every `checkpoint_orphan_seconds`."""
    paused = False  # while the database or the store fails, one line says so
    last_sweep = time.monotonic()
    while True:
        await asyncio.sleep(settings.checkpoint_gc_seconds)
        try:
            collected = await run_in_threadpool(checkpoint_usecases.collect, ctx)
            if collected:
                log.info("deleted %d checkpoint(s) no longer needed", collected)
            if time.monotonic() - last_sweep >= settings.checkpoint_orphan_seconds:
                last_sweep = time.monotonic()
                await run_in_threadpool(_sweep, ctx, settings.checkpoint_orphan_seconds)
            paused = False
        except Unavailable as exc:
            if not paused:
                log.warning("checkpoint collection is paused: %s", exc.message)
            paused = True
        except Exception:  # the next round tries again; never take the server down
            log.exception("checkpoint collection failed")


def _sweep(ctx: Context, older_than_s: float) -> None:
    swept = checkpoint_usecases.sweep(ctx, older_than_s)
    if swept:
        log.warning("deleted %d file(s) in the checkpoint store that nothing referenced", swept)
