"""Resource-level sign-in: a PIN or password instead of an account, share links, basic auth."""

import base64
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

from core.auth.users import hash_secret
from tests.support.backend import Backend
from tests.support.browser import form_value
from tests.support.loopback_node import PASSWORD, LoopbackNode, LoopbackNodeFactory
from tests.support.waiting import eventually

PIN = "2468"


def extra(backend: Backend) -> str:
    target = f"[{{host: 127.0.0.1, port: {backend.port}}}]"
    return f"""\
  family:
    host: family.localhost
    auth: {{pin_hash: "{hash_secret(PIN)}"}}
    targets: {target}
  shared:
    host: shared.localhost
    auth: {{users: [alice], share_links: true}}
    targets: {target}
  api:
    host: api.localhost
    auth: {{groups: [ops], basic_auth: true}}
    targets: {target}
"""


def seen(backend: Backend, tag: str) -> tuple[str, dict[str, str]]:
    (record,) = backend.received(tag)
    return record["target"], {name.lower(): value for name, value in record["headers"]}


def enter_pin(node: LoopbackNode, pin: str, path: str = "/") -> tuple[httpx.Response, str]:
    browser = node.browser()
    page, _at = browser.go(node.url("family.localhost", path))
    assert "Application PIN" in page.text
    return browser.go(
        f"{node.portal}/password",
        "POST",
        data={
            "csrf": form_value(page.text, "csrf"),
            "rd": form_value(page.text, "rd"),
            "secret": pin,
        },
        origin=node.portal,
    )


def test_a_resource_pin_opens_that_resource_only(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node(extra(backend))
    wrong, _ = enter_pin(node, "1111")
    assert wrong.status_code == 401
    assert "That is not the right one." in wrong.text
    tag = uuid.uuid4().hex
    landed, at = enter_pin(node, PIN, f"/{tag}")
    assert landed.status_code == 200
    assert at == node.url("family.localhost", f"/{tag}")
    _target, headers = seen(backend, tag)
    assert "remote-user" not in headers  # nobody's account
    assertion = jwt.decode(headers["x-warren-assertion"], options={"verify_signature": False})
    assert assertion["sub"] == "password:family"


def test_a_share_link_opens_the_resource_until_revoked(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node(extra(backend))
    printed = node.warren("share", "shared", "--expires", "1h", "--path", "/dash?tab=2")
    link, id_line, _expires = printed.splitlines()  # stdout: the URL, `id ID`, `expires TIME`
    assert link.startswith(node.url("shared.localhost", "/dash?tab=2&warren_share="))
    token = parse_qs(urlsplit(link).query)["warren_share"][0]
    link_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert id_line == f"id {link_id}"
    # A browser trades the link for a cookie and sees the address without the token.
    browser = node.browser()
    page, at = browser.go(link.replace("/dash", f"/dash-{(tag := uuid.uuid4().hex)}"))
    assert page.status_code == 200
    assert at == node.url("shared.localhost", f"/dash-{tag}?tab=2")
    target, headers = seen(backend, tag)
    assert target == f"/dash-{tag}?tab=2"
    assert "cookie" not in headers
    assert "remote-user" not in headers
    # An API client may use the link directly; the token never reaches the application.
    api_tag = uuid.uuid4().hex
    answer = httpx.get(
        f"http://127.0.0.1:{node.port}/{api_tag}?warren_share={token}&x=1",
        headers={"host": "shared.localhost"},
    )
    assert answer.status_code == 200
    assert seen(backend, api_tag)[0] == f"/{api_tag}?x=1"
    # The link is for this resource only.
    other = httpx.get(
        f"http://127.0.0.1:{node.port}/?warren_share={token}", headers={"host": "app.localhost"}
    )
    assert other.status_code == 401
    node.warren("share", "revoke", link_id)
    _again, at = browser.go(node.url("shared.localhost", "/dash"))
    assert at.startswith(f"{node.portal}/sign-in?rd=")
    refused = httpx.get(
        f"http://127.0.0.1:{node.port}/?warren_share={token}", headers={"host": "shared.localhost"}
    )
    assert refused.status_code == 403


def test_a_share_link_expires(start_node: LoopbackNodeFactory, backend: Backend) -> None:
    node = start_node(extra(backend))
    link = node.warren("share", "shared", "--expires", "2s").splitlines()[0]
    url = urlsplit(link)
    opened = httpx.get(
        f"http://127.0.0.1:{node.port}/?{url.query}", headers={"host": "shared.localhost"}
    )
    assert opened.status_code == 200  # before it expires

    def refused() -> bool:
        answer = httpx.get(
            f"http://127.0.0.1:{node.port}/?{url.query}", headers={"host": "shared.localhost"}
        )
        return answer.status_code == 403

    eventually(refused, timeout=15)


def test_share_links_need_the_resource_to_allow_them(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    import subprocess

    from demo import processes

    node = start_node(extra(backend))
    done = subprocess.run(
        [*processes.warren("share", "app", "--config", str(node.config))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "does not allow share links" in done.stderr


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"host": "api.localhost", "authorization": f"Basic {encoded}"}


def test_basic_auth_for_api_clients(start_node: LoopbackNodeFactory, backend: Backend) -> None:
    node = start_node(
        extra(backend), settings="regulation: {per_user: [3/minute], per_ip: [50/minute]}\n"
    )
    node.add_user("alice", groups=("ops",))
    node.add_user("bob", groups=("staff",))
    tag = uuid.uuid4().hex
    url = f"http://127.0.0.1:{node.port}/{tag}"
    answer = httpx.get(url, headers=basic("alice", PASSWORD))
    assert answer.status_code == 200
    _target, headers = seen(backend, tag)
    assert headers["remote-user"] == "alice"
    assert "authorization" not in headers  # Warren's credentials, not the application's
    assert httpx.get(url, headers=basic("bob", PASSWORD)).status_code == 403
    missing = httpx.get(url, headers={"host": "api.localhost"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Basic realm="api", charset="UTF-8"'
    for _ in range(3):
        assert httpx.get(url, headers=basic("alice", "wrong")).status_code == 401
    locked = httpx.get(url + "-locked", headers=basic("alice", PASSWORD + "x"))
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    # Resources without basic_auth ignore the header: API clients there need a session.
    elsewhere = httpx.get(
        f"http://127.0.0.1:{node.port}/",
        headers={**basic("alice", PASSWORD), "host": "app.localhost"},
    )
    assert elsewhere.status_code == 401
