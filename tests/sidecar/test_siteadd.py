"""`warren site add`: the secret printed once, only its hash in policy.yaml, and the admin's
file otherwise exactly as it was."""

import hashlib
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.policy.check import Capabilities
from core.policy.load import load_policy
from sidecar.commands import register
from sidecar.siteadd import SiteAddError, add_site

register(app)
runner = CliRunner()
HASH = "c" * 64


def edit(tmp_path: Path, text: str, name: str = "home") -> tuple[str, str]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    added = add_site(path, name, Capabilities(), edit=True)
    assert added.edited
    result = path.read_text()
    assert load_policy(path, Capabilities()).model.sites[name].secret_sha256 == (
        hashlib.sha256(added.secret.encode()).hexdigest()
    )
    assert added.secret not in result
    return result, added.secret


def test_adds_to_the_end_of_the_sites_block_keeping_everything_else(tmp_path: Path) -> None:
    text = f"""\
# Warren policy, edited by hand.
version: 1
sites:
    # the lab in the basement
    lab: {{secret_sha256: "{HASH}"}}   # keep

resources: {{}}  # nothing yet
"""
    result, _ = edit(tmp_path, text)
    lines = result.splitlines()
    assert lines[:5] == text.splitlines()[:5]
    assert re.fullmatch(r'    home: \{secret_sha256: "[0-9a-f]{64}"\}', lines[5])
    assert lines[6:] == text.splitlines()[5:]


def test_nested_entries_and_a_missing_final_newline(tmp_path: Path) -> None:
    text = f'version: 1\nsites:\n  lab:\n    secret_sha256: "{HASH}"'
    result, _ = edit(tmp_path, text)
    assert result.startswith(f'version: 1\nsites:\n  lab:\n    secret_sha256: "{HASH}"\n  home: ')


def test_a_file_without_sites_gets_a_block(tmp_path: Path) -> None:
    result, _ = edit(tmp_path, "version: 1\nresources: {}")
    assert result.startswith("version: 1\nresources: {}\nsites:\n  home: {secret_sha256: ")


def test_an_empty_flow_mapping_becomes_a_block(tmp_path: Path) -> None:
    result, _ = edit(tmp_path, "version: 1\nsites: {}  # none yet\n")
    assert result.startswith("version: 1\nsites:\n  home: {secret_sha256: ")


def test_a_flow_style_it_does_not_understand_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    text = f'version: 1\nsites: {{lab: {{secret_sha256: "{HASH}"}}}}\n'
    path.write_text(text)
    added = add_site(path, "home", Capabilities(), edit=True)
    assert not added.edited
    assert path.read_text() == text
    assert added.entry.strip().startswith("home: {secret_sha256: ")


def test_refusals(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(f'version: 1\nsites:\n  home: {{secret_sha256: "{HASH}"}}\n')
    with pytest.raises(SiteAddError, match="exists"):
        add_site(path, "home", Capabilities(), edit=True)
    with pytest.raises(SiteAddError, match="not a site name"):
        add_site(path, "Home!", Capabilities(), edit=True)
    path.write_text("version: 1\nresources: {x: {host: a.example}}\n")
    with pytest.raises(SiteAddError, match=r"fix policy\.yaml first"):
        add_site(path, "home", Capabilities(), edit=True)


def test_the_command_prints_only_the_secret_on_standard_output(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    (tmp_path / "warren.yaml").write_text("policy_file: policy.yaml\n")
    result = runner.invoke(app, ["site", "add", "home", "--config", str(tmp_path / "warren.yaml")])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)
    assert "shown this once" in result.stderr
    assert "warren site --node https://NODE --site home --secret-file home.secret" in result.stderr
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert digest in (tmp_path / "policy.yaml").read_text()
    again = runner.invoke(app, ["site", "add", "home", "--policy", str(tmp_path / "policy.yaml")])
    assert again.exit_code == 1
    assert "exists" in again.stderr


def test_no_edit_prints_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n")
    result = runner.invoke(app, ["site", "add", "home", "--policy", str(path), "--no-edit"])
    assert result.exit_code == 0, result.output
    assert path.read_text() == "version: 1\n"
    assert "add this line under `sites:`" in result.stderr


def test_the_agent_needs_an_https_node_and_a_secret(tmp_path: Path) -> None:
    secret = tmp_path / "home.secret"
    secret.write_text("x\n")
    plain = runner.invoke(
        app,
        ["site", "--node", "http://node.example", "--site", "home", "--secret-file", str(secret)],
    )
    assert plain.exit_code == 2
    assert "https://" in plain.stderr
    missing = runner.invoke(app, ["site", "--site", "home"])
    assert missing.exit_code == 2
    assert "--node, --site and --secret-file are required" in missing.stderr


def test_the_secret_can_go_to_a_new_file_only_its_owner_reads(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n")
    secret_file = tmp_path / "home.secret"
    result = runner.invoke(
        app, ["site", "add", "home", "--policy", str(path), "-o", str(secret_file)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"Its secret is in {secret_file} (mode 0600" in result.stderr
    secret = secret_file.read_text().strip()
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert hashlib.sha256(secret.encode()).hexdigest() in path.read_text()
    # Written atomically: no temporary file is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home.secret", "policy.yaml"]


def test_an_output_file_that_exists_is_refused_before_anything_changes(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n")
    taken = tmp_path / "office.secret"
    taken.write_text("another site's secret\n")
    for target, reason in ((taken, "exists"), (tmp_path / "no" / "home.secret", "not a directory")):
        result = runner.invoke(
            app, ["site", "add", "home", "--policy", str(path), "-o", str(target)]
        )
        assert result.exit_code == 1
        assert reason in result.stderr
        assert result.stdout == ""
    assert path.read_text() == "version: 1\n"
    assert taken.read_text() == "another site's secret\n"
