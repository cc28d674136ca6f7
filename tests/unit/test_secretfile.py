"""Secrets files: postsrsd's format, private modes, clear errors."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from srsfwd import ConfigError
from srsfwd.errors import KeyNotFoundError, SrsfwdError
from srsfwd.secretfile import load_secrets, read_private_file, write_new_secret

LONG = b"0123456789abcdef"


def private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_one_secret_per_line_first_first(tmp_path: Path) -> None:
    assert load_secrets(private(tmp_path / "s", b"new\nold\n")) == [b"new", b"old"]


def test_crlf_line_endings_are_stripped(tmp_path: Path) -> None:
    assert load_secrets(private(tmp_path / "s", b"new\r\nold\r\n")) == [b"new", b"old"]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    assert load_secrets(private(tmp_path / "s", b"\n\nnew\n\r\n\nold")) == [b"new", b"old"]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_secrets(tmp_path / "missing")


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no secret"):
        load_secrets(private(tmp_path / "s", b"\r\n\n"))


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602, 0o666])
def test_file_open_to_everyone_is_refused(tmp_path: Path, mode: int) -> None:
    path = private(tmp_path / "s", b"secret\n")
    path.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secrets(path)


@pytest.mark.parametrize("mode", [0o620, 0o660, 0o670])
def test_group_writable_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = private(tmp_path / "s", LONG + b"\n")
    path.chmod(mode)
    with pytest.raises(ConfigError, match=r"writable by its group.*chmod 600"):
        load_secrets(path)


def test_group_readable_file_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = private(tmp_path / "s", LONG + b"\n")
    path.chmod(0o640)
    assert load_secrets(path) == [LONG]
    assert "readable by its group" in caplog.text


def test_private_file_of_long_secrets_loads_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_secrets(private(tmp_path / "s", LONG + b"\n" + LONG + b"\n"))
    assert caplog.records == []


def test_short_secret_is_accepted_with_a_warning_that_does_not_show_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert load_secrets(private(tmp_path / "s", LONG + b"\nshort-secret\n"))[1] == b"short-secret"
    assert "secret number 2 is shorter than 16 bytes" in caplog.text
    assert "short-secret" not in caplog.text


def test_path_may_be_a_string(tmp_path: Path) -> None:
    assert load_secrets(str(private(tmp_path / "s", LONG + b"\n"))) == [LONG]


def test_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="directory"):
        load_secrets(tmp_path / "d")


def test_nul_byte_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NUL"):
        load_secrets(private(tmp_path / "s", b"sec\0ret\n"))


def test_new_secret_is_written_0600(tmp_path: Path) -> None:
    path = tmp_path / "srs.secret"
    write_new_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (secret,) = load_secrets(path)
    assert len(secret) >= 43


def test_new_secrets_differ(tmp_path: Path) -> None:
    write_new_secret(tmp_path / "a")
    write_new_secret(tmp_path / "b")
    assert load_secrets(tmp_path / "a") != load_secrets(tmp_path / "b")


def test_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    path = private(tmp_path / "s", b"old\n")
    with pytest.raises(ConfigError, match="--rotate"):
        write_new_secret(path)
    assert load_secrets(path) == [b"old"]


def test_rotation_puts_new_secret_first_and_keeps_old(tmp_path: Path) -> None:
    path = private(tmp_path / "s", b"old\n")
    write_new_secret(path, rotate=True)
    secrets = load_secrets(path)
    assert secrets[1:] == [b"old"] and secrets[0] != b"old"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _read_private(path: Path, missing: SrsfwdError | None = None) -> tuple[bytes, int]:
    return read_private_file(
        path,
        what="test file",
        mode_problem=lambda mode: "is open to other users" if mode & 0o077 else None,
        limit=100,
        error=ConfigError,
        missing=missing or ConfigError("missing"),
    )


def test_private_file_reader_returns_data_and_mode(tmp_path: Path) -> None:
    data, mode = _read_private(private(tmp_path / "f", b"data"))
    assert (data, stat.S_IMODE(mode)) == (b"data", 0o600)


def test_private_file_reader_names_the_file_and_the_chmod(tmp_path: Path) -> None:
    path = private(tmp_path / "f", b"data")
    path.chmod(0o640)
    expected = f"test file {path} is open to other users (mode -rw-r-----); run: chmod 600 {path}"
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        _read_private(path)


def test_private_file_reader_raises_the_given_missing_error(tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError, match=r"^gone$"):
        _read_private(tmp_path / "absent", missing=KeyNotFoundError("gone"))


def test_private_file_reader_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^test file .* is a directory$"):
        _read_private(tmp_path)
