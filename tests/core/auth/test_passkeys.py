"""core.auth.passkeys against assertions signed with a real P-256 key: what WebAuthn L2 §7.2
makes a relying party refuse (a challenge used twice or never given, another origin or RP id,
a counter that did not grow, a passkey of another account) and what it accepts. The browser
test (tests/authportal/test_passkeys_browser.py) does the same with Chromium's authenticator."""

import asyncio
import base64
import hashlib
import json
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from core.auth.passkeys import (
    PasskeyRefused,
    RelyingParty,
    authentication_options,
    registration_options,
    user_handle,
    verify_authentication,
)
from core.auth.signinstate import SqliteKV
from core.auth.users import Passkey, User, UsersFile

RP = RelyingParty("auth.example.com", "https://auth.example.com")
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Authenticator:
    """A credential: its key, the passkey users.yaml would hold for it, and its counter."""

    def __init__(self, credential_id: bytes = b"credential-0001-alice") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        cose = {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32), -3: numbers.y.to_bytes(32)}
        self.id = b64url(credential_id)
        self.passkey = Passkey(id=self.id, public_key=b64url(cbor2.dumps(cose)), name="test")

    def assertion(
        self,
        challenge: str,
        count: int,
        *,
        origin: str = RP.origin,
        rp_id: str = RP.rp_id,
        flags: int = 0x05,  # user present, user verified
        handle: bytes | None = None,
    ) -> dict[str, Any]:
        client = json.dumps({"type": "webauthn.get", "challenge": challenge, "origin": origin})
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", count)
        signed = data + hashlib.sha256(client.encode()).digest()
        response = {
            "clientDataJSON": b64url(client.encode()),
            "authenticatorData": b64url(data),
            "signature": b64url(self.key.sign(signed, ec.ECDSA(hashes.SHA256()))),
        }
        if handle is not None:
            response["userHandle"] = b64url(handle)
        return {"id": self.id, "rawId": self.id, "type": "public-key", "response": response}


def users_with(*passkeys: tuple[str, Authenticator], disabled: str = "") -> UsersFile:
    accounts: dict[str, User] = {}
    for name, authenticator in passkeys:
        held = accounts[name].passkeys if name in accounts else ()
        accounts[name] = User(
            password=HASH, passkeys=(*held, authenticator.passkey), disabled=name == disabled
        )
    return UsersFile(users=accounts)


type Scenario = Callable[[SqliteKV], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        kv = SqliteKV(tmp_path / "state.db")
        try:
            await scenario(kv)
        finally:
            await kv.close()

    asyncio.run(main())


async def challenge(
    kv: SqliteKV, account: str | None = None, user: User | None = None
) -> tuple[str, str]:
    browser, options = await authentication_options(kv, RP, account, user)
    return browser, str(json.loads(options)["challenge"])


def test_a_good_assertion_passes_once_and_its_challenge_is_gone(tmp_path: Path) -> None:
    key = Authenticator()
    users = users_with(("alice", key))

    async def scenario(kv: SqliteKV) -> None:
        browser, nonce = await challenge(kv)
        signed = key.assertion(nonce, 1, handle=user_handle("alice"))
        verified = await verify_authentication(kv, RP, browser, users, signed)
        assert (verified.account, verified.user_verified) == ("alice", True)
        with pytest.raises(PasskeyRefused, match="no such ceremony"):  # replayed
            await verify_authentication(kv, RP, browser, users, signed)
        other, _ = await challenge(kv)  # a fresh challenge does not make the old answer good
        with pytest.raises(PasskeyRefused, match="challenge"):
            await verify_authentication(kv, RP, other, users, signed)
        with pytest.raises(PasskeyRefused, match="no ceremony"):
            await verify_authentication(kv, RP, None, users, key.assertion(nonce, 2))

    run(tmp_path, scenario)


def test_the_counter_must_grow_unless_the_authenticator_keeps_none(tmp_path: Path) -> None:
    key, counterless = Authenticator(), Authenticator(b"credential-0002-bob")
    users = users_with(("alice", key), ("bob", counterless))

    async def attempt(kv: SqliteKV, authenticator: Authenticator, count: int) -> None:
        browser, nonce = await challenge(kv)
        await verify_authentication(kv, RP, browser, users, authenticator.assertion(nonce, count))

    async def scenario(kv: SqliteKV) -> None:
        await attempt(kv, key, 5)
        for stale in (5, 4, 0):  # the same or lower: a clone of the key (§7.2 step 21)
            with pytest.raises(PasskeyRefused, match="sign count"):
                await attempt(kv, key, stale)
        await attempt(kv, key, 6)
        assert (await kv.get_many([f"passkey-count:{key.id}"])) == {f"passkey-count:{key.id}": "6"}
        for _ in range(2):  # zero both times: an authenticator without a counter
            await attempt(kv, counterless, 0)

    run(tmp_path, scenario)


def test_another_origin_rp_id_or_user_is_refused(tmp_path: Path) -> None:
    key, bobs = Authenticator(), Authenticator(b"credential-0002-bob")
    users = users_with(("alice", key), ("bob", bobs))

    async def refused(kv: SqliteKV, why: str, make: Callable[[str], dict[str, Any]]) -> None:
        browser, nonce = await challenge(kv)
        with pytest.raises(PasskeyRefused, match=why):
            await verify_authentication(kv, RP, browser, users, make(nonce))

    async def scenario(kv: SqliteKV) -> None:
        await refused(kv, "origin", lambda n: key.assertion(n, 1, origin="https://evil.example"))
        await refused(kv, "RP ID", lambda n: key.assertion(n, 1, rp_id="evil.example"))
        await refused(kv, "another user", lambda n: key.assertion(n, 1, handle=b"x" * 32))
        await refused(kv, "not present", lambda n: key.assertion(n, 1, flags=0x00))
        stranger = Authenticator(b"credential-9999-none")
        await refused(kv, "no account", lambda n: stranger.assertion(n, 1))
        # Signed by another key than the one registered for this credential id.
        forged = Authenticator(b"credential-0001-alice")
        await refused(kv, "signature", lambda n: forged.assertion(n, 1))
        # As the second factor of bob (after his password) alice's passkey is not accepted.
        browser, options = await authentication_options(kv, RP, "bob", users.users["bob"])
        allowed = [c["id"] for c in json.loads(options)["allowCredentials"]]
        assert allowed == [bobs.id]
        nonce = str(json.loads(options)["challenge"])
        with pytest.raises(PasskeyRefused, match="another account"):
            await verify_authentication(kv, RP, browser, users, key.assertion(nonce, 2))
        # A disabled account's passkey signs nobody in.
        browser, nonce = await challenge(kv)
        with pytest.raises(PasskeyRefused, match="disabled"):
            await verify_authentication(
                kv,
                RP,
                browser,
                users_with(("alice", key), disabled="alice"),
                key.assertion(nonce, 3),
            )

    run(tmp_path, scenario)


def test_a_registration_challenge_does_not_sign_anyone_in(tmp_path: Path) -> None:
    key = Authenticator()
    users = users_with(("alice", key))

    async def scenario(kv: SqliteKV) -> None:
        browser, options = await registration_options(kv, RP, "alice", users.users["alice"])
        created = json.loads(options)
        assert created["authenticatorSelection"]["residentKey"] == "required"
        assert created["authenticatorSelection"]["userVerification"] == "preferred"
        assert [c["id"] for c in created["excludeCredentials"]] == [key.id]
        with pytest.raises(PasskeyRefused, match="another kind"):
            await verify_authentication(
                kv, RP, browser, users, key.assertion(str(created["challenge"]), 1)
            )

    run(tmp_path, scenario)
