"""Hostile configuration files through every command that reads one.

Each is refused the same way everywhere: one ``Error:`` line naming the table and key,
exit status 1, no traceback, nothing done.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli

ROOT = Path(__file__).parents[3]

#: (what is wrong, the file, what the error line must name)
HOSTILE: list[tuple[str, str, str]] = [
    # a typo in every table, and at the top
    ("typo at the top", "state_dri = 'x'\n", "'state_dri' (did you mean 'state_dir'?)"),
    ("typo in [srs]", "[srs]\nhash_lenght = 4\n", "[srs] has no setting 'hash_lenght'"),
    ("typo in [dkim]", "[dkim]\nkeys_dri = 'k'\n", "[dkim] has no setting 'keys_dri'"),
    (
        "typo in [dkim.domains]",
        "[dkim.domains]\n'x.example' = { selector = ['a'] }\n",
        "'selector' (did you mean 'selectors'?)",
    ),
    ("typo in [dns]", "[dns]\nnameserver = '127.0.0.1'\n", "'nameserver'"),
    ("typo in [decide]", "[decide]\naccepted_domain = []\n", "'accepted_domain'"),
    (
        "typo in [pools.normal]",
        "[pools.normal]\nhlo = 'x'\n",
        "[pools.normal] has no setting 'hlo'",
    ),
    ("typo in a pool's name", "[pools.hgh-risk]\n", "'hgh-risk' (did you mean 'high-risk'?)"),
    ("typo in [limits]", "[limits]\nper_dya = 1\n", "'per_dya' (did you mean 'per_day'?)"),
    ("typo in [forward]", "[forward]\ndkim-sing = 'auto'\n", "'dkim-sing'"),
    ("typo in [serve]", "[serve]\nkeep-alvie = 3\n", "'keep-alvie' (did you mean 'keep-alive'?)"),
    # unknown tables
    ("unknown table", "[limts]\nper_day = 1\n", "unknown table [limts] (did you mean [limits]?)"),
    ("unknown table [ssr]", "[ssr]\ndomain = 'x'\n", "unknown table [ssr] (did you mean [srs]?)"),
    ("unknown nested table", "[foo.bar]\nx = 1\n", "unknown table [foo]"),
    # wrong types
    ("nameservers a number", "[dns]\nnameservers = 5\n", "[dns] nameservers: expected"),
    ("domain a number", "[srs]\ndomain = 5\n", "[srs] domain: expected a string"),
    ("socketmap a number", "[serve]\nsocketmap = 5\n", "[serve] socketmap: expected"),
    ("a table that is a string", "limits = 'x'\n", "[limits] must be a table"),
    ("a pool that is a list", "pools = { normal = [] }\n", "[pools.normal] must be a table"),
    # NaN and infinities
    ("NaN limit", "[limits]\nper_day = nan\n", "[limits] per_day: expected an integer"),
    ("NaN keep-alive", "[serve]\nkeep-alive = nan\n", "[serve] keep-alive"),
    ("NaN dns_timeout", "[decide]\ndns_timeout = nan\n", "[decide] dns_timeout"),
    ("NaN [dns] timeout", "[dns]\ntimeout = nan\n", "[dns] timeout"),
    ("inf keep-alive", "[serve]\nkeep-alive = inf\n", "[serve] keep-alive"),
    ("-inf milter timeout", "[serve]\nmilter-timeout = -inf\n", "[serve] milter-timeout"),
    ("inf [dns] timeout", "[dns]\ntimeout = inf\n", "[dns] timeout"),
    # negative and huge numbers
    ("negative limit", "[limits]\nper_day = -1\n", "[limits] per_day: expected an integer >= 0"),
    ("negative expiry", "[dkim]\nexpire_days = -3\n", "[dkim] expire_days"),
    ("negative connection limit", "[serve]\nconnection-limit = -1\n", "[serve] connection-limit"),
    (
        "huge limit",
        "[limits]\nper_day = 99999999999999\n",
        "[limits] per_day: expected an integer <=",
    ),
    ("huge hash", "[srs]\nhash_length = 1000\n", "[srs] hash_length"),
    ("largest TOML integer", "[dns]\nport = 9223372036854775807\n", "[dns] port"),
    ("port out of range", "[dns]\nport = 70000\n", "[dns] port"),
    # bools for numbers
    ("true limit", "[limits]\nper_day = true\n", "[limits] per_day: expected an integer, got true"),
    ("true port", "[dns]\nport = true\n", "[dns] port"),
    ("false workers", "[serve]\nmilter-workers = false\n", "[serve] milter-workers"),
    ("true max age", "[srs]\nmax_age_days = true\n", "[srs] max_age_days"),
    ("a number for a bool", "[forward]\narc = 1\n", "[forward] arc: expected true or false"),
    # values no type describes
    ("unknown action", "[limits]\naction = 'blok'\n", '[limits] action: must be "alert"'),
    ("a store we do not have", "[limits]\nstore = 'mysql://x'\n", "[limits] store: 'mysql://x'"),
    ("octal mode 999", "[serve]\nsocket-mode = '999'\n", "[serve] socket-mode"),
    ("a network that is none", "[decide]\ntrusted_relays = ['gw']\n", "[decide] trusted_relays"),
    ("relay signing as the author", "[pools.relay]\ndkim_sign = 'auto'\n", "dkim_sign"),
    ("not an IP", "[pools.normal]\nsource_addresses = ['mx']\n", "source_addresses"),
    ("bad endpoint", "[serve]\nmilter = 'inet:x:99999'\n", "[serve] milter"),
    # deep nesting
    ("deeply nested arrays", "a = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ("deeply nested tables", "[" + ".".join(["a"] * 3000) + "]\n", "nested too deeply"),
    (
        "deep nesting inside [dkim.domains]",
        "[dkim.domains." + ".".join(["a"] * 500) + "]\n",
        "[dkim.domains.a] has no setting 'a'",
    ),
]

#: Every command that reads the configuration, with what it needs besides.
COMMANDS: list[list[str]] = [
    ["config", "check"],
    ["config", "check", "--json"],
    ["rewrite", "alice@example.org"],
    ["reverse", "SRS0=HHH=TT=example.org=alice@fwd.example"],
    ["bounce", "/dev/null"],
    [
        "decide",
        "--client-ip",
        "192.0.2.1",
        "--helo",
        "h",
        "--mail-from",
        "a@b.example",
        "--rcpt",
        "c@d.example",
        "/dev/null",
    ],
    [
        "forward",
        "--client-ip",
        "192.0.2.1",
        "--helo",
        "h",
        "--mail-from",
        "a@b.example",
        "--rcpt",
        "c@d.example",
        "/dev/null",
    ],
    ["serve", "--check"],
    ["doctor"],
    ["limits", "show"],
    ["limits", "unblock", "alice@example.org"],
    ["keys", "list"],
    ["keys", "check", "example.org"],
    ["keys", "rotate", "example.org"],
    ["keygen", "example.org"],
    ["sign", "/dev/null"],
    ["verify", "/dev/null"],
    ["seal", "/dev/null"],
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    written = {}
    for number, (name, text, _) in enumerate(HOSTILE):
        written[name] = folder / f"{number}.toml"
        written[name].write_text(text)
    return written


def refusal(output: str) -> str:
    """The one line a refused configuration prints."""
    assert "Traceback" not in output
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(("name", "text", "named"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_every_command_refuses_a_hostile_configuration_in_one_line(
    files: dict[str, Path], command: list[str], name: str, text: str, named: str
) -> None:
    result = CliRunner().invoke(cli, [*command, "--config", str(files[name])])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not an exception of ours
    assert named in refusal(result.stderr)
    assert result.stdout == ""


def test_nothing_is_written_when_the_configuration_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text("state_dir = 'state'\n[dkim]\nkeys_dir = 'keys'\nexpire_days = nan\n")
    result = CliRunner().invoke(cli, ["keygen", "--config", str(config), "example.org"])
    assert result.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["srsfwd.toml"]


@pytest.mark.parametrize(
    ("command", "text", "named"),
    [
        (["config", "check"], "[limits]\nper_day = nan\n", "[limits] per_day"),
        (["rewrite", "alice@example.org"], "[ssr]\ndomain = 'x'\n", "unknown table [ssr]"),
        (["serve", "--check"], "[serve]\nkeep-alive = inf\n", "[serve] keep-alive"),
        (COMMANDS[5], "a = " + "[" * 3000 + "]" * 3000, "nested too deeply"),
    ],
)
def test_the_command_refuses_a_hostile_configuration_in_one_line(
    tmp_path: Path, command: list[str], text: str, named: str
) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "srsfwd", *command, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1
    assert named in refusal(done.stderr)
