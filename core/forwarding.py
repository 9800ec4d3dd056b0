"""Headers on the way to the backend: what only Warren may say is never taken from the client."""

from collections.abc import Iterable

type Field = tuple[bytes, bytes]

# Any header a backend might read as a statement from the proxy about the client or the request.
_OWNED = frozenset({
    b"forwarded", b"x-real-ip", b"x-client-ip", b"true-client-ip", b"cf-connecting-ip",
    b"x-cluster-client-ip", b"client-ip", b"x-rewrite-url", b"remote-user", b"remote-email",
    b"remote-groups", b"remote-name", b"x-remote-user", b"x-user", b"x-email",
})  # fmt: skip
_OWNED_PREFIXES = (b"x-forwarded-", b"x-original-", b"x-warren-", b"x-auth-request-", b"remote-")

ASSERTION_HEADER = b"x-warren-assertion"


def is_owned(name: bytes) -> bool:
    lowered = name.lower()
    return lowered in _OWNED or lowered.startswith(_OWNED_PREFIXES)


def rewrite(
    fields: Iterable[Field], *, client_ip: str, scheme: str, host: str, extra: Iterable[Field] = ()
) -> tuple[Field, ...]:
    kept = [(name, value) for name, value in fields if not is_owned(name)]
    kept += [
        (b"X-Forwarded-For", client_ip.encode()),
        (b"X-Real-IP", client_ip.encode()),
        (b"X-Forwarded-Proto", scheme.encode()),
        (
            b"X-Forwarded-Host",
            host.encode("idna", "replace") if not host.isascii() else host.encode(),
        ),
    ]
    kept += extra
    return tuple(kept)
