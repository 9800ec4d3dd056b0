"""Who is asking (addons.identify): a session cookie the portal signed for this host, not revoked,
of someone users.yaml still lists; a share link; or basic auth. In-process, with sign-in configured
(tests.support.signin_pack). Its request helpers serve the other sign-in tests too: test_auth,
test_reserved, test_signin and test_upstream."""

import asyncio
import base64
import time
from collections.abc import Callable
from pathlib import Path

import jwt
from mitmproxy import http

from addons.exchange import exchange_of
from core.auth import sessions
from core.auth.tokens import mint
from core.auth.users import Passkey, UsersFile, update
from tests.support import inprocess
from tests.support.inprocess import run
from tests.support.signin_pack import POLICY, PORTAL, SigninPack, signin_pack

BROWSER = ("Accept", "text/html,application/xhtml+xml")


def flow(host: str, path: str = "/", **kwargs: object) -> http.HTTPFlow:
    """A request over plain http (mitmproxy's test flows default to TLS)."""
    made = inprocess.flow(host, path, **kwargs)  # type: ignore[arg-type]
    made.client_conn.timestamp_tls_setup = None
    return made


def tls_flow(host: str, path: str = "/", **kwargs: object) -> http.HTTPFlow:
    made = inprocess.flow(host, path, **kwargs)  # type: ignore[arg-type]
    made.client_conn.timestamp_tls_setup = time.time()
    return made


def status(made: http.HTTPFlow) -> int | None:
    return made.response.status_code if made.response is not None else None


def answer(made: http.HTTPFlow) -> http.Response:
    assert made.response is not None
    return made.response


def cookie(value: str, name: str = "warren_session", csrf: str | None = None) -> tuple[str, str]:
    extra = f"; warren_csrf={csrf}" if csrf is not None else ""
    return ("Cookie", f"theme=dark; {name}={value}; lang=en{extra}")


def until(deadline_seconds: float, check: Callable[[], bool]) -> bool:
    """Whether `check` comes true before the deadline (polled: how soon is not the question)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_session_for_one_host_is_refused_on_another(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        token = n.session("app.example")
        made = run(n.context, flow("other.example", "/", headers=[cookie(token), BROWSER]))
        assert status(made) == 302
        assert "remote-user" not in made.request.headers


def test_an_assertion_is_not_a_session(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        first = run(n.context, flow("app.example", "/", headers=[cookie(n.session("app.example"))]))
        assertion = first.request.headers["x-warren-assertion"]
        made = run(n.context, flow("app.example", "/", headers=[cookie(assertion), BROWSER]))
        assert status(made) == 302


def test_expired_and_tampered_sessions_are_refused(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        expired = n.session("app.example", now=time.time() - 7200)
        header, payload, signature = n.session("app.example").split(".")
        tampered = f"{header}.{payload[:-4]}AAAA.{signature}"
        for token in (expired, tampered, "not-a-token"):
            made = run(n.context, flow("app.example", "/", headers=[cookie(token), BROWSER]))
            assert status(made) == 302, token


def test_a_revoked_session_is_refused_on_the_next_request(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        token = n.session("app.example", sid="s-revoke")
        assert run(n.context, flow("app.example", "/", headers=[cookie(token)])).response is None
        n.revoke("s-revoke")
        made = run(n.context, flow("app.example", "/", headers=[cookie(token)]))
        assert status(made) == 401


def test_a_signed_in_user_removed_from_a_group_is_refused_within_a_second(
    tmp_path: Path,
) -> None:
    with signin_pack(tmp_path) as n:
        token = n.session("ops.example", "carol", groups=("ops",))

        def let_in() -> bool:
            made = run(n.context, flow("ops.example", "/", headers=[cookie(token), BROWSER]))
            return made.response is None

        assert let_in()
        n.set_user("carol", ("staff",))
        assert until(1.5, lambda: not let_in())
        refused = run(n.context, flow("ops.example", "/", headers=[cookie(token), BROWSER]))
        assert status(refused) == 403
        # Where carol is still let in, the application hears her groups as they are now.
        on_app = n.session("app.example", "carol", groups=("ops",))
        made = run(n.context, flow("app.example", "/", headers=[cookie(on_app)]))
        assert made.request.headers["remote-groups"] == "staff"
        assertion = made.request.headers["x-warren-assertion"]
        assert jwt.decode(assertion, options={"verify_signature": False})["groups"] == ["staff"]
        n.set_user("carol", ("ops",))  # and added back, let in again without a new sign-in
        assert until(1.5, let_in)


def test_a_disabled_or_deleted_users_session_is_refused(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        alice = n.session("app.example", "alice")
        bob = n.session("app.example", "bob")

        def signed_in(token: str) -> bool:
            made = run(n.context, flow("app.example", "/", headers=[cookie(token)]))
            return made.response is None

        assert signed_in(alice)
        assert signed_in(bob)
        n.set_user("alice", ("staff",), disabled=True)
        n.remove_user("bob")
        assert until(1.5, lambda: not signed_in(alice) and not signed_in(bob))
        assert status(run(n.context, flow("app.example", "/", headers=[cookie(alice)]))) == 401
        # A session for someone users.yaml never had is nobody's.
        stranger = n.session("app.example", "mallory")
        assert not signed_in(stranger)


BASIC = POLICY + (
    "  api:\n    host: api.example\n    auth: {basic_auth: true}\n"
    "    targets: [{host: 127.0.0.1, port: 9}]\n"
)


def basic_status(n: SigninPack) -> int | None:
    """What alice's name and password in `Authorization: Basic` get on the basic-auth resource
    (None: through to the application)."""
    secret = base64.b64encode(b"alice:correct horse battery").decode()
    made = run(n.context, flow("api.example", "/", headers=[("Authorization", f"Basic {secret}")]))
    return status(made)


def test_a_disabled_user_cannot_use_basic_auth(tmp_path: Path) -> None:
    with signin_pack(tmp_path, policy=BASIC) as n:
        assert basic_status(n) is None
        n.set_user("alice", ("staff",), disabled=True)
        assert until(1.5, lambda: basic_status(n) == 401)


def test_basic_auth_stops_once_the_account_has_a_passkey(tmp_path: Path) -> None:
    """A passkey is a second factor (docs/identity.md): the password alone, which is all basic
    auth carries, no longer opens the account; removing the passkey makes it enough again."""
    passkey = Passkey(id="A" * 22, public_key="B" * 40, name="laptop")

    def with_passkeys(*passkeys: Passkey) -> Callable[[UsersFile], UsersFile]:
        def change(users: UsersFile) -> UsersFile:
            alice = users.users["alice"].model_copy(update={"passkeys": passkeys})
            return users.model_copy(update={"users": {**users.users, "alice": alice}})

        return change

    with signin_pack(tmp_path, policy=BASIC) as n:
        assert basic_status(n) is None
        update(n.users_file, with_passkeys(passkey))
        assert until(1.5, lambda: basic_status(n) == 401)
        update(n.users_file, with_passkeys())
        assert until(1.5, lambda: basic_status(n) is None)


SHARED = POLICY + (
    "  shared:\n    host: shared.example\n    auth: {users: [bob], share_links: true}\n"
    "    targets: [{host: 192.0.2.15, port: 8080}]\n"
)


def share_link(n: SigninPack, link_id: str, resource: str = "shared") -> str:
    """A link's token as `warren share` mints it."""
    return mint(
        n.keys,
        use="share",
        issuer=PORTAL,
        audience=f"share:{resource}",
        subject=f"share:{link_id}",
        lifetime=600,
        claims={"jti": link_id},
    )


def test_a_share_link_is_traded_for_a_cookie_and_leaves_the_address(tmp_path: Path) -> None:
    with signin_pack(tmp_path, policy=SHARED) as n:
        token = share_link(n, "l-1")
        made = run(
            n.context,
            flow("shared.example", f"/dash?tab=2&warren_share={token}", headers=[BROWSER]),
        )
        assert status(made) == 302
        assert answer(made).headers["location"] == "/dash?tab=2"
        assert answer(made).headers["set-cookie"].startswith(f"warren_share={token}; ")
        by_cookie = run(
            n.context, flow("shared.example", "/dash", headers=[cookie(token, "warren_share")])
        )
        assert by_cookie.response is None
        exchange = exchange_of(by_cookie)
        assert exchange is not None
        assert exchange.identity is not None
        assert (exchange.identity.method, exchange.user) == ("share", "share:l-1")
        # An API client uses the link as it is; the application never sees the token.
        api = run(n.context, flow("shared.example", f"/api?warren_share={token}&x=1"))
        assert api.response is None
        assert api.request.path == "/api?x=1"


def test_a_revoked_or_misaddressed_share_link_is_refused(tmp_path: Path) -> None:
    with signin_pack(tmp_path, policy=SHARED) as n:
        revoked = share_link(n, "l-2")
        asyncio.run(sessions.revoke_share(n.kv(), "l-2", time.time() + 600))
        for token in (revoked, share_link(n, "l-3", resource="app"), "junk"):
            made = run(
                n.context, flow("shared.example", f"/?warren_share={token}", headers=[BROWSER])
            )
            assert status(made) == 403, token
            assert b"share link" in (answer(made).content or b"")
        # Where links are not allowed, one is not even read: sign in.
        other = run(n.context, flow("app.example", f"/?warren_share={share_link(n, 'l-4', 'app')}"))
        assert status(other) == 401


def test_a_proved_identity_is_on_the_exchange_for_the_steps_after(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        made = run(
            n.context,
            flow("app.example", "/", headers=[cookie(n.session("app.example", sid="s-x"))]),
        )
        exchange = exchange_of(made)
        assert exchange is not None
        assert exchange.identity is not None
        assert (exchange.identity.method, exchange.identity.session_id) == ("session", "s-x")
        assert exchange.user == "alice"  # what per-user rate limits count
        anonymous = exchange_of(run(n.context, flow("public.example", "/")))
        assert anonymous is not None
        assert (anonymous.identity, anonymous.user) == (None, None)
