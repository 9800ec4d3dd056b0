"""The part of Cloudflare's API v4 that Warren's DNS-01 provider uses, on loopback:

    python -m tests.support.cloudflare_api --port 8080 --token T --zone example.test \
        [--challtestsrv http://127.0.0.1:8055]

`GET /client/v4/zones?name=`, `POST /client/v4/zones/{id}/dns_records` (TXT) and
`DELETE /client/v4/zones/{id}/dns_records/{id}`, with Cloudflare's envelope (`success`,
`errors`, `result`) and its answer to a wrong token. Each TXT record is also set in
pebble-challtestsrv, so Pebble really finds it; `GET /records` says what was made and removed.
"""

import argparse
import json
import secrets
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from demo import processes

_RECORDS = web.AppKey("records", dict[str, dict[str, str]])
_HISTORY = web.AppKey("history", list[dict[str, str]])


def _envelope(
    result: Any, status: int = 200, errors: list[dict[str, Any]] | None = None
) -> web.Response:
    body = {"success": not errors, "errors": errors or [], "messages": [], "result": result}
    return web.json_response(body, status=status)


def build(token: str, zones: list[str], challtestsrv: str | None) -> web.Application:
    ids = {zone: secrets.token_hex(16) for zone in zones}

    @web.middleware
    async def authorised(request: web.Request, handler: Any) -> web.StreamResponse:
        bearer = request.headers.get("authorization")
        if request.path.startswith("/client/v4/") and bearer != f"Bearer {token}":
            return _envelope(None, 403, [{"code": 9109, "message": "Invalid access token"}])
        response: web.StreamResponse = await handler(request)
        return response

    def challenge(command: str, record: str, value: str | None = None) -> None:
        if challtestsrv is None:
            return
        body: dict[str, str] = {"host": record + "."}
        if value is not None:
            body["value"] = value
        posted = urllib.request.Request(
            f"{challtestsrv}/{command}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(posted, timeout=5) as answer:
            answer.read()

    async def list_zones(request: web.Request) -> web.StreamResponse:
        name = request.query.get("name", "")
        found = [{"id": ids[name], "name": name, "status": "active"}] if name in ids else []
        return _envelope(found)

    async def create(request: web.Request) -> web.StreamResponse:
        zone = request.match_info["zone"]
        body = await request.json()
        if zone not in ids.values() or body.get("type") != "TXT":
            return _envelope(None, 400, [{"code": 1004, "message": "DNS Validation Error"}])
        record = {"id": secrets.token_hex(16), "zone": zone, "name": body["name"]}
        record["content"] = body["content"]
        request.app[_RECORDS][record["id"]] = record
        request.app[_HISTORY].append({"action": "create", **record})
        challenge("set-txt", record["name"], record["content"])
        return _envelope({"id": record["id"], "name": record["name"], "type": "TXT"})

    async def delete(request: web.Request) -> web.StreamResponse:
        records = request.app[_RECORDS]
        record = records.pop(request.match_info["record"], None)
        if record is None:
            return _envelope(None, 404, [{"code": 81044, "message": "Record does not exist."}])
        request.app[_HISTORY].append({"action": "delete", **record})
        challenge("clear-txt", record["name"])  # clears every value: set the others back
        for other in records.values():
            if other["name"] == record["name"]:
                challenge("set-txt", other["name"], other["content"])
        return _envelope({"id": record["id"]})

    async def seen(request: web.Request) -> web.StreamResponse:
        live = list(request.app[_RECORDS].values())
        return web.json_response({"live": live, "history": request.app[_HISTORY]})

    app = web.Application(middlewares=[authorised])
    app[_RECORDS], app[_HISTORY] = {}, []
    app.router.add_get("/client/v4/zones", list_zones)
    app.router.add_post("/client/v4/zones/{zone}/dns_records", create)
    app.router.add_delete("/client/v4/zones/{zone}/dns_records/{record}", delete)
    app.router.add_get("/records", seen)
    return app


@dataclass(frozen=True)
class CloudflareApi:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    def records(self) -> dict[str, list[dict[str, str]]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/records", timeout=5) as answer:
            seen: dict[str, list[dict[str, str]]] = json.load(answer)
            return seen


@contextmanager
def running_cloudflare_api(
    token: str, zones: list[str], challtestsrv: str | None = None
) -> Iterator[CloudflareApi]:
    port = processes.free_port()
    args = [sys.executable, "-m", "tests.support.cloudflare_api", "--port", str(port)]
    args += ["--token", token, *(f"--zone={zone}" for zone in zones)]
    args += [f"--challtestsrv={challtestsrv}"] if challtestsrv else []
    process = processes.start(args, cwd=Path(__file__).resolve().parents[2])
    try:
        processes.wait_for_port(port, process)
        yield CloudflareApi(port)
    finally:
        processes.stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--zone", action="append", required=True)
    parser.add_argument("--challtestsrv")
    arguments = parser.parse_args()
    app = build(arguments.token, arguments.zone, arguments.challtestsrv)
    web.run_app(app, host="127.0.0.1", port=arguments.port, print=None)


if __name__ == "__main__":
    main()
