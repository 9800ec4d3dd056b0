"""Who a proof names, and whether a resource's auth lists let them in (core.auth.access)."""

from pathlib import Path
from typing import Any

from core.auth.access import permitted
from core.auth.identity import Identity, Method
from core.policy.model import ResourceAuth


def identity(method: Method = "session", subject: str = "alice", **fields: Any) -> Identity:
    return Identity(subject, method, expires=0, **fields)


def auth(**fields: Any) -> ResourceAuth:
    return ResourceAuth(**fields)


def test_only_a_person_is_a_user() -> None:
    assert identity("session").user == "alice"
    assert identity("basic").user == "alice"
    assert identity("token").user == "alice"
    assert identity("share", "share:abc").user is None
    assert identity("password", "password:app").user is None
    assert identity("certificate", "cert:app").user is None


def test_no_lists_let_in_any_person_but_not_a_link_or_a_password() -> None:
    assert permitted(identity(), None)
    assert permitted(identity(), auth())
    assert not permitted(identity("share", "share:abc"), auth())
    assert not permitted(identity("password", "password:app"), auth())
    assert not permitted(identity("certificate", "cert:app"), auth())


def test_a_person_passes_by_name_or_by_any_one_group() -> None:
    lists = auth(users=("alice",), groups=("ops",))
    assert permitted(identity(), lists)
    assert permitted(identity(subject="bob", groups=("staff", "ops")), lists)
    assert not permitted(identity(subject="bob", groups=("staff",)), lists)
    assert not permitted(identity(subject="bob"), auth(users=("alice",)))


def test_a_verified_email_on_a_list_lets_a_person_in() -> None:
    lists = auth(users=("carol",), emails=("Bob@Example.com",), email_domains=("corp.example",))
    assert permitted(identity(subject="bob", email="bob@example.com"), lists)
    assert permitted(identity(subject="dan", email="DAN@corp.example"), lists)
    assert not permitted(identity(subject="eve", email="eve@sub.corp.example"), lists)
    unverified = identity(subject="bob", email="bob@example.com", email_verified=False)
    assert not permitted(unverified, lists)


def test_someone_who_proved_only_an_email_gets_in_only_where_a_list_names_them() -> None:
    by_code = identity(subject="bob@example.com", email="bob@example.com", provider="email")
    assert not permitted(by_code, None)
    assert not permitted(by_code, auth())
    assert not permitted(by_code, auth(groups=("ops",)))
    assert permitted(by_code, auth(emails=("bob@example.com",)))
    assert permitted(by_code, auth(email_domains=("example.com",)))


def test_a_certificate_passes_only_where_the_resource_takes_client_certificates() -> None:
    assert permitted(identity("certificate", "cert:app"), auth(client_ca=Path("ca.pem")))


def test_a_providers_user_without_an_account_is_a_person() -> None:
    external = identity(subject="idp:1234", provider="oidc:idp", groups=("ops",))
    assert permitted(external, None)
    assert permitted(external, auth(groups=("ops",)))
    assert not permitted(external, auth(users=("alice",)))
