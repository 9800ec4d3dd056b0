"""Sockets on a tunnel address, on loopback: they bind before the address exists (the interface
may be being made again), and the probe tells a listening tunnel port from a silent one."""

import asyncio
import socket

from demo.processes import free_port
from sidecar.sockets import answer_probes, bound, reachable


def test_a_socket_binds_an_address_no_interface_has_yet() -> None:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        sock = bound("100.89.255.254", free_port(), kind)
        try:
            assert sock.getsockname()[0] == "100.89.255.254"
            assert not sock.getblocking()
        finally:
            sock.close()


def test_the_probe_tells_an_answering_port_from_a_silent_one() -> None:
    port, silent = free_port(), free_port()

    async def scenario() -> None:
        server = await answer_probes("127.0.0.1", port)
        try:
            assert await reachable("127.0.0.1", port, timeout=5)
            assert not await reachable("127.0.0.1", silent, timeout=5)
        finally:
            server.close()
            await server.wait_closed()
        assert not await reachable("127.0.0.1", port, timeout=5)

    asyncio.run(scenario())
