"""Raw connections counted against their resource's own limits."""

import asyncio
from ipaddress import ip_address

from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.ratelimit.enforce import count_connection
from core.ratelimit.limiter import RateLimiter


def test_raw_connections_count_per_ip_against_the_resources_own_limits() -> None:
    policy = parse_policy(
        """
version: 1
rate_limits: [{limit: 1/minute}]
resources:
  game:
    protocol: tcp
    port: 25565
    targets: [{host: 127.0.0.1, port: 25565}]
    rate_limits: [{limit: 2/minute, per: ip}]
  free:
    protocol: udp
    port: 53
    targets: [{host: 127.0.0.1, port: 53}]
""",
        Capabilities(),
    )
    game, free = policy.resources["game"], policy.resources["free"]
    one, two = ip_address("198.51.100.1"), ip_address("2001:db8::1")

    async def scenario() -> None:
        limiter = RateLimiter()
        counts = [await count_connection(limiter, game, one) for _ in range(3)]
        assert [v.refused_by is None for v in counts] == [True, True, False]
        refused = counts[2]
        assert refused.refused_by is not None
        assert refused.refused_by.key == "resources.game.rate_limits[0]"
        assert refused.decision is not None
        assert refused.decision.retry_after() >= 1
        assert (await count_connection(limiter, game, two)).refused_by is None
        # The global (http) limit of 1/minute does not count raw connections.
        for _ in range(3):
            assert (await count_connection(limiter, free, one)).refused_by is None
        await limiter.close()

    asyncio.run(scenario())
