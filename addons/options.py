"""The mitmproxy options a Warren gateway needs, derived from warren.yaml."""

from typing import Any

from core.settings import Settings

# Nothing routed by Warren ever goes here: every request is either answered by the gateway or
# pointed at a target. If that ever failed, the discard port on loopback refuses the connection.
UNROUTED = "http://127.0.0.1:9"


def reverse_mode(settings: Settings) -> str:
    return f"reverse:{UNROUTED}@{settings.listen}"


def gateway_options(settings: Settings, current_mode: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {
        # Routing is by the client's Host header, and the upstream is only chosen by our hook.
        "keep_host_header": True,
        "connection_strategy": "lazy",
        # Large bodies go to the backend as they arrive instead of filling memory first.
        "stream_large_bodies": "1m",
    }
    if current_mode == ["regular"]:  # mitmproxy's default: the admin did not choose a mode
        options["mode"] = [reverse_mode(settings)]
    if settings.certs:
        options["certs"] = [f"*={path}" for path in settings.certs]
    return options
