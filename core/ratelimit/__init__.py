"""Rate limiting through the `limits` library: policy limits, their keys, and a limiter that
counts in node storage (memory, or Redis shared by several nodes).

Kept free of heavy imports: `core.policy.model` validates limit strings through `spec`, and the
command line imports the policy model.
"""
