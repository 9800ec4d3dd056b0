"""The gateway's ACME loop (core.acme.manager): started when the gateway runs, re-planned when
the policy reloads with other hosts, restarted with a new warren_config, ended with the gateway.
Off unless warren.yaml has an `acme` section.

(Not `addons/acme.py`: mitmdump puts addons/ on sys.path, where it would hide the acme package.)
"""

import logging
from typing import Any

from addons.background import Opened, RuntimeLoop
from addons.runtime import Runtime
from core.acme.manager import AcmeCertificates, CertificateStatus
from core.acme.plan import policy_hosts
from core.acme.shared import open_shared

log = logging.getLogger("warren.acme")


class AcmeLoop(RuntimeLoop[AcmeCertificates]):
    def status(self) -> dict[str, Any]:
        """For `warren status`: a line per certificate, under the others' column of values."""
        certificates = self.current
        if certificates is None:
            return {}
        lines = [_line(entry) for entry in certificates.status()]
        lines += [f"{name}: not ordered: {why}" for name, why in certificates.skipped]
        return {"acme": ("\n" + " " * 16).join(lines) or "no names to certify"}

    def open(self, runtime: Runtime) -> Opened[AcmeCertificates] | None:
        settings = runtime.settings
        if settings.acme is None:
            return None
        shared = open_shared(settings.storage)
        certificates = AcmeCertificates(
            settings,
            lambda: policy_hosts(runtime.policy.model),
            runtime.signin.kv,
            shared,
            held=runtime.certificates.admin_covers,
        )
        runtime.store.subscribe(lambda _: certificates.replan())
        log.info("acme: certificates from %s", settings.acme.directory)
        return Opened(certificates, certificates.run, shared.close)


def _line(entry: CertificateStatus) -> str:
    names = ", ".join(entry["names"])
    held = f"expires {entry['expires']}" if entry["expires"] else "no certificate yet"
    error = f"; last error: {entry['last_error']}" if entry["last_error"] else ""
    return f"{names} ({entry['challenge']}): {held}{error}"
