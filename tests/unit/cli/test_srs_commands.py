"""`srsfwd rewrite`, `reverse`, `secret new` and `bounce` as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli

SRS0 = re.compile(r"SRS0=[A-Za-z0-9_-]{4}=[A-Z2-7]{2}=example\.org=alice@fwd\.example\.net")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "srs.secret"
    path.write_text("a-test-secret-long-enough\n")
    path.chmod(0o600)
    return path


def forged(secret: Path) -> str:
    """An address with today's stamp and a hash made with another secret."""
    other = secret.with_name("other.secret")
    other.write_text("another-secret\n")
    other.chmod(0o600)
    return run(
        "rewrite", "--domain", "fwd.example.net", "--secret-file", other, "alice@example.org"
    )[1].strip()


def run(*args: str | Path, stdin: str | bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_rewrite_prints_srs_address(secret: Path) -> None:
    code, out, _ = run(
        "rewrite", "--domain", "fwd.example.net", "--secret-file", secret, "alice@example.org"
    )
    assert code == 0 and SRS0.fullmatch(out.strip())


def test_rewrite_reads_senders_from_stdin(secret: Path) -> None:
    code, out, _ = run(
        "rewrite",
        "--domain",
        "fwd.example.net",
        "--secret-file",
        secret,
        stdin="alice@example.org\n\nbob@example.org\n",
    )
    assert code == 0 and len(out.splitlines()) == 2


def test_rewrite_prints_unchanged_senders_as_they_are(secret: Path) -> None:
    code, out, _ = run(
        "rewrite",
        "--domain",
        "fwd.example.net",
        "--secret-file",
        secret,
        "--local-domain",
        "local.example",
        "a@local.example",
        "<>",
    )
    assert code == 0 and out.splitlines() == ["a@local.example", "<>"]


def test_rewrite_error_line_and_status_1_but_others_still_printed(secret: Path) -> None:
    code, out, err = run(
        "rewrite",
        "--domain",
        "fwd.example.net",
        "--secret-file",
        secret,
        "bad@@x",
        "alice@example.org",
    )
    assert code == 1
    assert err.startswith("Error: bad@@x: ")
    assert SRS0.fullmatch(out.strip())


def test_rewrite_options_change_the_address(secret: Path) -> None:
    code, out, _ = run(
        "rewrite",
        "--domain",
        "fwd.example.net",
        "--secret-file",
        secret,
        "--separator",
        "+",
        "--hash-length",
        "6",
        "--hash-alphabet",
        "classic",
        "alice@example.org",
    )
    assert code == 0 and re.fullmatch(
        r"SRS0\+[A-Za-z0-9+/]{6}=\w\w=example\.org=alice@\S+", out.strip()
    )


def test_rewrite_without_domain_is_a_clear_error(secret: Path) -> None:
    code, _, err = run("rewrite", "--secret-file", secret, "alice@example.org")
    assert code == 1 and "no SRS domain" in err


def test_rewrite_with_world_readable_secret_is_a_clear_error(secret: Path) -> None:
    secret.chmod(0o644)
    code, _, err = run("rewrite", "--domain", "d.example", "--secret-file", secret, "a@b.example")
    assert code == 1 and "chmod 600" in err and "Traceback" not in err


def test_reverse_prints_original_sender(secret: Path) -> None:
    _, address, _ = run(
        "rewrite", "--domain", "fwd.example.net", "--secret-file", secret, "alice@example.org"
    )
    code, out, _ = run("reverse", "--secret-file", secret, address.strip())
    assert (code, out) == (0, "alice@example.org\n")


def test_reverse_refuses_forgery_with_reason(secret: Path) -> None:
    code, _, err = run("reverse", "--secret-file", secret, forged(secret))
    assert code == 1 and "Hash invalid" in err


def test_reverse_require_domain(secret: Path) -> None:
    _, address, _ = run(
        "rewrite", "--domain", "fwd.example.net", "--secret-file", secret, "alice@example.org"
    )
    other = address.strip().replace("fwd.example.net", "other.example")
    code, _, err = run(
        "reverse", "--secret-file", secret, "--domain", "fwd.example.net", "--require-domain", other
    )
    assert code == 1 and "not in our SRS domain" in err


def test_reverse_from_config_file(tmp_path: Path, secret: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text(f'[srs]\ndomain = "fwd.example.net"\nsecrets_file = "{secret.name}"\n')
    _, address, _ = run("rewrite", "--config", config, "alice@example.org")
    code, out, _ = run("reverse", "--config", config, address.strip())
    assert (code, out) == (0, "alice@example.org\n")


def test_flags_win_over_config(tmp_path: Path, secret: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text(f'[srs]\ndomain = "a.example"\nsecrets_file = "{secret}"\n')
    _, out, _ = run("rewrite", "--config", config, "--domain", "b.example", "x@c.example")
    assert out.strip().endswith("@b.example")


@pytest.mark.parametrize(
    "stdin",
    ["\x00\x01\x02\n", "x" * 1_000_000 + "\n", "SRS0=" + "=" * 5000 + "\n", "ünï@cöde\n"],
)
def test_hostile_input_gives_error_lines_not_tracebacks(secret: Path, stdin: str) -> None:
    for command in (["rewrite", "--domain", "fwd.example.net"], ["reverse"]):
        code, _, err = run(*command, "--secret-file", secret, stdin=stdin)
        assert code == 1 and err.startswith("Error: ") and "Traceback" not in err


def test_secret_new_writes_private_file(tmp_path: Path) -> None:
    code, _, _ = run("secret", "new", tmp_path / "s")
    assert code == 0 and (tmp_path / "s").stat().st_mode & 0o777 == 0o600


def test_secret_new_creates_a_missing_folder_for_its_owner_and_group(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "srsfwd" / "srs.secret"
    code, _, err = run("secret", "new", path)
    assert code == 0, err
    assert path.parent.stat().st_mode & 0o777 == 0o750
    assert path.stat().st_mode & 0o777 == 0o600


def test_secret_new_rotate_keeps_bounces_in_flight_reversible(tmp_path: Path) -> None:
    path = tmp_path / "s"
    run("secret", "new", path)
    _, address, _ = run("rewrite", "--domain", "f.example", "--secret-file", path, "a@b.example")
    assert run("secret", "new", "--rotate", path)[0] == 0
    _, newer, _ = run("rewrite", "--domain", "f.example", "--secret-file", path, "a@b.example")
    assert newer != address
    assert run("reverse", "--secret-file", path, address.strip())[1] == "a@b.example\n"


def test_bounce_reports_where_it_goes(secret: Path, tmp_path: Path) -> None:
    _, address, _ = run(
        "rewrite", "--domain", "fwd.example.net", "--secret-file", secret, "alice@example.org"
    )
    message = tmp_path / "bounce.eml"
    message.write_text(f"To: {address.strip()}\nSubject: failure\n\nbody\n")
    code, out, _ = run("bounce", "--secret-file", secret, message)
    assert code == 0 and "deliver to alice@example.org" in out


def test_bounce_json_for_forgery(secret: Path) -> None:
    code, out, _ = run(
        "bounce",
        "--secret-file",
        secret,
        "--json",
        "--rcpt",
        forged(secret),
        stdin=b"Subject: x\n\nbody\n",
    )
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "forged" and not report["deliverable"]


@pytest.mark.parametrize("command", ["rewrite", "reverse", "bounce", "secret new"])
def test_every_command_help_shows_an_example(command: str) -> None:
    code, out, _ = run(*command.split(), "--help")
    assert code == 0 and "Example" in out


def test_a_short_secret_is_warned_about_on_standard_error(secret: Path) -> None:
    secret.write_text("short-secret\n")
    code, out, err = run("rewrite", "--domain", "d.example", "--secret-file", secret, "a@b.example")
    assert code == 0
    assert out.startswith("SRS0=")
    assert "Warning: secrets file" in err
    assert "short-secret" not in err
