"""HTTP-01 tokens (RFC 8555 §8.3) while the CA may look for them: in the node's shared state
(`core.auth.signinstate.KeyValue`: Redis when nodes share it, else the node's SQLite file), so
whichever node's port 80 the CA reaches answers, and the gateway's plain-HTTP step can read
what the process ordering wrote."""

import re

from core.auth.signinstate import KeyValue

_PREFIX = "acme:http-01:"
# §8.3: the token is base64url; a path segment that is anything else is not one of ours.
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")
TTL_SECONDS = 15 * 60.0  # longer than an order may take (core.acme.client.ORDER_SECONDS)


async def publish(kv: KeyValue, token: str, key_authorization: str) -> None:
    await kv.put(_PREFIX + token, key_authorization, TTL_SECONDS)


async def withdraw(kv: KeyValue, token: str) -> None:
    await kv.take(_PREFIX + token)


async def key_authorization(kv: KeyValue, token: str) -> str | None:
    if not TOKEN.fullmatch(token):
        return None
    return (await kv.get_many([_PREFIX + token])).get(_PREFIX + token)
