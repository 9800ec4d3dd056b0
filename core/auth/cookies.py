"""Warren's cookies: their names, reading them, building them, keeping them from applications.

Over https the names carry the `__Host-` prefix (or `__Secure-` when `session.cookie_domain`
shares them across subdomains): a browser then refuses such a cookie unless it is Secure and,
for `__Host-`, bound to exactly the host that set it, so an application on a sibling subdomain
cannot plant its own Warren cookie (session fixation).
"""

from collections.abc import Iterable

SESSION = "warren_session"  # a resource host's sign-in
PASSWORD = "warren_password"  # noqa: S105  # a cookie name: a resource password was entered
SHARE = "warren_share"  # a share link was opened
PORTAL = "warren_portal"  # the portal's own sign-in
PENDING = "warren_pending"  # password accepted, second factor to come
CSRF = "warren_csrf"
OIDC = "warren_oidc"  # a sign-in through an identity provider under way (authportal.oidc)
EMAIL = "warren_email"  # an e-mailed code to be typed in (authportal.emailcode)
PASSKEY = "warren_passkey"  # a passkey challenge under way (authportal.passkeys)

# what the gateway lets through to the portal
PORTAL_OWN = (PORTAL, PENDING, CSRF, OIDC, EMAIL, PASSKEY)

RESOURCE_COOKIES = (SESSION, PASSWORD, SHARE)
SHARE_PARAMETER = "warren_share"  # the query parameter of a share link

_PREFIXES = ("__Host-", "__Secure-")


def cookie_name(base: str, secure: bool, domain: str | None = None) -> str:
    if not secure:
        return base
    return f"__Secure-{base}" if domain else f"__Host-{base}"


def is_warren_cookie(name: str) -> bool:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.startswith("warren_")


def read_cookie(header: str | None, name: str) -> str | None:
    """The first value of `name` in a Cookie header, without parsing the rest."""
    if not header:
        return None
    key = name + "="
    start = header.find(key)
    while start != -1:
        if start == 0 or header[start - 1] in " ;":  # not the tail of a longer name
            end = header.find(";", start)
            value = header[start + len(key) : end if end != -1 else len(header)]
            return value.strip().strip('"')
        start = header.find(key, start + 1)
    return None


def without_warren_cookies(header: str, keep: Iterable[str] = ()) -> str:
    kept_names = set(keep)
    kept = [
        part.strip()
        for part in header.split(";")
        if part.strip()
        and (
            not is_warren_cookie(name := part.strip().partition("=")[0].strip())
            or name in kept_names
        )
    ]
    return "; ".join(kept)


def set_cookie(
    name: str,
    value: str,
    *,
    max_age: int,
    secure: bool,
    domain: str | None = None,
    same_site: str = "Lax",
    path: str = "/",
) -> str:
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max(0, max_age)}", "HttpOnly"]
    parts.append(f"SameSite={same_site}")
    if secure:
        parts.append("Secure")
    if domain:
        parts.append(f"Domain={domain}")
    return "; ".join(parts)


def clear_cookie(name: str, *, secure: bool, domain: str | None = None) -> str:
    return set_cookie(name, "", max_age=0, secure=secure, domain=domain)
