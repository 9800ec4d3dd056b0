"""The sign-in services as the portal opens them: users.yaml as it is at every sign-in."""

import asyncio
from pathlib import Path

from core.auth.services import SignInServices
from core.auth.users import User, UsersFile, hash_secret, update
from core.settings import load_settings


def settings_in(directory: Path) -> Path:
    config = directory / "warren.yaml"
    config.write_text("users_file: users.yaml\nstate_dir: state\n")
    return config


def add(directory: Path, name: str) -> None:
    user = User(password=hash_secret("correct horse battery"))
    update(directory / "users.yaml", lambda users: UsersFile(users={**users.users, name: user}))


def test_the_portal_sees_a_user_added_a_moment_after_it_opened(tmp_path: Path) -> None:
    services = SignInServices.open(load_settings(settings_in(tmp_path)), users_on_every_use=True)
    try:
        assert services.users.current().users == {}
        add(tmp_path, "alice")  # within the gateway's recheck time of opening
        assert "alice" in services.users.current().users
    finally:
        asyncio.run(services.close())
