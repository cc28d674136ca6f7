"""SRS secrets files: read them as postsrsd does, write new ones privately.

Format (postsrsd's): one secret per line, the first signs, all verify; CR and LF are
stripped and blank lines skipped. A file others can read, or its group can write, is
refused: whoever holds the secret can turn us into an open relay for bounces. A
group-readable file and a secret shorter than ``MIN_SECRET_BYTES`` are logged as warnings.
"""

from __future__ import annotations

import logging
import os
import secrets as random_secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from srsfwd.config import StrPath
from srsfwd.errors import ConfigError, SrsfwdError

log = logging.getLogger(__name__)

#: Secrets shorter than this are accepted (postsrsd accepts them) but warned about.
MIN_SECRET_BYTES = 16


def load_secrets(path: StrPath) -> list[bytes]:
    """The secrets in ``path``, signing secret first.

    Logs a warning (never the secret) when the group can read the file or a secret is
    shorter than ``MIN_SECRET_BYTES``.

    Raises:
        ConfigError: the file is missing, unreadable, readable or writable by others,
            writable by its group, or holds no secret.
    """
    path = Path(path)
    missing = ConfigError(
        f"secrets file {path} does not exist; create one with 'srsfwd secret new {path}'"
    )
    data, mode = read_private_file(
        path,
        what="secrets file",
        mode_problem=_secrets_mode_problem,
        limit=1 << 20,
        error=ConfigError,
        missing=missing,
    )
    found = [line.rstrip(b"\r") for line in data.split(b"\n")]
    found = [line for line in found if line]
    if not found:
        raise ConfigError(f"secrets file {path} holds no secret")
    if any(b"\0" in line for line in found):
        raise ConfigError(f"secrets file {path} contains a NUL byte")
    if mode & stat.S_IRGRP:
        log.warning(
            "secrets file %s is readable by its group (mode %s); chmod 600 %s unless that"
            " group needs it",
            path,
            stat.filemode(mode),
            path,
        )
    short = [number for number, line in enumerate(found, 1) if len(line) < MIN_SECRET_BYTES]
    if short:
        log.warning(
            "secrets file %s: secret number %s is shorter than %d bytes and can be guessed;"
            " put a new one first with 'srsfwd secret new --rotate %s' and drop the short"
            " one after max_age_days + 1 days",
            path,
            ", ".join(map(str, short)),
            MIN_SECRET_BYTES,
            path,
        )
    return found


def _secrets_mode_problem(mode: int) -> str | None:
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        return "is open to every user"
    if mode & stat.S_IWGRP:
        return "is writable by its group"
    return None


def read_private_file(
    path: Path,
    *,
    what: str,
    mode_problem: Callable[[int], str | None],
    limit: int,
    error: type[SrsfwdError],
    missing: SrsfwdError,
) -> tuple[bytes, int]:
    """The first ``limit`` bytes of the private file ``path`` and its mode, checked on
    the open file (no race with a chmod or rename in between).

    ``mode_problem`` says what is wrong with a mode (``"is open to every user"``), or
    None when it is private enough; errors name the file as ``what``.

    Raises:
        SrsfwdError: ``missing`` when there is no such file, else an ``error`` for a
            refused mode, a directory or a file this user cannot read.
    """
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            problem = mode_problem(mode)
            if problem is not None and not stat.S_ISREG(mode):
                raise error(f"{what} {path} {problem}")
            if problem is not None:  # a regular file: chmod mends it
                raise error(
                    f"{what} {path} {problem} (mode {stat.filemode(mode)}); run: chmod 600 {path}"
                )
            return handle.read(limit), mode
    except FileNotFoundError:
        raise missing from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory") from None
    except PermissionError:
        raise error(f"{what} {path} is not readable by this user") from None


def new_secret() -> bytes:
    """A fresh secret: 32 random bytes in URL-safe base64 (43 characters)."""
    return random_secrets.token_urlsafe(32).encode("ascii")


def write_new_secret(path: StrPath, *, rotate: bool = False) -> None:
    """Write a new secret to ``path`` with mode 0600.

    Args:
        rotate: ``path`` exists: put the new secret first and keep the old ones after
            it, so addresses made with them still reverse.

    Raises:
        ConfigError: ``path`` exists and ``rotate`` is false, or it cannot be written.
    """
    path = Path(path)
    lines = [new_secret()]
    if path.exists():
        if not rotate:
            raise ConfigError(f"{path} exists; use --rotate to put a new secret before the old")
        lines += load_secrets(path)
    write_private(path, b"".join(line + b"\n" for line in lines))


def write_private(path: StrPath, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only (0600)."""
    path = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
