"""The mitmproxy options a Warren gateway needs, derived from warren.yaml."""

from typing import Any

from core.settings import Settings

# Nothing routed by Warren ever goes here: every request is either answered by the gateway or
# pointed at a target. If that ever failed, the discard port on loopback refuses the connection.
UNROUTED = "http://127.0.0.1:9"


def reverse_mode(settings: Settings) -> str:
    return f"reverse:{UNROUTED}@{settings.listen}"


def plain_http_mode(settings: Settings) -> str | None:
    """warren.yaml's `http_listen`: plain HTTP for ACME's HTTP-01, the rest redirected
    (addons.plainhttp tells its requests by this mode)."""
    listen = settings.http_listen
    return f"reverse:{UNROUTED}@{listen}" if listen is not None else None


def listen_modes(settings: Settings) -> list[str]:
    plain = plain_http_mode(settings)
    return [reverse_mode(settings), *([plain] if plain is not None else [])]


def gateway_options(settings: Settings, current_mode: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {
        # Routing is by the client's Host header, and the upstream is only chosen by our hook.
        "keep_host_header": True,
        "connection_strategy": "lazy",
        # Large bodies go to the backend as they arrive instead of filling memory first.
        "stream_large_bodies": "1m",
        # After a 101 for anything but WebSocket, mitmproxy would relay raw bytes past every
        # check; addons.upstream answers such a 101 with 502, and this closes what remains.
        "rawtcp": False,
        # CL/TE smuggling checks (RFC 9112 §6.3); on by default, and never to be turned off.
        "validate_inbound_headers": True,
    }
    plain = plain_http_mode(settings)
    if current_mode == ["regular"]:  # mitmproxy's default: the admin did not choose a mode
        options["mode"] = listen_modes(settings)
    elif plain is not None and plain not in current_mode:  # the admin's modes, and port 80
        options["mode"] = [*current_mode, plain]
    return options
