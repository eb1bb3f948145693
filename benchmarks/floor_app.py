"""The floor: the least a FastAPI + SQLAlchemy ask/tell service can do. `ask` inserts one row,
`tell` updates it; no scheduling, no locking. Same stack, pool and server as Rung.

    python benchmarks/floor_app.py --port 8001   (database from FLOOR_DATABASE_URL)
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Float, Integer, String, create_engine, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


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
    engine = create_engine(
        url,
        pool_size=40,
        max_overflow=40,
        pool_use_lifo=True,  # as Rung's (service/db/session.py)
        connect_args={"check_same_thread": False} if url.startswith("sqlite") else {},
    )
    Base.metadata.create_all(engine)
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ask")
    def ask(body: Ask) -> dict[str, int]:
        with Session(engine) as session, session.begin():
            row = Row(worker_id=body.worker_id)
            session.add(row)
            session.flush()
            return {"id": row.id}

    @app.post("/tell/{trial_id}")
    def tell(trial_id: int, body: Tell) -> dict[str, int]:
        with Session(engine) as session, session.begin():
            session.execute(update(Row).where(Row.id == trial_id).values(score=body.score))
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
