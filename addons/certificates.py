"""Serves the node's certificates (core.certs) through mitmproxy's TLS: by SNI, the first one
for a client that names no host we hold, and a replaced file from the next handshake on, without
a restart.

mitmproxy's TlsConfig looks each handshake's certificate up in its certificate store by name
(exact, then wildcard forms, then "*"); this addon keeps Warren's entries in that store. It does
not use mitmproxy's `certs` option, which is read once at start.
"""

import logging
from pathlib import Path

from mitmproxy import certs, ctx

from addons.runtime import Runtime, RuntimeSlot
from core.certs import Certificate
from core.files import replacing

log = logging.getLogger("warren.certs")

type StoreKey = str


class Certificates:
    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot
        self._installed: dict[StoreKey, certs.CertStoreEntry] = {}
        self._store: certs.CertStore | None = None
        slot.on_swap(self._follow)

    def tls_clienthello(self, _: object) -> None:
        # TlsConfig makes a new, empty store when its options change (and, under mitmdump,
        # once more when it starts running, after this pack has installed its entries).
        runtime = self.slot.runtime
        if runtime is not None and _certstore() is not self._store:
            self._install(runtime.certificates.current, runtime)

    def _follow(self, runtime: Runtime) -> None:
        runtime.certificates.subscribe(lambda served: self._install(served, runtime))
        self._install(runtime.certificates.current, runtime)

    def _install(self, served: tuple[Certificate, ...], runtime: Runtime) -> None:
        store = _certstore()
        if store is None:  # no TLS in this master (an in-process test), or not configured yet
            return
        chains = runtime.settings.state_dir / "tls" / "chains"
        entries: dict[StoreKey, certs.CertStoreEntry] = {}
        # Later entries yield to earlier ones: the admin's files come first in `served`.
        for certificate in reversed(served):
            entry = _entry(certificate, _chain_file(chains, certificate))
            entries.update(dict.fromkeys(certificate.names, entry))
        if served:
            entries["*"] = entries[served[0].names[0]]
        for key, entry in self._installed.items():
            if store.certs.get(key) is entry:
                del store.certs[key]
        store.certs.update(entries)
        self._installed, self._store = entries, store
        _forget_other_chains(chains, {entry.chain_file for entry in entries.values()})


def _certstore() -> certs.CertStore | None:
    tlsconfig = ctx.master.addons.get("tlsconfig")
    return getattr(tlsconfig, "certstore", None)


def _entry(certificate: Certificate, chain_file: Path) -> certs.CertStoreEntry:
    chain = [certs.Cert(c) for c in certificate.chain]
    return certs.CertStoreEntry(chain[0], certificate.key, chain_file, chain)  # type: ignore[arg-type]


def _chain_file(directory: Path, certificate: Certificate) -> Path:
    """A file named for its contents: mitmproxy caches a TLS context per chain file path, so a
    renewed chain (a new intermediate) must come under a new name to be sent."""
    path = directory / f"{certificate.fingerprint}.pem"
    if not path.exists():
        with replacing(path, 0o644) as temporary:
            temporary.write_bytes(certificate.chain_pem)
    return path


def _forget_other_chains(directory: Path, kept: set[Path | None]) -> None:
    for path in directory.glob("*.pem"):
        if path not in kept:
            path.unlink(missing_ok=True)
