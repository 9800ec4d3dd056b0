"""policy.yaml -> validated model -> compiled Policy, or a ConfigError that says what to fix."""

import gc
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from core.clientcerts import ClientCa, ClientCaError, load_client_ca
from core.policy.check import Capabilities, check_policy
from core.policy.compiled import Policy, compile_policy
from core.policy.model import PolicyFile
from core.problems import ConfigError, Problem, from_validation_error
from core.yamlfile import load_yaml, locate, parse_yaml


def load_policy(path: Path, capabilities: Capabilities) -> Policy:
    with _collector_paused():
        text, data = load_yaml(path)
        return _build(text, data, path, capabilities)


def parse_policy(text: str, capabilities: Capabilities, path: Path | None = None) -> Policy:
    with _collector_paused():
        return _build(text, parse_yaml(text, path), path, capabilities)


def build_policy(text: str, data: object, path: Path | None, capabilities: Capabilities) -> Policy:
    """From a file already read and parsed (`core.yamlfile.load_yaml`)."""
    with _collector_paused():
        return _build(text, data, path, capabilities)


@contextmanager
def _collector_paused() -> Iterator[None]:
    # Building a large policy allocates hundreds of thousands of objects that all stay alive;
    # the cyclic collector would rescan the growing heap over and over, more than doubling the
    # time. Reference counting still frees garbage meanwhile; only cycles wait for the end.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(text: str, data: object, path: Path | None, capabilities: Capabilities) -> Policy:
    if not isinstance(data, dict):
        problem = Problem((), "the file must be a mapping with version: 1 and resources")
        raise ConfigError(locate(text, [problem], path))
    try:
        model = PolicyFile.model_validate(data)
    except ValidationError as error:
        raise ConfigError(locate(text, from_validation_error(error), path)) from None
    problems = check_policy(model, capabilities)
    if problems:
        raise ConfigError(locate(text, problems, path))
    client_cas, problems = _client_cas(model, path)
    if problems:
        raise ConfigError(locate(text, problems, path))
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return compile_policy(model, path, digest, capabilities.cloudflare, client_cas)


def _client_cas(model: PolicyFile, path: Path | None) -> tuple[dict[str, ClientCa], list[Problem]]:
    """Each resource's auth.client_ca, read now (a relative path is relative to policy.yaml's
    directory), so a request never waits on the file and a bad one is a policy error."""
    base = path.parent if path is not None else Path.cwd()
    read: dict[str, ClientCa] = {}
    problems: list[Problem] = []
    for name, resource in model.resources.items():
        auth = resource.auth
        if isinstance(auth, str) or auth is None or auth.client_ca is None:
            continue
        try:
            read[name] = load_client_ca(base / auth.client_ca)
        except ClientCaError as error:
            problems.append(Problem(("resources", name, "auth", "client_ca"), str(error)))
    return read, problems
