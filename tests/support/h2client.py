"""A minimal HTTP/2 client over TLS that offers only h2, built on the h2 library."""

import socket
import ssl
from pathlib import Path
from typing import NamedTuple

import h2.config
import h2.connection
import h2.events


class H2Response(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    alpn: str | None


def get(port: int, authority: str, path: str, cafile: Path) -> H2Response:
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname=authority) as tls:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        connection.send_headers(
            stream,
            [
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", authority),
                (":path", path),
            ],
            end_stream=True,
        )
        tls.sendall(connection.data_to_send())
        headers: dict[str, str] = {}
        body = b""
        done = False
        while not done:
            data = tls.recv(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    connection.acknowledge_received_data(len(event.data), stream)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    done = True
            tls.sendall(connection.data_to_send())
        return H2Response(
            int(headers.get(":status", 0)), headers, body, tls.selected_alpn_protocol()
        )
