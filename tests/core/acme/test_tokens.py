"""HTTP-01 tokens in the node's shared state (core.acme.tokens), here its SQLite file."""

import asyncio
from pathlib import Path

from core.acme import tokens
from core.auth.signinstate import SqliteKV

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"  # RFC 8555 §8.3's example


def test_a_published_token_answers_until_withdrawn(tmp_path: Path) -> None:
    kv = SqliteKV(tmp_path / "signin.sqlite3")

    async def run() -> None:
        assert await tokens.key_authorization(kv, TOKEN) is None
        await tokens.publish(kv, TOKEN, f"{TOKEN}.thumbprint")
        other_process = SqliteKV(tmp_path / "signin.sqlite3")  # as the gateway reads it
        assert await tokens.key_authorization(other_process, TOKEN) == f"{TOKEN}.thumbprint"
        await tokens.withdraw(kv, TOKEN)
        assert await tokens.key_authorization(other_process, TOKEN) is None

    asyncio.run(run())


def test_what_is_not_a_token_is_never_looked_up(tmp_path: Path) -> None:
    kv = SqliteKV(tmp_path / "signin.sqlite3")
    for path_segment in ("short", "a" * 300, "with space and more chars", "%2e%2e%2f" * 3):
        assert asyncio.run(tokens.key_authorization(kv, path_segment)) is None
