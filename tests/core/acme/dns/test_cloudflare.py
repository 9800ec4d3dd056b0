"""The Cloudflare provider against a loopback server speaking the part of API v4 it uses
(tests.support.cloudflare_api)."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.acme.dns import DnsError, open_provider
from core.acme.dns.cloudflare import CloudflareOptions
from tests.support.cloudflare_api import CloudflareApi, running_cloudflare_api

TOKEN = "cf-test-token"


@pytest.fixture(scope="module")
def api() -> Iterator[CloudflareApi]:
    with running_cloudflare_api(TOKEN, ["example.test"]) as running:
        yield running


def options(api: CloudflareApi, token_file: Path) -> CloudflareOptions:
    return CloudflareOptions(provider="cloudflare", api_token_file=token_file, api_url=api.url)


def token_file(tmp_path: Path, token: str = TOKEN) -> Path:
    path = tmp_path / "cloudflare.token"
    path.write_text(token + "\n")
    return path


def test_a_record_is_made_in_the_zone_above_the_name_and_removed_by_its_handle(
    api: CloudflareApi, tmp_path: Path
) -> None:
    provider = open_provider(options(api, token_file(tmp_path)))

    async def run() -> None:
        handle = await provider.add_txt("_acme-challenge.a.b.example.test", "digest-1")
        live = api.records()["live"]
        assert [(r["name"], r["content"]) for r in live] == [
            ("_acme-challenge.a.b.example.test", "digest-1")
        ]
        await provider.remove_txt(handle)
        assert api.records()["live"] == []
        await provider.aclose()

    asyncio.run(run())


def test_a_name_in_no_zone_the_token_sees_is_an_error_that_says_so(
    api: CloudflareApi, tmp_path: Path
) -> None:
    provider = open_provider(options(api, token_file(tmp_path)))
    with pytest.raises(DnsError, match=r"no Cloudflare zone .* holds _acme-challenge\.other\.test"):
        asyncio.run(provider.add_txt("_acme-challenge.other.test", "x"))


def test_a_wrong_token_gets_cloudflares_own_words(api: CloudflareApi, tmp_path: Path) -> None:
    provider = open_provider(options(api, token_file(tmp_path, "wrong")))
    with pytest.raises(DnsError, match="HTTP 403 9109: Invalid access token"):
        asyncio.run(provider.add_txt("_acme-challenge.example.test", "x"))


def test_a_missing_or_empty_token_file_is_named(api: CloudflareApi, tmp_path: Path) -> None:
    missing = open_provider(options(api, tmp_path / "absent.token"))
    with pytest.raises(DnsError, match=r"api_token_file: .*absent.token: No such file"):
        asyncio.run(missing.add_txt("_acme-challenge.example.test", "x"))
    empty = open_provider(options(api, token_file(tmp_path, "")))
    with pytest.raises(DnsError, match="is empty"):
        asyncio.run(empty.add_txt("_acme-challenge.example.test", "x"))


def test_an_unreachable_api_is_an_error_naming_it(tmp_path: Path) -> None:
    from demo.processes import free_port

    url = f"http://127.0.0.1:{free_port()}/client/v4"  # nothing listens there
    provider = open_provider(
        CloudflareOptions(provider="cloudflare", api_token_file=token_file(tmp_path), api_url=url)
    )
    with pytest.raises(DnsError, match=f"Cloudflare API at {url}"):
        asyncio.run(provider.add_txt("_acme-challenge.example.test", "x"))


def test_the_token_never_travels_in_clear_text_beyond_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="clear text: use https"):
        CloudflareOptions(
            provider="cloudflare",
            api_token_file=tmp_path / "t",
            api_url="http://api.example.test/client/v4",
        )
    assert CloudflareOptions(provider="cloudflare", api_token_file=tmp_path / "t").api_url == (
        "https://api.cloudflare.com/client/v4"
    )
