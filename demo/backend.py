"""An application to put behind Warren: it answers with what it received and remembers it.

    python -m demo.backend --port 9001 --name demo

GET /.records returns everything received so far (tests read it straight from the backend);
/.ws is a WebSocket echo; /.health answers 200.
"""

import argparse
from typing import Any

from aiohttp import WSMsgType, web

RECORDS = web.AppKey("records", list[dict[str, Any]])
NAME = web.AppKey("name", str)


async def record(request: web.Request) -> web.StreamResponse:
    if request.path == "/.records":
        return web.json_response(request.app[RECORDS])
    if request.path == "/.health":
        return web.Response(text="ok")
    if request.path == "/.ws":
        return await _websocket(request)
    body = await request.read()
    seen = {
        "backend": request.app[NAME],
        "method": request.method,
        "target": request.raw_path,
        "version": f"{request.version.major}.{request.version.minor}",
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
        "body_bytes": len(body),
        "peer": request.remote,
    }
    request.app[RECORDS].append(seen)
    if "text/html" in request.headers.get("accept", ""):
        return web.Response(text=_page(seen), content_type="text/html")
    return web.json_response(seen)


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    async for message in socket:
        if message.type == WSMsgType.TEXT:
            await socket.send_str(f"echo: {message.data}")
    return socket


def _page(seen: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_esc(name)}</th><td>{_esc(value)}</td></tr>" for name, value in seen["headers"]
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Demo application</title>"
        "<style>body{font:16px system-ui;margin:2rem auto;max-width:52rem;padding:0 1rem}"
        "th{text-align:left;padding-right:1rem;vertical-align:top}td{font-family:monospace}"
        "</style><h1>Hello from the demo application</h1>"
        f"<p>You reached <code>{_esc(seen['target'])}</code> through Warren. "
        "These are the headers the application received:</p>"
        f"<table>{rows}</table></html>"
    )


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def make_app(name: str) -> web.Application:
    app = web.Application()
    app[RECORDS] = []
    app[NAME] = name
    app.router.add_route("*", "/{tail:.*}", record)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="demo")
    args = parser.parse_args()
    web.run_app(make_app(args.name), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
