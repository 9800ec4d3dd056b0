"""Run the benchmarks: `./dev bench [SUITE ...] [--quick]` (all suites when none is named).

Each suite prints a table of results with the ratio against a baseline measured in the same
run, and writes the raw figures to bench/results/SUITE.json.
"""

import argparse
import importlib
import sys

SUITES = ["gateway", "tls", "geo", "ratelimit", "auth", "routes", "tunnel", "cluster"]


def main() -> int:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__)
    parser.add_argument(
        "suites",
        nargs="*",
        choices=[*SUITES, []],
        metavar="SUITE",
        help=f"one of: {', '.join(SUITES)}",
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    for name in args.suites or SUITES:
        suite = importlib.import_module(f"bench.{name}")
        print(f"\n== {name}: {suite.__doc__.splitlines()[0] if suite.__doc__ else ''}", flush=True)
        print(suite.run(args.quick), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
