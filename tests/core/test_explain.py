from core.explain import explain
from core.policy.check import Capabilities
from core.policy.load import parse_policy

POLICY = parse_policy(
    """
version: 1
rules: [{action: deny, cidr: 203.0.113.0/24}]
resources:
  grafana:
    host: grafana.example.com
    targets: [{host: 127.0.0.1, port: 3000}]
    auth: {groups: [ops]}
    rules:
      - {action: allow, path: "/public/*"}
      - {action: deny, path: "/admin/*", not_cidr: [10.0.0.0/8]}
  wiki:
    host: wiki.example.com
    auth: public
    targets: [{host: 127.0.0.1, port: 3001}]
""",
    Capabilities(),
)


def test_explains_each_outcome() -> None:
    admin = explain(POLICY, "grafana.example.com", "/admin/users", "198.51.100.1", "GET")
    assert (admin.status, admin.http_status, admin.rule) == (
        "deny",
        403,
        "resources.grafana.rules[1]",
    )
    assert admin.rule_text == "{action: deny, not_cidr: [10.0.0.0/8], path: [/admin/*]}"

    inside = explain(POLICY, "grafana.example.com", "/admin/users", "10.0.0.1", "GET")
    assert inside.status == "sign-in"
    assert inside.summary == "no rule matched; sign-in required (group ops)"

    public = explain(POLICY, "grafana.example.com", "/public/a/../b", "10.0.0.1", "GET")
    assert (public.status, public.path) == ("forward", "/public/b")

    assert explain(POLICY, "wiki.example.com", "/", "10.0.0.1", "GET").status == "forward"
    assert explain(POLICY, "wiki.example.com", "/", "203.0.113.9", "GET").rule == "rules[0]"
    assert explain(POLICY, "nope.example.com", "/", "10.0.0.1", "GET").http_status == 404
    assert explain(POLICY, "wiki.example.com", "/%2e%2e/", "10.0.0.1", "GET").http_status == 400
