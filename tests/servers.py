"""Real `rung serve` processes for end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One `rung serve` process; can be killed and started again on the same port."""

    def __init__(
        self,
        database_url: str,
        *,
        log_path: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ):
        self.database_url, self.log_path = database_url, log_path
        self.port = port or free_port()
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """An Authorization header with the first of RUNG_TOKENS, if the server has tokens."""
        for pair in self.env.get("RUNG_TOKENS", "").split(","):
            token = pair.partition(":")[2]
            if token:
                return {"Authorization": f"Bearer {token}"}
        return {}

    def start(self, *, timeout: float = 30.0) -> Server:
        env = dict(
            os.environ,
            RUNG_DATABASE_URL=self.database_url,
            RUNG_WAIT_SECONDS="0.05",
            RUNG_LOG_LEVEL="warning",
        )
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rung.cli", "serve", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rung serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                if (
                    httpx.get(self.url + "/readyz", headers=self.headers, timeout=1).status_code
                    == 200
                ):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"rung serve did not become ready: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight requests are cut."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running_server(database_url: str, tmp_path: Path, **kw) -> Iterator[Server]:
    server = Server(database_url, log_path=tmp_path / f"server-{time.monotonic_ns()}.log", **kw)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(condition, what, deadline_s=10.0):
    """Poll `condition` until it holds; fail naming `what` after `deadline_s` seconds."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {deadline_s} s for {what}")
        time.sleep(0.02)
