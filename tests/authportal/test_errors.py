"""authportal.errors: a storage failure in any handler is Warren's 503 page, HTML or JSON as
asked, behind the same security headers as every portal page; other errors are not its business."""

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from limits.errors import StorageError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from authportal.app import security_headers
from authportal.errors import storage_down
from core.storagefailure import StorageUnavailable

FAILURES = [
    StorageUnavailable("storage redis://127.0.0.1:6379/0: ConnectionError: refused"),
    RedisConnectionError("Error 111 connecting"),
    RedisTimeoutError("Timeout reading from socket"),
    StorageError(RedisConnectionError("wrapped by limits")),
]


def _answer(error: Exception, accept: str) -> tuple[int, dict[str, str], str]:
    async def failing(request: web.Request) -> web.Response:
        raise error

    async def run() -> tuple[int, dict[str, str], str]:
        app = web.Application(middlewares=[security_headers, storage_down])
        app.router.add_get("/", failing)
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/", headers={"Accept": accept})
            return response.status, dict(response.headers), await response.text()

    return asyncio.run(run())


@pytest.mark.parametrize("error", FAILURES, ids=lambda e: type(e).__name__)
def test_a_storage_failure_is_warrens_503_page(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "warren.portal")
    status, headers, body = _answer(error, "text/html,application/xhtml+xml")
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["Cache-Control"] == "no-store"
    assert "Protected by Warren" in body
    assert "Applications you are already signed in to keep working" in body
    assert "Traceback" not in caplog.text
    assert "-> 503 storage unavailable" in caplog.text


def test_api_clients_get_json() -> None:
    status, headers, body = _answer(StorageUnavailable("down"), "application/json")
    assert status == 503
    assert headers["Content-Type"].startswith("application/json")
    assert '"status": 503' in body
    assert '"reference": ' in body


@pytest.mark.parametrize("error", [ValueError("a bug"), PermissionError(13, "users.yaml")])
def test_other_errors_are_left_to_aiohttp(error: Exception) -> None:
    status, _headers, body = _answer(error, "text/html")
    assert status == 500
    assert "Protected by Warren" not in body
