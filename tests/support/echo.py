"""TCP and UDP echo servers, for raw resources in tests and benchmarks.

    python -m tests.support.echo --host 127.0.0.1 --tcp 7000 --udp 7001

Each answers what it receives, prefixed with `echo:`; the TCP server sends a greeting first
(`hello\\n`) when --greet is given, like protocols where the server speaks first.
"""

import argparse
import asyncio
import resource


class _Tcp(asyncio.Protocol):
    def __init__(self, greet: bool) -> None:
        self.greet = greet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.greet:
            transport.write(b"hello\n")

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"echo:" + data)


class _Udp(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)


async def serve(host: str, tcp: int | None, udp: int | None, greet: bool) -> None:
    loop = asyncio.get_running_loop()
    if tcp is not None:
        await loop.create_server(lambda: _Tcp(greet), host, tcp)
    if udp is not None:
        await loop.create_datagram_endpoint(_Udp, local_addr=(host, udp))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--udp", type=int)
    parser.add_argument("--greet", action="store_true")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # benchmarks hold many connections
    asyncio.run(serve(args.host, args.tcp, args.udp, args.greet))


if __name__ == "__main__":
    main()
