"""A small HTTP 'browser' for tests: follows redirects across host names that all live on one
loopback port, and keeps each host's cookies apart, as a browser does. `address` is where every
name resolves: which node a client of several reaches (tests/support/twonodes.py)."""

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx


@dataclass
class Browser:
    port: int
    address: str = "127.0.0.1"
    jar: dict[str, dict[str, str]] = field(default_factory=dict)
    visited: list[str] = field(default_factory=list)
    accept: str = "text/html,application/xhtml+xml"

    def request(
        self, method: str, url: str, *, data: dict[str, str] | None = None, **headers: str
    ) -> httpx.Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or self.port
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sent = {"host": parts.netloc, "accept": self.accept, **headers}
        cookies = self.jar.get(host)
        if cookies:
            sent["cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        with httpx.Client(timeout=30) as client:
            response = client.request(
                method, f"http://{self.address}:{port}{target}", headers=sent, data=data
            )
        self.visited.append(f"{method} {url} -> {response.status_code}")
        for line in response.headers.get_list("set-cookie"):
            self._store(host, line)
        return response

    def _store(self, host: str, line: str) -> None:
        pair, *attributes = [part.strip() for part in line.split(";")]
        name, _, value = pair.partition("=")
        expired = any(a.lower() == "max-age=0" for a in attributes)
        domain = next(
            (a[7:].lstrip(".") for a in attributes if a.lower().startswith("domain=")), ""
        )
        jar = self.jar.setdefault(domain or host, {})
        if expired:
            jar.pop(name, None)
        else:
            jar[name] = value

    def go(
        self, url: str, method: str = "GET", data: dict[str, str] | None = None, **headers: Any
    ) -> tuple[httpx.Response, str]:
        """Request and follow redirects; the last response and the URL it came from."""
        for _ in range(10):
            response = self.request(method, url, data=data, **headers)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response, url
            url = urljoin(url, response.headers["location"])
            if response.status_code in (301, 302, 303):
                method, data = "GET", None
        raise AssertionError(f"too many redirects: {self.visited[-10:]}")

    def cookies(self, host: str) -> dict[str, str]:
        return dict(self.jar.get(host, {}))


def form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in:\n{html[:2000]}"
    return found.group(1)
