"""`rung serve` and `rung db …`, added to the `rung` command through entry points."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from service.settings import Settings, safe_url


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
    from service.db.engine import make_engine
    from service.logs import configure_logging
    from service.protocol import bounded_http

    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v}
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. malformed RUNG_TOKENS
        print(f"rung serve: {exc}", file=sys.stderr)
        return 2
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
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        timeout_graceful_shutdown=30,
        http=bounded_http(settings.max_header_bytes, settings.header_timeout_seconds),
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
    from service.db.engine import make_engine

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


def register_demo(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="the server on embedded SQLite and Keras workers tuning a digits classifier",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--spec", default="rung.examples.digits", help="what the workers tune")
    parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    """Start `rung serve` on the embedded SQLite database, run workers against it until the
    study is done, print the best configuration, stop the server."""
    import os
    import socket
    import subprocess
    import time

    import httpx

    from rung.client import Client

    settings = Settings()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, RUNG_LOG_LEVEL="warning")
    # Several workers on one CPU: without this their thread pools fight (10x slower here).
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.workers)))
    command = [sys.executable, "-m", "rung.cli"]
    database = safe_url(settings.resolved_database_url())
    print(f"[demo] starting the server on {url} (database: {database})")
    server = subprocess.Popen([*command, "serve", "--port", str(port)], env=env)
    try:
        with Client(url) as client:
            client.sleep = lambda _: time.sleep(0.2)
            for _ in range(100):
                if server.poll() is not None:
                    print("[demo] the server did not start", file=sys.stderr)
                    return 1
                try:
                    httpx.get(f"{url}/readyz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            study = f"digits-demo-{time.strftime('%Y%m%d-%H%M%S')}"
            print(f"[demo] {args.workers} workers tune study {study!r}; watch it at {url}/ui")
            workers = [
                subprocess.Popen(
                    [
                        *command,
                        "worker",
                        args.spec,
                        "--server",
                        url,
                        "--study",
                        study,
                        "--worker-id",
                        f"worker-{i}",
                    ],  # no shared directory: checkpoints travel through the server
                    env=env,
                )
                for i in range(args.workers)
            ]
            codes = [worker.wait() for worker in workers]
            if any(codes):
                print(f"[demo] a worker failed: exit codes {codes}", file=sys.stderr)
                return 1
            studies = [s for s in client.list_studies(limit=1000).items if s.name == study]
            best = client.best(studies[0].id, 1)[0]
            shown = client.get_study(studies[0].id)
            assert shown.progress is not None
            print(
                f"[demo] study {study!r}: {shown.status}, "
                f"{shown.progress.trials.completed} trials completed"
            )
            print(
                f"[demo] best trial {best.id}: val_accuracy {best.score:.4f} after "
                f"{best.epochs} epochs"
            )
            print(f"[demo] best configuration: {best.hyperparameters}")
            return 0
    finally:
        server.terminate()
        server.wait(timeout=30)
