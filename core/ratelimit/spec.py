"""A `rate_limits` entry as admins write it, and its pieces, validated without counting anything.

`limits` is imported inside the functions: loading it costs a tenth of a second, and the policy
model (imported by every `warren` command) only needs it when a policy actually has limits.
"""

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

from pydantic import BeforeValidator, PlainSerializer, PlainValidator

from core.fields import ListOf, Method, Pattern, Strict

if TYPE_CHECKING:
    from limits import RateLimitItem

Strategy = Literal["fixed", "moving", "sliding"]
FailMode = Literal["open", "closed"]
PerKind = Literal["ip", "user", "resource", "header"]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP field name (RFC 9110 token)

# Headers a client can set to any value it likes and that Warren already reads properly (from
# trusted proxies only) for `per: ip`; keying on them would let every client pick its own key.
_FORWARDING_HEADERS = frozenset(
    {"x-forwarded-for", "forwarded", "x-real-ip", "cf-connecting-ip", "true-client-ip"}
)


class Per(NamedTuple):
    kind: PerKind
    header: str | None = None  # lower-case header name for `header:NAME`

    def __str__(self) -> str:
        return f"header:{self.header}" if self.kind == "header" else self.kind


_SIMPLE = {"ip": Per("ip"), "user": Per("user"), "resource": Per("resource")}


def parse_per(value: Any) -> Per:
    if isinstance(value, Per):
        return value
    if not isinstance(value, str):
        raise ValueError("per is ip, user, resource or header:NAME")
    text = value.strip()
    if text in _SIMPLE:
        return _SIMPLE[text]
    kind, colon, name = text.partition(":")
    if kind != "header" or not colon:
        raise ValueError(f"{value!r} is not ip, user, resource or header:NAME")
    name = name.strip().lower()
    if not _TOKEN.match(name):
        raise ValueError(f"{name!r} is not an HTTP header name")
    if name in _FORWARDING_HEADERS:
        raise ValueError(
            f"{name} is set by clients at will; per: ip already reads the client address "
            "from trusted proxies only"
        )
    return Per("header", name)


def check_limit_text(value: Any) -> str:
    """`100/minute`, `10/second;500/hour`, `5 per 2 minutes`: the `limits` string notation."""
    from limits import parse_many

    if not isinstance(value, str):
        raise ValueError("a limit is text like 100/minute or 10/second;500/hour")
    try:
        items = parse_many(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a rate limit like 100/minute, 5 per 2 minutes or "
            "10/second;500/hour (units: second, minute, hour, day, month, year)"
        ) from None
    if any(item.amount < 1 for item in items):
        raise ValueError(f"{value!r} allows nothing; refuse requests with a deny rule instead")
    return value.strip()


class RateLimit(Strict):
    """One `rate_limits` entry of policy.yaml, global or a resource's; see docs/configuration.md."""

    limit: Annotated[str, BeforeValidator(check_limit_text)]
    per: Annotated[Per, PlainValidator(parse_per), PlainSerializer(str, return_type=str)] = Per(
        "ip"
    )
    path: ListOf[Pattern] | None = None
    method: ListOf[Method] | None = None
    strategy: Strategy = "sliding"
    on_storage_error: FailMode = "open"
    headers: bool = False  # RateLimit-* headers on allowed responses too (429s always have them)


# The first part of every key of Warren's counters: "rl/STRATEGY/" then the caller's identifiers
# and the window. Each strategy stores its own kind of value, so they must never share a key.
NAMESPACE = "rl"


class Rate(NamedTuple):
    """What to count: one or more windows (`10/second;500/hour`) and how. Made by `parse_rate`."""

    text: str
    items: tuple["RateLimitItem", ...]
    strategy: Strategy


def parse_rate(text: str, strategy: Strategy = "sliding") -> Rate:
    from limits import parse_many

    items = parse_many(check_limit_text(text))
    namespace = f"{NAMESPACE}/{strategy}"
    return Rate(
        text.strip(),
        tuple(type(item)(item.amount, item.multiples, namespace) for item in items),
        strategy,
    )
