"""One-time codes sent by e-mail, for a resource that admits people by address (`auth: {emails,
email_domains}`): who may ask for one, making it, and redeeming it once.

Only a digest of each code is stored (in the sign-in state, so every process and node agrees),
under its resource and address: a new code replaces the one before. A code lives for the
configured lifetime, is taken on the first right answer, and is gone after MAX_WRONG wrong ones:
a guess takes the record out of the store, and only a wrong guess puts it back, so guesses
running side by side cannot share one count (RFC 6238 §5.2's concern, for codes that are not
time-based). The right answer is compared in constant time.
"""

import enum
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

from core.auth.signinstate import KeyValue
from core.policy.model import ResourceAuth

CODE_DIGITS = 8  # 10^8 codes; with MAX_WRONG tries and the regulation, guessing is hopeless
MAX_WRONG = 5  # wrong answers before the code is gone
RESEND_SECONDS = 60  # at most one e-mail per address in this time: the portal must not spam
MAX_ADDRESS = 254  # RFC 5321 §4.5.3.1.3: a path is at most 256 octets, with its brackets
MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1

CODE_PREFIX = "email-code:"
SENT_PREFIX = "email-sent:"

_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")


def normalized(text: str) -> str | None:
    """The address in the one form lists and codes use (lower case), or None when it is not an
    address a code could be sent to."""
    address = text.strip().lower()
    local, _, domain = address.rpartition("@")
    if len(address) > MAX_ADDRESS or len(local) > MAX_LOCAL_PART or ".." in domain:
        return None
    return address if _ADDRESS.match(address) else None


def may_ask(address: str, auth: ResourceAuth | None) -> bool:
    """Whether the resource lists the (normalized) address, exactly or by its domain: the same
    test core.auth.access applies to the session the code makes, so a code is sent only to
    someone it will let in. A domain does not cover its subdomains."""
    if auth is None:
        return False
    return address in auth.emails or address.rpartition("@")[2] in auth.email_domains


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_key(resource: str, address: str) -> str:
    return CODE_PREFIX + _digest(resource, address)


def _sent_key(address: str) -> str:
    return SENT_PREFIX + _digest(address)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Redeemed(enum.Enum):
    RIGHT = "right"
    WRONG = "wrong"  # a code is waiting, this was not it (one try fewer)
    NONE = "none"  # no code waiting: never sent, used, expired, or too many wrong tries


@dataclass(frozen=True, slots=True)
class EmailCodes:
    kv: KeyValue
    lifetime: float  # seconds a code may be used

    async def may_send(self, address: str) -> bool:
        """Claims the address's e-mail for the next RESEND_SECONDS; False when taken already."""
        return await self.kv.add(_sent_key(address), "1", RESEND_SECONDS)

    async def unclaim(self, address: str) -> None:
        """The e-mail was not sent after all: the address may ask again at once."""
        await self.kv.take(_sent_key(address))

    async def issue(self, resource: str, address: str, browser: str) -> str:
        """A fresh code for the address on the resource, replacing any before it, redeemable
        only with `browser` (the secret of the browser that asked)."""
        code = new_code()
        record = {
            "code": _digest(resource, address, code),
            "browser": _digest(browser),
            "wrong": 0,
            "expires": time.time() + self.lifetime,
        }
        await self.kv.put(code_key(resource, address), json.dumps(record), self.lifetime)
        return code

    async def withdraw(self, resource: str, address: str) -> None:
        await self.kv.take(code_key(resource, address))

    async def redeem(self, resource: str, address: str, browser: str, code: str) -> Redeemed:
        key = code_key(resource, address)
        stored = await self.kv.take(key)
        if stored is None:
            return Redeemed.NONE
        record = json.loads(stored)
        remaining = float(record["expires"]) - time.time()
        if remaining <= 0:
            return Redeemed.NONE
        # Both compared, always: which of them was wrong must not show in the time taken.
        right_code = hmac.compare_digest(str(record["code"]), _digest(resource, address, code))
        right_browser = hmac.compare_digest(str(record["browser"]), _digest(browser))
        if right_code and right_browser:
            return Redeemed.RIGHT
        wrong = int(record["wrong"]) + 1
        if wrong < MAX_WRONG:
            record["wrong"] = wrong
            # add, not put: a new code issued meanwhile wins over this old one.
            await self.kv.add(key, json.dumps(record), remaining)
        return Redeemed.WRONG


def readable(code: str) -> str:
    """The code as typed (spaces and dashes allowed between digits), or "" when it cannot be
    one: refused without a look at the store."""
    digits = code.replace(" ", "").replace("-", "")
    return digits if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit() else ""
