"""Relay tokens (core.cluster.relay): node B signs, node A verifies with the key B published in a
real Redis (core.cluster.keys), for one request, once, only from a live node, only to A."""

import asyncio
import time
from pathlib import Path

import jwt
import pytest

from core.auth.signing import KeyRing
from core.auth.tokens import TokenError, mint
from core.cluster.keys import PublishedKeys, publish_keys
from core.cluster.registry import remove
from core.cluster.relay import Carried, Replays, mint_relay, verify_relay
from core.storage import redis_client

CARRIED = Carried("GET", "app.example.com", "/reports?q=1", "app", "home", "127.0.0.1", 3000)
DAY = 86400.0


def ring(directory: Path) -> KeyRing:
    keys = KeyRing(directory)
    keys.ensure()
    return keys


def mirror_of(redis_url: str, published: dict[str, KeyRing], *, removed: str = "") -> PublishedKeys:
    """Node a's mirror of what the other nodes published (a real Redis in between)."""

    async def run() -> PublishedKeys:
        redis = redis_client(redis_url)
        await redis.flushdb()
        for name, keys in published.items():
            await publish_keys(redis, name, keys.jwks(), DAY)
        if removed:
            await remove(redis, removed, DAY)
        mirror = PublishedKeys(redis_url, "a")
        await mirror.refresh()
        await mirror.close()  # the keys read stay in memory
        await redis.aclose()
        return mirror

    return asyncio.run(run())


def check(
    token: str, mirror: PublishedKeys, *, carried: Carried = CARRIED, replays: Replays | None = None
) -> str:
    return verify_relay(
        token,
        receiver="a",
        keys=mirror,
        live={"a", "b", "c"},
        carried=carried,
        replays=replays or Replays(),
    )


def test_a_relay_token_opens_its_own_request_once(redis_url: str, tmp_path: Path) -> None:
    b = ring(tmp_path / "b")
    mirror = mirror_of(redis_url, {"b": b})
    token = mint_relay(b, sender="b", receiver="a", carried=CARRIED)
    replays = Replays()
    assert check(token, mirror, replays=replays) == "b"
    with pytest.raises(TokenError, match="already used"):
        check(token, mirror, replays=replays)


def test_bound_to_the_request_and_the_target(redis_url: str, tmp_path: Path) -> None:
    b = ring(tmp_path / "b")
    mirror = mirror_of(redis_url, {"b": b})
    token = mint_relay(b, sender="b", receiver="a", carried=CARRIED)
    for other in (
        CARRIED._replace(method="POST"),
        CARRIED._replace(host="admin.example.com"),
        CARRIED._replace(path="/reports?q=2"),
        CARRIED._replace(resource="admin"),
        CARRIED._replace(site="office"),
        CARRIED._replace(target_host="127.0.0.2"),
        CARRIED._replace(target_port=22),
    ):
        with pytest.raises(TokenError, match="another request or target"):
            check(token, mirror, carried=other)


def test_only_for_the_node_it_names_from_a_live_node(redis_url: str, tmp_path: Path) -> None:
    b, c = ring(tmp_path / "b"), ring(tmp_path / "c")
    mirror = mirror_of(redis_url, {"b": b, "c": c})
    with pytest.raises(TokenError, match="Audience"):
        check(mint_relay(b, sender="b", receiver="c", carried=CARRIED), mirror)
    dead = mint_relay(b, sender="b", receiver="a", carried=CARRIED)
    with pytest.raises(TokenError, match="live node"):
        verify_relay(
            dead, receiver="a", keys=mirror, live={"a"}, carried=CARRIED, replays=Replays()
        )
    # Signed by c's key while claiming to be b: the kid is not one b published.
    posing = mint_relay(c, sender="b", receiver="a", carried=CARRIED)
    with pytest.raises(TokenError, match="unknown signing key"):
        check(posing, mirror)
    # A's own key is not a relay key either: a token can only come from another node.
    a = ring(tmp_path / "a")
    with pytest.raises(TokenError, match="live node"):
        check(mint_relay(a, sender="a", receiver="a", carried=CARRIED), mirror)


def test_a_removed_node_opens_nothing(redis_url: str, tmp_path: Path) -> None:
    b = ring(tmp_path / "b")
    mirror = mirror_of(redis_url, {"b": b}, removed="b")
    with pytest.raises(TokenError, match="unknown signing key"):
        check(mint_relay(b, sender="b", receiver="a", carried=CARRIED), mirror)


def test_expired_long_lived_other_uses_and_forgeries_are_refused(
    redis_url: str, tmp_path: Path
) -> None:
    b = ring(tmp_path / "b")
    mirror = mirror_of(redis_url, {"b": b})
    claims = {"jti": "x", **CARRIED.as_claims()}
    old = mint(
        b, use="relay", issuer="b", audience="a", subject="home", lifetime=10,
        claims=claims, now=time.time() - 60,
    )  # fmt: skip
    with pytest.raises(TokenError, match="expired"):
        check(old, mirror)
    long = mint(
        b, use="relay", issuer="b", audience="a", subject="home", lifetime=60, claims=claims
    )
    with pytest.raises(TokenError, match="at most 10 s"):
        check(long, mirror)
    session = mint(b, use="session", issuer="b", audience="a", subject="home", lifetime=10)
    with pytest.raises(TokenError, match="'session' token"):
        check(session, mirror)
    good = mint_relay(b, sender="b", receiver="a", carried=CARRIED)
    head, body, signature = good.split(".")
    forged_body = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(body).replace(b"/reports?q=1", b"/admin??q=1")
    ).decode()
    with pytest.raises(TokenError, match="Signature"):
        check(f"{head}.{forged_body}.{signature}", mirror)
    for garbage in ("", "x", "a.b.c", "e30.e30."):
        with pytest.raises(TokenError):
            check(garbage, mirror)
