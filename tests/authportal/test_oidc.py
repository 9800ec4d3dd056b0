"""Signing in through a real OpenID Connect provider (panva's oidc-provider on loopback) with a
real gateway and portal: the whole flow in Chromium, and over plain HTTP the attacks a relying
party must refuse (a forged ID token, a replayed callback, a wrong nonce or state), a provider
that is down or answers garbage, who may sign in, and linking an account."""

import asyncio
import base64
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import jwt
import pytest
from joserfc.jwk import KeySet, OctKey, RSAKey
from joserfc.jwt import encode as jwt_encode

from core.auth.oidc import OidcClient, Refused, Verified, decide
from core.auth.users import UsersFile, hash_secret, load_users
from core.signinsettings import OidcProvider as ProviderSettings
from demo import processes
from tests.support import loopback_node
from tests.support.backend import Backend
from tests.support.browser import Browser, form_value
from tests.support.ci import ARTIFACTS, in_ci
from tests.support.loopback_node import LoopbackNode
from tests.support.oidcprovider import OidcProvider, require_node, start_provider

OPS_GROUPS = {"idp-ops": "ops"}


class Lab:
    def __init__(self, node: LoopbackNode, provider: OidcProvider) -> None:
        self.node = node
        self.provider = provider


type LabFactory = Callable[..., Lab]


@pytest.fixture
def lab(tmp_path: Path, backend: Backend, request: pytest.FixtureRequest) -> Iterator[LabFactory]:
    started: list[Lab] = []

    def start(
        *,
        accounts: dict[str, dict[str, Any]] | None = None,
        users: dict[str, dict[str, str]] | None = None,
        issuer: str | None = None,
        **oidc: Any,
    ) -> Lab:
        require_node()
        port, portal_port = processes.free_port(), processes.free_port()
        callback = f"http://auth.localhost:{port}/oidc/callback"
        provider = start_provider(tmp_path, callback, accounts)
        settings = provider.settings(**oidc)
        if issuer is not None:
            settings = settings.replace(provider.issuer, issuer)
        node = loopback_node.prepare(
            tmp_path / "node", backend.port, settings=settings, ports=(port, portal_port)
        )
        started.append(Lab(node, provider))
        for name, identities in (users or {}).items():
            node.add_user(name, groups=("ops",) if name == "alice" else ())
            if identities:
                for key, sub in identities.items():
                    node.warren("user", "link", name, key, sub)
        try:
            loopback_node.start(node)
        except RuntimeError as error:
            pytest.fail(f"{error}:\n{node.logs()}")
        return started[-1]

    yield start
    report = getattr(request.node, "rep_call", None)
    for each in started:
        each.node.stop()
        each.provider.stop()
        if report is not None and report.failed:
            logs = each.node.logs() + each.provider.log.read_text(errors="replace")
            sys.stderr.write(f"\n--- logs ---\n{logs[-8000:]}\n")


def warren_fails(node: LoopbackNode, *args: str) -> str:
    done = subprocess.run(
        [*processes.warren(*args), "--config", str(node.config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    return done.stderr + done.stdout


def headers_seen(backend: Backend, tag: str) -> dict[str, str]:
    (seen,) = backend.received(tag)
    return {name.lower(): value for name, value in seen["headers"]}


def assertion_of(seen: dict[str, str]) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        seen["x-warren-assertion"], options={"verify_signature": False}
    )
    return claims


def to_provider(browser: Browser, lab: Lab, rd: str | None = None) -> str:
    """The portal's button: the provider's authorization URL it redirects to."""
    query = f"?{urlencode({'rd': rd})}" if rd else ""
    response = browser.request("GET", f"{lab.node.portal}/sign-in/oidc/test{query}")
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(lab.provider.issuer + "/auth?")
    return location


def provider_login(browser: Browser, lab: Lab, authorize: str, login: str) -> str:
    """Through the provider's development login and consent; the callback URL it sends the
    browser to (not followed)."""
    url = authorize
    method, data = "GET", None
    for _ in range(20):
        response = browser.request(method, url, data=data)
        if response.status_code in (302, 303):
            url = urljoin(url, response.headers["location"])
            method, data = "GET", None
            if url.startswith(f"{lab.node.portal}/oidc/callback"):
                return url
            continue
        assert response.status_code == 200, response.text
        action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
        assert action, response.text
        prompt = re.search(r'name="prompt" value="([a-z]+)"', response.text)
        assert prompt, response.text
        url = urljoin(url, action.group(1))
        method = "POST"
        data = {"prompt": prompt.group(1), "login": login, "password": "anything"}
    raise AssertionError(f"never sent back to the portal: {browser.visited[-10:]}")


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def signed_in(browser: Browser, lab: Lab) -> bool:
    return "warren_portal" in browser.cookies("auth.localhost")


def sign_in_over_http(
    lab: Lab, login: str, host: str = "app.localhost"
) -> tuple[Browser, httpx.Response, str, str]:
    browser = lab.node.browser()
    tag = uuid.uuid4().hex
    rd = lab.node.url(host, f"/{tag}")
    callback = provider_login(browser, lab, to_provider(browser, lab, rd), login)
    response, at = browser.go(callback)
    return browser, response, at, tag


def test_external_person_on_the_allow_list_signs_in_with_mapped_groups(
    lab: LabFactory, backend: Backend
) -> None:
    accounts = {"carol-sub": {"email": "Carol@Partner.example", "groups": ["idp-ops", "other"]}}
    run = lab(accounts=accounts, allow_domains=["partner.example"], groups=OPS_GROUPS)
    browser, response, at, tag = sign_in_over_http(run, "carol-sub", "ops.localhost")
    assert response.status_code == 200, browser.visited
    assert at == run.node.url("ops.localhost", f"/{tag}")
    seen = headers_seen(backend, tag)
    assert seen["remote-user"] == "test:carol-sub"
    assert seen["remote-email"] == "carol@partner.example"
    assert seen["remote-groups"] == "ops"  # "other" is not mapped: dropped
    claims = assertion_of(seen)
    assert claims["amr"] == ["oidc"]
    assert claims["idp"] == "oidc:test"


def test_group_not_mapped_does_not_open_a_group_resource(lab: LabFactory) -> None:
    accounts = {"dave-sub": {"email": "dave@partner.example", "groups": ["ops"]}}
    run = lab(accounts=accounts, allow_domains=["partner.example"], groups=OPS_GROUPS)
    browser, response, at, _ = sign_in_over_http(run, "dave-sub", "ops.localhost")
    assert signed_in(browser, run)  # signed in, but the provider's "ops" is not Warren's
    assert response.status_code == 403, (at, response.text)


def test_linked_account_signs_in_as_the_account(lab: LabFactory, backend: Backend) -> None:
    run = lab(
        accounts={"a1b2": {"email": "someone-else@idp.test"}},
        users={"alice": {"test": "a1b2"}},
    )
    browser, response, _at, tag = sign_in_over_http(run, "a1b2")
    assert response.status_code == 200, browser.visited
    seen = headers_seen(backend, tag)
    assert seen["remote-user"] == "alice"
    assert seen["remote-email"] == "alice@example.com"  # users.yaml's, not the provider's
    assert seen["remote-groups"] == "ops"
    assert "idp" not in assertion_of(seen)


def test_not_linked_and_not_allowed_is_refused(lab: LabFactory, backend: Backend) -> None:
    # The provider says alice@example.com, verified: still not alice's account (linked by sub
    # only), and not on the allow list.
    run = lab(
        accounts={"mallory": {"email": "alice@example.com"}},
        users={"alice": {}},
        allow_emails=["bob@example.com"],
    )
    browser, response, _, tag = sign_in_over_http(run, "mallory")
    assert response.status_code == 403
    assert "may not sign in here" in response.text
    assert not signed_in(browser, run)
    assert backend.received(tag) == []


def test_unverified_email_on_the_allow_list_is_refused(lab: LabFactory) -> None:
    run = lab(
        accounts={"eve": {"email": "eve@partner.example", "email_verified": False}},
        allow_domains=["partner.example"],
    )
    browser, response, _, _ = sign_in_over_http(run, "eve")
    assert response.status_code == 403
    assert "not verified" in response.text
    assert not signed_in(browser, run)


def test_forged_id_token_signature_is_refused(lab: LabFactory) -> None:
    run = lab(allow_domains=["idp.test"])
    browser = run.node.browser()
    callback = provider_login(browser, run, to_provider(browser, run), "frank")
    run.provider.forge("signature")
    response, _ = browser.go(callback)
    assert response.status_code == 401
    assert "signature" in response.text
    assert not signed_in(browser, run)


def test_garbage_from_the_token_endpoint_is_a_clear_error(lab: LabFactory) -> None:
    run = lab(allow_domains=["idp.test"])
    browser = run.node.browser()
    callback = provider_login(browser, run, to_provider(browser, run), "gina")
    run.provider.forge("garbage")
    response, _ = browser.go(callback)
    assert response.status_code == 502
    assert "The identity provider Test IdP did not answer" in response.text
    assert not signed_in(browser, run)


def test_replayed_callback_is_refused(lab: LabFactory) -> None:
    run = lab(allow_domains=["idp.test"])
    browser = run.node.browser()
    callback = provider_login(browser, run, to_provider(browser, run), "henry")
    flow = browser.cookies("auth.localhost")["warren_oidc"]
    first, _ = browser.go(callback)
    assert first.status_code == 200, browser.visited
    assert signed_in(browser, run)
    # The same code and state again, with the same flow cookie, from a fresh browser: the flow
    # was taken on first use (and the provider would refuse the code too).
    again = run.node.browser()
    again.jar = {"auth.localhost": {"warren_oidc": flow}}
    replay = again.request("GET", callback)
    assert replay.status_code == 400
    assert "does not belong to a sign-in" in replay.text
    assert not signed_in(again, run)


def test_callback_in_another_browser_is_refused(lab: LabFactory) -> None:
    # The state is bound to the browser that started: a victim handed the attacker's callback
    # (login CSRF) is not signed in as the attacker.
    run = lab(allow_domains=["idp.test"])
    attacker = run.node.browser()
    callback = provider_login(attacker, run, to_provider(attacker, run), "ivan")
    victim = run.node.browser()
    response = victim.request("GET", callback)
    assert response.status_code == 400
    assert not signed_in(victim, run)


def test_wrong_state_is_refused(lab: LabFactory) -> None:
    run = lab(allow_domains=["idp.test"])
    browser = run.node.browser()
    callback = provider_login(browser, run, to_provider(browser, run), "judy")
    response = browser.request("GET", with_query(callback, state="not-the-state"))
    assert response.status_code == 400
    assert not signed_in(browser, run)
    # And the flow is gone: the right state afterwards does not work either.
    assert browser.request("GET", callback).status_code == 400


def test_wrong_nonce_is_refused(lab: LabFactory) -> None:
    run = lab(allow_domains=["idp.test"])
    browser = run.node.browser()
    authorize = with_query(to_provider(browser, run), nonce="an-attackers-nonce")
    callback = provider_login(browser, run, authorize, "kim")
    response, _ = browser.go(callback)
    assert response.status_code == 401
    assert "nonce" in response.text
    assert not signed_in(browser, run)


def test_error_from_the_provider_is_refused(lab: LabFactory) -> None:
    run = lab(allow_domains=["idp.test"])
    browser = run.node.browser()
    authorize = to_provider(browser, run)
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    url = f"{run.node.portal}/oidc/callback?" + urlencode(
        {"error": "access_denied", "state": state}
    )
    response = browser.request("GET", url)
    assert response.status_code == 401
    assert "access_denied" in response.text
    assert not signed_in(browser, run)


def test_provider_down_is_a_clear_error(lab: LabFactory) -> None:
    closed = processes.free_port()  # nothing listens there
    run = lab(allow_domains=["idp.test"], issuer=f"http://127.0.0.1:{closed}")
    browser = run.node.browser()
    response = browser.request("GET", f"{run.node.portal}/sign-in/oidc/test")
    assert response.status_code == 502
    assert "The identity provider Test IdP did not answer" in response.text
    assert not signed_in(browser, run)


def test_sign_in_page_shows_the_provider_button_keeping_rd(lab: LabFactory) -> None:
    run = lab(allow_domains=["idp.test"])
    browser = run.node.browser()
    rd = run.node.url("app.localhost", "/x")
    page = browser.request("GET", f"{run.node.portal}/sign-in?{urlencode({'rd': rd})}")
    assert "Sign in with Test IdP" in page.text
    assert f"/sign-in/oidc/test?{urlencode({'rd': rd})}".replace("&", "&amp;") in page.text
    bad = browser.request("GET", f"{run.node.portal}/sign-in/oidc/test?rd=https://evil.test/")
    assert bad.status_code == 400


def test_link_from_the_home_page_then_sign_in_as_the_account(
    lab: LabFactory, backend: Backend
) -> None:
    run = lab(users={"alice": {}, "bob": {}})
    browser = run.node.browser()
    page, _at = browser.go(f"{run.node.portal}/sign-in")
    csrf = form_value(page.text, "csrf")
    home, _ = browser.go(
        f"{run.node.portal}/sign-in",
        "POST",
        {"username": "alice", "password": loopback_node.PASSWORD, "csrf": csrf},
        origin=run.node.portal,
    )
    assert "Link Test IdP" in home.text, browser.visited
    response = browser.request(
        "POST",
        f"{run.node.portal}/sign-in/oidc/test/link",
        data={"csrf": form_value(home.text, "csrf")},
        origin=run.node.portal,
    )
    assert response.status_code == 303, response.text
    callback = provider_login(browser, run, response.headers["location"], "alice-at-idp")
    linked, _ = browser.go(callback)
    assert linked.status_code == 200
    users = load_users(run.node.directory / "users.yaml")
    assert users.users["alice"].identities == {"test": "alice-at-idp"}
    assert "Link Test IdP" not in linked.text

    # Now the provider's user signs in as alice; and cannot also be linked to bob.
    _fresh, response, _, tag = sign_in_over_http(run, "alice-at-idp")
    assert response.status_code == 200
    assert headers_seen(backend, tag)["remote-user"] == "alice"
    refused = warren_fails(run.node, "user", "link", "bob", "test", "alice-at-idp")
    assert "linked to the account alice" in refused
    run.node.warren("user", "unlink", "alice", "test")
    assert load_users(run.node.directory / "users.yaml").users["alice"].identities == {}


def test_browser_signs_in_through_the_provider(lab: LabFactory, backend: Backend) -> None:
    """Chromium: the resource → the portal's "Sign in with Test IdP" → the provider's login and
    consent → back on the resource, the backend told who it is."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        if in_ci():
            raise RuntimeError("Debian's chromium is not installed (./dev test installs it)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    from tests.authportal.test_browser import ARGS

    accounts = {"olive-sub": {"email": "olive@partner.example", "groups": ["idp-ops"]}}
    run = lab(accounts=accounts, allow_domains=["partner.example"], groups=OPS_GROUPS)
    shots = ARTIFACTS / "oidc"
    shots.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=ARGS)
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(run.node.url("ops.localhost", f"/{tag}"))
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.screenshot(path=str(shots / "1-sign-in.png"), full_page=True)
        page.get_by_role("link", name="Sign in with Test IdP").click()
        expect(page).to_have_url(re.compile(rf"^{re.escape(run.provider.issuer)}/interaction/"))
        page.locator('input[name="login"]').fill("olive-sub")
        page.locator('input[name="password"]').fill("anything")
        page.screenshot(path=str(shots / "2-provider-login.png"), full_page=True)
        page.get_by_role("button", name="Sign-in").click()
        page.get_by_role("button", name="Continue").click()  # the provider's consent
        expect(page).to_have_url(run.node.url("ops.localhost", f"/{tag}"))
        expect(
            page.get_by_role("row", name=re.compile(r"Remote-User\s+test:olive-sub"))
        ).to_be_visible()
        page.screenshot(path=str(shots / "3-on-the-resource.png"), full_page=True)
        context.close()
        browser.close()
    seen = headers_seen(backend, tag)
    assert seen["remote-groups"] == "ops"
    assert assertion_of(seen)["amr"] == ["oidc"]


# The ID token checks of OIDC Core §3.1.3.7 one by one, in-process: the client's discovery
# document and keys set as a fetch would set them, tokens signed with a real RSA key.

ISSUER = "https://id.example.test"
SIGNER = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})


def offline_client(**settings: Any) -> OidcClient:
    provider = ProviderSettings(issuer=ISSUER, client_id="warren", client_secret="s", **settings)
    client = OidcClient("idp", provider, "https://auth.example.test/oidc/callback")
    client._discovery = {  # what discovery() would have fetched
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/jwks",
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    client._discovered_at = time.time()
    client._keys = KeySet([RSAKey.import_key(SIGNER.as_dict(private=False))])
    client._keys_at = time.monotonic()  # just fetched: an unknown kid does not refetch now
    return client


def id_token(key: Any = SIGNER, header: dict[str, str] | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "warren", "sub": "s-1", "iat": now, "exp": now + 300}
    body.update(nonce="n-1", email="p@partner.example", email_verified=True)
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt_encode(header or {"alg": "RS256", "kid": "k1"}, body, key)


def jwt_decode_unverified(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def verify(token: str, nonce: str = "n-1", **settings: Any) -> Verified:
    return asyncio.run(offline_client(**settings).verify(token, nonce))


def test_a_good_id_token_is_accepted_and_groups_mapped() -> None:
    verified = verify(id_token(groups=["a", "b"]), groups={"a": "ops"})
    assert verified.subject == "s-1"
    assert verified.email == "p@partner.example"
    assert verified.groups == ("ops",)


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iss": "https://evil.test"}, "iss"),
        ({"aud": "someone-else"}, "aud"),
        ({"aud": ["warren", "other"]}, "azp"),  # several audiences: azp must be ours
        ({"aud": ["warren", "other"], "azp": "other"}, "azp"),
        ({"exp": int(time.time()) - 3600}, "exp"),
        ({"iat": None}, "iat"),
        ({"nonce": "n-2"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"sub": None}, "sub"),
    ],
)
def test_an_id_token_failing_a_check_is_refused(claims: dict[str, Any], why: str) -> None:
    with pytest.raises(Refused, match=why):
        verify(id_token(**claims))


def test_a_token_signed_by_another_key_or_unknown_kid_is_refused() -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
    with pytest.raises(Refused, match="signature"):
        verify(id_token(other))
    with pytest.raises(Refused, match="signature"):
        verify(id_token(other, {"alg": "RS256", "kid": "k9"}))


def test_alg_none_and_hs256_with_the_client_secret_are_refused() -> None:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    payload = jwt_decode_unverified(id_token())
    with pytest.raises(Refused):
        verify(f"{b64({'alg': 'none'})}.{b64(payload)}.")
    secret = OctKey.import_key("s" * 32)
    with pytest.raises(Refused):
        verify(id_token(secret, {"alg": "HS256", "kid": "k1"}))


def test_unverified_email_does_not_count() -> None:
    assert verify(id_token(email_verified=False)).email is None
    assert verify(id_token(email_verified="true")).email is None  # a string is not true


def test_decide_links_by_subject_only() -> None:
    users = UsersFile.model_validate(
        {
            "users": {
                "alice": {"password": hash_secret("x" * 12), "identities": {"idp": "s-1"}},
                "bob": {"password": hash_secret("x" * 12), "email": "p@partner.example"},
            }
        }
    )
    settings = offline_client().settings
    linked = decide("idp", settings, verify(id_token()), users)
    assert (linked.subject, linked.account) == ("alice", True)
    stranger = verify(id_token(sub="s-2"))  # bob's e-mail, verified: still not bob
    with pytest.raises(Refused, match="may not sign in"):
        decide("idp", settings, stranger, users)
    allowed = offline_client(allow_domains=["Partner.Example"]).settings
    outsider = decide("idp", allowed, stranger, users)
    assert (outsider.subject, outsider.account) == ("idp:s-2", False)
