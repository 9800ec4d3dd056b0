"""Geoblocking: lookup cost (cache hit, miss) and gateway throughput with 50 country rules.

1. one country lookup: an LRU hit, a miss (the LRU plus the reader), and the reader alone,
   over a generated database of GeoLite2-shaped records (names in eight languages, continent,
   registered country), since the cost of a miss is mostly decoding and building the record
2. `warren gateway` with 50 country rules vs the same gateway and databases without them,
   client addresses varied through X-Forwarded-For from a trusted proxy (target >= 0.97);
   and, steadier than whole requests on a shared machine, what the rules hook adds per
   request in process (a lookup that hits the LRU, then 50 indexed country rules)
"""

import random
import statistics
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from bench import common
from bench.gateway import warren_gateway
from core.ipsets import IPAddress
from geodb.database import open_database
from geodb.lookup import Lookup

HOST = "geo.example"
PATH = "/bench/geo"
LANGUAGES = ("de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN")
# Clients come from these; the 50 rules deny 50 other countries.
CLIENT_COUNTRIES = ("DE", "FR", "GB", "SE", "NL", "US", "JP", "BR", "IN", "AU")
DENIED = tuple(
    f"{a}{b}"
    for a in "ABCKMPQTVXZ"
    for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if f"{a}{b}" not in CLIENT_COUNTRIES
)[:50]


def _record(country: str, geoname: int) -> dict[str, object]:
    names = {language: f"{country} name in {language}" for language in LANGUAGES}
    place = {"geoname_id": geoname, "iso_code": country, "names": names}
    return {
        "continent": {"code": "EU", "geoname_id": 6255148, "names": names},
        "country": place,
        "registered_country": place,
    }


def generate_database(path: Path, networks: int, seed: int = 5) -> list[IPv4Network]:
    """Returns the networks placed in the clients' countries (the rest are in denied ones)."""
    # GeoLite2-Country holds some 500 000 networks; the tree depth (the walk) is similar.
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    rng = random.Random(seed)
    countries = [*CLIENT_COUNTRIES, *DENIED]
    records = {c: _record(c, 1000 + i) for i, c in enumerate(countries)}
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="Bench-Country (compat=GeoLite2-Country)",
        languages=list(LANGUAGES),
        description="generated for bench/geo.py",
    )
    chosen: dict[int, str] = {}
    while len(chosen) < networks:
        base = rng.randrange(1 << 24, 223 << 24) >> 8 << 8
        chosen[base] = rng.choice(CLIENT_COUNTRIES) if rng.random() < 0.5 else rng.choice(DENIED)
    for base, country in chosen.items():
        writer.insert_network(IPSet([f"{IPv4Address(base)}/24"]), records[country])
    writer.to_db_file(str(path))
    return [IPv4Network((base, 24)) for base, c in chosen.items() if c in CLIENT_COUNTRIES]


def _per_call_us(call: Callable[[IPAddress], object], addresses: Sequence[IPAddress]) -> float:
    started = time.perf_counter_ns()
    for address in addresses:
        call(address)
    return (time.perf_counter_ns() - started) / len(addresses) / 1000


def lookup_cost(database: Path, networks: list[IPv4Network], quick: bool) -> dict[str, float]:
    rng = random.Random(11)
    opened = open_database(database, "country")
    distinct = [IPv4Address(int(rng.choice(networks).network_address) + 7) for _ in range(20_000)]
    rounds = 5 if quick else 15
    hit, miss, reader = [], [], []
    for _ in range(rounds):
        warm = Lookup([opened], [], cache_size=65536)
        for address in distinct[:1000]:
            warm.country(address)
        hit.append(_per_call_us(warm.country, distinct[:1000] * 10))
        cold = Lookup([opened], [], cache_size=65536)  # every address new: miss, insert
        miss.append(_per_call_us(cold.country, distinct))
        uncached = Lookup([opened], [], cache_size=0)
        reader.append(_per_call_us(uncached.country, distinct[:5000]))
    return {
        "hit_us": statistics.median(hit),
        "miss_us": statistics.median(miss),
        "reader_only_us": statistics.median(reader),
    }


def policy(backend_port: int, rules: bool) -> str:
    denied = [f"{{action: deny, country: [{country}]}}" for country in DENIED] if rules else []
    return common.public_resource_policy(
        HOST, backend_port, [*denied, "{action: allow}"], top=["trusted_proxies: [127.0.0.1/32]"]
    )


def wrk_script(path: Path, addresses: list[str]) -> Path:
    """Requests formatted once per thread, each with its own X-Forwarded-For, cycled."""
    listed = ", ".join(f'"{address}"' for address in addresses)
    path.write_text(
        f"""
local addresses = {{{listed}}}
local requests = {{}}
local counter = 0
function init(args)
  for index, address in ipairs(addresses) do
    local headers = {{}}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers["X-Forwarded-For"] = address
    requests[index] = wrk.format(nil, nil, headers)
  end
end
function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end
"""
    )
    return path


def throughput(database: Path, networks: list[IPv4Network], quick: bool) -> common.Comparison:
    seconds, rounds = (3, 3) if quick else (5, 7)
    base = common.workdir("geo")
    rng = random.Random(13)
    clients = [
        str(rng.choice(networks).network_address + rng.randrange(1, 255)) for _ in range(5000)
    ]
    script = wrk_script(base / "clients.lua", clients)
    settings = f"geoip: {{country_db: {database}}}\n"
    with common.backend() as backend_port:
        variants = {
            "no-geo-rules": warren_gateway(base / "plain", policy(backend_port, False), settings),
            "50-country-rules": warren_gateway(base / "geo", policy(backend_port, True), settings),
        }
        started = []
        try:
            for name, (args, port) in variants.items():
                context = common.running(args, port, base / f"{name}.log")
                context.__enter__()
                started.append(context)

            def measure(name: str) -> Callable[[], float]:
                port = variants[name][1]

                def run() -> float:
                    load = common.wrk(port, HOST, PATH, seconds=seconds, script=script)
                    if load.non_2xx or load.socket_errors:
                        raise RuntimeError(f"{name} failed requests during the benchmark: {load}")
                    return load.requests_per_second

                return run

            for name in variants:
                common.wrk(variants[name][1], HOST, PATH, seconds=1, script=script)  # warm-up
            return alternating(
                common.Comparison("50 country rules vs none", "no-geo-rules", "50-country-rules"),
                measure("no-geo-rules"),
                measure("50-country-rules"),
                rounds,
            )
        finally:
            for context in started:
                context.__exit__(None, None, None)


def alternating(
    comparison: common.Comparison,
    baseline: Callable[[], float],
    candidate: Callable[[], float],
    rounds: int,
) -> common.Comparison:
    """Paired rounds, every other one measuring the candidate first, so that whatever favours
    the first (or second) run of a round falls on both sides equally."""
    for index in range(rounds):
        if index % 2:
            after = candidate()
            comparison.baseline_rps.append(baseline())
            comparison.candidate_rps.append(after)
        else:
            comparison.baseline_rps.append(baseline())
            comparison.candidate_rps.append(candidate())
    return comparison


def decision_cost(database: Path, networks: list[IPv4Network], quick: bool) -> dict[str, float]:
    """What the rules hook does per request, in process: decide without geo rules, against
    look up (an LRU hit) and decide with the 50 country rules. The gateway's throughput
    ratio is that difference against a whole request, measured more steadily here."""
    from core.policy.check import Capabilities
    from core.policy.load import parse_policy
    from core.policy.rules import Facts
    from core.settings import GeoIP
    from geodb.service import GeoService

    plain = parse_policy(policy(1, rules=False), Capabilities(country_db=True))
    ruled = parse_policy(policy(1, rules=True), Capabilities(country_db=True))
    geo = GeoService(GeoIP(country_db=(database,)))
    rng = random.Random(17)
    clients = [IPv4Address(int(rng.choice(networks).network_address) + 9) for _ in range(5000)]
    for client in clients:
        geo.country(client)  # a running gateway's cache is warm for returning clients

    def without_rules(ip: IPAddress) -> object:
        return plain.decide(plain.resources["app"], Facts(ip, PATH, "GET"))

    def with_rules(ip: IPAddress) -> object:  # as addons.rules does it
        country = geo.country(ip) if ruled.uses_country else None
        return ruled.decide(ruled.resources["app"], Facts(ip, PATH, "GET", country, None))

    rounds = 5 if quick else 15
    before = statistics.median(_per_call_us(without_rules, clients) for _ in range(rounds))
    after = statistics.median(_per_call_us(with_rules, clients) for _ in range(rounds))
    return {"decide_us": before, "lookup_and_decide_us": after, "added_us": after - before}


def run(quick: bool) -> str:
    directory = common.workdir("geodb")
    database = directory / "bench-country.mmdb"
    size = 50_000 if quick else 200_000
    networks = generate_database(database, size)
    costs = lookup_cost(database, networks, quick)
    decision = decision_cost(database, networks, quick)
    comparison = throughput(database, networks, quick)
    results = {
        "lookup": costs,
        "decision": decision,
        "throughput": comparison,
        "ratio_50_rules_vs_none": comparison.ratio,
    }
    common.save("geo", results)
    return report(costs, decision, comparison, size)


def report(
    costs: dict[str, float],
    decision: dict[str, float],
    comparison: common.Comparison,
    size: int,
) -> str:
    baseline = statistics.median(comparison.baseline_rps)
    candidate = statistics.median(comparison.candidate_rps)
    rows = [
        ["1. country lookup, LRU hit", f"{costs['hit_us']:.2f} us", "", ""],
        [
            "1. country lookup, miss (LRU + reader)",
            f"{costs['miss_us']:.2f} us",
            "",
            f"reader alone {costs['reader_only_us']:.2f} us; {size:,} networks",
        ],
        [
            "2. rules hook: lookup + 50 country rules",
            f"+{decision['added_us']:.2f} us",
            "",
            f"{decision['lookup_and_decide_us']:.2f} vs {decision['decide_us']:.2f} us per request",
        ],
        [
            "2. gateway, 50 country rules vs none",
            f"{comparison.ratio:.3f}",
            ">= 0.97",
            f"{candidate:.0f} vs {baseline:.0f} req/s; 5000 clients via X-Forwarded-For",
        ],
    ]
    return common.table(rows, ["benchmark", "result", "target", "detail"])
