"""Wiring: builds the long-lived objects from the configuration, once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from srsfwd.address import MAX_LOCAL_PART, read_domains_file
from srsfwd.clock import Clock
from srsfwd.config import Config, SRSSettings, StrPath
from srsfwd.config_schema import given
from srsfwd.dkim.settings import dkim_settings, dns_settings
from srsfwd.errors import ConfigError
from srsfwd.limits import LimitPolicy, SendingLimits
from srsfwd.secretfile import load_secrets
from srsfwd.srs import AliasStore, SRSRewriter
from srsfwd.stores import open_store
from srsfwd.stores.watched import WatchedStore

if TYPE_CHECKING:  # imported where used: a command that only rewrites starts faster
    from srsfwd.dns.resolver import Resolver
    from srsfwd.keystore import KeyTable

ALIAS_DATABASE_NAME = "srs-aliases.sqlite"
#: postsrsd's key prefix in Redis, so that its alias database keeps working.
SRS_ALIAS_PREFIX = "PostSRSd/"


def build_rewriter(
    config: Config,
    settings: SRSSettings | None = None,
    *,
    need_domain: bool = True,
    clock: Clock | None = None,
    max_local_part: int = MAX_LOCAL_PART,
    srs_options: bool = False,
    watch_store: bool = False,
) -> SRSRewriter:
    """An ``SRSRewriter`` from ``settings`` (by default the configuration's ``[srs]``).

    Args:
        srs_options: the caller has ``--secret-file`` and ``--domain`` options, which
            the errors then suggest.
        watch_store: log when the alias store (database mode) stops answering and when
            it answers again (``srsfwd.stores.watched``): for a daemon.

    Raises:
        ConfigError: no domain or secrets file, an unreadable file, or a bad value.
    """
    srs = settings or config.srs
    if srs.secrets_file is None:
        give = "give --secret-file or " if srs_options else ""
        raise ConfigError(f"no secrets file: {give}set [srs] secrets_file")
    if need_domain and not srs.domain:
        give = "give --domain or " if srs_options else ""
        raise ConfigError(f"no SRS domain: {give}set [srs] domain")
    # Reverse needs no domain of its own unless told to check it.
    domain = srs.domain or "srs.invalid"
    local_domains = list(srs.local_domains)
    if srs.local_domains_file is not None:
        try:
            local_domains += read_domains_file(srs.local_domains_file.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read domains file {srs.local_domains_file}: {exc}") from None
    store: AliasStore | None = None
    if srs.original_envelope == "database":
        where = srs.envelope_database or str(config.state_dir / ALIAS_DATABASE_NAME)
        store = open_store(
            where, base=config.base_dir, prefix=SRS_ALIAS_PREFIX, max_entries=srs.max_aliases
        )
        if watch_store:
            store = WatchedStore(store, where)
    try:
        return SRSRewriter(
            load_secrets(srs.secrets_file),
            domain,
            separator=srs.separator,
            hash_length=srs.hash_length,
            hash_alphabet=srs.hash_alphabet,
            hash_min=min(srs.hash_minimum, srs.hash_length),
            max_age_days=srs.max_age_days,
            local_domains=local_domains,
            always_rewrite=srs.always_rewrite,
            max_local_part=max_local_part,
            alias_store=store,
            clock=clock,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def build_resolver(
    config: Config,
    *,
    zone_files: Sequence[StrPath] = (),
    nameservers: Sequence[str] = (),
    port: int | None = None,
    timeout: float | None = None,
    clock: Clock | None = None,
) -> Resolver:
    """The one ``Resolver`` from ``[dns]``, with command-line values winning.

    Zone files (given, or configured when no nameserver is given) mean no network at
    all; otherwise the given or configured nameservers, or those of /etc/resolv.conf.

    Raises:
        ConfigError: a bad ``[dns]`` table, an unreadable zone file, no resolv.conf.
    """
    from srsfwd.dns.resolver import Resolver

    dns = dns_settings(config)
    zones = tuple(zone_files) or (() if nameservers else dns.zone_files)
    if zones:
        return Resolver.from_zone_file(*zones, clock=clock)
    servers = tuple(nameservers) or dns.nameservers
    wait = timeout if timeout is not None else dns.timeout
    if not servers:
        system = Resolver.from_system(timeout=wait, clock=clock)
        if port is None:
            return system
        servers = system.nameservers
    return Resolver(
        nameservers=servers, port=port if port is not None else dns.port, timeout=wait, clock=clock
    )


def build_key_table(config: Config, keys_dir: StrPath | None = None) -> KeyTable:
    """The DKIM key table: the store at ``keys_dir`` (or ``[dkim] keys_dir``) and its rules.

    Raises:
        ConfigError: a bad ``[dkim]`` table.
    """
    from srsfwd.keystore import KeyStore, KeyTable

    settings = dkim_settings(config)
    return KeyTable.from_config(KeyStore(keys_dir or settings.keys_dir), settings.domains)


LIMITS_DATABASE_NAME = "limits.sqlite"


def limits_store_location(config: Config) -> str:
    """Where the sending limits are counted: ``[limits] store`` (an SQLite path or a
    Redis URL), by default ``<state_dir>/limits.sqlite``."""
    return config.file.limits.store or str(config.state_dir / LIMITS_DATABASE_NAME)


def build_limits(
    config: Config, *, clock: Clock | None = None, create: bool = True
) -> SendingLimits:
    """The sending limits from the ``[limits]`` table (checked when it was loaded).

    With ``create=False`` a missing SQLite store is not created: it reads as empty.

    Raises:
        StoreError: the store cannot be opened.
    """
    store = open_store(
        limits_store_location(config), base=config.base_dir, prefix="srsfwd:", create=create
    )
    return SendingLimits(store, limit_policy(config), clock=clock)


def limit_policy(config: Config) -> LimitPolicy:
    """The limits of ``[limits]`` (checked when it was loaded); absent ones at their default."""
    values = given(config.file.limits)
    values.pop("store", None)
    return LimitPolicy(**values)
