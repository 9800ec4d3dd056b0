"""Node-to-node relay (core.cluster.relay): a request whose site is offline here goes to a node
that has it online, and a request another node relayed goes straight into this node's tunnel.

- `relay_route` and `point_at_node` (addons.upstream, at the routing step): this node decided
  the request and no target of it is reachable from here because their site's tunnel is down;
  a live node with the site online gets it at its `node.url`, with a `Warren-Relay` token bound
  to the request.
- `Relayed` (a request step, after the resource is known and before anything is decided): a
  request with the header is another node's, already decided there. A valid token sends it, as
  it came and without the header, to the target it names, through this node's own tunnel (502
  when the site is offline here too: never relayed again); anything else is refused, 403.
- `RelayTls`: with `node.ca_file`, connections to other nodes trust that CA (a private one, or
  self-signed nodes) instead of the system's.
"""

import ipaddress
from pathlib import Path
from typing import Any

import jwt
from mitmproxy import connection, http, tls
from mitmproxy.addons.tlsconfig import DEFAULT_HOSTFLAGS
from mitmproxy.net import tls as net_tls
from OpenSSL import SSL

from addons.deadlines import Deadlines
from addons.destination import point_at
from addons.exchange import Exchange
from addons.respond import refuse
from addons.runtime import RuntimeSlot
from core.auth.tokens import TokenError
from core.cluster.peers import origin_address
from core.cluster.records import NodeRecord
from core.cluster.relay import HEADER, Carried, Replays, mint_relay, verify_relay
from core.headers import cgi_name, cgi_names
from core.policy.model import Target

_NAME = HEADER.encode()
_REFUSED = "This node accepts relayed requests only from the other nodes of its cluster."


def relay_route(exchange: Exchange, preferred: Target | None) -> tuple[Target, NodeRecord] | None:
    """A target whose site is offline here and a live node that has it online: the balancer's
    choice when it made one, else the resource's first such target. Only targets this node
    cannot reach: one whose site is up here but fails its health check is not sent elsewhere."""
    runtime = exchange.runtime
    peers = runtime.peers
    if peers is None:
        return None
    route = exchange.route
    targets = exchange.resource.targets if route is None else route.targets
    for target in (preferred, *targets) if preferred is not None else targets:
        if target.site is None or runtime.sites.resolve(target) is not None:
            continue
        node = peers.carrying(target.site)
        if node is not None and node.url is not None:
            return target, node
    return None


def point_at_node(
    flow: http.HTTPFlow, exchange: Exchange, target: Target, node: NodeRecord
) -> None:
    """Send the request, decided and with its headers rewritten, to `node` with a relay token."""
    runtime = exchange.runtime
    assert node.url is not None
    request = flow.request
    carried = _carried(request, exchange.resource.name, target)
    token = mint_relay(
        runtime.signin.keys, sender=runtime.settings.node_name, receiver=node.name, carried=carried
    )
    request.headers[HEADER] = token
    point_at(request, "https", origin_address(node.url))


def _carried(request: http.Request, resource: str, target: Target) -> Carried:
    site = target.site or ""
    host = request.host_header or ""
    return Carried(request.method, host, request.path, resource, site, target.host, target.port)


class Relayed:
    def __init__(self, deadlines: Deadlines) -> None:
        self.deadlines = deadlines
        self.replays = Replays()

    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        fields = flow.request.headers.fields
        names = cgi_names(fields)
        if _NAME not in names:  # nearly every request: found so in C, not a step per field
            return
        tokens = [value for (_name, value), cgi in zip(fields, names, strict=True) if cgi == _NAME]
        accepted = self._accepted(flow, exchange, tokens)
        if isinstance(accepted, str):
            refuse(flow, 403, detail=_REFUSED, reason=f"relay refused: {accepted}")
            return
        sender, target = accepted
        flow.request.headers.fields = tuple((n, v) for n, v in fields if cgi_name(n) != _NAME)
        if target is None:  # the policies differ for now (a push on its way): not ours to guess
            refuse(flow, 502, reason=f"relayed by {sender}: not a target of this node's policy")
            return
        address = exchange.runtime.sites.resolve(target)
        if address is None:
            refuse(flow, 502, reason=f"relayed by {sender}: site {target.site} is offline here too")
            return
        point_at(flow.request, target.scheme, address)
        exchange.target = target
        exchange.relayed_by = sender
        self.deadlines.requestheaders(flow, exchange)

    def _accepted(
        self, flow: http.HTTPFlow, exchange: Exchange, tokens: list[bytes]
    ) -> tuple[str, Target | None] | str:
        """The sending node and the target in this node's policy (None: not there), or why the
        header is refused."""
        runtime = exchange.runtime
        peers, keys = runtime.peers, runtime.signin.services.published
        if peers is None or keys is None:
            return "this node shares no storage with other nodes"
        if len(tokens) != 1:
            return "more than one relay header"
        token = tokens[0].decode("latin-1")
        named = _named_target(token)
        if named is None:
            return "no target named"
        site, host, port = named
        request, resource = flow.request, exchange.resource
        carried = Carried(
            request.method, request.host_header or "", request.path, resource.name, site, host, port
        )
        try:
            sender = verify_relay(
                token,
                receiver=runtime.settings.node_name,
                keys=keys,
                live=peers.live(),
                carried=carried,
                replays=self.replays,
            )
        except TokenError as error:
            return str(error)
        for target in resource.every_target:
            if (target.site, target.host, target.port) == named:
                return sender, target
        return sender, None


def _named_target(token: str) -> tuple[str, str, int] | None:
    """The site, host and port the token names (its signature is checked next, with them)."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    named = claims.get("target")
    if not isinstance(named, list) or len(named) != 4:
        return None
    _resource, site, host, port = named
    if not isinstance(site, str) or not isinstance(host, str) or not isinstance(port, int):
        return None
    return site, host, port


class RelayTls:
    """Connections to other nodes' node.url trust `node.ca_file`, when warren.yaml names one."""

    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot

    def tls_start_server(self, tls_start: tls.TlsData) -> None:
        runtime = self.slot.runtime
        server = tls_start.conn
        if runtime is None or runtime.peers is None or not isinstance(server, connection.Server):
            return
        ca_file = runtime.settings.node.ca_file
        if ca_file is None or server.address is None:
            return
        if runtime.peers.is_relay_address((str(server.address[0]), int(server.address[1]))):
            tls_start.ssl_conn = _trusting(ca_file, server)


def _trusting(ca_file: Path, server: connection.Server) -> SSL.Connection:
    """What mitmproxy's tlsconfig makes for a server, verified against `ca_file` alone."""
    context = net_tls.create_proxy_server_context(
        method=net_tls.Method.TLS_CLIENT_METHOD,
        min_version=net_tls.Version.TLS1_2,
        max_version=net_tls.Version.UNBOUNDED,
        cipher_list=None,
        ecdh_curve=None,
        verify=net_tls.Verify.VERIFY_PEER,
        ca_path=None,
        ca_pemfile=str(ca_file),
        client_cert=None,
        legacy_server_connect=False,
    )
    ssl_conn = SSL.Connection(context)
    assert server.address is not None
    name = str(server.sni or server.address[0])
    # Hostname verification, as tlsconfig enables it (pyOpenSSL has no public call for it).
    param = SSL._lib.SSL_get0_param(ssl_conn._ssl)  # type: ignore[attr-defined]
    SSL._lib.X509_VERIFY_PARAM_set_hostflags(param, DEFAULT_HOSTFLAGS)  # type: ignore[attr-defined]
    try:
        ip = ipaddress.ip_address(name).packed
    except ValueError:
        encoded = name.encode("idna")
        ssl_conn.set_tlsext_host_name(encoded)
        ok = SSL._lib.X509_VERIFY_PARAM_set1_host(param, encoded, len(encoded))  # type: ignore[attr-defined]
    else:  # RFC 6066 §3: no SNI for an address; the certificate must name the address
        ok = SSL._lib.X509_VERIFY_PARAM_set1_ip(param, ip, len(ip))  # type: ignore[attr-defined]
    if ok != 1:
        raise ValueError(f"cannot verify the node's certificate for {name!r}")
    if server.alpn_offers:
        ssl_conn.set_alpn_protos(list(server.alpn_offers))
    ssl_conn.set_connect_state()
    return ssl_conn
