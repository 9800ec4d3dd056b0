"""addons.relay on a single node (storage: memory://): it relays nothing, and a Warren-Relay
header from a client, however it is spelled, is refused before anything reaches the application.
Between nodes: tests/cluster/test_relay.py."""

import uuid

from tests.support.backend import Backend
from tests.support.gateway import GatewayFactory


def policy(backend: Backend) -> str:
    return f"""\
version: 1
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""


def test_a_single_node_refuses_any_relay_header(
    start_module_gateway: GatewayFactory, backend: Backend
) -> None:
    gateway = start_module_gateway(policy(backend))
    tag = uuid.uuid4().hex[:10]
    for name in ("Warren-Relay", "warren_relay", "WARREN-RELAY"):
        answer = gateway.get("app.example", f"/{tag}", headers={name: "e30.e30.x"})
        assert answer.status_code == 403, answer.text
        assert answer.headers["cache-control"] == "no-store"
    assert backend.received(tag) == []
    served = gateway.get("app.example", f"/{tag}-plain")
    assert served.status_code == 200
    assert "relay refused: this node shares no storage" in gateway.logs()
