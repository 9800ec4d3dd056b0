"""Whether a resource lets a proven identity in: its `auth` lists, the same for every way a
person signed in."""

from core.auth.identity import Identity, listed
from core.policy.model import ResourceAuth


def permitted(identity: Identity, auth: ResourceAuth | None) -> bool:
    if identity.method == "share":
        return auth is not None and auth.share_links
    if identity.method == "password":
        return auth is not None and (auth.password_hash or auth.pin_hash) is not None
    if identity.method == "certificate":
        return auth is not None and auth.client_ca is not None
    return person_permitted(identity, auth)


def person_permitted(identity: Identity, auth: ResourceAuth | None) -> bool:
    """No lists: any signed-in person, except someone who only proved an e-mail address, who
    gets in only where an e-mail list names them (else one resource's list would open all)."""
    user = identity.user
    if user is None:
        return False
    if identity.provider == "email":
        return auth is not None and _email_listed(identity.verified_email, auth)
    if auth is None:
        return True
    named = auth.users or auth.groups
    by_email = auth.emails or auth.email_domains
    if not named and not by_email:
        return True
    if named and listed(user, identity.groups, auth.users, auth.groups):
        return True
    # Every signed-in request asks: the e-mail lists are read only where a resource has them.
    return bool(by_email) and _email_listed(identity.verified_email, auth)


def _email_listed(email: str | None, auth: ResourceAuth) -> bool:
    if email is None:
        return False
    domain = email.rpartition("@")[2]
    return email in auth.emails or domain in auth.email_domains
