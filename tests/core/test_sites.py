"""The gateway's view of sites (core.sites.SiteRoutes): sites.json as the sidecar writes it,
checked against the gateway's own policy, and who hears of a site that leaves routing."""

import asyncio
from collections.abc import Callable
from pathlib import Path

from core.balance import Upstreams
from core.policy.check import Capabilities
from core.policy.store import PolicyStore
from core.settings import load_settings
from core.sites import SiteRoutes
from core.tunnels import Forward, SiteState, encode_sites, sites_file

HASH = "d" * 64


def policy() -> str:
    return f"""\
version: 1
sites:
  home: {{secret_sha256: "{HASH}"}}
resources:
  app:
    host: app.example
    auth: public
    targets: [{{site: home, host: 10.9.9.9, port: 80}}]
"""


def write_sites(state: Path, online: bool, port: int, secret_sha256: str | None = None) -> None:
    # What the sidecar writes: home's tunnel ends on loopback here, its port 80 is the backend.
    forwards = [Forward("tcp", "10.9.9.9", 80, port)]
    state.mkdir(parents=True, exist_ok=True)
    site = SiteState("127.0.0.1", online, forwards, secret_sha256)
    (state / "sites.json").write_bytes(encode_sites({"home": site}))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_offline_listeners_hear_of_every_site_that_leaves_routing(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(policy())
    (tmp_path / "warren.yaml").write_text("state_dir: state\nreload_poll: 0.05s\n")
    settings = load_settings(tmp_path / "warren.yaml")
    store = PolicyStore(settings.policy_file, Capabilities())
    heard: list[str] = []

    def listener(site: str) -> None:
        heard.append(site)
        raise RuntimeError(site)  # a failing listener leaves the new table in place

    routes = SiteRoutes(sites_file(settings.state_dir), Upstreams(), listener)
    state = settings.state_dir

    async def run() -> None:
        write_sites(state, True, 80, HASH)
        routes.read()
        routes.apply(store.current)
        watching = asyncio.create_task(routes.watch(0.05))
        try:
            assert routes.table.routable_sites() == {"home"}
            write_sites(state, False, 80, HASH)  # the sidecar's word
            await until(lambda: heard == ["home"])
            assert routes.table.routable_sites() == set()
            write_sites(state, True, 80, HASH)
            await until(lambda: routes.table.routable_sites() == {"home"})
            (tmp_path / "policy.yaml").write_text(policy().replace(HASH, "e" * 64))
            await store.reload_async()  # the gateway's own policy
            routes.apply(store.current)
            assert heard == ["home", "home"]
        finally:
            watching.cancel()

    asyncio.run(run())
