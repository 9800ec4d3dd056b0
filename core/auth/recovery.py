"""TOTP recovery codes: ten single-use codes `warren user 2fa` prints once, for the day the phone
is lost. users.yaml keeps only the SHA-256 of each unused code (`User.recovery`).

Why SHA-256 and not argon2id like passwords: each code is 60 random bits chosen by Warren, not
a person, so there is no dictionary to walk and a slow hash would add nothing an attacker with
the file could not already afford to skip: 2^60 guesses per code is out of reach either way."""

import hashlib
import hmac
import secrets

from core.auth.users import UsersFile, UsersWriter

COUNT = 10  # codes in a set
# Crockford's base32, lower case: no i, l, o or u, so a code read aloud or written down survives
# (0/o and 1/i/l are taken as the same when typed). 12 characters of 32 = 60 bits.
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
LENGTH = 12
_SAME = str.maketrans({"o": "0", "i": "1", "l": "1"})


def new_codes(count: int = COUNT) -> list[str]:
    """A fresh set, as shown to the person: `xxxx-xxxx-xxxx`."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        codes.append(f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}")
    return codes


def normal(code: str) -> str | None:
    """The code as stored (lower case, no separators, look-alikes folded), or None when what
    was typed cannot be a recovery code at all."""
    folded = code.strip().lower().replace("-", "").replace(" ", "").translate(_SAME)
    if len(folded) != LENGTH or any(c not in ALPHABET for c in folded):
        return None
    return folded


def digest(code: str) -> str:
    """What users.yaml keeps of a code (a code that is not one hashes to nothing usable)."""
    folded = normal(code)
    if folded is None:
        raise ValueError("not a recovery code")
    return hashlib.sha256(folded.encode()).hexdigest()


def digests(codes: list[str]) -> tuple[str, ...]:
    return tuple(digest(code) for code in codes)


def matching(stored: tuple[str, ...], code: str) -> str | None:
    """The stored digest `code` matches, or None. Every stored digest is compared, in constant
    time each, so how long this takes says nothing of which one matched."""
    folded = normal(code)
    if folded is None:
        return None
    wanted = hashlib.sha256(folded.encode()).hexdigest()
    found = None
    for candidate in stored:
        if hmac.compare_digest(candidate, wanted):
            found = candidate
    return found


def spend(write: UsersWriter, name: str, used: str) -> bool:
    """Strike a used code's digest from `name`'s account in users.yaml; False when it was not
    there any more (spent meanwhile, or a fresh set replaced it)."""
    found = False

    def change(users: UsersFile) -> UsersFile:
        nonlocal found
        user = users.users.get(name)
        if user is None or used not in user.recovery:
            return users
        found = True
        left = tuple(d for d in user.recovery if d != used)
        return users.model_copy(
            update={"users": {**users.users, name: user.model_copy(update={"recovery": left})}}
        )

    write(change)
    return found
