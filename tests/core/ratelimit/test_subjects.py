from ipaddress import ip_address

import pytest

from core.ratelimit.spec import parse_per
from core.ratelimit.subjects import Requester, ip_subject, subject

V4 = ip_address("198.51.100.7")
V6 = ip_address("2001:db8:1:2:aaaa::1")


def test_ip_keys_ipv6_clients_by_their_64() -> None:
    assert ip_subject(V4) == "ip:198.51.100.7"
    assert ip_subject(V6) == "ip:2001:db8:1:2::/64"
    assert ip_subject(ip_address("2001:db8:1:2:ffff::9")) == ip_subject(V6)
    assert ip_subject(ip_address("2001:db8:1:3::1")) != ip_subject(V6)
    assert ip_subject(ip_address("::ffff:198.51.100.7")) == "ip:198.51.100.7"


def test_user_keys_on_the_identity_and_falls_back_to_the_address() -> None:
    per = parse_per("user")
    assert subject(per, Requester(V4, "alice"), "app") == "user:alice"
    assert subject(per, Requester(V4), "app") == "ip:198.51.100.7"
    assert subject(per, Requester(V4, ""), "app") == "ip:198.51.100.7"


def test_resource_is_one_counter_for_everyone() -> None:
    per = parse_per("resource")
    assert subject(per, Requester(V4), "app") == subject(per, Requester(V6, "bob"), "app")
    assert subject(per, Requester(V4), "app") != subject(per, Requester(V4), "wiki")


def test_header_keys_on_a_hash_of_the_value_and_never_lets_omission_escape() -> None:
    per = parse_per("header:X-Api-Key")
    assert per.header == "x-api-key"
    one = subject(per, Requester(V4, headers={"x-api-key": "secret-1"}), "app")
    assert one.startswith("header:x-api-key:")
    assert "secret-1" not in one
    assert one == subject(per, Requester(V6, headers={"x-api-key": "secret-1"}), "app")
    assert one != subject(per, Requester(V4, headers={"x-api-key": "secret-2"}), "app")
    # Without the header (or with an empty one) the client counts by its address.
    assert subject(per, Requester(V4, headers={}), "app") == "ip:198.51.100.7"
    assert subject(per, Requester(V4, headers={"x-api-key": ""}), "app") == "ip:198.51.100.7"
    assert subject(per, Requester(V4), "app") == "ip:198.51.100.7"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("country", "is not ip, user, resource or header:NAME"),
        ("header:", "is not an HTTP header name"),
        ("header:a b", "is not an HTTP header name"),
        ("header:X-Forwarded-For", "set by clients at will"),
        ("header:cf-connecting-ip", "set by clients at will"),
    ],
)
def test_per_refuses_what_it_cannot_count_safely(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_per(text)
