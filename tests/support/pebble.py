"""Pebble, Let's Encrypt's ACME test server (Debian's `pebble`), with pebble-challtestsrv as its
DNS server, every name answering 127.0.0.1 (and no AAAA), all on free loopback ports.

Pebble validates HTTP-01 on `http_port` (a gateway's `http_listen`) and DNS-01 by asking
challtestsrv, whose TXT records `set_txt` and `clear_txt` change. Its own TLS certificate comes
from a test CA (`ca_bundle`, for the gateway's `acme.ca_bundle`); the root it issues under is
made when it starts and fetched from its management port (`root`).
"""

import json
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest

from demo import processes
from tests.support.ci import in_ci
from tests.support.tls import LocalCa

PEBBLE = Path("/usr/bin/pebble")
CHALLTESTSRV = Path("/usr/bin/pebble-challtestsrv")

# No random sleep before validating, no good nonce refused, no authorization reused (each order
# is validated, so a failing challenge fails), and the default of 5% of nonces refused off too.
ENVIRONMENT = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}


class Pebble:
    def __init__(self, directory: Path, *, http_port: int, validity_seconds: int = 3600) -> None:
        self.directory = directory
        self.http_port = http_port
        self.validity_seconds = validity_seconds
        self.port = processes.free_port()
        self.management_port = processes.free_port()
        self.dns_port = processes.free_port()
        self.challtestsrv_port = processes.free_port()
        self.ca_bundle = directory / "pebble-ca.pem"
        self.log = directory / "pebble.log"
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def challtestsrv_url(self) -> str:
        return f"http://127.0.0.1:{self.challtestsrv_port}"

    def start(self) -> "Pebble":
        self.directory.mkdir(parents=True, exist_ok=True)
        self._start_challtestsrv()
        ca = LocalCa.fresh("Pebble's own test CA")
        ca.write(self.ca_bundle)
        cert, key = self.directory / "pebble.pem", self.directory / "pebble.key"
        ca.issue(["127.0.0.1", "localhost"], cert, key_path=key)
        config = self.directory / "pebble-config.json"
        config.write_text(json.dumps({"pebble": self._config(cert, key)}))
        args = [str(PEBBLE), "-config", str(config)]
        args += ["-dnsserver", f"127.0.0.1:{self.dns_port}", "-strict=false"]
        process = processes.start(args, log=self.log, env=ENVIRONMENT, cwd=self.directory)
        self._processes.append(process)
        processes.wait_for_port(self.port, process)
        processes.wait_for_port(self.management_port, process)
        return self

    def stop(self) -> None:
        for process in reversed(self._processes):
            processes.stop(process)
        self._processes.clear()

    def root(self) -> bytes:
        """The root Pebble issues under (made anew each start): what a client trusts."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            root: bytes = answer.read()
            return root

    def orders(self) -> int:
        """How many orders Pebble has been asked for."""
        return self.log.read_text(errors="replace").count("Added order")

    def set_txt(self, record: str, value: str) -> None:
        self._manage("set-txt", {"host": record.rstrip(".") + ".", "value": value})

    def clear_txt(self, record: str) -> None:
        self._manage("clear-txt", {"host": record.rstrip(".") + "."})

    def resolve(self, name: str, address: str) -> None:
        """Point `name` somewhere other than 127.0.0.1, e.g. where nothing listens."""
        self._manage("add-a", {"host": name + ".", "addresses": [address]})

    def unresolve(self, name: str) -> None:
        self._manage("clear-a", {"host": name + "."})

    def _config(self, cert: Path, key: Path) -> dict[str, object]:
        return {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": processes.free_port(),  # TLS-ALPN-01: not offered by Warren, not reached
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": self.validity_seconds,
        }

    def _start_challtestsrv(self) -> None:
        args = [str(CHALLTESTSRV), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]
        args += ["-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", ""]
        args += ["-tlsalpn01", "", "-management", f"127.0.0.1:{self.challtestsrv_port}"]
        log = self.directory / "challtestsrv.log"
        process = processes.start(args, log=log, cwd=self.directory)
        self._processes.append(process)
        processes.wait_for_port(self.challtestsrv_port, process)

    def _manage(self, command: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(
            f"{self.challtestsrv_url}/{command}",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()


def require_pebble() -> None:
    missing = [str(path) for path in (PEBBLE, CHALLTESTSRV) if not path.exists()]
    if not missing:
        return
    reason = f"{', '.join(missing)} missing (Debian package pebble; ./dev test installs it)"
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)
