"""The gateway's part in pushed policy and users (core.cluster.sync): started when the gateway
runs with shared storage, restarted with a new warren_config, ended with the gateway. With
`storage: memory://` it does nothing: a single node reads its local files as it always has.
"""

from addons.background import Opened, RuntimeLoop
from addons.runtime import Runtime
from core.cluster.documents import Kind
from core.cluster.sync import DocumentSync, Refusal, policy_adopter, users_adopter
from core.storage import is_shared, redis_client


class Sync(RuntimeLoop[DocumentSync]):
    def refusal(self, kind: Kind) -> Refusal | None:
        """The pushed document of `kind` this node last refused, while it serves its own copy
        (for the heartbeat: the policy's is also the PolicyStore's last_error)."""
        sync = self.current
        return None if sync is None else sync.refused.get(kind)

    def open(self, runtime: Runtime) -> Opened[DocumentSync] | None:
        settings = runtime.settings
        if not is_shared(settings.storage):
            return None
        redis = redis_client(settings.storage, socket_connect_timeout=2, socket_timeout=15)
        adopters = {
            Kind.POLICY: policy_adopter(runtime.store),
            Kind.USERS: users_adopter(settings.users_file),
        }
        sync = DocumentSync(redis, adopters, settings.state_dir)
        # Run after mitmproxy's start-up check (RuntimeLoop): a push this node refuses is
        # logged as an error, and is no reason not to start serving the last good copy.
        return Opened(sync, sync.run, redis.aclose)
