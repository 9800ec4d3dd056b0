"""One certificate end to end (core.acme.issue) against Pebble without a gateway: the
challenges are withdrawn after the CA looked, whether it validated them or not."""

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.acme.client import OrderFailed, new_key
from core.acme.dns.cloudflare import CloudflareOptions
from core.acme.issue import in_thread, issue
from core.acme.plan import Wanted
from core.auth.signinstate import SqliteKV
from core.settings import Acme
from demo import processes
from tests.support.cloudflare_api import CloudflareApi, running_cloudflare_api
from tests.support.pebble import Pebble, require_pebble

TOKEN = "cf-test-token"


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    require_pebble()
    running = Pebble(tmp_path_factory.mktemp("pebble"), http_port=processes.free_port()).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api() -> Iterator[CloudflareApi]:
    # Not connected to Pebble's DNS: the records are made and removed, but Pebble never sees them.
    with running_cloudflare_api(TOKEN, ["warren.test"]) as running:
        yield running


def settings(pebble: Pebble, api: CloudflareApi, token_file: Path) -> Acme:
    dns = CloudflareOptions(
        provider="cloudflare", api_token_file=token_file, api_url=api.url, propagation_delay=0
    )
    return Acme(directory=pebble.url, ca_bundle=pebble.ca_bundle, dns=dns)


def token(tmp_path: Path, value: str = TOKEN) -> Path:
    (tmp_path / "cf.token").write_text(value)
    return tmp_path / "cf.token"


def test_in_thread_hands_back_the_result_or_the_error_from_a_daemon_thread() -> None:
    async def run() -> None:
        assert await in_thread(lambda: threading.current_thread().daemon)
        with pytest.raises(ZeroDivisionError):
            await in_thread(lambda: 1 // 0)

    asyncio.run(run())


def test_a_dns_record_is_removed_after_a_validation_that_failed(
    pebble: Pebble, api: CloudflareApi, tmp_path: Path
) -> None:
    before = len(api.records()["history"])
    kv = SqliteKV(tmp_path / "signin.sqlite3")
    wanted = Wanted(("*.gone.warren.test",), "dns-01")
    with pytest.raises(OrderFailed, match=r"^\*\.gone\.warren\.test: dns-01: urn:ietf:params"):
        asyncio.run(issue(settings(pebble, api, token(tmp_path)), kv, new_key(), wanted))
    records = api.records()
    assert records["live"] == []
    assert [r["action"] for r in records["history"][before:]] == ["create", "delete"]


def test_a_provider_that_refuses_fails_the_order_with_its_words(
    pebble: Pebble, api: CloudflareApi, tmp_path: Path
) -> None:
    kv = SqliteKV(tmp_path / "signin.sqlite3")
    wanted = Wanted(("*.refused.warren.test",), "dns-01")
    acme = settings(pebble, api, token(tmp_path, "wrong"))
    with pytest.raises(OrderFailed, match=r"refused\.warren\.test: dns-01: .*9109: Invalid access"):
        asyncio.run(issue(acme, kv, new_key(), wanted))


def test_http_01_tokens_are_withdrawn_after_a_validation_that_failed(
    pebble: Pebble, api: CloudflareApi, tmp_path: Path
) -> None:
    kv = SqliteKV(tmp_path / "signin.sqlite3")
    wanted = Wanted(("unreached.warren.test",), "http-01")
    with pytest.raises(OrderFailed, match="urn:ietf:params:acme:error:connection"):
        asyncio.run(issue(settings(pebble, api, token(tmp_path)), kv, new_key(), wanted))
    assert asyncio.run(kv.scan("acme:")) == {}
