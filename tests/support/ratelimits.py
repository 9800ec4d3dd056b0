"""A policy with every kind of rate limit, for the tests of core.ratelimit."""

POLICY = """\
version: 1
rate_limits:
  - {limit: 1000/hour, per: ip}
resources:
  app:
    host: app.example
    auth: public
    targets: [{host: 127.0.0.1, port: 3000}]
    rules:
      - {action: deny, path: "/admin/*"}
    rate_limits:
      - {limit: "10/second;500/hour", per: header:X-Api-Key, path: "/api/**"}
      - {limit: 5 per minute, method: POST, path: /login, strategy: moving, headers: true}
      - {limit: 100/minute, per: resource, on_storage_error: closed}
  game:
    protocol: tcp
    port: 25565
    targets: [{host: 127.0.0.1, port: 25565}]
    rate_limits:
      - {limit: 10/minute, per: ip}
"""
