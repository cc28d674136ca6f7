"""The DKIM commands, run through click's test runner."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli
from tests.dkimhelp import MESSAGE, RFC8463
from tests.dnsserver import ZoneServer


def run(*args: str, input: bytes | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.output


@pytest.fixture
def store(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    assert run("keygen", "--keys-dir", str(keys), "example.com")[0] == 0
    assert run("keygen", "--keys-dir", str(keys), "--algorithm", "ed25519", "example.com")[0] == 0
    return keys


def zone_of(keys: Path) -> str:
    return "".join(p.read_text() for p in sorted(keys.glob("*/*.txt")))


@pytest.mark.parametrize("command", ["keygen", "keys", "sign", "verify", "keys list"])
def test_help_shows_an_example(command: str) -> None:
    code, out = run(*command.split(), "--help")
    assert code == 0
    assert "Example:" in out


def test_keygen_writes_key_and_prints_record(tmp_path: Path) -> None:
    code, out = run("keygen", "--keys-dir", str(tmp_path), "--selector", "s1", "example.com")
    assert code == 0
    assert 's1._domainkey.example.com. IN TXT (\n    "v=DKIM1; k=rsa; p=' in out
    assert stat.S_IMODE((tmp_path / "example.com/s1.key").stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in out


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    run("keygen", "--keys-dir", str(tmp_path), "--selector", "s1", "example.com")
    code, out = run("keygen", "--keys-dir", str(tmp_path), "--selector", "s1", "example.com")
    assert code == 1
    assert "never replaced" in out


def test_keygen_refuses_unknown_algorithm(tmp_path: Path) -> None:
    code, _ = run("keygen", "--keys-dir", str(tmp_path), "--algorithm", "rsa-1024", "x.com")
    assert code == 2


def test_keys_list_shows_both_keys(store: Path) -> None:
    code, out = run("keys", "list", "--keys-dir", str(store))
    assert code == 0
    assert "rsa-2048" in out
    assert "ed25519" in out


def test_sign_then_verify_with_zone_file(store: Path, tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    zone.write_text(zone_of(store))
    code, signed = run("sign", "--keys-dir", str(store), input=MESSAGE)
    assert code == 0
    (tmp_path / "signed.eml").write_text(signed)
    code, out = run("verify", "--zone", str(zone), str(tmp_path / "signed.eml"))
    assert code == 0
    assert out.count("pass d=example.com") == 2


def test_sign_many_needs_output_dir(store: Path, tmp_path: Path) -> None:
    for name in ("a.eml", "b.eml"):
        (tmp_path / name).write_bytes(MESSAGE)
    code, _ = run(
        "sign", "--keys-dir", str(store), str(tmp_path / "a.eml"), str(tmp_path / "b.eml")
    )
    assert code == 2
    out_dir = tmp_path / "out"
    code, _ = run(
        "sign",
        "--keys-dir",
        str(store),
        "--output-dir",
        str(out_dir),
        str(tmp_path / "a.eml"),
        str(tmp_path / "b.eml"),
    )
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.eml", "b.eml"]


def test_sign_without_key_for_from_domain_is_a_clear_error(store: Path) -> None:
    code, out = run("sign", "--keys-dir", str(store), input=b"From: x@other.example\r\n\r\nhi\r\n")
    assert code == 1
    assert "no DKIM key for other.example" in out


def test_sign_garbage_is_a_clear_error(store: Path) -> None:
    code, out = run("sign", "--keys-dir", str(store), "--domain", "example.com", input=b"\0\0")
    assert code == 1
    assert "not a mail message" in out
    assert "Traceback" not in out


def test_verify_rfc8463_example(tmp_path: Path) -> None:
    code, out = run("verify", "--zone", str(RFC8463 / "football.zone"), str(RFC8463 / "signed.eml"))
    assert code == 0
    assert "pass d=football.example.com s=brisbane a=ed25519-sha256" in out
    assert "pass d=football.example.com s=test a=rsa-sha256 1024-bit" in out


def test_verify_unsigned_message_exits_1(tmp_path: Path) -> None:
    code, out = run("verify", "--zone", str(RFC8463 / "football.zone"), input=MESSAGE)
    assert code == 1
    assert "no DKIM-Signature" in out


def test_verify_dns_failure_exits_75(dns_server: ZoneServer) -> None:
    dns_server.mode = "servfail"
    message = (RFC8463 / "signed.eml").read_bytes()
    code, out = run("verify", "--dns-server", f"127.0.0.1:{dns_server.port}", input=message)
    assert code == 75
    assert "temperror" in out


def test_the_old_dns_options_still_work_with_a_notice(dns_server: ZoneServer) -> None:
    dns_server.mode = "servfail"
    message = (RFC8463 / "signed.eml").read_bytes()
    code, out = run(
        "verify", "--nameserver", "127.0.0.1", "--port", str(dns_server.port), input=message
    )
    assert code == 75
    assert "--nameserver is deprecated; use --dns-server" in out
    assert "--port is deprecated" in out


def test_the_old_dns_options_are_not_in_the_help() -> None:
    code, out = run("verify", "--help")
    assert code == 0
    assert "--dns-server" in out and "--dns-timeout" in out
    assert "--nameserver" not in out


def test_keys_check_against_real_dns(store: Path, dns_server: ZoneServer) -> None:
    dns_server.load(zone_of(store))
    code, out = run(
        "keys",
        "check",
        "--keys-dir",
        str(store),
        "--dns-server",
        f"127.0.0.1:{dns_server.port}",
        "example.com",
    )
    assert code == 0, out
    assert out.count("published key matches") == 2


def test_keys_check_reports_missing_and_mismatched(store: Path, dns_server: ZoneServer) -> None:
    (selector,) = [p.stem for p in store.glob("example.com/s*.key")]
    dns_server.load(
        f'{selector}._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; t=y; '
        "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi"
        "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVY"
        'LzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"'
    )
    code, out = run(
        "keys",
        "check",
        "--keys-dir",
        str(store),
        "--dns-server",
        f"127.0.0.1:{dns_server.port}",
        "example.com",
    )
    assert code == 1
    assert "no record published" in out
    assert "does not match" in out


def test_keys_rotate_makes_new_selectors_and_keeps_signing_with_old(store: Path) -> None:
    code, out = run("keys", "rotate", "--keys-dir", str(store), "example.com")
    assert code == 0
    assert "1. Publish now:" in out
    assert "revoke them" in out
    assert len(list(store.glob("example.com/*.key"))) == 4
    code, signed = run("sign", "--keys-dir", str(store), input=MESSAGE)
    assert signed.count("DKIM-Signature") == 2
    assert "s=s" in signed
    assert not any(f"s={p.stem};" in signed for p in store.glob("example.com/*b.key"))


def test_world_readable_key_is_a_clear_error(store: Path) -> None:
    for key in store.glob("example.com/*.key"):
        key.chmod(0o644)
    code, out = run("sign", "--keys-dir", str(store), input=MESSAGE)
    assert code == 1
    assert "chmod 600" in out


def test_config_keys_dir_is_used(tmp_path: Path, store: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text(f'[dkim]\nkeys_dir = "{store.name}"\nexpire_days = 7\n')
    code, signed = run("sign", "--config", str(config), input=MESSAGE)
    assert code == 0, signed
    assert " x=" in signed


def test_bad_config_table_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text("[dkim]\nexpire_days = 'soon'\n")
    code, out = run("sign", "--config", str(config), input=MESSAGE)
    assert code == 1
    assert "expire_days" in out


def test_seal_adds_an_arc_set(store: Path, tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    zone.write_text(zone_of(store))
    code, out = run(
        "seal",
        "--keys-dir",
        str(store),
        "--zone",
        str(zone),
        "--authserv-id",
        "fwd.example",
        input=MESSAGE,
    )
    assert code == 0, out
    assert "ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.com;" in out
    assert "Authentication-Results: fwd.example;" in out


def test_seal_needs_an_authserv_id(store: Path) -> None:
    code, out = run("seal", "--keys-dir", str(store), input=MESSAGE)
    assert code == 1
    assert "authserv-id" in out


def test_keygen_testing_flag_goes_into_the_txt_file(tmp_path: Path) -> None:
    code, out = run("keygen", "--keys-dir", str(tmp_path), "--testing", "--selector", "t1", "x.com")
    assert code == 0
    assert "t=y" in out
    assert "t=y" in (tmp_path / "x.com/t1.txt").read_text()


def test_import_opendkim_prints_rules(tmp_path: Path) -> None:
    (tmp_path / "KeyTable").write_text("k1 example.com:s1:/etc/opendkim/keys/s1.private\n")
    (tmp_path / "SigningTable").write_text("*@example.com k1\n")
    code, out = run(
        "keys", "import-opendkim", str(tmp_path / "KeyTable"), str(tmp_path / "SigningTable")
    )
    assert code == 0
    assert '"example.com" = { domain = "example.com", selectors = ["s1"] }' in out
