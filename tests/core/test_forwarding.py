from core.forwarding import DEFAULT_STRIP, rewrite
from core.headers import HeaderNames

STRIP = HeaderNames(DEFAULT_STRIP)


def names(fields: tuple[tuple[bytes, bytes], ...]) -> list[bytes]:
    return [name.lower() for name, _ in fields]


def test_headers_only_warren_may_set_are_replaced() -> None:
    incoming = [
        (b"Host", b"app.example"), (b"X-Forwarded-For", b"6.6.6.6"), (b"x-forwarded-proto", b"gopher"),
        (b"X-Forwarded-Uri", b"/public"), (b"Forwarded", b"for=6.6.6.6"), (b"X-Real-IP", b"6.6.6.6"),
        (b"Remote-User", b"admin"), (b"remote-groups", b"admins"), (b"X-Warren-Assertion", b"forged"),
        (b"X-Original-URL", b"/admin"), (b"CF-Connecting-IP", b"6.6.6.6"), (b"Accept", b"*/*"),
    ]  # fmt: skip
    out = rewrite(
        incoming, client_ip="203.0.113.5", scheme="https", host="app.example", strip=STRIP
    )
    assert names(out) == [b"host", b"accept", b"x-forwarded-for", b"x-real-ip",
                          b"x-forwarded-proto", b"x-forwarded-host"]  # fmt: skip
    assert dict(out)[b"X-Forwarded-For"] == b"203.0.113.5"
    assert dict(out)[b"X-Forwarded-Proto"] == b"https"


def test_owned_names_spelt_with_underscores_are_removed_too() -> None:
    incoming = [
        (b"Remote_User", b"admin"), (b"Remote_Groups", b"admins"), (b"Remote_Email", b"a@x"),
        (b"X_Forwarded_For", b"6.6.6.6"), (b"X_Forwarded_Host", b"evil"),
        (b"X_Warren_Assertion", b"forged"), (b"x_real_ip", b"6.6.6.6"), (b"Keep_Me", b"1"),
    ]  # fmt: skip
    out = rewrite(incoming, client_ip="203.0.113.5", scheme="http", host="a", strip=STRIP)
    assert names(out)[0] == b"keep_me"
    assert len([n for n in names(out) if n.replace(b"_", b"-") == b"x-forwarded-for"]) == 1


def test_other_products_identity_headers_are_stripped_by_default_and_configurably() -> None:
    incoming = [
        (b"X-Webauth-User", b"admin"), (b"X_WEBAUTH_USER", b"admin"),
        (b"X-Authentik-Username", b"admin"), (b"X-Authelia-User", b"admin"),
        (b"Cf-Access-Authenticated-User-Email", b"a@x"), (b"Tailscale-User-Login", b"a@x"),
        (b"Accept", b"*/*"),
    ]  # fmt: skip
    out = rewrite(incoming, client_ip="1.2.3.4", scheme="http", host="a", strip=STRIP)
    assert names(out)[0] == b"accept"
    assert len(out) == 5
    kept = rewrite(incoming, client_ip="1.2.3.4", scheme="http", host="a", strip=HeaderNames([]))
    assert b"x-webauth-user" in names(kept)


def test_a_client_certificate_cannot_be_handed_in_as_a_header() -> None:
    incoming = [
        (b"Client-Cert", b":MIIB...:"), (b"Client-Cert-Chain", b":MIIB...:"),
        (b"X-SSL-Client-Verify", b"SUCCESS"), (b"ssl_client_s_dn", b"CN=admin"),
        (b"X-Client-Cert-Subject", b"CN=admin"), (b"Accept", b"*/*"),
    ]  # fmt: skip
    out = rewrite(incoming, client_ip="1.2.3.4", scheme="https", host="a", strip=STRIP)
    assert names(out)[0] == b"accept"
    assert not [n for n in names(out) if b"cert" in n or b"ssl" in n]


def test_hop_by_hop_and_nominated_headers_end_here() -> None:
    incoming = [
        (b"Connection", b"keep-alive, X-Custom, Remote-User"), (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"), (b"TE", b"trailers"), (b"Trailer", b"X-T"),
        (b"Upgrade", b"h2c"), (b"HTTP2-Settings", b"AAMAAABkAAQAAP__"),
        (b"Proxy-Authorization", b"Basic eDp5"), (b"X-Custom", b"1"), (b"Accept", b"*/*"),
    ]  # fmt: skip
    out = rewrite(incoming, client_ip="1.2.3.4", scheme="http", host="a", strip=STRIP)
    assert names(out)[:2] == [b"accept", b"connection"]
    assert dict(out)[b"Connection"] == b"keep-alive"  # the client's own, nothing it nominated
    assert b"upgrade" not in names(out)


def test_the_clients_close_goes_on_so_its_connection_is_closed_after_the_answer() -> None:
    incoming = [(b"Connection", b"X-Custom, close"), (b"X-Custom", b"1")]
    out = rewrite(incoming, client_ip="1.2.3.4", scheme="http", host="a", strip=STRIP)
    assert [v for n, v in out if n.lower() == b"connection"] == [b"close"]
    assert b"x-custom" not in names(out)


def test_a_permitted_websocket_upgrade_goes_on() -> None:
    incoming = [
        (b"Connection", b"Upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Sec-WebSocket-Key", b"k"),
    ]
    out = rewrite(
        incoming, client_ip="1.2.3.4", scheme="http", host="a", strip=STRIP, websocket=True
    )
    assert (b"Connection", b"Upgrade") in out
    assert (b"Upgrade", b"websocket") in out
    assert names(out).count(b"upgrade") == 1


def test_a_relay_token_never_reaches_an_application() -> None:
    incoming = [(b"Warren-Relay", b"token"), (b"warren_relay", b"token"), (b"Accept", b"*/*")]
    out = rewrite(incoming, client_ip="203.0.113.5", scheme="https", host="a", strip=STRIP)
    assert [n for n in names(out) if b"relay" in n] == []
