"""Apps' bearer tokens end to end: `warren token` on the command line, a real gateway and
portal, the recording backend; with Redis, two nodes sharing it."""

import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import jwt
import pyotp

from demo import processes
from tests.authportal.test_console import csrf_of, sign_in
from tests.authportal.test_storage_down import _start, nodes, redis  # noqa: F401 (fixtures)
from tests.support import loopback_node
from tests.support.backend import Backend
from tests.support.loopback_node import LoopbackNode, LoopbackNodeFactory
from tests.support.redis import RedisServer
from tests.support.waiting import eventually

PHOTOS = "photos.localhost"


def extra(backend: Backend) -> str:
    target = f"[{{host: 127.0.0.1, port: {backend.port}}}]"
    return f"""\
  photos:
    host: {PHOTOS}
    auth: {{users: [alice, bob]}}
    targets: {target}
  notes:
    host: notes.localhost
    targets: {target}
"""


def ask(node: LoopbackNode, host: str, token: str, path: str = "/") -> httpx.Response:
    return httpx.get(
        f"http://{node.address}:{node.port}{path}",
        headers={"host": host, "authorization": f"Bearer {token}", "accept": "*/*"},
        timeout=10,
    )


def create(node: LoopbackNode, *args: str) -> str:
    return node.warren("token", "create", *args).strip()


def refused_as_invalid(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")  # RFC 6750 §3
    assert 'error="invalid_token"' in challenge


def test_a_token_opens_its_resource_for_its_user_until_revoked(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node(extra(backend))
    node.add_user("alice")
    token = create(node, "--user", "alice", "--resource", "photos", "--expires", "90d")
    assert token.startswith("wrn_")
    tag = uuid.uuid4().hex
    answer = ask(node, PHOTOS, token, f"/{tag}")
    assert answer.status_code == 200, answer.text
    (record,) = backend.received(tag)
    headers = {name.lower(): value for name, value in record["headers"]}
    assert headers["remote-user"] == "alice"
    assert "authorization" not in headers  # Warren's secret stays with Warren
    assertion = jwt.decode(headers["x-warren-assertion"], options={"verify_signature": False})
    assert (assertion["sub"], assertion["amr"]) == ("alice", ["token"])

    refused_as_invalid(ask(node, "notes.localhost", token))  # made for photos only
    refused_as_invalid(ask(node, PHOTOS, token[:-2] + "xx"))  # a forged secret
    refused_as_invalid(ask(node, PHOTOS, "not-a-token"))

    listing = node.warren("token", "list").splitlines()
    assert listing[0].split() == ["ID", "USER", "RESOURCE", "CREATED", "EXPIRES", "NAME"]
    (row,) = listing[1:]
    token_id = row.split()[0]
    assert token_id in token
    assert token not in row  # the id, never the secret
    assert row.split()[1:3] == ["alice", "photos"]
    assert node.warren("token", "revoke", token_id).startswith(f"revoked token {token_id}")
    refused_as_invalid(ask(node, PHOTOS, token))  # the very next request
    assert node.warren("token", "list").splitlines()[1:] == []


def test_a_token_obeys_the_resources_rules_and_the_account(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node(extra(backend))
    node.add_user("alice")
    node.add_user("carol")
    carols = create(node, "--user", "carol", "--resource", "photos", "--expires", "1d")
    assert ask(node, PHOTOS, carols).status_code == 403  # photos lists alice and bob only
    alices = create(node, "--user", "alice", "--resource", "photos", "--expires", "1d")
    assert ask(node, PHOTOS, alices).status_code == 200
    node.warren("user", "disable", "alice")
    refused_as_invalid(ask(node, PHOTOS, alices))
    short = create(node, "--user", "carol", "--resource", "notes", "--expires", "2s")
    assert ask(node, "notes.localhost", short).status_code == 200

    def expired() -> bool:
        return ask(node, "notes.localhost", short).status_code == 401

    eventually(expired, timeout=15)


def test_tokens_are_refused_for_what_cannot_have_them(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node(extra(backend))
    node.add_user("alice")
    for args, why in [
        (["--user", "nobody", "--resource", "photos"], "no user nobody"),
        (["--user", "alice", "--resource", "portal"], "no http resource named portal"),
        (["--user", "alice", "--resource", "photos", "--expires", "500d"], "400 days"),
    ]:
        expires = [] if "--expires" in args else ["--expires", "1d"]
        done = subprocess.run(
            [*processes.warren("token", "create", *args, *expires), "--config", str(node.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1, done.stdout
        assert why in done.stderr
        assert "wrn_" not in done.stdout


def test_the_console_lists_tokens_and_revokes_them(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node(extra(backend))
    secret = pyotp.random_base32(32)
    node.add_user("erin", groups=("admins",), totp=secret)
    node.add_user("alice")
    token = create(node, "--user", "alice", "--resource", "photos", "--expires", "1d")
    token_id = token.split("_")[1]
    admin = node.browser()
    sign_in(admin, node, "erin", secret)
    page = admin.request("GET", f"{node.portal}/admin/tokens")
    assert page.status_code == 200
    assert f"<code>{token_id}</code>" in page.text
    assert token.split("_", 2)[2] not in page.text
    done = admin.request(
        "POST",
        f"{node.portal}/admin/tokens/revoke",
        data={"token": token_id, "csrf": csrf_of(admin, node)},
        origin=node.portal,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/tokens?done=token"
    refused_as_invalid(ask(node, PHOTOS, token))
    assert (
        f"<code>{token_id}</code>" not in admin.request("GET", f"{node.portal}/admin/tokens").text
    )


def test_a_token_revoked_through_one_node_is_refused_by_the_other_at_once(
    tmp_path: Path,
    backend: Backend,
    redis: RedisServer,  # noqa: F811
    nodes: list[LoopbackNode],  # noqa: F811
) -> None:
    a = loopback_node.prepare(
        tmp_path / "a", backend.port, extra(backend), f"storage: {redis.url}\nnode: {{name: a}}\n"
    )
    b = loopback_node.prepare(
        tmp_path / "b",
        backend.port,
        extra(backend),
        f"storage: {redis.url}\nnode: {{name: b}}\n",
        address="127.0.0.2",
        ports=(a.port, a.portal_port),
    )
    _start(nodes, a)
    shutil.copytree(a.directory / "state" / "keys", b.directory / "state" / "keys")
    _start(nodes, b)
    for node in (a, b):
        node.add_user("alice")
    for _round in range(5):
        token = create(b, "--user", "alice", "--resource", "photos", "--expires", "1d")
        # Made through B, known to A at once: the record is announced like a revocation.
        assert ask(a, PHOTOS, token).status_code == 200
        b.warren("token", "revoke", token.split("_")[1])
        # `revoke` returns once every gateway following the storage applied it (RedisKV), so
        # A refuses the very next request: well within the one second.
        refused_as_invalid(ask(a, PHOTOS, token))
