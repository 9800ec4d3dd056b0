"""Who a request comes from, once Warren has proved it."""

from dataclasses import dataclass
from typing import Literal

# How the proof reached the gateway: a session cookie, basic auth, a share link, a resource's
# password, an app's bearer token, a client certificate.
type Method = Literal["session", "basic", "share", "password", "token", "certificate"]

_PEOPLE: frozenset[Method] = frozenset({"session", "basic", "token"})


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str  # a user name, "PROVIDER:SUB", an e-mail address, "share:ID", "password:RES"
    method: Method
    expires: float  # Unix time; the gateway stops trusting the proof then
    email: str | None = None
    groups: tuple[str, ...] = ()
    session_id: str | None = None  # the sign-in this proof belongs to; what revocation names
    issued_at: float = 0.0
    amr: tuple[str, ...] = ()  # how the person signed in (RFC 8176 values, docs/identity.md)
    # None for a users.yaml account; "oidc:NAME" for an identity provider's user linked to no
    # account, "email" for someone who proved an e-mail address by a code.
    provider: str | None = None
    email_verified: bool = True  # accounts: users.yaml says; providers: their email_verified

    @property
    def user(self) -> str | None:
        """A person's name (an account, or a provider's user); None for share links, resource
        passwords and certificates."""
        return self.subject if self.method in _PEOPLE else None

    @property
    def verified_email(self) -> str | None:
        return self.email.lower() if self.email and self.email_verified else None


def listed(
    user: str, member_of: tuple[str, ...], users: tuple[str, ...], groups: tuple[str, ...]
) -> bool:
    if not users and not groups:
        return True
    if user in users:
        return True
    for group in member_of:  # a loop, not any() over a generator: every signed-in request asks
        if group in groups:
            return True
    return False
