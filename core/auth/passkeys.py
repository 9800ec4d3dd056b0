"""Passkeys (WebAuthn Level 2) over py_webauthn: registering one for a signed-in account, and
signing in with one, username-less (a discoverable credential finds its account by its id).

The relying party is the portal: its host is the RP id, its public_url the only origin accepted.
Each ceremony's challenge waits in the shared state under the hash of a random value only the
browser's cookie holds, and is taken once (a replayed response finds nothing). An assertion's
signature counter must grow (WebAuthn L2 §7.2 step 21): the last one seen is kept in the shared
state, since it changes on every use and users.yaml is written only by `warren user`."""

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from core.auth.signinstate import KeyValue
from core.auth.users import Passkey, User, UsersFile, UsersWriter

CHALLENGE_SECONDS = 300  # from the button to the authenticator's answer
COUNTER_SECONDS = 10 * 365 * 86400  # as long as the passkey may live
RP_NAME = "Warren"
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class PasskeyRefused(Exception):
    """The response was not accepted; the message says why (for the log, not the page)."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    rp_id: str  # the portal's host
    origin: str  # the portal's public_url, scheme://host[:port]


@dataclass(frozen=True, slots=True)
class Verified:
    """A passkey sign-in that passed: whose it was, and whether the person was verified (a PIN
    or biometric on the authenticator: then it counts as two factors)."""

    account: str
    credential_id: str
    user_verified: bool


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def user_handle(account: str) -> bytes:
    """The WebAuthn user.id for an account: stable (an authenticator replaces its own credential
    for the account instead of piling them up) and not the name itself (§14.6.1: no PII)."""
    return hashlib.sha256(b"warren passkey user:" + account.encode()).digest()


def _challenge_key(browser: str) -> str:
    return "passkey-challenge:" + hashlib.sha256(browser.encode()).hexdigest()


def _counter_key(credential_id: str) -> str:
    return f"passkey-count:{credential_id}"


async def _remember(kv: KeyValue, purpose: str, challenge: bytes, account: str | None) -> str:
    browser = secrets.token_urlsafe(32)
    stored = {"purpose": purpose, "challenge": b64url(challenge), "account": account}
    if not await kv.add(_challenge_key(browser), json.dumps(stored), CHALLENGE_SECONDS):
        raise PasskeyRefused("could not store the challenge")
    return browser


async def _take(kv: KeyValue, browser: str | None, purpose: str) -> dict[str, Any]:
    """The ceremony this browser started, taken (so a response is accepted at most once)."""
    if not browser or len(browser) > 100:
        raise PasskeyRefused("no ceremony under way in this browser")
    stored = await kv.take(_challenge_key(browser))
    found = json.loads(stored) if stored else None
    if not isinstance(found, dict) or found.get("purpose") != purpose:
        raise PasskeyRefused("no such ceremony (expired, used already, or another kind)")
    return found


async def registration_options(
    kv: KeyValue, rp: RelyingParty, account: str, user: User
) -> tuple[str, str]:
    """What navigator.credentials.create() is given (JSON), and the browser's id for it."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=RP_NAME,
        user_name=account,
        user_id=user_handle(account),
        user_display_name=user.email or account,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,  # sign-in without a username
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(p) for p in user.passkeys],
        timeout=CHALLENGE_SECONDS * 1000,
    )
    browser = await _remember(kv, "register", options.challenge, account)
    return browser, options_to_json(options)


async def verify_registration(
    kv: KeyValue,
    rp: RelyingParty,
    browser: str | None,
    account: str,
    credential: dict[str, Any],
    name: str,
) -> Passkey:
    """The new passkey, checked (WebAuthn L2 §7.1: challenge, origin, RP id hash, user present);
    its counter recorded. Not yet in users.yaml: `add_passkey` puts it there."""
    ceremony = await _take(kv, browser, "register")
    if ceremony.get("account") != account:
        raise PasskeyRefused("the ceremony was started for another account")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=_bytes(str(ceremony["challenge"])),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyRefused(f"registration not accepted: {error}") from None
    response = credential.get("response")
    said = response.get("transports", []) if isinstance(response, dict) else []
    transports = tuple(t for t in said if isinstance(t, str) and t in _TRANSPORTS)
    passkey = Passkey(
        id=b64url(verified.credential_id),
        public_key=b64url(verified.credential_public_key),
        name=name.strip()[:100] or "passkey",
        created=datetime.now(UTC).date().isoformat(),
        transports=transports,
    )
    await kv.put(_counter_key(passkey.id), str(verified.sign_count), COUNTER_SECONDS)
    return passkey


async def authentication_options(
    kv: KeyValue, rp: RelyingParty, account: str | None = None, user: User | None = None
) -> tuple[str, str]:
    """What navigator.credentials.get() is given (JSON), and the browser's id for it. With an
    account (the second factor, after its password) only its passkeys are asked for and only
    its passkey is accepted; without, any discoverable one."""
    allowed = [_descriptor(p) for p in user.passkeys] if user is not None else None
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.PREFERRED,
        timeout=CHALLENGE_SECONDS * 1000,
    )
    browser = await _remember(kv, "sign-in", options.challenge, account)
    return browser, options_to_json(options)


async def verify_authentication(
    kv: KeyValue,
    rp: RelyingParty,
    browser: str | None,
    users: UsersFile,
    credential: dict[str, Any],
) -> Verified:
    """WebAuthn L2 §7.2 through py_webauthn: the challenge this browser was given (once), the
    origin, the RP id hash, user presence, the signature by the key registered for this
    credential id, and a growing counter (step 21: one that does not grow may be a clone)."""
    ceremony = await _take(kv, browser, "sign-in")
    credential_id = credential.get("id")
    if not isinstance(credential_id, str):
        raise PasskeyRefused("the response names no credential")
    account, passkey = _owner(users, credential_id)
    wanted = ceremony.get("account")
    if wanted is not None and wanted != account:
        raise PasskeyRefused("a passkey of another account")
    response = credential.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    if handle and _bytes(str(handle)) != user_handle(account):  # §7.2 step 6
        raise PasskeyRefused("the authenticator names another user")
    key = _counter_key(passkey.id)
    stored = (await kv.get_many([key])).get(key)
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=_bytes(str(ceremony["challenge"])),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=_bytes(passkey.public_key),
            credential_current_sign_count=int(stored or 0),
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyRefused(f"assertion not accepted: {error}") from None
    await kv.put(key, str(verified.new_sign_count), COUNTER_SECONDS)
    return Verified(account, passkey.id, verified.user_verified)


def _owner(users: UsersFile, credential_id: str) -> tuple[str, Passkey]:
    """The active account a credential id is registered to (ids are unique: `add_passkey`)."""
    for name, user in users.users.items():
        for passkey in user.passkeys:
            if passkey.id == credential_id:
                if user.disabled:
                    raise PasskeyRefused("the account is disabled")
                return name, passkey
    raise PasskeyRefused("no account has this passkey")


def owner(users: UsersFile, credential_id: object) -> str | None:
    """The account a credential id is registered to, if any (for counting failures)."""
    if not isinstance(credential_id, str):
        return None
    try:
        return _owner(users, credential_id)[0]
    except PasskeyRefused:
        return None


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=_bytes(passkey.id),
        transports=[AuthenticatorTransport(t) for t in passkey.transports if t in _TRANSPORTS],
    )


def _bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def add_passkey(write: UsersWriter, account: str, passkey: Passkey) -> None:
    """Put a registered passkey on the account in users.yaml (ValueError: no such account, or
    the credential is someone's already)."""

    def change(users: UsersFile) -> UsersFile:
        user = users.users.get(account)
        if user is None:
            raise ValueError(f"no user {account}")
        if any(p.id == passkey.id for u in users.users.values() for p in u.passkeys):
            raise ValueError("this passkey is registered already")
        changed = user.model_copy(update={"passkeys": (*user.passkeys, passkey)})
        return users.model_copy(update={"users": {**users.users, account: changed}})

    write(change)


def matching(user: User, prefix: str) -> list[Passkey]:
    """The account's passkey with exactly this id, or else those whose id starts with
    `prefix` (what an admin types: a unique beginning is enough)."""
    exact = [p for p in user.passkeys if p.id == prefix]
    return exact or [p for p in user.passkeys if prefix and p.id.startswith(prefix)]


def without_passkey(users: UsersFile, account: str, prefix: str) -> tuple[UsersFile, Passkey]:
    """users.yaml without the one passkey of `account` whose id is, or starts with, `prefix`,
    and that passkey (ValueError: none, several, or no such account)."""
    user = users.users.get(account)
    if user is None:
        raise ValueError(f"no user {account}")
    found = matching(user, prefix)
    if not found:
        raise ValueError(f"{account} has no passkey {prefix}")
    if len(found) > 1:
        raise ValueError(f"{prefix} names {len(found)} passkeys of {account}; give more of it")
    left = tuple(p for p in user.passkeys if p.id != found[0].id)
    changed = user.model_copy(update={"passkeys": left})
    return users.model_copy(update={"users": {**users.users, account: changed}}), found[0]


def remove_passkey(write: UsersWriter, account: str, prefix: str) -> Passkey:
    """Remove one passkey of `account` from users.yaml (as `without_passkey` says)."""
    removed: list[Passkey] = []

    def change(users: UsersFile) -> UsersFile:
        changed, passkey = without_passkey(users, account, prefix)
        removed.append(passkey)
        return changed

    write(change)
    return removed[0]
