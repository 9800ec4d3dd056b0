from datetime import UTC, datetime, timedelta

from core.acme.plan import Wanted, file_name, plan, policy_hosts, renewal_time
from core.policy.model import PolicyFile

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_every_http_host_and_the_portal_host_get_a_certificate_each() -> None:
    policy = PolicyFile.model_validate(
        {
            "version": 1,
            "resources": {
                "app": {"host": ["app.example.com", "www.example.com"], "targets": [_target()]},
                "grafana": {"host": "grafana.example.com", "targets": [_target()]},
                "game": {"protocol": "tcp", "port": 25565, "targets": [_target()]},
            },
        }
    )
    planned = plan(policy_hosts(policy), "auth.example.com", "http-01", has_dns=False)
    assert [w.names for w in planned.wanted] == [
        ("app.example.com",),
        ("www.example.com",),
        ("grafana.example.com",),
        ("auth.example.com",),
    ]
    assert {w.challenge for w in planned.wanted} == {"http-01"}
    assert planned.skipped == ()


def test_the_portal_host_also_a_resource_host_is_wanted_once() -> None:
    planned = plan(["auth.example.com"], "auth.example.com", "http-01", has_dns=False)
    assert planned.wanted == (Wanted(("auth.example.com",), "http-01"),)


def test_a_wildcard_without_a_dns_provider_is_skipped_and_says_why() -> None:
    planned = plan(["*.apps.example.com", "a.apps.example.com"], None, "http-01", False)
    assert planned.wanted == (Wanted(("a.apps.example.com",), "http-01"),)
    assert planned.skipped == (("*.apps.example.com", "a wildcard needs DNS-01: set acme.dns"),)


def test_a_wildcard_goes_through_dns_01_and_covers_the_names_one_label_below_it() -> None:
    hosts = ["*.apps.example.com", "a.apps.example.com", "b.c.apps.example.com", "example.com"]
    planned = plan(hosts, None, "http-01", has_dns=True)
    assert planned.wanted == (
        Wanted(("*.apps.example.com",), "dns-01"),
        Wanted(("b.c.apps.example.com",), "http-01"),  # two labels below: not covered
        Wanted(("example.com",), "http-01"),
    )


def test_dns_01_for_every_name_when_asked() -> None:
    planned = plan(["app.example.com"], None, "dns-01", has_dns=True)
    assert planned.wanted == (Wanted(("app.example.com",), "dns-01"),)


def test_an_ip_address_portal_gets_no_certificate() -> None:
    planned = plan([], "192.0.2.7", "http-01", has_dns=False)
    assert planned.wanted == ()
    assert planned.skipped == (("192.0.2.7", "an IP address, not a DNS name"),)


def test_file_names_keep_the_name_and_spell_a_wildcard_out() -> None:
    assert file_name("app.example.com") == "app.example.com.pem"
    assert file_name("*.apps.example.com") == "_wildcard.apps.example.com.pem"
    assert Wanted(("*.example.com",), "dns-01").file_name == "_wildcard.example.com.pem"


def test_by_default_a_90_day_certificate_renews_30_days_before_it_ends() -> None:
    end = START + timedelta(days=90)
    assert renewal_time(START, end, None) == end - timedelta(days=30)


def test_by_default_a_short_lived_certificate_renews_after_two_thirds_of_its_life() -> None:
    end = START + timedelta(days=6)
    assert renewal_time(START, end, None) == START + timedelta(days=4)
    assert renewal_time(START, START + timedelta(seconds=30), None) == START + timedelta(seconds=20)


def test_a_year_long_certificate_still_renews_30_days_before_it_ends() -> None:
    end = START + timedelta(days=365)
    assert renewal_time(START, end, None) == end - timedelta(days=30)


def test_renew_before_when_set_is_taken_as_it_is() -> None:
    end = START + timedelta(days=90)
    assert renewal_time(START, end, timedelta(days=60)) == START + timedelta(days=30)


def _target() -> dict[str, object]:
    return {"host": "127.0.0.1", "port": 8080}


def test_a_name_the_admins_certificate_is_for_is_not_ordered() -> None:
    planned = plan(
        ["app.example.com", "blog.example.com"],
        "auth.example.com",
        "http-01",
        has_dns=False,
        held=lambda name: name in ("app.example.com", "auth.example.com"),
    )
    assert [w.names for w in planned.wanted] == [("blog.example.com",)]
    assert ("app.example.com", "served from a certs: file of warren.yaml") in planned.skipped
