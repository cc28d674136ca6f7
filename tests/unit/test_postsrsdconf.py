"""Reading postsrsd's own configuration files as they stand."""

from __future__ import annotations

from pathlib import Path

import pytest

from srsfwd.config import config_from_data
from srsfwd.errors import ConfigError
from srsfwd.postsrsdconf import is_env_file, parse_confuse, read_postsrsd
from srsfwd.servers.settings import Endpoint, serve_settings

POSTSRSD_2_CONF = """\
# postsrsd 2.x, as a user might have it
srs-domain = "srs.example.net"
domains = { "example.net", ".example.net",
            "example.org" }   // trailing comment
/* a block
   comment */
separator = "+"
hash-length = 6
hash-minimum = 4
always-rewrite = off
keep-alive = 10
connection-limit = 50
socketmap = unix:/var/spool/postfix/srs
milter = ""
chroot-dir = "/usr/local/var/lib/postsrsd"
unprivileged-user = "nobody"
secrets-file = "/etc/postsrsd.secret"
original-envelope = embedded
envelope-database = ""
syslog = on
"""

# Debian bookworm's /etc/default/postsrsd (postsrsd 1.10) with a domain set.
DEBIAN_ENV = """\
# Default settings for PostSRSd
SRS_DOMAIN=fwd.example.net
SRS_EXCLUDE_DOMAINS=.example.com,example.org example.net
SRS_SEPARATOR==
SRS_SECRET=/etc/postsrsd.secret
SRS_HASHLENGTH=4
SRS_HASHMIN=4
SRS_FORWARD_PORT=10001
SRS_REVERSE_PORT=10002
RUN_AS=postsrsd
SRS_LISTEN_ADDR=127.0.0.1
CHROOT=/var/lib/postsrsd
#SRS_EXTRA_OPTIONS=-A
"""


def test_libconfuse_syntax() -> None:
    values = parse_confuse(POSTSRSD_2_CONF)
    assert values["domains"] == ["example.net", ".example.net", "example.org"]
    assert values["socketmap"] == "unix:/var/spool/postfix/srs"
    assert values["milter"] == ""
    assert parse_confuse('domains = {"a"}\ndomains += {"b"}') == {"domains": ["a", "b"]}
    assert parse_confuse(r'x = "a \"q\" b"') == {"x": 'a "q" b'}


@pytest.mark.parametrize("text", ["domains = {", "= 5", "x", 'x = "open'])
def test_libconfuse_syntax_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_confuse(text)


def test_postsrsd_2_conf_becomes_srsfwd_settings() -> None:
    path = Path("/etc/postsrsd.conf")
    data, notes = read_postsrsd(POSTSRSD_2_CONF, path)
    config = config_from_data(data, path)
    assert config.srs.domain == "srs.example.net"
    assert config.srs.local_domains == ("example.net", ".example.net", "example.org")
    assert (config.srs.separator, config.srs.hash_length, config.srs.hash_minimum) == ("+", 6, 4)
    assert config.srs.secrets_file == Path("/etc/postsrsd.secret")
    serve = serve_settings(config)
    assert serve.socketmap == (Endpoint(path="/var/spool/postfix/srs"),)
    assert (serve.keep_alive, serve.connection_limit, serve.log) == (10.0, 50, "syslog")
    assert any("chroot-dir" in n for n in notes)
    assert any("unprivileged-user" in n for n in notes)


def test_postsrsd_2_defaults() -> None:
    data, _ = read_postsrsd('domains = {".example.com", "example.org"}', Path("/etc/postsrsd.conf"))
    config = config_from_data(data, Path("/etc/postsrsd.conf"))
    assert config.srs.domain == "example.com"  # the first domain without its dot
    assert config.srs.secrets_file == Path("/etc/postsrsd.secret")  # next to the file


def test_postsrsd_2_database_and_milter() -> None:
    data, notes = read_postsrsd(
        'domains = {"a.example"}\noriginal-envelope = database\n'
        'envelope-database = "sqlite:/var/lib/postsrsd/db.sqlite"\nmilter = unix:milter',
        Path("/etc/postsrsd.conf"),
    )
    config = config_from_data(data, Path("/etc/postsrsd.conf"))
    assert config.srs.original_envelope == "database"
    assert config.srs.envelope_database == "sqlite:/var/lib/postsrsd/db.sqlite"
    assert any("milter" in n for n in notes)
    data, _ = read_postsrsd(
        'domains = {"a"}\nenvelope-database = "redis:localhost:6379"', Path("/x")
    )
    assert data["srs"]["envelope-database"] == "redis:localhost:6379"


def test_unknown_postsrsd_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        read_postsrsd('domains = {"a.example"}\nsrs-domian = "typo"', Path("/x"))


def test_debian_env_file_becomes_tcp_table_settings() -> None:
    path = Path("/etc/default/postsrsd")
    assert is_env_file(DEBIAN_ENV)
    data, notes = read_postsrsd(DEBIAN_ENV, path)
    config = config_from_data(data, path)
    assert config.srs.domain == "fwd.example.net"
    assert config.srs.local_domains == (".example.com", "example.org", "example.net")
    assert config.srs.secrets_file == Path("/etc/postsrsd.secret")
    serve = serve_settings(config)
    assert serve.socketmap == ()
    assert serve.tcp_table_forward == (Endpoint(host="127.0.0.1", port=10001),)
    assert serve.tcp_table_reverse == (Endpoint(host="127.0.0.1", port=10002),)
    assert serve.keep_alive == 1800.0  # postsrsd 1.x's -t default
    assert any("RUN_AS" in n for n in notes)


def test_debian_env_file_as_shipped_takes_postfixs_mydomain() -> None:
    shipped = DEBIAN_ENV.replace("SRS_DOMAIN=fwd.example.net", "#SRS_DOMAIN=example.com")
    shipped += 'SRS_EXTRA_OPTIONS="-A -t60"\n'
    data, _ = read_postsrsd(shipped, Path("/etc/default/postsrsd"), mydomain=lambda: "mx.example")
    config = config_from_data(data, Path("/etc/default/postsrsd"))
    assert config.srs.domain == "mx.example"
    assert config.srs.always_rewrite is True
    assert serve_settings(config).keep_alive == 60.0
    with pytest.raises(ConfigError, match="SRS_DOMAIN"):
        read_postsrsd(shipped, Path("/etc/default/postsrsd"))


# postsrsd 2.x's own blackbox tests run it with this file (no srs-domain, no domains).
POSTSRSD_TEST_CONF = """\
domains-file = "{folder}/postsrsd.domains"
domains-file-watch = off
keep-alive = 1
chroot-dir = ""
unprivileged-user = ""
original-envelope = embedded
envelope-database = ""
secrets-file = "{folder}/postsrsd.secret"
socketmap = "unix:{folder}/postsrsd.sock"
milter = ""
"""


def test_srs_domain_comes_from_the_first_domains_file_entry(tmp_path: Path) -> None:
    (tmp_path / "postsrsd.domains").write_text("# ours\n\n.example.com\nexample.org\n")
    path = tmp_path / "postsrsd.conf"
    data, _ = read_postsrsd(POSTSRSD_TEST_CONF.format(folder=tmp_path), path)
    config = config_from_data(data, path)
    assert config.srs.domain == "example.com"
    assert config.srs.local_domains_file == tmp_path / "postsrsd.domains"


def test_a_domains_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"postsrsd\.domains"):
        read_postsrsd(POSTSRSD_TEST_CONF.format(folder=tmp_path), tmp_path / "postsrsd.conf")


def test_an_empty_domains_file_and_no_domain_is_refused(tmp_path: Path) -> None:
    (tmp_path / "postsrsd.domains").write_text("# none yet\n")
    with pytest.raises(ConfigError, match="no srs-domain"):
        read_postsrsd(POSTSRSD_TEST_CONF.format(folder=tmp_path), tmp_path / "postsrsd.conf")


def test_relative_paths_are_made_absolute_from_the_files_folder() -> None:
    data, _ = read_postsrsd(
        'srs-domain = "a.example"\nsecrets-file = "s.secret"\n'
        'envelope-database = "sqlite:db/env.sqlite"\nsocketmap = "unix:run/srs"',
        Path("/etc/postsrsd/postsrsd.conf"),
    )
    assert data["srs"]["secrets-file"] == "/etc/postsrsd/s.secret"
    assert data["srs"]["envelope-database"] == "sqlite:/etc/postsrsd/db/env.sqlite"
    assert data["serve"]["socketmap"] == ["unix:/etc/postsrsd/run/srs"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('srs-domain = "a.example"\n\ndomains = {\n', 3),
        ('srs-domain = "a.example"\nhash-length = "x"\n', 2),
        ('srs-domain = "a.example"\n/* two\nlines */ srs-domian = "typo"\n', 3),
        ('srs-domain = "a.example"\nseparator "+"\n', 2),
    ],
)
def test_postsrsd_2_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError, match=rf"/etc/postsrsd\.conf, line {line}:"):
        read_postsrsd(text, Path("/etc/postsrsd.conf"))


def test_unknown_postsrsd_1_variables_are_noted() -> None:
    _, notes = read_postsrsd(DEBIAN_ENV + "SRS_DOMIAN=typo.example\n", Path("/etc/default/x"))
    assert any("SRS_DOMIAN" in note and "unknown" in note for note in notes)


def test_a_toml_file_is_named_as_toml() -> None:
    toml = '[srs]\ndomain = "fwd.example.net"\nsecrets_file = "srs.secret"\n'
    with pytest.raises(ConfigError, match=r"TOML.*--config"):
        read_postsrsd(toml, Path("/etc/srsfwd/srsfwd.toml"))
