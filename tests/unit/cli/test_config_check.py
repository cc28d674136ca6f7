"""``srsfwd config check``: the settings in force, where each came from, secrets hidden."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from srsfwd.cli import cli
from tests.schemas import validate


def check(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["config", "check", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_example_configuration_is_valid(example: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "check", "-c", str(example / "srsfwd.toml")])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"# {example / 'srsfwd.toml'}: valid"


def test_the_json_document_fits_its_schema(example: Path) -> None:
    validate(check("-c", str(example / "srsfwd.toml")), "reports.schema.json", "config_check")


def test_a_value_from_the_file_says_so(example: Path) -> None:
    settings = check("-c", str(example / "srsfwd.toml"))["settings"]
    assert settings["srs"]["domain"] == {"value": "fwd.example.net", "source": "file"}


def test_an_absent_value_shows_its_default(example: Path) -> None:
    settings = check("-c", str(example / "srsfwd.toml"))["settings"]
    assert settings["serve"]["milter_workers"] == {"value": 16, "source": "default"}
    assert settings["pools"]["relay"]["dkim_sign"] == {"value": "none", "source": "default"}


def test_a_flag_wins_and_says_so(example: Path) -> None:
    settings = check("-c", str(example / "srsfwd.toml"), "--state-dir", "/srv/state")["settings"]
    assert settings["state_dir"] == {"value": "/srv/state", "source": "flag"}
    assert settings["limits"]["store"]["value"] == "/srv/state/limits.sqlite"


def test_paths_are_shown_as_the_commands_use_them(example: Path) -> None:
    settings = check("-c", str(example / "srsfwd.toml"))["settings"]
    assert settings["srs"]["secrets_file"]["value"] == str(example / "srs.secret")
    assert settings["dkim"]["keys_dir"]["value"] == str(example / "keys")


def test_postsrsd_names_count_as_written_in_the_file(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('[srs]\nsrs-domain = "fwd.example"\nhash-min = 3\n')
    settings = check("-c", str(config))["settings"]
    assert settings["srs"]["domain"] == {"value": "fwd.example", "source": "file"}
    assert settings["srs"]["hash_minimum"] == {"value": 3, "source": "file"}


def test_secrets_are_never_printed(example: Path) -> None:
    secret = (example / "srs.secret").read_text().strip()
    text = (example / "srsfwd.toml").read_text()
    (example / "srsfwd.toml").write_text(
        text.replace('# store = "redis://127.0.0.1:6379/0"', 'store = "redis://:hunter2@db/0"')
    )
    for args in ([], ["--json"]):
        out = CliRunner().invoke(
            cli, ["config", "check", "-c", str(example / "srsfwd.toml"), *args]
        )
        assert out.exit_code == 0
        assert secret not in out.stdout
        assert "hunter2" not in out.stdout
        assert "redis://:(redacted)@db/0" in out.stdout


def test_a_configuration_that_serve_cannot_use_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text("[serve]\nsocketmap = []\n")
    result = CliRunner().invoke(cli, ["config", "check", "-c", str(config)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: [serve] listens nowhere")


def test_config_check_shows_whether_the_milter_tries_messages_on_its_event_loop(
    example: Path,
) -> None:
    settings = check("-c", str(example / "srsfwd.toml"))["settings"]
    assert settings["serve"]["milter_inline"] == {"value": True, "source": "default"}
