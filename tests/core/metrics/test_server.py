"""core.metrics.server on loopback, in this process: the three paths, HEAD, 404 and 405, the
bounded head, a Unix socket's mode, readiness from the process's callable, and a taken port."""

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from core.metrics.server import MAX_HEAD, MetricsServer, Ready
from core.settings import MetricsListen


async def ask(server: MetricsServer, request: bytes) -> bytes:
    listen = server.listen
    if listen.unix is not None:
        reader, writer = await asyncio.open_unix_connection(listen.unix)
    else:
        reader, writer = await asyncio.open_connection(listen.host, listen.port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()  # until the server closes: every answer is Connection: close
    writer.close()
    return answer


def free_listen() -> MetricsListen:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return MetricsListen(host="127.0.0.1", port=probe.getsockname()[1])


def registry_with_a_counter() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("warren_test_things", "Things.", registry=registry).inc(3)
    return registry


def test_paths_methods_and_bounds() -> None:
    async def run() -> None:
        ready = Ready(True)

        async def readiness() -> Ready:
            return ready

        server = MetricsServer(free_listen(), registry_with_a_counter(), readiness)
        assert await server.start()
        try:
            answer = await ask(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert f"Content-Type: {CONTENT_TYPE_LATEST}".encode() in head
            assert b"Connection: close" in head
            families = {f.name: f for f in text_string_to_metric_families(body.decode())}
            assert families["warren_test_things"].samples[0].value == 3

            answer = await ask(server, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert body == b""
            assert b"Content-Length: 0" not in head

            assert (await ask(server, b"GET /healthz HTTP/1.1\r\n\r\n")).endswith(b"\r\n\r\nok\n")
            assert (await ask(server, b"GET /readyz?x=1 HTTP/1.1\r\n\r\n")).startswith(
                b"HTTP/1.1 200 "
            )
            ready = Ready(False, "storage down")
            answer = await ask(server, b"GET /readyz HTTP/1.1\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert answer.endswith(b"storage down\n")

            assert (await ask(server, b"GET /other HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404 ")
            refused = await ask(server, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            assert refused.startswith(b"HTTP/1.1 405 ")
            assert b"Allow: GET, HEAD" in refused
            assert (await ask(server, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
            big = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n"
            assert (await ask(server, big)).startswith(b"HTTP/1.1 431 ")
        finally:
            await server.close()

    asyncio.run(run())


def test_a_failing_readiness_check_is_not_ready() -> None:
    async def run() -> None:
        async def broken() -> Ready:
            raise RuntimeError("boom")

        server = MetricsServer(free_listen(), CollectorRegistry(), broken)
        assert await server.start()
        try:
            answer = await ask(server, b"GET /readyz HTTP/1.1\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert b"boom" not in answer  # an error's text stays in the log
        finally:
            await server.close()

    asyncio.run(run())


def test_a_unix_socket_mode_0660_removed_at_close(tmp_path: Path) -> None:
    path = tmp_path / "metrics.sock"

    async def run() -> None:
        server = MetricsServer(MetricsListen(unix=path), registry_with_a_counter())
        assert await server.start()
        assert path.stat().st_mode & 0o777 == 0o660
        assert (await ask(server, b"GET /healthz HTTP/1.1\r\n\r\n")).endswith(b"ok\n")
        await server.close()
        assert not path.exists()
        # A socket left behind by a run that did not end cleanly is replaced.
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(path))
        stale.close()
        again = MetricsServer(MetricsListen(unix=path), CollectorRegistry())
        assert await again.start()
        await again.close()

    asyncio.run(run())


def test_a_taken_port_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            listen = MetricsListen(host="127.0.0.1", port=taken.getsockname()[1])
            server = MetricsServer(listen, CollectorRegistry())
            assert not await server.start()
            assert not server.serving
            await server.close()  # harmless

    with caplog.at_level(logging.WARNING, logger="warren.metrics"):
        asyncio.run(run())
    [record] = [r for r in caplog.records if r.name == "warren.metrics"]
    assert record.levelno == logging.WARNING
    assert "serving without metrics" in record.getMessage()
