"""What `warren init` needs to know: from flags, or, on a terminal, asked for with defaults."""

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from core.install.admin import checked_email, checked_name
from core.policy.model import Host, Name


class InitError(Exception):
    """Said as `error: ...`; raised before anything is written."""


class MissingFlag(InitError):
    pass


@dataclass(frozen=True)
class Answers:
    domain: str
    email: str
    admin: str
    site: str
    wg_host: str
    ipv4: str | None
    ipv6: str | None

    @property
    def portal_host(self) -> str:
        return f"auth.{self.domain}"

    @property
    def node_url(self) -> str:
        """What the site agent registers through: any host of the node serves the sites' API."""
        return f"https://{self.portal_host}"

    @property
    def wg_endpoint(self) -> str:
        host = f"[{self.wg_host}]" if ":" in self.wg_host else self.wg_host
        return f"{host}:51820"


type Check = Callable[[str], str]  # the value as it will be written; ValueError says why not
type Default = Callable[[Mapping[str, str]], str | None]  # from earlier answers; None: required
type Ask = Callable[[str, str | None], str]  # prompt, default -> what the person typed


def _validated(adapter: TypeAdapter[str], what: str) -> Check:
    """As policy.yaml will take it: the model that reads the file checks it."""

    def check(value: str) -> str:
        try:
            return adapter.validate_python(value.strip())
        except ValidationError:
            raise ValueError(f"{value!r} is not {what}") from None

    return check


_host = _validated(TypeAdapter(Host), "a host name (letters, digits, '-', dots between)")
_site = _validated(
    TypeAdapter(Name), "a site name (lower-case letters, digits, '-', '_'; at most 63)"
)


def _domain(value: str) -> str:
    name = _host(value)
    if "*" in name or "." not in name:
        raise ValueError(f"{value!r} is not a domain like example.com (no wildcard)")
    return name


def _wg_host(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return _domain(value)


def _address(version: int) -> Check:
    def check(value: str) -> str:
        if not value.strip():
            return ""
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv{version} address") from None
        if address.version != version:
            raise ValueError(f"{value!r} is not an IPv{version} address")
        return str(address)

    return check


@dataclass(frozen=True)
class Question:
    key: str  # the Answers field; the flag is --key with - for _
    prompt: str
    check: Check
    default: Default

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


def _none(_: Mapping[str, str]) -> None:
    return None


def _empty(_: Mapping[str, str]) -> str:
    return ""


QUESTIONS = (
    Question("domain", "Domain (applications get names below it)", _domain, _none),
    Question("email", "E-mail (the ACME account's contact, and the admin's)", checked_email, _none),
    Question("admin", "Name of the first admin", checked_name, lambda _: "admin"),
    Question("site", "Name of the home server's site", _site, lambda _: "home"),
    Question(
        "wg_host",
        "DNS-only name (or address) sites send WireGuard to",
        _wg_host,
        lambda answers: f"wg.{answers['domain']}",
    ),
    Question("ipv4", "This node's public IPv4 address (empty: a placeholder)", _address(4), _empty),
    Question("ipv6", "This node's public IPv6 address (empty: none)", _address(6), _empty),
)


def collect(given: Mapping[str, str | None], ask: Ask | None) -> Answers:
    """Every answer: the flag's value, else (with `ask`, on a terminal) what the person types,
    else the default. A flag that does not check out is an error even on a terminal."""
    answers: dict[str, str] = {}
    for question in QUESTIONS:
        answers[question.key] = _answer(question, given.get(question.key), answers, ask)
    ipv4, ipv6 = answers.pop("ipv4") or None, answers.pop("ipv6") or None
    return Answers(**answers, ipv4=ipv4, ipv6=ipv6)


def _answer(
    question: Question, flag: str | None, answers: Mapping[str, str], ask: Ask | None
) -> str:
    if flag is not None:
        try:
            return question.check(flag)
        except ValueError as error:
            raise InitError(f"{question.flag}: {error}") from None
    default = question.default(answers)
    if ask is None:
        if default is None:
            raise MissingFlag(f"{question.flag} is needed (there is no terminal to ask on)")
        return question.check(default)
    while True:
        try:
            return question.check(ask(question.prompt, default))
        except ValueError as error:
            ask_again(str(error))


def ask_again(reason: str) -> None:
    import typer

    typer.secho(f"  {reason}; again, please.", err=True, fg=typer.colors.YELLOW)
