"""Who a proof names, and whether a resource's users/groups lists let them in."""

from core.auth.identity import Identity, allowed


def identity(
    method: str = "session", subject: str = "alice", groups: tuple[str, ...] = ()
) -> Identity:
    return Identity(subject, method, expires=0, groups=groups)  # type: ignore[arg-type]


def test_only_a_person_is_a_user() -> None:
    assert identity("session").user == "alice"
    assert identity("basic").user == "alice"
    assert identity("share", "share:abc").user is None
    assert identity("password", "password:app").user is None


def test_no_lists_let_in_any_person_but_not_a_link_or_a_password() -> None:
    assert allowed(identity(), (), ())
    assert not allowed(identity("share", "share:abc"), (), ())
    assert not allowed(identity("password", "password:app"), (), ())


def test_a_person_passes_by_name_or_by_any_one_group() -> None:
    assert allowed(identity(), ("alice",), ("ops",))
    assert allowed(identity(subject="bob", groups=("staff", "ops")), ("alice",), ("ops",))
    assert not allowed(identity(subject="bob", groups=("staff",)), ("alice",), ("ops",))
    assert not allowed(identity(subject="bob"), ("alice",), ())
