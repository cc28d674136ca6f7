"""postsrsd's own configuration, read as it stands, turned into srsfwd's.

Pure but for one injectable read: the 2.x ``domains-file`` when it must name the SRS domain.

Two formats: postsrsd 2.x's ``postsrsd.conf`` (libconfuse: ``key = value``, ``{a, b}``
lists, ``#``, ``//`` and ``/* */`` comments), and the environment file of postsrsd 1.x
(Debian's ``/etc/default/postsrsd``: ``SRS_DOMAIN=...`` lines). The result is the data
of a srsfwd TOML file, so it goes through the same checks.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srsfwd.address import read_domains_file
from srsfwd.errors import ConfigError

# Settings with nothing to do in srsfwd: systemd and the unit file do these jobs.
_IGNORED = {
    "pid-file": "systemd tracks the process",
    "unprivileged-user": "set User= in the systemd unit",
    "chroot-dir": "use the unit's sandboxing options",
    "daemonize": "systemd runs the daemon in the foreground",
    "seccomp": "use the unit's SystemCallFilter=",
    "domains-file-watch": "send SIGHUP (systemctl reload) after editing the domains file",
}
_MILTER = ("milter", "milter-rewrite-local", "milter-recipient-limit")
_SRS_KEYS = {
    "srs-domain": "srs-domain",
    "domains": "domains",
    "domains-file": "domains-file",
    "separator": "separator",
    "hash-length": "hash-length",
    "hash-minimum": "hash-minimum",
    "always-rewrite": "always-rewrite",
    "secrets-file": "secrets-file",
    "original-envelope": "original-envelope",
}
# What postsrsd 1.x's start scripts read from /etc/default/postsrsd.
_ENV_VARIABLES = {
    "SRS_DOMAIN",
    "SRS_EXCLUDE_DOMAINS",
    "SRS_SEPARATOR",
    "SRS_SECRET",
    "SRS_HASHLENGTH",
    "SRS_HASHMIN",
    "SRS_FORWARD_PORT",
    "SRS_REVERSE_PORT",
    "SRS_TIMEOUT",
    "SRS_LISTEN_ADDR",
    "SRS_PID_FILE",
    "SRS_EXTRA_OPTIONS",
    "RUN_AS",
    "CHROOT",
}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
    | "(?P<dq>(?:[^"\\]|\\.)*)"
    | '(?P<sq>[^']*)'
    | (?P<punct>\+=|[={},])
    | (?P<word>[^\s={},"'#]+)
    """,
    re.VERBOSE | re.DOTALL,
)


# A TOML table header ("[srs]"): srsfwd's own format, never libconfuse's or a 1.x env file.
_TOML_TABLE = re.compile(r"^\s*\[[A-Za-z0-9_.\- ]+\]\s*(#.*)?$", re.MULTILINE)


def is_env_file(text: str) -> bool:
    """Whether ``text`` looks like postsrsd 1.x's environment file."""
    return re.search(r"^\s*SRS_[A-Z_]+=", text, re.MULTILINE) is not None


def read_postsrsd(
    text: str,
    path: str | os.PathLike[str],
    *,
    mydomain: Callable[[], str | None] = lambda: None,
    read_text: Callable[[Path], str] = lambda path: path.read_text(encoding="utf-8"),
) -> tuple[dict[str, Any], list[str]]:
    """srsfwd configuration data from postsrsd's file, and notes on what was left out.

    Args:
        path: where the file is; relative paths and the default secrets file (the
            ``postsrsd.secret`` next to it) are taken from its folder, and come out
            absolute.
        mydomain: what Postfix calls its domain (``postconf -h mydomain``), for a 1.x
            file without ``SRS_DOMAIN``, as postsrsd's start script does.
        read_text: reads the 2.x ``domains-file`` when it must give the SRS domain.

    Raises:
        ConfigError: the file cannot be parsed or names something srsfwd cannot do; 2.x
            errors name the line.
    """
    if _TOML_TABLE.search(text):
        raise ConfigError(
            f"{path} is a TOML file (srsfwd's own configuration?), not postsrsd's:"
            " give it with --config"
        )
    path = Path(path).absolute()
    if is_env_file(text):
        try:
            return _from_env_file(text, path, mydomain)
        except _SettingError as exc:
            raise ConfigError(f"{path}: {exc.message}") from None
    values, lines = _parse_confuse(text, str(path))
    return _from_confuse(values, lines, path, read_text)


def parse_confuse(text: str) -> dict[str, Any]:
    """``key = value`` pairs of a libconfuse file: str, or list[str] for ``{...}``.

    Raises:
        ConfigError: a syntax error, with its line.
    """
    return _parse_confuse(text, "postsrsd config")[0]


def _parse_confuse(text: str, where: str) -> tuple[dict[str, Any], dict[str, int]]:
    """``parse_confuse``, and the line each setting was last set on."""
    tokens: list[tuple[str, str, int]] = []
    position = 0
    line = 1
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            shown = text[position : position + 20]
            raise ConfigError(f"{where}, line {line}: cannot read {shown!r}")
        position = match.end()
        kind = match.lastgroup or ""
        start_line = line
        line += match.group(0).count("\n")
        if kind in ("space", "comment"):
            continue
        value = match.group(kind)
        if kind == "dq":
            value = re.sub(r"\\(.)", r"\1", value)
            kind = "str"
        elif kind in ("sq", "word"):
            kind = "str"
        tokens.append((kind, value, start_line))
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    index = 0

    def fail(message: str) -> ConfigError:
        at = tokens[min(index, len(tokens)) - 1][2] if tokens else 1
        return ConfigError(f"{where}, line {at}: {message}")

    def take() -> tuple[str, str]:
        nonlocal index
        if index >= len(tokens):
            raise fail("unexpected end of file")
        index += 1
        return tokens[index - 1][:2]

    while index < len(tokens):
        kind, key = take()
        if kind != "str":
            raise fail(f"expected a setting name, got {key!r}")
        lines[key] = tokens[index - 1][2]
        _, operator = take()
        if operator not in ("=", "+="):
            raise fail(f"expected '=' after {key}")
        kind, value = take()
        if kind == "punct" and value == "{":
            items: list[str] = []
            while True:
                kind, value = take()
                if kind == "punct" and value == "}":
                    break
                if kind == "punct" and value == ",":
                    continue
                if kind != "str":
                    raise fail(f"unexpected {value!r} in {key}")
                items.append(value)
            if operator == "+=" and isinstance(values.get(key), list):
                items = values[key] + items
            values[key] = items
        elif kind == "str":
            values[key] = value
        else:
            raise fail(f"expected a value for {key}")
    return values, lines


def _from_confuse(
    values: dict[str, Any], lines: dict[str, int], path: Path, read_text: Callable[[Path], str]
) -> tuple[dict[str, Any], list[str]]:
    try:
        return _settings_from_confuse(values, path, read_text)
    except _SettingError as exc:
        raise ConfigError(f"{path}, line {lines[exc.key]}: {exc.message}") from None


class _SettingError(ConfigError):
    """A wrong value, reported with the line of ``key`` by the reader that catches it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def _settings_from_confuse(
    values: dict[str, Any], path: Path, read_text: Callable[[Path], str]
) -> tuple[dict[str, Any], list[str]]:
    srs: dict[str, Any] = {}
    serve: dict[str, Any] = {}
    notes: list[str] = []
    folder = path.parent
    for key, value in values.items():
        if key in _SRS_KEYS:
            srs[_SRS_KEYS[key]] = value
        elif key == "socketmap":
            serve["socketmap"] = [_absolute_endpoint(value, folder)] if value else []
        elif key in ("keep-alive", "connection-limit"):
            serve[key] = _integer(key, value)
        elif key == "syslog":
            if _boolean(key, value):
                serve["log"] = "syslog"
        elif key == "debug":
            if _boolean(key, value):
                serve["log-level"] = "debug"
        elif key == "envelope-database":
            if value:  # sqlite:PATH or redis:HOST:PORT, as srsfwd
                srs["envelope-database"] = _absolute_database(value, folder)
        elif key in _MILTER:
            if key == "milter" and value:
                notes.append(f"{key}: the srsfwd milter is not there yet; not served")
        elif key in _IGNORED:
            if value not in ("", [], "off", "false", "no"):
                notes.append(f"{key} ignored: {_IGNORED[key]}")
        else:
            raise _SettingError(key, f"unknown setting {key!r}")
    for key in ("hash-length", "hash-minimum"):
        if key in srs:
            srs[key] = _integer(key, srs[key])
    if "always-rewrite" in srs:
        srs["always-rewrite"] = _boolean("always-rewrite", srs["always-rewrite"])
    domains = srs.get("domains", [])
    if isinstance(domains, str):
        domains = [domains]
    srs["domains"] = domains
    for key in ("secrets-file", "domains-file"):
        if isinstance(srs.get(key), str) and srs[key]:
            srs[key] = str(folder / Path(srs[key]).expanduser())
    if not srs.get("domains-file"):
        srs.pop("domains-file", None)
    if not srs.get("srs-domain"):
        # postsrsd 2.x: the first of domains, then of the domains file, without its dot.
        first = domains[:1] or _domains_file_entries(srs.get("domains-file"), read_text)[:1]
        if not first:
            raise ConfigError(f"{path}: no srs-domain, no domains and no domains-file entry")
        srs["srs-domain"] = first[0].lstrip(".")
    srs.setdefault("secrets-file", str(folder / "postsrsd.secret"))
    return {"srs": srs, "serve": serve}, notes


def _domains_file_entries(path: str | None, read_text: Callable[[Path], str]) -> list[str]:
    if path is None:
        return []
    try:
        return read_domains_file(read_text(Path(path)))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read domains-file {path}: {exc}") from None


def _absolute_endpoint(value: object, folder: Path) -> object:
    """``unix:PATH`` with PATH taken from ``folder``; anything else as it is."""
    if isinstance(value, str):
        scheme, colon, rest = value.partition(":")
        if colon and scheme in ("unix", "local") and rest:
            return f"{scheme}:{folder / rest}"
    return value


def _absolute_database(value: object, folder: Path) -> object:
    """``sqlite:PATH`` with PATH taken from ``folder``; anything else as it is."""
    if isinstance(value, str) and value.startswith("sqlite:") and value[7:]:
        return f"sqlite:{folder / value[7:]}"
    return value


def _from_env_file(
    text: str, path: Path, mydomain: Callable[[], str | None]
) -> tuple[dict[str, Any], list[str]]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        name, _, raw = stripped.partition("=")
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise ConfigError(f"{path}: cannot read {name}: {exc}") from None
        env[name.strip().removeprefix("export ").strip()] = " ".join(words)
    notes = [
        f"unknown variable {name} ignored (postsrsd 1.x does not read it either)"
        for name in env
        if name not in _ENV_VARIABLES
    ]
    domain = env.get("SRS_DOMAIN") or mydomain()
    if not domain:
        raise ConfigError(f"{path}: SRS_DOMAIN is not set and Postfix names no mydomain")
    srs: dict[str, Any] = {
        "srs-domain": domain,
        "secrets-file": str(path.parent / (env.get("SRS_SECRET") or "/etc/postsrsd.secret")),
        "domains": re.split(r"[\s,;]+", env.get("SRS_EXCLUDE_DOMAINS", "").strip()),
    }
    srs["domains"] = [d for d in srs["domains"] if d]
    if env.get("SRS_SEPARATOR"):
        srs["separator"] = env["SRS_SEPARATOR"]
    for name, key in (("SRS_HASHLENGTH", "hash-length"), ("SRS_HASHMIN", "hash-minimum")):
        if env.get(name):
            srs[key] = _integer(name, env[name])
    listen = env.get("SRS_LISTEN_ADDR") or "127.0.0.1"
    host = f"[{listen}]" if ":" in listen else listen
    forward = _integer("SRS_FORWARD_PORT", env.get("SRS_FORWARD_PORT") or "10001")
    reverse = _integer("SRS_REVERSE_PORT", env.get("SRS_REVERSE_PORT") or "10002")
    serve: dict[str, Any] = {
        "socketmap": [],
        "tcp-table-forward": f"inet:{host}:{forward}",
        "tcp-table-reverse": f"inet:{host}:{reverse}",
        "keep-alive": _integer("SRS_TIMEOUT", env.get("SRS_TIMEOUT") or "1800"),
    }
    for option in env.get("SRS_EXTRA_OPTIONS", "").split():
        if option == "-A":
            srs["always-rewrite"] = True
        elif option.startswith("-t") and option[2:].isdigit():
            serve["keep-alive"] = int(option[2:])
        else:
            notes.append(f"SRS_EXTRA_OPTIONS {option} ignored")
    for name in ("RUN_AS", "CHROOT", "SRS_PID_FILE"):
        if env.get(name):
            notes.append(f"{name} ignored: the systemd unit sets user and sandboxing")
    return {"srs": srs, "serve": serve}, notes


def _integer(key: str, value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise _SettingError(key, f"{key} must be a whole number, not {value!r}")


def _boolean(key: str, value: object) -> bool:
    if isinstance(value, str) and value.lower() in _TRUE:
        return True
    if isinstance(value, str) and value.lower() in _FALSE:
        return False
    raise _SettingError(key, f"{key} must be on or off, not {value!r}")
