from pathlib import Path

from core.auth.users import UsersSource
from core.cluster.documents import digest_of
from core.cluster.facts import UsersDigest, machine_id, sidecar_key_file, wireguard_facts
from core.settings import Settings
from sidecar import wgkeys

USERS = "users:\n  carol: {password: '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'}\n"


def test_the_wireguard_key_is_the_public_half_of_the_sidecars(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, node={"url": "https://a.example.com"})
    assert wireguard_facts(settings).public_key is None  # no sidecar yet
    private = wgkeys.load_or_create(sidecar_key_file(tmp_path))
    facts = wireguard_facts(settings)
    assert facts.public_key == wgkeys.public_key(private)
    assert facts.endpoint == "a.example.com:51820"
    assert facts.subnet == "100.89.0.0/16"


def test_the_users_digest_is_of_the_copy_served_while_an_edit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(USERS)
    digest = UsersDigest(UsersSource(path))
    assert digest.state().digest == digest_of(USERS)
    assert digest.state().error is None
    path.write_text("users: [not, a, mapping]\n")
    refused = digest.state()
    assert refused.digest == digest_of(USERS)
    assert refused.error is not None


def test_the_machine_id_is_made_once_per_state_dir(tmp_path: Path) -> None:
    first = machine_id(tmp_path)
    assert len(first) == 32
    assert machine_id(tmp_path) == first
    assert machine_id(tmp_path / "other") != first
