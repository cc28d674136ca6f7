"""Error hints name options the command has."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli

NO_SECRET = '[srs]\ndomain = "fwd.example"\n'


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), input=b"From: a@example.org\r\n\r\nhi\r\n")
    assert result.exit_code != 0
    return result.output


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--check"],
        [
            "forward",
            *("--client-ip", "192.0.2.1", "--helo", "h.example"),
            *("--mail-from", "a@example.org", "--rcpt", "b@x.example"),
        ],
    ],
)
def test_commands_without_secret_file_option_do_not_suggest_it(
    tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text(NO_SECRET + f'[serve]\nsocketmap = ["unix:{tmp_path}/srs.sock"]\n')
    output = run(command[0], "--config", str(config), *command[1:])
    assert "[srs] secrets_file" in output
    assert "--secret-file" not in output


def test_srs_commands_still_suggest_their_secret_file_option() -> None:
    assert "--secret-file" in run("rewrite", "--domain", "fwd.example", "a@example.org")
