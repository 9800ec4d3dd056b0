"""Who a request comes from, once Warren has proved it, and whether a resource lets them in."""

from dataclasses import dataclass
from typing import Literal

type Method = Literal["session", "basic", "share", "password"]


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str  # a user name, "share:ID" or "password:RESOURCE"
    method: Method
    expires: float  # Unix time; the gateway stops trusting the proof then
    email: str | None = None
    groups: tuple[str, ...] = ()
    session_id: str | None = None  # the sign-in this proof belongs to; what revocation names
    issued_at: float = 0.0

    @property
    def user(self) -> str | None:
        """A person's account name; None for share links and resource passwords."""
        return self.subject if self.method in ("session", "basic") else None


def allowed(identity: Identity, users: tuple[str, ...], groups: tuple[str, ...]) -> bool:
    """A person passes a users/groups list; no lists means any signed-in person."""
    user = identity.user
    return user is not None and listed(user, identity.groups, users, groups)


def listed(
    user: str, member_of: tuple[str, ...], users: tuple[str, ...], groups: tuple[str, ...]
) -> bool:
    if not users and not groups:
        return True
    return user in users or any(group in groups for group in member_of)
