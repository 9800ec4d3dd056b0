"""Raw TCP and UDP resources on a real gateway process, on loopback: listeners from the policy
(and on reload), the rules decided per connection, bytes relayed untouched, fail closed."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from addons import failclosed
from addons.pack import warren_addons
from core.tunnels import Forward, encode_sites
from demo import processes
from tests.support.gateway import GatewayFactory
from tests.support.waiting import eventually

warren_addons()  # registers the guarded hooks


class Echo:
    def __init__(self, tcp: int, udp: int) -> None:
        self.tcp, self.udp = tcp, udp


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    tcp, udp = processes.free_port(), processes.free_port(socket.SOCK_DGRAM)
    process = processes.start(
        processes.python("-m", "tests.support.echo", "--tcp", str(tcp), "--udp", str(udp))
    )
    processes.wait_for_port(tcp, process)
    yield Echo(tcp, udp)
    processes.stop(process)


def policy(echo: Echo, ports: dict[str, int], extra: str = "") -> str:
    return f"""\
version: 1
rules:
  - {{action: deny, cidr: 127.0.0.2/32}}
resources:
  game:
    protocol: tcp
    port: {ports["game"]}
    auth: public
    targets: [{{host: 127.0.0.1, port: {echo.tcp}}}]
  voice:
    protocol: udp
    port: {ports["voice"]}
    rules: [{{action: allow, cidr: 127.0.0.0/8}}]
    targets: [{{host: 127.0.0.1, port: {echo.udp}}}]
  members:
    protocol: tcp
    port: {ports["members"]}
    rules: [{{action: allow, ip: 127.0.0.5}}]
    targets: [{{host: 127.0.0.1, port: {echo.tcp}}}]
{extra}"""


def fresh_ports() -> dict[str, int]:
    return {
        "game": processes.free_port(),
        "voice": processes.free_port(socket.SOCK_DGRAM),
        "members": processes.free_port(),
        "later": processes.free_port(),
    }


def talk(port: int, data: bytes, source: str = "127.0.0.1", half_close: bool = True) -> bytes:
    """What comes back for `data`; b"" when the gateway closes (or resets) the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as c:
        try:
            c.sendall(data)
            if half_close:
                c.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := c.recv(65536):
                received += chunk
        except TimeoutError:
            raise
        except OSError:  # reset, or closed before we finished sending
            return b""
        return received


@contextmanager
def greeting_server() -> Iterator[int]:
    """A TCP server that speaks first (`hello\\n`), as SMTP, IMAP or FTP do; its port."""
    port = processes.free_port()
    process = processes.start(
        processes.python("-m", "tests.support.echo", "--tcp", str(port), "--greet")
    )
    try:
        processes.wait_for_port(port, process)
        yield port
    finally:
        processes.stop(process)


def first_words(port: int, sent: bytes = b"") -> bytes:
    """What the other end says first after `sent`, with the client silent after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(sent)
        try:
            return client.recv(100)
        except ConnectionResetError:
            return b""


def datagram(port: int, data: bytes, tries: int = 10) -> bytes:
    """The answer to `data`, sent again each half second as a UDP client does: a UDP listener
    shows no sign of being bound (nothing to connect to), and mitmproxy binds it after the TCP
    ones, so the first datagram can arrive before anyone listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(0.5)
        for _ in range(tries):
            client.sendto(data, ("127.0.0.1", port))
            try:
                return client.recvfrom(65536)[0]
            except TimeoutError:
                continue
    raise TimeoutError(f"no answer on udp {port} after {tries} tries")


def test_raw_tcp_and_udp_are_relayed_untouched(echo: Echo, start_gateway: GatewayFactory) -> None:
    ports = fresh_ports()
    gateway = start_gateway(policy(echo, ports))
    processes.wait_for_port(ports["game"], gateway.process)
    assert talk(ports["game"], b"hello") == b"echo:hello"
    # Bytes that look like TLS pass through as they are: no interception on raw resources.
    hello = bytes.fromhex("160301002e0100002a0303") + bytes(32)
    assert talk(ports["game"], hello) == b"echo:" + hello
    assert datagram(ports["voice"], b"ping") == b"echo:ping"


def test_rules_decide_each_connection(echo: Echo, start_gateway: GatewayFactory) -> None:
    ports = fresh_ports()
    gateway = start_gateway(policy(echo, ports))
    processes.wait_for_port(ports["game"], gateway.process)
    assert talk(ports["game"], b"x", source="127.0.0.2") == b""  # a global deny
    assert talk(ports["members"], b"x") == b""  # no rule allows 127.0.0.1, and no sign-in
    assert talk(ports["members"], b"x", source="127.0.0.5") == b"echo:x"
    logs = gateway.logs()
    assert "tcp game from 127.0.0.2 refused: denied by rules[0]" in logs
    assert "tcp members from 127.0.0.1 refused: no rule allows it" in logs


def test_listeners_follow_the_policy_on_reload(echo: Echo, start_gateway: GatewayFactory) -> None:
    ports = fresh_ports()
    gateway = start_gateway(policy(echo, ports))
    processes.wait_for_port(ports["game"], gateway.process)
    later = f"""\
  later:
    protocol: tcp
    port: {ports["later"]}
    auth: public
    targets: [{{host: 127.0.0.1, port: {echo.tcp}}}]
"""
    text = policy(echo, ports, later)
    gateway.policy.write_text(text.replace("  game:\n", "  renamed:\n"))
    eventually(lambda: _listening(ports["later"]) and talk(ports["later"], b"new") == b"echo:new")
    assert talk(ports["game"], b"same port, new name") == b"echo:same port, new name"
    gateway.policy.write_text(policy(echo, ports).replace(f"port: {ports['game']}\n", "port: 1\n"))
    eventually(lambda: not _listening(ports["later"]))


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_raw_target_on_a_site_goes_through_its_tunnel(
    echo: Echo, start_gateway: GatewayFactory
) -> None:
    port = processes.free_port()
    text = f"""\
version: 1
sites:
  home: {{secret_sha256: "{"e" * 64}"}}
resources:
  game:
    protocol: tcp
    port: {port}
    auth: public
    targets: [{{site: home, host: 10.9.9.9, port: 25565}}]
"""
    gateway = start_gateway(text)
    processes.wait_for_port(port, gateway.process)
    assert talk(port, b"x") == b""  # the site is not there: refused
    state = gateway.directory / "state"
    state.mkdir(exist_ok=True)
    forwards = [Forward("tcp", "10.9.9.9", 25565, echo.tcp)]
    (state / "sites.json").write_bytes(encode_sites({"home": ("127.0.0.1", True, forwards)}))
    eventually(lambda: talk(port, b"in") == b"echo:in")


def test_a_server_that_speaks_first_greets_a_client_that_waits(
    start_gateway: GatewayFactory,
) -> None:
    with greeting_server() as greeter:
        ports = fresh_ports()
        gateway = start_gateway(policy(Echo(greeter, 9), ports))  # (udp: a closed port)
        processes.wait_for_port(ports["game"], gateway.process)
        assert first_words(ports["game"]) == b"hello\n"


@pytest.mark.parametrize("hook", sorted(set(failclosed.CONNECTION_HOOKS)))
def test_a_hook_that_raises_closes_the_connection(
    hook: str, echo: Echo, start_gateway: GatewayFactory
) -> None:
    ports = fresh_ports()
    text, settings, first = policy(echo, ports), "", b"x"
    if hook == "raw.client_known":  # a trusted balancer's connection, once its header is read
        text = text.replace("version: 1\n", "version: 1\ntrusted_proxies: [127.0.0.1/32]\n")
        settings = "listen_proxy_protocol: true\n"
        first = b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\nx"
    gateway = start_gateway(text, settings=settings, env={"WARREN_FAILPOINTS": hook})
    processes.wait_for_port(ports["game"], gateway.process)
    # (Without half-closing: mitmproxy leaves a half-closed client open when a connection is
    # killed before it reaches the server, until the client gives up.)
    assert talk(ports["game"], first, half_close=False) == b""
    assert f"{hook} failed: InjectedFault" in gateway.logs()


def test_country_and_asn_rules_decide_each_connection(
    echo: Echo, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    from tests.support.geoip import build

    # Loopback sources stand for clients in two countries and networks.
    database = build(
        tmp_path, "network,country,asn\n127.0.0.1/32,DE,64500\n127.0.0.7/32,FR,64501\n"
    )
    port = processes.free_port()
    rules = f"""\
version: 1
resources:
  game:
    protocol: tcp
    port: {port}
    auth: public
    targets: [{{host: 127.0.0.1, port: {echo.tcp}}}]
    rules:
      - {{action: deny, asn: 64501}}
      - {{action: deny, country_not: [DE]}}
"""
    gateway = start_gateway(
        rules, settings=f"geoip: {{country_db: {database}, asn_db: {database}}}\n"
    )
    processes.wait_for_port(port, gateway.process)
    assert talk(port, b"x") == b"echo:x"  # DE, AS64500
    assert talk(port, b"x", source="127.0.0.7") == b""  # AS64501
    assert talk(port, b"x", source="127.0.0.9") == b""  # unknown to the database: never let in
    logs = gateway.logs()
    assert "tcp game from 127.0.0.7 refused: denied by resources.game.rules[0]" in logs
    # An unknown ASN is not AS64501; an unknown country is not DE, so country_not turns it away.
    assert "tcp game from 127.0.0.9 refused: denied by resources.game.rules[1]" in logs


def test_geo_rules_on_a_connection_without_a_known_place(
    echo: Echo, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    from tests.support.geoip import build

    # 127.0.0.1 is DE, 127.0.0.7 FR in AS64501, 127.0.0.8 FR without an AS, 127.0.0.10 the
    # database's own "no country" (ZZ, as DB-IP writes it); any other loopback source unknown.
    database = build(
        tmp_path,
        "network,country,asn\n127.0.0.1/32,DE,64500\n127.0.0.7/32,FR,64501\n"
        "127.0.0.8/32,FR\n127.0.0.10/32,ZZ\n",
    )
    game, lan = processes.free_port(), processes.free_port()
    rules = f"""\
version: 1
resources:
  game:
    protocol: tcp
    port: {game}
    auth: public
    targets: [{{host: 127.0.0.1, port: {echo.tcp}}}]
    rules:
      - {{action: deny, country: [KP]}}
      - {{action: deny, asn: [64501]}}
      - {{action: deny, country_not: [DE, XX]}}
  lan:
    protocol: tcp
    port: {lan}
    targets: [{{host: 127.0.0.1, port: {echo.tcp}}}]
    rules: [{{action: allow, country: [XX]}}]
"""
    gateway = start_gateway(
        rules, settings=f"geoip: {{country_db: {database}, asn_db: {database}}}\n"
    )
    processes.wait_for_port(game, gateway.process)
    processes.wait_for_port(lan, gateway.process)
    # Unknown country and AS: no deny names the unknown, so it gets through.
    assert talk(game, b"x", source="127.0.0.9") == b"echo:x"
    assert talk(game, b"x") == b"echo:x"  # DE
    assert talk(game, b"x", source="127.0.0.7") == b""  # AS64501
    assert talk(game, b"x", source="127.0.0.8") == b""  # FR: known, and not DE
    assert talk(lan, b"x", source="127.0.0.9") == b"echo:x"  # XX: allowed
    assert talk(lan, b"x", source="127.0.0.10") == b"echo:x"  # ZZ in the database reads as XX
    assert talk(lan, b"x") == b""  # DE is known: no rule allows it
    logs = gateway.logs()
    assert "tcp game from 127.0.0.8 refused: denied by resources.game.rules[2]" in logs
    assert "tcp lan from 127.0.0.1 refused: no rule allows it" in logs


def test_connection_rate_limits_count_new_connections(
    echo: Echo, start_gateway: GatewayFactory
) -> None:
    port = processes.free_port()
    rules = f"""\
version: 1
resources:
  game:
    protocol: tcp
    port: {port}
    auth: public
    targets: [{{host: 127.0.0.1, port: {echo.tcp}}}]
    rate_limits: [{{limit: 2/minute, per: ip}}]
"""
    gateway = start_gateway(rules)
    processes.wait_for_port(port, gateway.process)  # a probe the limit does not count
    answers = [talk(port, b"x", source="127.0.0.3") for _ in range(3)]
    assert answers == [b"echo:x", b"echo:x", b""]
    assert talk(port, b"x", source="127.0.0.4") == b"echo:x"  # another client, another count
    assert "tcp game from 127.0.0.3 refused: over resources.game.rate_limits[0]" in gateway.logs()
