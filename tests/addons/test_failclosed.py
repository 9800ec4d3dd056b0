from collections.abc import Iterator
from pathlib import Path

import pytest

from addons import failclosed
from addons.pack import warren_addons
from tests.support.backend import Backend
from tests.support.gateway import GatewayFactory
from tests.support.inprocess import flow, pack, respond, run

warren_addons()  # importing the pack registers every guarded hook
REQUEST_PHASE = ("requestheaders", "request")


@pytest.fixture
def failpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    failclosed.FAILPOINTS.add(name)
    yield name
    failclosed.FAILPOINTS.discard(name)


def test_every_request_hook_is_guarded() -> None:
    names = set(failclosed.HOOKS)
    for module in ("wellformed", "clientip", "routing", "rules", "auth", "upstream", "pipeline"):
        assert f"{module}.requestheaders" in names


@pytest.mark.parametrize("failpoint", sorted(set(failclosed.HOOKS)), indirect=True)
def test_a_hook_that_raises_answers_500(failpoint: str, tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        made = run(context, flow("app.example", "/allowed"))
        if failpoint.endswith(REQUEST_PHASE):
            # Answered before anything was sent upstream.
            assert made.response is not None
            assert made.response.status_code == 500
        respond(context, made)
        assert made.response is not None
        assert made.response.status_code == 500
        assert b"Something went wrong" in (made.response.content or b"") or b'"status": 500' in (
            made.response.content or b""
        )


PROCESS_POLICY = """\
version: 1
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {port}}}]
"""


@pytest.mark.parametrize("hook", sorted(set(failclosed.HOOKS)))
def test_a_real_gateway_answers_500_and_forwards_nothing(
    hook: str, backend: Backend, start_gateway: GatewayFactory
) -> None:
    import uuid

    gateway = start_gateway(
        PROCESS_POLICY.format(port=backend.port), env={"WARREN_FAILPOINTS": hook}
    )
    tag = uuid.uuid4().hex
    response = gateway.get("app.example", f"/{tag}", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    if hook.endswith(REQUEST_PHASE):
        assert backend.received(tag) == []
    assert f"{hook} failed: InjectedFault" in gateway.logs()
