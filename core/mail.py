"""Sending an e-mail through warren.yaml's `smtp` server (the standard library's smtplib, in a
thread so the event loop keeps serving): implicit TLS, STARTTLS or neither, a login when a
username is set, the server's certificate checked against the system's CAs or `ca_bundle`."""

import asyncio
import ipaddress
import smtplib
import ssl
from email.message import EmailMessage

from core.signinsettings import Smtp


class MailError(Exception):
    """The message was not handed to the SMTP server (unreachable, refused, bad TLS, login)."""


def message(smtp: Smtp, to: str, subject: str, body: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = smtp.sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to Warren
    mail.set_content(body)
    return mail


async def send(smtp: Smtp, mail: EmailMessage) -> None:
    await asyncio.to_thread(_send, smtp, mail)


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _context(smtp: Smtp) -> ssl.SSLContext:
    cafile = str(smtp.ca_bundle) if smtp.ca_bundle is not None else None
    return ssl.create_default_context(cafile=cafile)  # hostname checked, TLS >= 1.2


def _send(smtp: Smtp, mail: EmailMessage) -> None:
    timeout = smtp.timeout.total_seconds()
    if smtp.security == "none" and smtp.username and not _loopback(smtp.host):
        raise MailError("will not send the SMTP password unencrypted (security: none)")
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=timeout, context=_context(smtp)
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            if smtp.security == "starttls":
                # Refused (SMTPNotSupportedError) when the server offers no STARTTLS: never
                # fall back to plain text (RFC 3207 §4 leaves that to the client; Warren won't).
                client.starttls(context=_context(smtp))
            if smtp.username:
                client.login(smtp.username, smtp.secret() or "")
            refused = client.send_message(mail)
    except (smtplib.SMTPException, OSError, ValueError) as error:
        raise MailError(f"{type(error).__name__}: {error}") from error
    if refused:
        raise MailError(f"the server refused {', '.join(refused)}")
