"""E-mail codes (core.auth.emailcodes) over a real sign-in state (SQLite, and Redis): who may
ask, single use, a limit of wrong tries, replacement by a newer code, the browser binding,
expiry, the resend limit, and that only a digest is stored."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from core.auth import emailcodes
from core.auth.emailcodes import EmailCodes, Redeemed, may_ask, normalized, readable
from core.auth.signinstate import KeyValue, RedisKV, SqliteKV
from core.policy.model import ResourceAuth

ADDRESS = "ann@example.com"
BROWSER = "browser-secret"


@pytest.fixture(params=["sqlite", "redis"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValue]:
    if request.param == "sqlite":
        yield SqliteKV(tmp_path / "signin.sqlite3")
        return
    url = request.getfixturevalue("redis_url")
    yield RedisKV(url)  # its connections belong to the test's event loop

    async def forget() -> None:  # one Redis serves every test: leave nothing for the next
        store = RedisKV(url)
        for prefix in (emailcodes.CODE_PREFIX, emailcodes.SENT_PREFIX):
            for key in await store.scan(prefix):
                await store.take(key)
        await store.close()

    asyncio.run(forget())


def run[T](scenario: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await scenario()

    return asyncio.run(main())


def test_addresses_are_normalized_and_odd_ones_refused() -> None:
    assert normalized("  Ann@Example.COM ") == "ann@example.com"
    for bad in ("", "ann", "@example.com", "ann@", "a b@example.com", "ann@ex..ample.com",
                "ann@example.com\r\nBcc: x@y.z", "<ann@example.com>", "x" * 65 + "@example.com",
                "ann@" + "a" * 251 + ".com", "ann@-example.com"):  # fmt: skip
        assert normalized(bad) is None, bad


def test_who_may_ask_exact_address_or_domain_never_subdomain() -> None:
    auth = ResourceAuth(emails=("Ann@Example.com",), email_domains=("Partner.example",))
    assert may_ask("ann@example.com", auth)
    assert may_ask("bob@partner.example", auth)
    assert not may_ask("bob@example.com", auth)
    assert not may_ask("bob@sub.partner.example", auth)
    assert not may_ask("bob@notpartner.example", auth)
    assert not may_ask("ann@example.com", ResourceAuth(users=("ann",)))
    assert not may_ask("ann@example.com", None)


def test_codes_are_eight_digits_and_read_as_typed() -> None:
    codes = {emailcodes.new_code() for _ in range(50)}
    assert all(len(code) == 8 and code.isdigit() for code in codes)
    assert len(codes) > 45
    assert readable(" 1234 5678 ") == "12345678"
    assert readable("1234-5678") == "12345678"
    for bad in ("1234567", "123456789", "abcdefgh", "١٢٣٤٥٦٧٨", ""):
        assert readable(bad) == "", bad


def test_a_code_works_once(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> list[Redeemed]:
        code = await codes.issue("wiki", ADDRESS, BROWSER)
        return [
            await codes.redeem("wiki", ADDRESS, BROWSER, code),
            await codes.redeem("wiki", ADDRESS, BROWSER, code),
        ]

    assert run(scenario) == [Redeemed.RIGHT, Redeemed.NONE]


def test_two_redemptions_at_once_only_one_wins(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> list[Redeemed]:
        code = await codes.issue("wiki", ADDRESS, BROWSER)
        return list(
            await asyncio.gather(*(codes.redeem("wiki", ADDRESS, BROWSER, code) for _ in range(4)))
        )

    outcomes = run(scenario)
    assert outcomes.count(Redeemed.RIGHT) == 1
    assert set(outcomes) - {Redeemed.RIGHT} == {Redeemed.NONE}


def test_only_its_resource_address_and_browser(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> list[Redeemed]:
        code = await codes.issue("wiki", ADDRESS, BROWSER)
        return [
            await codes.redeem("app", ADDRESS, BROWSER, code),
            await codes.redeem("wiki", "bob@example.com", BROWSER, code),
            await codes.redeem("wiki", ADDRESS, "another-browser", code),
            await codes.redeem("wiki", ADDRESS, BROWSER, code),
        ]

    assert run(scenario) == [Redeemed.NONE, Redeemed.NONE, Redeemed.WRONG, Redeemed.RIGHT]


def test_five_wrong_tries_and_the_code_is_gone(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> list[Redeemed]:
        code = await codes.issue("wiki", ADDRESS, BROWSER)
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        tries = [await codes.redeem("wiki", ADDRESS, BROWSER, wrong) for _ in range(5)]
        return [*tries, await codes.redeem("wiki", ADDRESS, BROWSER, code)]

    assert run(scenario) == [Redeemed.WRONG] * 5 + [Redeemed.NONE]
    assert emailcodes.MAX_WRONG == 5


def test_a_new_code_replaces_the_old(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> list[Redeemed]:
        old = await codes.issue("wiki", ADDRESS, BROWSER)
        new = await codes.issue("wiki", ADDRESS, BROWSER)
        if old == new:  # one chance in 10^8
            return [Redeemed.WRONG, Redeemed.RIGHT]
        return [
            await codes.redeem("wiki", ADDRESS, BROWSER, old),
            await codes.redeem("wiki", ADDRESS, BROWSER, new),
        ]

    assert run(scenario) == [Redeemed.WRONG, Redeemed.RIGHT]


def test_a_code_expires(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> Redeemed:
        code = await codes.issue("wiki", ADDRESS, BROWSER)
        # As if its lifetime were over: the record says when it ends, whatever the store keeps.
        key = emailcodes.code_key("wiki", ADDRESS)
        record = json.loads((await kv.get_many([key]))[key])
        record["expires"] = time.time() - 1
        await kv.put(key, json.dumps(record), 600)
        return await codes.redeem("wiki", ADDRESS, BROWSER, code)

    assert run(scenario) is Redeemed.NONE


def test_withdrawn_code_is_gone(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> Redeemed:
        code = await codes.issue("wiki", ADDRESS, BROWSER)
        await codes.withdraw("wiki", ADDRESS)
        return await codes.redeem("wiki", ADDRESS, BROWSER, code)

    assert run(scenario) is Redeemed.NONE


def test_only_a_digest_is_stored(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> tuple[str, dict[str, str]]:
        code = await codes.issue("wiki", ADDRESS, BROWSER)
        return code, await kv.scan(emailcodes.CODE_PREFIX)

    code, stored = run(scenario)
    assert len(stored) == 1
    text = json.dumps(stored)
    assert code not in text
    assert ADDRESS not in text
    assert BROWSER not in text


def test_one_mail_per_address_per_minute(kv: KeyValue) -> None:
    codes = EmailCodes(kv, 600)

    async def scenario() -> list[bool]:
        first = await codes.may_send(ADDRESS)
        second = await codes.may_send(ADDRESS)
        other = await codes.may_send("bob@example.com")
        await codes.unclaim(ADDRESS)  # the mail was not sent after all
        return [first, second, other, await codes.may_send(ADDRESS)]

    assert run(scenario) == [True, False, True, True]
    assert emailcodes.RESEND_SECONDS == 60
