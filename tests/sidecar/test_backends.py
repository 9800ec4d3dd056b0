"""WireGuard interfaces driven from Python: the backend choice (sidecar.backends), and
wireguard-go between two network namespaces."""

import base64
import socket
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from sidecar import links, wgkeys
from sidecar.backends import choose_backend, open_device
from sidecar.device import DeviceError, KernelUnsupported, Peer
from tests.support.netlab import Lab
from tests.support.netns import missing
from tests.support.waiting import eventually


def never() -> bool:
    raise AssertionError("the kernel must not be tried")


@pytest.mark.parametrize(
    ("wanted", "kernel", "chosen"),
    [
        ("auto", True, "kernel"),
        ("auto", False, "userspace"),
        ("kernel", True, "kernel"),
        ("userspace", True, "userspace"),
    ],
)
def test_a_new_interface_prefers_the_kernel_when_auto(
    wanted: str, kernel: bool, chosen: str
) -> None:
    tries: list[bool] = []

    def kernel_works() -> bool:
        tries.append(True)
        return kernel

    assert choose_backend(wanted, "none", kernel_works) == chosen  # type: ignore[arg-type]
    assert tries == ([] if wanted == "userspace" else [True])


def test_kernel_only_without_the_module_is_an_error_that_says_what_to_do() -> None:
    with pytest.raises(KernelUnsupported, match="backend to auto or userspace"):
        choose_backend("kernel", "none", lambda: False)


@pytest.mark.parametrize(
    ("existing", "wanted", "chosen"),
    [
        ("wireguard", "auto", "kernel"),
        ("wireguard", "kernel", "kernel"),
        ("userspace", "auto", "userspace"),
        ("userspace", "userspace", "userspace"),
    ],
)
def test_an_existing_interface_is_adopted_with_its_own_backend(
    existing: str, wanted: str, chosen: str
) -> None:
    assert choose_backend(wanted, existing, never) == chosen  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("existing", "wanted"), [("wireguard", "userspace"), ("userspace", "kernel"), ("other", "auto")]
)
def test_an_existing_interface_of_the_wrong_kind_is_refused(existing: str, wanted: str) -> None:
    with pytest.raises(DeviceError):
        choose_backend(wanted, existing, never)  # type: ignore[arg-type]


def test_keys_are_wireguard_keys() -> None:
    private = wgkeys.generate_private_key()
    public = wgkeys.public_key(private)
    assert len(wgkeys.key_bytes(private)) == len(wgkeys.key_bytes(public)) == 32
    assert wgkeys.from_hex(wgkeys.to_hex(public)) == public
    assert not wgkeys.is_key("c2hvcnQ=")
    # RFC 7748 section 6.1, Alice's key pair.
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert (
        wgkeys.public_key(base64.b64encode(alice).decode())
        == base64.b64encode(
            bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        ).decode()
    )


def test_keys_are_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "site.key"
    first = wgkeys.load_or_create(path)
    assert wgkeys.load_or_create(path) == first
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("damaged\n")
    with pytest.raises(wgkeys.BadKey):
        wgkeys.load_or_create(path)


def test_the_kernel_backend_is_refused_cleanly_where_the_module_is_missing(lab: Lab) -> None:
    node = lab.namespace("k")
    with node.entered():
        try:
            device = open_device(lab.interface("k"), "kernel")
        except KernelUnsupported:
            assert links.index_of(lab.interface("k")) is None
            return
        # This machine has the module: the kernel path must then have made the interface.
        try:
            assert links.index_of(lab.interface("k")) is not None
        finally:
            device.close()


def test_userspace_wireguard_between_two_namespaces(lab: Lab) -> None:
    a, b = lab.namespace("a"), lab.namespace("b")
    lab.link(a, "10.200.0.1/24", b, "10.200.0.2/24")
    key_a, key_b = wgkeys.generate_private_key(), wgkeys.generate_private_key()
    with a.entered():
        device_a = open_device(lab.interface("a"), "userspace")
        device_a.configure(key_a, 51820, [Peer(wgkeys.public_key(key_b), ("10.201.0.2/32",))])
        links.bring_up(device_a.interface, IPv4Interface("10.201.0.1/24"))
    with b.entered():
        device_b = open_device(lab.interface("b"), "auto")  # no kernel module: wireguard-go
        assert device_b.backend == ("userspace" if missing() is None else "kernel")
        node_peer = Peer(wgkeys.public_key(key_a), ("10.201.0.1/32",), "10.200.0.1:51820", 1)
        device_b.configure(key_b, None, [node_peer])
        links.bring_up(
            device_b.interface,
            IPv4Interface("10.201.0.2/32"),
            routes=(IPv4Network("10.201.0.1/32"),),
        )
        # Repeating it is harmless, and a second address is replaced, not added.
        links.bring_up(device_b.interface, IPv4Interface("10.201.0.2/32"))
        server = socket.create_server(("10.201.0.2", 7000))
    with server:

        def connect() -> bool:
            with a.entered(), socket.create_connection(("10.201.0.2", 7000), timeout=2):
                return True

        assert eventually(connect, timeout=15)
        with a.entered():
            (seen,) = device_a.peers()
        assert seen.public_key == wgkeys.public_key(key_b)
        assert seen.last_handshake is not None
        assert seen.rx_bytes > 0
        assert seen.endpoint is not None
        assert seen.endpoint.startswith("10.200.0.2:")
        with a.entered():
            device_a.set_peers([], remove=[wgkeys.public_key(key_b)])
            assert device_a.peers() == []
            device_a.close()
            assert links.index_of(device_a.interface) is None
        with b.entered():
            device_b.close()


def test_an_interface_left_running_is_adopted_and_a_name_taken_elsewhere_refused(lab: Lab) -> None:
    a, b = lab.namespace("a"), lab.namespace("b")
    name = lab.interface("x")
    with a.entered():
        first = open_device(name, "auto")
        adopted = open_device(name, "auto")  # a sidecar restarted after a crash finds it
        assert adopted.backend == "userspace"
        assert adopted.peers() == []
    with b.entered(), pytest.raises(DeviceError, match="another network namespace"):
        open_device(name, "auto")
    with a.entered():
        first.close()
        assert links.index_of(name) is None
