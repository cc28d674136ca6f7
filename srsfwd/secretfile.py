"""SRS secrets files: read them as postsrsd does, write new ones privately.

Format (postsrsd's): one secret per line, the first signs, all verify; CR and LF are
stripped and blank lines skipped. A file others can read is refused: whoever holds the
secret can turn us into an open relay for bounces.
"""

from __future__ import annotations

import os
import secrets as random_secrets
import stat
import tempfile
from pathlib import Path

from srsfwd.errors import ConfigError


def load_secrets(path: Path) -> list[bytes]:
    """The secrets in ``path``, signing secret first.

    Raises:
        ConfigError: the file is missing, unreadable, readable or writable by others,
            or holds no secret.
    """
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & (stat.S_IROTH | stat.S_IWOTH):
                raise ConfigError(
                    f"secrets file {path} is open to every user (mode {stat.filemode(mode)});"
                    f" run: chmod 600 {path}"
                )
            data = handle.read(1 << 20)
    except FileNotFoundError:
        raise ConfigError(
            f"secrets file {path} does not exist; create one with 'srsfwd secret new {path}'"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"secrets file {path} is a directory") from None
    except PermissionError:
        raise ConfigError(f"secrets file {path} is not readable by this user") from None
    found = [line.rstrip(b"\r") for line in data.split(b"\n")]
    found = [line for line in found if line]
    if not found:
        raise ConfigError(f"secrets file {path} holds no secret")
    if any(b"\0" in line for line in found):
        raise ConfigError(f"secrets file {path} contains a NUL byte")
    return found


def new_secret() -> bytes:
    """A fresh secret: 32 random bytes in URL-safe base64 (43 characters)."""
    return random_secrets.token_urlsafe(32).encode("ascii")


def write_new_secret(path: Path, *, rotate: bool = False) -> None:
    """Write a new secret to ``path`` with mode 0600.

    Args:
        rotate: ``path`` exists: put the new secret first and keep the old ones after
            it, so addresses made with them still reverse.

    Raises:
        ConfigError: ``path`` exists and ``rotate`` is false, or it cannot be written.
    """
    lines = [new_secret()]
    if path.exists():
        if not rotate:
            raise ConfigError(f"{path} exists; use --rotate to put a new secret before the old")
        lines += load_secrets(path)
    write_private(path, b"".join(line + b"\n" for line in lines))


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only (0600)."""
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
