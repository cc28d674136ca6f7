"""The DKIM key store on disk and the key table that says which key signs which domain.

Layout (the same as ``keys/README.md``):

    KEYS_DIR/                     0700
      example.com/                0700
        s202611.key               0600, PKCS#8 PEM (or PKCS#1 / dkimpy seed, when imported)
        s202611.txt               the DNS record to publish, with a "; created ..." comment

A key file is never overwritten, and one that others can read is refused.
The key table (``KeyTable``) takes the store's layout and the ``[dkim.domains]`` overrides
of the configuration:

    [dkim.domains]
    "example.com"   = ["s202611", "e202611"]             # these selectors (dual RSA + Ed25519)
    "*.example.com" = { domain = "example.com" }         # subdomains sign with the parent's keys
    "example.net"   = { domain = "example.net", selectors = ["s1"] }
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from srsfwd.config import StrPath
from srsfwd.dkim.keys import (
    DkimKey,
    SigningKey,
    key_record_text,
    load_private_key,
    zone_line,
)
from srsfwd.errors import ConfigError, KeyFormatError, KeyNotFoundError
from srsfwd.secretfile import read_private_file, write_private

_SELECTOR = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$"
)
_CREATED = re.compile(rb"^; created (\S+)", re.MULTILINE)
_ACTIVE = re.compile(rb"^; active from (\S+)", re.MULTILINE)
_STAMP = "%Y-%m-%dT%H:%M:%SZ"
_MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key in the store: where it is, what it is, when it was made."""

    domain: str
    selector: str
    path: Path
    spec: str  # rsa-2048 ... or ed25519
    created: float  # seconds since the epoch
    active_from: float  # the key table signs with it from then on (rotation: after publishing)

    @property
    def key_type(self) -> str:
        """``rsa`` or ``ed25519``."""
        return "ed25519" if self.spec == "ed25519" else "rsa"


def normalise_domain(domain: str) -> str:
    """``domain`` lower-cased without a trailing dot.

    Raises:
        ConfigError: not a domain name (a path separator, a bad label...).
    """
    name = domain.strip().rstrip(".").lower()
    if not _DOMAIN.match(name):
        raise ConfigError(f"{domain!r} is not a domain name")
    return name


def check_selector(selector: str) -> str:
    """``selector`` if it is one DNS label made of letters, digits, '-' and '_'.

    Raises:
        ConfigError: anything else (dots are refused to keep one file per selector).
    """
    if not _SELECTOR.match(selector):
        raise ConfigError(f"{selector!r} is not a selector (letters, digits, '-', '_')")
    return selector


class KeyStore:
    """The key folder; the constructor does no I/O."""

    def __init__(self, root: StrPath) -> None:
        self.root = Path(root)

    def key_path(self, domain: str, selector: str) -> Path:
        """Where the private key of ``selector`` for ``domain`` lives."""
        return self.root / normalise_domain(domain) / f"{check_selector(selector)}.key"

    def create(
        self,
        domain: str,
        selector: str,
        key: DkimKey,
        *,
        pem: bytes,
        now: float,
        active_from: float | None = None,
        testing: bool = False,
    ) -> Path:
        """Write a new key and its DNS record; never replaces an existing key.

        Args:
            pem: the private key file's content (``private_key_pem(key)``).
            now: the creation time recorded in the ``.txt`` file.
            active_from: when the key table may start signing with it (default ``now``);
                a rotation leaves time to publish the record first.
            testing: publish the record with ``t=y``.

        Returns:
            The path of the ``.txt`` file holding the record to publish.

        Raises:
            ConfigError: the key exists already or a file cannot be written.
        """
        path = self.key_path(domain, selector)
        domain = path.parent.name
        for folder in (self.root, path.parent):
            try:
                folder.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create {folder}: {exc.strerror}") from None
        path.parent.chmod(0o700)
        if path.exists() or path.with_suffix(".txt").exists():
            raise ConfigError(f"{path} exists; choose another selector (keys are never replaced)")
        temporary = path.with_name(f".{path.name}.new")
        write_private(temporary, pem)
        try:
            # link() refuses to replace, so a key appearing meanwhile is not lost.
            os.link(temporary, path)
        except FileExistsError:
            raise ConfigError(f"{path} exists; keys are never replaced") from None
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
        finally:
            temporary.unlink(missing_ok=True)
        text = f"; created {_stamp(now)} by srsfwd ({key.spec})\n"
        if active_from is not None and active_from > now:
            text += f"; active from {_stamp(active_from)}\n"
        text += zone_line(selector, domain, key_record_text(key, testing=testing))
        txt = path.with_suffix(".txt")
        try:
            txt.write_text(text)
        except OSError as exc:
            raise ConfigError(f"cannot write {txt}: {exc.strerror}") from None
        return txt

    def load(self, domain: str, selector: str) -> DkimKey:
        """The private key of ``selector`` for ``domain``.

        Raises:
            KeyNotFoundError: no such key file.
            KeyFormatError: the file is readable by others, unreadable or not a key.
        """
        return read_key_file(self.key_path(domain, selector))

    def list_keys(self, domain: str | None = None) -> list[StoredKey]:
        """Every key in the store (or of ``domain``), sorted by domain then newest first.

        Raises:
            KeyFormatError: a key file that cannot be read.
        """
        if not self.root.is_dir():
            return []
        folders = [self.root / normalise_domain(domain)] if domain else sorted(self.root.iterdir())
        found: list[StoredKey] = []
        for folder in folders:
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            for path in sorted(folder.glob("*.key")):
                if path.name.startswith("."):
                    continue
                found.append(self._describe(folder.name, path))
        found.sort(key=lambda k: (k.domain, -k.created, k.selector))
        return found

    def newest(self, domain: str, *, now: float) -> list[StoredKey]:
        """The newest active key of each type for ``domain``: RSA first, then Ed25519 if any."""
        chosen: dict[str, StoredKey] = {}
        for stored in self.list_keys(domain):
            if stored.active_from <= now:
                chosen.setdefault(stored.key_type, stored)
        return [chosen[t] for t in ("rsa", "ed25519") if t in chosen]

    def _describe(self, domain: str, path: Path) -> StoredKey:
        key = read_key_file(path)
        try:
            notes = path.with_suffix(".txt").read_bytes()
        except OSError:
            notes = b""
        created = _read_stamp(_CREATED, notes) or path.stat().st_mtime
        active_from = _read_stamp(_ACTIVE, notes) or created
        return StoredKey(domain, path.stem, path, key.spec, created, active_from)


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, tz=UTC).strftime(_STAMP)


def _read_stamp(pattern: re.Pattern[bytes], notes: bytes) -> float | None:
    match = pattern.search(notes)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1).decode(), _STAMP).replace(tzinfo=UTC).timestamp()
    except (ValueError, UnicodeDecodeError):
        return None


def read_key_file(path: StrPath) -> DkimKey:
    """Read a private key file, refusing one that other users can read.

    Raises:
        KeyNotFoundError: no such file.
        KeyFormatError: open to others, unreadable, too big, or not a key.
    """
    path = Path(path)
    data, _ = read_private_file(
        path,
        what="key file",
        mode_problem=_key_mode_problem,
        limit=_MAX_KEY_FILE + 1,
        error=KeyFormatError,
        missing=KeyNotFoundError(f"no key file {path}"),
    )
    if len(data) > _MAX_KEY_FILE:
        raise KeyFormatError(f"key file {path} is too big to be a key")
    return load_private_key(data, name=f"key file {path}")


def _key_mode_problem(mode: int) -> str | None:
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return "is open to other users"
    return None


@dataclass(frozen=True, slots=True)
class DomainRule:
    """An override from ``[dkim.domains]``: sign as ``domain`` with ``selectors``."""

    domain: str
    selectors: tuple[str, ...] = ()  # empty: the store's newest keys of that domain


class KeyTable:
    """Which keys sign mail from which domain: config rules first, then the store layout."""

    def __init__(self, store: KeyStore, rules: Mapping[str, DomainRule] | None = None) -> None:
        self.store = store
        self.rules = dict(rules or {})

    @classmethod
    def from_config(cls, store: KeyStore, table: Mapping[str, Any]) -> KeyTable:
        """Build the table from the ``[dkim.domains]`` TOML table.

        Raises:
            ConfigError: a pattern or value of the wrong shape.
        """
        rules: dict[str, DomainRule] = {}
        for pattern, value in table.items():
            key = pattern.lower().rstrip(".")
            target = key.removeprefix("*.")
            normalise_domain(target)
            if isinstance(value, list):
                value = {"selectors": value}
            if isinstance(value, str):
                value = {"selectors": [value]}
            if not isinstance(value, dict) or not set(value) <= {"domain", "selectors"}:
                raise ConfigError(
                    f"[dkim.domains] {pattern!r}: give a list of selectors or"
                    " {{ domain = ..., selectors = [...] }}"
                )
            selectors = value.get("selectors", [])
            domain = value.get("domain", target)
            if not isinstance(domain, str) or not isinstance(selectors, list):
                raise ConfigError(f"[dkim.domains] {pattern!r}: wrong value types")
            rules[key] = DomainRule(
                normalise_domain(domain), tuple(check_selector(str(s)) for s in selectors)
            )
        return cls(store, rules)

    def rule_for(self, domain: str) -> DomainRule | None:
        """The rule for ``domain``: exact first, then the nearest ``*.parent`` pattern.

        Without a rule, a domain that has its own folder in the store signs as itself.
        A ``*.example.com`` rule covers subdomains only, never example.com itself.
        """
        name = normalise_domain(domain)
        if name in self.rules:
            return self.rules[name]
        labels = name.split(".")
        for i in range(1, len(labels) - 1):
            rule = self.rules.get("*." + ".".join(labels[i:]))
            if rule is not None:
                return rule
        if (self.store.root / name).is_dir():
            return DomainRule(name)
        return None

    def signing_keys(
        self, domain: str, *, now: float, selectors: tuple[str, ...] = ()
    ) -> list[SigningKey]:
        """The keys to sign mail from ``domain`` with (RSA first).

        Args:
            now: keys not active yet (a rotation in progress) are skipped.
            selectors: use these instead of the rule's or the newest.

        Raises:
            KeyNotFoundError: no rule and no key for ``domain``, or a named key is missing.
            KeyFormatError: a key file cannot be used.
        """
        rule = self.rule_for(domain)
        if rule is None:
            raise KeyNotFoundError(f"no DKIM key for {domain} in {self.store.root}")
        chosen = selectors or rule.selectors
        if not chosen:
            chosen = tuple(k.selector for k in self.store.newest(rule.domain, now=now))
        if not chosen:
            raise KeyNotFoundError(f"no DKIM key for {rule.domain} in {self.store.root}")
        keys = [SigningKey(rule.domain, s, self.store.load(rule.domain, s)) for s in chosen]
        keys.sort(key=lambda k: k.key.key_type != "rsa")
        return keys


def read_opendkim_tables(key_table: str, signing_table: str) -> dict[str, DomainRule]:
    """``[dkim.domains]`` rules equivalent to an OpenDKIM KeyTable and SigningTable.

    KeyTable lines: ``NAME DOMAIN:SELECTOR:KEYFILE``; SigningTable lines: ``PATTERN NAME``
    where PATTERN is ``example.com``, ``*@example.com`` or ``*.example.com`` (refile style).
    Key files are not copied: put them into the store as DOMAIN/SELECTOR.key.

    Raises:
        ConfigError: a line that cannot be read or names an unknown key.
    """
    keys: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(key_table.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        fields = parts[1].split(":") if len(parts) == 2 else []
        if len(fields) < 3:
            raise ConfigError(f"KeyTable line {number}: expected NAME DOMAIN:SELECTOR:KEYFILE")
        keys[parts[0]] = (fields[0], check_selector(fields[1]))
    rules: dict[str, DomainRule] = {}
    for number, line in enumerate(signing_table.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in keys:
            raise ConfigError(f"SigningTable line {number}: expected PATTERN KEYNAME from KeyTable")
        pattern = parts[0].split("@", 1)[-1]
        if pattern in ("*", ""):
            raise ConfigError(f"SigningTable line {number}: a catch-all would sign any domain")
        domain, selector = keys[parts[1]]
        if domain == "%":
            domain = pattern.removeprefix("*.")
        pattern = pattern.lower()
        old = rules.get(pattern)
        selectors = (old.selectors if old else ()) + (selector,)
        rules[pattern] = DomainRule(normalise_domain(domain), selectors)
    return rules
