"""A request's head (request line and headers) is bounded in size and in time on a real
`rung serve`: a 16 MiB header is refused with 431 without being buffered, a head sent a byte
at a time, or never sent, does not hold a connection open, and ordinary keep-alive requests
are unaffected."""

import contextlib
import json
import socket
import threading
import time

import httpx

from tests.servers import running_server


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def answer(sock: socket.socket) -> tuple[str, dict]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), json.loads(body)


def test_a_16_mib_header_is_refused_without_being_read_whole(database_url, tmp_path):
    env = {"RUNG_DATA_DIR": str(tmp_path / "data")}
    with running_server(database_url, tmp_path, env=env) as server:
        before = rss_kib(server.process.pid)
        sock = socket.create_connection(("127.0.0.1", server.port))
        big = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (16 << 20)

        def send():
            with contextlib.suppress(OSError):  # the server closes it part way: the point
                sock.sendall(big + b"\r\n\r\n")

        sender = threading.Thread(target=send)
        sender.start()
        status, body = answer(sock)
        sender.join()
        sock.close()
        assert status == "HTTP/1.1 431 Request Header Fields Too Large"
        assert body["error"]["code"] == "too_large"
        assert "65536 bytes" in body["error"]["message"]
        assert rss_kib(server.process.pid) - before < 8 * 1024  # not buffered whole
        with httpx.Client(base_url=server.url) as http:  # the server serves on
            for _ in range(3):  # on one keep-alive connection
                assert http.get("/v1/studies").status_code == 200


def test_a_slow_or_silent_head_does_not_hold_a_connection(database_url, tmp_path):
    env = {"RUNG_DATA_DIR": str(tmp_path / "data"), "RUNG_HEADER_TIMEOUT_SECONDS": "1"}
    with running_server(database_url, tmp_path, env=env) as server:
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.settimeout(10)
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        try:
            for i in range(20):  # a header line every 0.2 s, never the end of the head
                slow.sendall(f"X-Slow-{i}: 1\r\n".encode())
                time.sleep(0.2)
        except OSError:
            pass  # closed by the server
        status, body = answer(slow)
        slow.close()
        assert status == "HTTP/1.1 408 Request Timeout"
        assert "within 1.0 seconds" in body["error"]["message"]
        assert time.monotonic() - started < 3

        silent = socket.create_connection(("127.0.0.1", server.port))
        silent.settimeout(10)
        started = time.monotonic()
        assert silent.recv(100) == b""  # closed, with nothing to answer
        assert time.monotonic() - started < 3
        silent.close()
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/v1/studies").status_code == 200
            time.sleep(1.5)  # idle between requests longer than the head timeout: fine
            assert http.get("/v1/studies").status_code == 200
