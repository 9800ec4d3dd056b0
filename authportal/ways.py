"""The other ways in on the sign-in page, beside (or instead of) the password form: each part
renders its own piece (a provider's button, the passkey button, the e-mail code form) from what
the page knows. Listed here, in the order the page shows them."""

from collections.abc import Callable
from dataclasses import dataclass

from authportal.state import Portal
from core.auth.redirects import RedirectTarget
from core.auth.users import User


@dataclass(frozen=True, slots=True)
class WayContext:
    portal: Portal
    csrf: str
    rd: str | None  # where the person goes after signing in (already checked), or None
    target: RedirectTarget | None


type Way = Callable[[WayContext], str]  # HTML, escaped by the part that made it

WAYS: list[Way] = []


@dataclass(frozen=True, slots=True)
class HomeContext:
    """The portal's home page for someone signed in with a users.yaml account."""

    portal: Portal
    csrf: str
    account: str
    user: User


type HomePart = Callable[[HomeContext], str]  # HTML, escaped by the part that made it

HOME: list[HomePart] = []  # what the parts add to an account's home page ("Link <provider>")
# What the parts offer on the code step, for the account that gave its password, beside the
# TOTP code ("Use a passkey").
SECOND_FACTOR: list[HomePart] = []
