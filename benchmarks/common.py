"""What the benchmarks share: databases, server processes, load loops and statistics.

Every benchmark measures side by side in one run and prints ratios, because the machine is
shared and noisy. `--smoke` runs each one for a few seconds (CI does that); results then are
not meaningful, only that the benchmark still works.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get(
    "RUNG_BENCH_POSTGRES_URL",
    os.environ.get("RUNG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="a few seconds, to check it runs")
    p.add_argument(
        "--databases", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite"
    )
    return p


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A new, empty database of `kind`, dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"rung_bench_{uuid.uuid4().hex[:10]}"
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


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    url: str

    def peak_rss_mib(self) -> float:
        """The process's peak resident memory so far (Linux VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def serve(
    command: list[str], env: dict[str, str], *, ready: str = "/healthz", startup_s: float = 30
) -> Iterator[Process]:
    port = free_port()
    environment = dict(os.environ, **env)
    log_path = Path(tempfile.mkstemp(prefix="bench-server-", suffix=".log")[1])
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {startup_s} s: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url + ready, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Process(process, url)
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def rung_server(
    database_url: str, *, prefix: tuple[str, ...] = (), startup_s: float = 30, **env: str
) -> Iterator[Process]:
    """`rung serve` on a database that gets its schema first; `prefix`: a command that runs
    it (valgrind)."""
    from service.db import migrate

    migrate.upgrade(database_url)
    settings = {
        "RUNG_DATABASE_URL": database_url,
        "RUNG_LOG_LEVEL": "warning",
        "RUNG_DB_POOL_SIZE": "40",
        **env,
    }
    command = [*prefix, sys.executable, "-m", "rung.cli", "serve"]
    with serve(command, settings, ready="/readyz", startup_s=startup_s) as p:
        yield p


@dataclass
class Latencies:
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def extend(self, other: Latencies) -> None:
        for name, values in other.samples.items():
            self.samples.setdefault(name, []).extend(values)

    def percentile(self, name: str, q: float) -> float:
        values = sorted(self.samples.get(name, []))
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    def p50(self, name: str) -> float:
        return self.percentile(name, 0.50)

    def p99(self, name: str) -> float:
        return self.percentile(name, 0.99)


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads JSON: the load loops'
    client. httpx spent about 1.3 ms of CPU per request with 8 connections and 3.3–3.7 ms
    with 32, so that its one load-generating process saturated a core and capped every
    server it drove; this spends about 0.07 ms. Answers must carry a Content-Length
    (uvicorn's do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> Connection:
        parsed = httpx.URL(url)
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        return cls(reader, writer, f"{parsed.host}:{parsed.port}")

    async def post(self, path: str, body: object) -> Any:
        """The answer's JSON body; an error answer raises."""
        data = json.dumps(body).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines[1:]
            if line.lower().startswith("content-length:")
        )
        status, answer = int(lines[0].split(" ", 2)[1]), await self.reader.readexactly(length)
        if status >= 400:
            raise RuntimeError(f"POST {path} answered {status}: {answer[:500]!r}")
        return json.loads(answer)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def run_clients(
    workers: int, seconds: float, loop: Callable[[int, float, Latencies], Awaitable[int]]
) -> tuple[float, Latencies]:
    """Run `loop(worker, deadline, latencies)` for `workers` concurrent tasks; returns
    completed pairs per second and the latencies."""
    latencies = Latencies()
    started = time.perf_counter()
    deadline = started + seconds
    done = await asyncio.gather(*(loop(i, deadline, latencies) for i in range(workers)))
    return sum(done) / (time.perf_counter() - started), latencies


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
