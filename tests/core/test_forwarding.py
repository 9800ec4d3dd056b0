from core.forwarding import rewrite


def test_headers_only_warren_may_set_are_replaced() -> None:
    incoming = [
        (b"Host", b"app.example"), (b"X-Forwarded-For", b"6.6.6.6"), (b"x-forwarded-proto", b"gopher"),
        (b"X-Forwarded-Uri", b"/public"), (b"Forwarded", b"for=6.6.6.6"), (b"X-Real-IP", b"6.6.6.6"),
        (b"Remote-User", b"admin"), (b"remote-groups", b"admins"), (b"X-Warren-Assertion", b"forged"),
        (b"X-Original-URL", b"/admin"), (b"CF-Connecting-IP", b"6.6.6.6"), (b"Accept", b"*/*"),
    ]  # fmt: skip
    out = rewrite(incoming, client_ip="203.0.113.5", scheme="https", host="app.example")
    names = [name.lower() for name, _ in out]
    assert names == [b"host", b"accept", b"x-forwarded-for", b"x-real-ip", b"x-forwarded-proto",
                     b"x-forwarded-host"]  # fmt: skip
    assert dict(out)[b"X-Forwarded-For"] == b"203.0.113.5"
    assert dict(out)[b"X-Forwarded-Proto"] == b"https"
