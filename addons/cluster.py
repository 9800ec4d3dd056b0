"""The gateway's heartbeat (core.cluster.heartbeat): started when the gateway runs with shared
storage, restarted with a new warren_config, withdrawn when the gateway stops. With
`storage: memory://` it does nothing: a single node has no one to tell.
"""

import contextlib
from collections.abc import Callable
from importlib.metadata import version

from addons.background import Opened, RuntimeLoop
from addons.runtime import Runtime, RuntimeSlot
from core import readiness
from core.cluster.documents import Kind
from core.cluster.facts import UsersDigest, machine_id, wireguard_facts
from core.cluster.heartbeat import Heartbeat, NodeFacts
from core.cluster.records import DocumentState
from core.cluster.sync import Refusal
from core.storage import is_shared, redis_client

type Refusals = Callable[[Kind], Refusal | None]


class Cluster(RuntimeLoop[Heartbeat]):
    def __init__(self, slot: RuntimeSlot, refusals: Refusals = lambda _kind: None) -> None:
        super().__init__(slot)
        self.refusals = refusals  # addons.sync: pushed documents this node refused

    def open(self, runtime: Runtime) -> Opened[Heartbeat] | None:
        settings = runtime.settings
        if not is_shared(settings.storage):
            return None
        redis = redis_client(settings.storage, socket_connect_timeout=2, socket_timeout=5)
        heartbeat = Heartbeat(
            redis,
            settings.node_name,
            facts=_facts_of(runtime, self.refusals),
            jwks=runtime.signin.keys.own_jwks,
            keep_keys_for=settings.session.ttl.total_seconds(),
            machine=machine_id(settings.state_dir),
        )

        async def close() -> None:
            with contextlib.suppress(Exception):  # storage down: the record expires on its own
                await heartbeat.withdraw()
            await redis.aclose()

        # Run after start-up (RuntimeLoop): mitmproxy ends a gateway that logs an error while
        # starting, and a name taken or removed is the cluster's business, not a reason not to
        # serve.
        return Opened(heartbeat, heartbeat.run, close)


def _facts_of(runtime: Runtime, refusals: Refusals) -> Callable[[], NodeFacts]:
    settings = runtime.settings
    users = UsersDigest(runtime.signin.users)
    warren = version("warren")

    def facts() -> NodeFacts:
        policy = runtime.policy
        online = runtime.sites.table.routable_sites()
        served = users.state()
        pushed_users = refusals(Kind.USERS)
        users_error = served.error or (pushed_users.error if pushed_users else None)
        sites = policy.model.sites
        ready = readiness.assess(
            policy=readiness.OK,
            storage=readiness.OK,  # this heartbeat is reaching it
            tunnel=readiness.tunnel_check(settings.wireguard.interface, bool(sites)),
            sites=readiness.sites_check(sites, online),
        ).ready
        return NodeFacts(
            url=settings.node.url,
            wireguard=wireguard_facts(settings),
            policy=DocumentState(digest=policy.digest, error=runtime.store.last_error),
            users=DocumentState(digest=served.digest, error=users_error),
            sites_online=tuple(sorted(online)),
            ready=ready,
            version=warren,
        )

    return facts
