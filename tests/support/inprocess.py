"""The Warren pack in-process under mitmproxy's own test helpers (taddons, tflow): the one way
the tests build it (`pack`), and flows driven through the hooks mitmproxy would call."""

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from mitmproxy import hooks, http
from mitmproxy.proxy.layers.http._hooks import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.test import taddons, tflow, tutils

from addons.pack import warren_addons
from addons.runtime import Runtime, RuntimeSlot

POLICY = """\
version: 1
trusted_proxies: [10.9.0.0/16]
rules:
  - {action: deny, cidr: 203.0.113.128/25}
resources:
  app:
    host: [app.example, "*.apps.example"]
    auth: public
    targets: [{host: 192.0.2.10, port: 8080}]
    rules:
      - {action: deny, path: "/admin/*"}
  private:
    host: private.example
    targets: [{host: 192.0.2.11, port: 9090, scheme: https}]
    rules:
      - {action: allow, path: "/status"}
"""


class InProcessPack(NamedTuple):
    context: taddons.context
    runtime: Runtime


@contextmanager
def pack(
    directory: Path,
    policy: str = POLICY,
    settings: str = "",
    *,
    addon: Callable[[RuntimeSlot], object] | None = None,
) -> Iterator[InProcessPack]:
    """policy.yaml and warren.yaml written into `directory`, and the pack configured from them;
    `addon` makes something else of the slot than the whole pack (a pack with a stand-in)."""
    (directory / "policy.yaml").write_text(policy)
    (directory / "warren.yaml").write_text(
        f"policy_file: policy.yaml\nstate_dir: state\n{settings}"
    )
    slot = RuntimeSlot()
    warren = addon(slot) if addon is not None else warren_addons(slot)[0]
    with taddons.context(warren) as context:
        context.configure(warren, warren_config=str(directory / "warren.yaml"))
        runtime = slot.runtime
        assert runtime is not None
        yield InProcessPack(context, runtime)


def flow(
    host: str,
    path: str = "/",
    *,
    method: str = "GET",
    peer: str = "198.51.100.7",
    headers: Sequence[tuple[str, str]] = (),
) -> http.HTTPFlow:
    fields = [(b"Host", host.encode())] + [(k.encode(), v.encode()) for k, v in headers]
    request = tutils.treq(
        host="127.0.0.1",
        port=9,
        method=method.encode(),
        path=path.encode(),
        headers=http.Headers(fields),
        content=b"",
    )
    made = tflow.tflow(req=request)
    made.client_conn.peername = (peer, 40000)
    return made


def run(context: taddons.context, made: http.HTTPFlow) -> http.HTTPFlow:
    """The request hooks mitmproxy calls, in order, on every addon of the pack."""
    trigger(context, made, HttpRequestHeadersHook, HttpRequestHook)
    return made


def respond(context: taddons.context, made: http.HTTPFlow) -> http.HTTPFlow:
    """The backend answered (had the flow been forwarded)."""
    if made.response is None:
        made.response = tutils.tresp()
        trigger(context, made, HttpResponseHeadersHook)
    trigger(context, made, HttpResponseHook)
    return made


def trigger(context: taddons.context, made: http.HTTPFlow, *events: type[hooks.Hook]) -> None:
    async def go() -> None:
        for event in events:
            await context.master.addons.handle_lifecycle(event(made))

    asyncio.run(go())
