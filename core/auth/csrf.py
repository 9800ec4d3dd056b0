"""Cross-site request forgery, refused the same way on every Warren form: the portal's and the
gateway's sign-out.

A page with a form sets a random token in a cookie (SameSite=Strict; `__Host-` over https, so a
sibling subdomain can neither read nor plant it) and carries the same token in the form; the
submission must bring both back, equal. A browser's `Origin` must be the form's own origin, and
`Sec-Fetch-Site` must not call the submission cross-site or same-site: a sibling subdomain is
same-site, and SameSite=Lax cookies reach it, so SameSite alone does not stop it.
"""

import hmac
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def usable(token: str | None) -> bool:
    """A token from the cookie worth keeping (so two tabs' forms share one)."""
    return token is not None and 20 <= len(token) <= 100


def refusal(
    *,
    origin: str | None,
    expected_origin: str,
    fetch_site: str | None,
    cookie: str | None,
    submitted: str,
) -> str | None:
    """Why a form submission is refused; None when it is the form's own."""
    if origin is not None and _origin_key(origin) != _origin_key(expected_origin):
        return f"from origin {origin[:100]!r}"
    if fetch_site in ("cross-site", "same-site"):
        return f"a {fetch_site} request"
    if not cookie:
        return "no CSRF cookie"
    if not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return "the CSRF token does not match"
    return None


def _origin_key(origin: str) -> str:
    """An origin as browsers compare them: case aside, with the scheme's default port implied."""
    lowered = origin.strip().lower()
    for scheme, port in (("https://", ":443"), ("http://", ":80")):
        if lowered.startswith(scheme):
            return lowered.removesuffix(port)
    return lowered
