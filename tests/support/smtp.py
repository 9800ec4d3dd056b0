"""A real SMTP server for tests (aiosmtpd on loopback, in a thread of the test process) that keeps
every message it accepts: plain, or STARTTLS required with a certificate from a test CA and a
login checked against one username and password."""

import re
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from demo import processes
from tests.support.tls import LocalCa
from tests.support.waiting import eventually

CODE = re.compile(r"^\s+(\d{8})\s*$", re.MULTILINE)  # the code's own line in Warren's mail


@dataclass
class Inbox:
    """aiosmtpd's handler: what was accepted, in order."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@dataclass
class MailServer:
    port: int
    inbox: Inbox
    controller: Controller
    ca: Path | None = None  # the CA to trust, when it speaks TLS

    def to(self, address: str) -> list[EmailMessage]:
        return [mail for mail in self.inbox.messages if mail["To"] == address]

    def code_for(self, address: str, timeout: float = 10) -> str:
        """The code of the latest mail to `address`, waiting for it to arrive."""

        def latest() -> str:
            mails = self.to(address)
            if not mails:
                return ""
            found = CODE.search(body_of(mails[-1]))
            assert found, body_of(mails[-1])
            return found.group(1)

        return eventually(latest, timeout=timeout)

    def stop(self) -> None:
        self.controller.stop()


def body_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def start(
    tmp: Path | None = None, *, starttls: bool = False, login: tuple[str, str] | None = None
) -> MailServer:
    """On a free loopback port. `starttls` (needs `tmp` for the certificate): the server offers
    STARTTLS and refuses mail before it; `login`: it requires that username and password."""
    inbox = Inbox()
    port = processes.free_port()
    kwargs: dict[str, Any] = {}
    ca_path = None
    if starttls:
        assert tmp is not None
        ca = LocalCa.fresh("Warren test mail CA")
        ca_path = ca.write(tmp / "mail-ca.pem")
        ca.issue(["127.0.0.1"], tmp / "mail.pem")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tmp / "mail.pem")
        kwargs.update(tls_context=context, require_starttls=True)
    if login is not None:

        def authenticator(
            server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            good = (
                isinstance(data, LoginPassword)
                and (
                    data.login.decode(),
                    data.password.decode(),
                )
                == login
            )
            return AuthResult(success=good)

        kwargs.update(authenticator=authenticator, auth_required=True)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return MailServer(port, inbox, controller, ca_path)
