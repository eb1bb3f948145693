"""The floor: the least a FastAPI + SQLAlchemy ask/tell service can do. `ask` inserts one row,
`tell` updates it; no scheduling, no locking. Same stack, pool and server as Rung, and at
its best: each request is one Core statement (`INSERT … RETURNING`, `UPDATE`) committed on
its own (autocommit: no BEGIN/COMMIT round trips), and SQLite runs with Rung's own settings
(WAL, `synchronous=NORMAL`, a busy timeout).

    python benchmarks/floor_app.py --port 8001   (database from FLOOR_DATABASE_URL)
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Float, Integer, String, create_engine, event, insert, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "floor_trials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(200))
    score: Mapped[float | None] = mapped_column(Float)


class Ask(BaseModel):
    worker_id: str


class Tell(BaseModel):
    score: float


def create_app(url: str) -> FastAPI:
    sqlite = url.startswith("sqlite")
    engine = create_engine(
        url,
        pool_size=40,
        max_overflow=40,
        pool_use_lifo=True,  # as Rung's (service/db/engine.py)
        isolation_level="AUTOCOMMIT",
        connect_args={"check_same_thread": False} if sqlite else {},
    )
    if sqlite:

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # Rung's settings (service/db/engine.py)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    Base.metadata.create_all(engine)
    rows = Row.__table__
    ask_statement = insert(rows).returning(rows.c.id)
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ask")
    def ask(body: Ask) -> dict[str, int]:
        with engine.connect() as conn:
            return {"id": conn.execute(ask_statement, {"worker_id": body.worker_id}).scalar_one()}

    @app.post("/tell/{trial_id}")
    def tell(trial_id: int, body: Tell) -> dict[str, int]:
        with engine.connect() as conn:
            conn.execute(update(rows).where(rows.c.id == trial_id).values(score=body.score))
        return {"id": trial_id}

    return app


if __name__ == "__main__":
    args = argparse.ArgumentParser()
    args.add_argument("--port", type=int, default=8001)
    port = args.parse_args().port
    uvicorn.run(
        create_app(os.environ["FLOOR_DATABASE_URL"]),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
