"""Prometheus metrics for each Warren process (docs/metrics.md): a registry per process, never
prometheus_client's global one, so a test or a second gateway in one interpreter never sees
another's series; `server` serves it with /healthz and /readyz.

What is counted per request is kept to a dict lookup and an increment (labelled children are
cached); what the process already knows (policy reloads, sites online, GeoIP caches, sessions)
is read when Prometheus scrapes, by collectors, and costs a request nothing.
"""
