"""The UAPI text format (https://www.wireguard.com/xplatform/)."""

from sidecar import uapi, wgkeys
from sidecar.device import Peer

NODE = wgkeys.generate_private_key()
SITE = wgkeys.public_key(wgkeys.generate_private_key())


def test_a_set_request_replaces_peers_in_the_documented_order() -> None:
    text = uapi.set_request(
        private_key=NODE,
        listen_port=51820,
        replace_peers=True,
        peers=[Peer(SITE, ("100.89.0.2/32",), "198.51.100.4:41000", 15)],
    )
    assert text == (
        "set=1\n"
        f"private_key={wgkeys.to_hex(NODE)}\n"
        "listen_port=51820\n"
        "replace_peers=true\n"
        f"public_key={wgkeys.to_hex(SITE)}\n"
        "endpoint=198.51.100.4:41000\n"
        "persistent_keepalive_interval=15\n"
        "replace_allowed_ips=true\n"
        "allowed_ip=100.89.0.2/32\n"
        "\n"
    )


def test_removing_a_peer() -> None:
    assert uapi.set_request(remove=[SITE]) == (
        f"set=1\npublic_key={wgkeys.to_hex(SITE)}\nremove=true\n\n"
    )


def test_peers_are_read_from_a_get_answer() -> None:
    other = wgkeys.public_key(wgkeys.generate_private_key())
    answer = (
        f"private_key={wgkeys.to_hex(NODE)}\nlisten_port=51820\n"
        f"public_key={wgkeys.to_hex(SITE)}\nendpoint=198.51.100.4:41000\n"
        "last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=500000000\n"
        "tx_bytes=100\nrx_bytes=200\npersistent_keepalive_interval=0\n"
        "allowed_ip=100.89.0.2/32\n"
        f"public_key={wgkeys.to_hex(other)}\nlast_handshake_time_sec=0\n"
        "last_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n"
    )
    pairs = [tuple(line.split("=", 1)) for line in answer.splitlines()]
    first, second = uapi.parse_peers(pairs)  # type: ignore[arg-type]
    assert first.public_key == SITE
    assert first.endpoint == "198.51.100.4:41000"
    assert first.last_handshake == 1700000000.5
    assert (first.rx_bytes, first.tx_bytes, first.allowed_ips) == (200, 100, ("100.89.0.2/32",))
    assert second.public_key == other
    assert (second.endpoint, second.last_handshake) == (None, None)
