"""postsrsd's own configuration, read as it stands, turned into srsfwd's. Pure.

Two formats: postsrsd 2.x's ``postsrsd.conf`` (libconfuse: ``key = value``, ``{a, b}``
lists, ``#``, ``//`` and ``/* */`` comments), and the environment file of postsrsd 1.x
(Debian's ``/etc/default/postsrsd``: ``SRS_DOMAIN=...`` lines). The result is the data
of a srsfwd TOML file, so it goes through the same checks.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def is_env_file(text: str) -> bool:
    """Whether ``text`` looks like postsrsd 1.x's environment file."""
    return re.search(r"^\s*SRS_[A-Z_]+=", text, re.MULTILINE) is not None


def read_postsrsd(
    text: str, path: Path, *, mydomain: Callable[[], str | None] = lambda: None
) -> tuple[dict[str, Any], list[str]]:
    """srsfwd configuration data from postsrsd's file, and notes on what was left out.

    Args:
        path: where the file is; relative paths and the default secrets file (the
            ``postsrsd.secret`` next to it) are taken from its folder.
        mydomain: what Postfix calls its domain (``postconf -h mydomain``), for a 1.x
            file without ``SRS_DOMAIN``, as postsrsd's start script does.

    Raises:
        ConfigError: the file cannot be parsed or names something srsfwd cannot do.
    """
    if is_env_file(text):
        return _from_env_file(text, path, mydomain)
    return _from_confuse(parse_confuse(text), path)


def parse_confuse(text: str) -> dict[str, Any]:
    """``key = value`` pairs of a libconfuse file: str, or list[str] for ``{...}``.

    Raises:
        ConfigError: a syntax error.
    """
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConfigError(f"postsrsd config: cannot read {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind in ("space", "comment"):
            continue
        value = match.group(kind)
        if kind == "dq":
            value = re.sub(r"\\(.)", r"\1", value)
            kind = "str"
        elif kind in ("sq", "word"):
            kind = "str"
        tokens.append((kind, value))
    values: dict[str, Any] = {}
    index = 0

    def take() -> tuple[str, str]:
        nonlocal index
        if index >= len(tokens):
            raise ConfigError("postsrsd config: unexpected end of file")
        index += 1
        return tokens[index - 1]

    while index < len(tokens):
        kind, key = take()
        if kind != "str":
            raise ConfigError(f"postsrsd config: expected a setting name, got {key!r}")
        _, operator = take()
        if operator not in ("=", "+="):
            raise ConfigError(f"postsrsd config: expected '=' after {key}")
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
                    raise ConfigError(f"postsrsd config: unexpected {value!r} in {key}")
                items.append(value)
            if operator == "+=" and isinstance(values.get(key), list):
                items = values[key] + items
            values[key] = items
        elif kind == "str":
            values[key] = value
        else:
            raise ConfigError(f"postsrsd config: expected a value for {key}")
    return values


def _from_confuse(values: dict[str, Any], path: Path) -> tuple[dict[str, Any], list[str]]:
    srs: dict[str, Any] = {}
    serve: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in values.items():
        if key in _SRS_KEYS:
            srs[_SRS_KEYS[key]] = value
        elif key == "socketmap":
            serve["socketmap"] = [value] if value else []
        elif key in ("keep-alive", "connection-limit"):
            serve[key] = _integer(key, value)
        elif key == "syslog":
            if _boolean(key, value):
                serve["log"] = "syslog"
        elif key == "debug":
            if _boolean(key, value):
                serve["log-level"] = "debug"
        elif key == "envelope-database":
            if value:
                srs["envelope-database"] = value  # sqlite:PATH or redis:HOST:PORT, as srsfwd
        elif key in _MILTER:
            if key == "milter" and value:
                notes.append(f"{key}: the srsfwd milter is not there yet; not served")
        elif key in _IGNORED:
            if value not in ("", [], "off", "false", "no"):
                notes.append(f"{key} ignored: {_IGNORED[key]}")
        else:
            raise ConfigError(f"postsrsd config: unknown setting {key!r}")
    for key in ("hash-length", "hash-minimum"):
        if key in srs:
            srs[key] = _integer(key, srs[key])
    if "always-rewrite" in srs:
        srs["always-rewrite"] = _boolean("always-rewrite", srs["always-rewrite"])
    domains = srs.get("domains", [])
    if isinstance(domains, str):
        domains = [domains]
    srs["domains"] = domains
    if not srs.get("srs-domain"):
        if not domains:
            raise ConfigError("postsrsd config: no srs-domain and no domains")
        srs["srs-domain"] = domains[0].lstrip(".")
    srs.setdefault("secrets-file", str(path.parent / "postsrsd.secret"))
    if not srs.get("domains-file"):
        srs.pop("domains-file", None)
    return {"srs": srs, "serve": serve}, notes


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
    notes: list[str] = []
    domain = env.get("SRS_DOMAIN") or mydomain()
    if not domain:
        raise ConfigError(f"{path}: SRS_DOMAIN is not set and Postfix names no mydomain")
    srs: dict[str, Any] = {
        "srs-domain": domain,
        "secrets-file": env.get("SRS_SECRET") or "/etc/postsrsd.secret",
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
    raise ConfigError(f"postsrsd config: {key} must be a whole number, not {value!r}")


def _boolean(key: str, value: object) -> bool:
    if isinstance(value, str) and value.lower() in _TRUE:
        return True
    if isinstance(value, str) and value.lower() in _FALSE:
        return False
    raise ConfigError(f"postsrsd config: {key} must be on or off, not {value!r}")
