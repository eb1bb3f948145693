"""`rung serve` and `rung db …`, added to the `rung` command through entry points."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from service.settings import Settings


def register_serve(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the Rung server (uvicorn)")
    parser.add_argument("--host", help="address to bind (default: RUNG_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: RUNG_PORT or 8000)")
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="apply database migrations first (a new embedded SQLite file is always set up)",
    )
    parser.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.db import migrate
    from service.db.session import make_engine
    from service.logs import configure_logging

    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v}
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    log = logging.getLogger("rung")
    url = settings.resolved_database_url()
    engine = make_engine(url, pool_size=1)
    try:
        status = migrate.schema_status(engine)
    finally:
        engine.dispose()
    if not status.up_to_date and (args.migrate or (status.empty and settings.is_sqlite)):
        log.info("applying database migrations up to %s", status.head)
        migrate.upgrade(url)
    elif not status.up_to_date:
        print(f"rung serve: {status.message()}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    return 0


def register_db(commands: Any) -> None:
    parser = commands.add_parser("db", help="manage the database schema (Alembic)")
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="apply migrations (default: to the newest)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = actions.add_parser("downgrade", help="revert migrations down to REVISION")
    downgrade.add_argument("revision")
    actions.add_parser("current", help="print the schema's revision and whether it is current")
    actions.add_parser("check", help="fail if the models and the migrations differ")
    revision = actions.add_parser("revision", help="write a new revision (autogenerate)")
    revision.add_argument("-m", "--message", required=True)
    parser.set_defaults(func=db)


def db(args: argparse.Namespace) -> int:
    from service.db import migrate
    from service.db.session import make_engine

    url = Settings().resolved_database_url()
    if args.db_command == "upgrade":
        migrate.upgrade(url, args.revision)
    elif args.db_command == "downgrade":
        migrate.downgrade(url, args.revision)
    elif args.db_command == "check":
        migrate.check(url)
        print("the migrations match the models")
    elif args.db_command == "revision":
        migrate.revision(url, args.message)
    engine = make_engine(url, pool_size=1)
    try:
        status = migrate.schema_status(engine)
    finally:
        engine.dispose()
    print(status.message())
    return 0 if status.up_to_date or args.db_command == "downgrade" else 1
