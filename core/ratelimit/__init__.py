"""Rate limiting through the `limits` library: policy limits, whose requests they count
(`subjects`), and a limiter that counts in node storage (memory, or Redis shared by several
nodes).

The policy imports this package, never the other way: a `rate_limits` entry is modelled in `spec`
and compiled in `compiled`, and what counts a request needs of the policy is only `Limited`.
Kept free of heavy imports: the policy model (imported by every `warren` command) uses `spec`.
"""
