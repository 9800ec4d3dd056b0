"""How the sidecar's API reads a site's credential and refuses, for registration and the
TCP/443 fallback's stream alike."""

from aiohttp import web


def bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def refuse(status: int, reason: str) -> web.Response:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": reason}, status=status, headers=headers)
