"""Several nodes, one service: what nodes sharing `storage` (Redis, Valkey, Sentinel) tell each
other through it. No consensus and no second database: each node writes only its own records,
with expiry, and reads everyone's.

Keys (all under `warren:cluster:`):

| key                    | written by            | holds                                          |
|------------------------|-----------------------|------------------------------------------------|
| `node:<name>`          | that node, every 2 s, | its NodeRecord (JSON): url, WireGuard key and  |
|                        | expires after 10 s    | endpoint, subnet, policy/users digest, sites   |
| `keys:<name>`          | that node             | its public signing keys (JWKS), kept for a     |
|                        |                       | session's lifetime after its last heartbeat    |
| `removed:<name>`       | `warren nodes remove` | a node no longer trusted, for a session's      |
|                        |                       | lifetime                                       |
| `index:node`,          | the writers of the    | sorted sets of the names written (score: when),|
| `index:keys`,          | three above           | so readers MGET instead of SCANning the store; |
| `index:removed`        |                       | names not written for a day are pruned         |
| `document:policy`,     | `warren policy push`, | the pushed copy (JSON: version, digest, text,  |
| `document:users`       | `warren users push`,  | pushed_at, pushed_by), core.cluster.documents  |
|                        | `warren user ...`     |                                                |
| `document:<kind>:<n>`  | the same push         | version n, for the last 10 versions            |
| `document:<kind>:counter` | the same push      | the last version given out                     |

Changes are also announced on the `warren:cluster:changes` channel, so nodes act at once rather
than at their next poll.
"""
