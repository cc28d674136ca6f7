"""The ``[decide]`` and ``[pools.*]`` tables: their schema and their readers.

The decision itself (``srsfwd.pool``) is pure and takes a ``Policy``; this module turns
the checked configuration into that ``Policy``, the fact gathering's settings and the
pools' transports.

    [decide]
    accepted_domains = ["example.org"]   # our own sender domains
    trusted_relays = ["192.0.2.0/24"]    # submission hosts and our own MTAs
    dns_timeout = 5.0

    [pools.relay]
    transport = "relaypool"
    source_addresses = ["192.0.2.9"]
    helo = "rly1.fwd.example.net"
    dkim_sign = "srs-domain"             # "none" by default here; "auto" on normal only
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from srsfwd.address import DomainSet
from srsfwd.config import Config
from srsfwd.config_schema import ConfigTable, Seconds, Strings, as_list, check_authserv_id
from srsfwd.errors import ConfigError
from srsfwd.pool import DecideSettings, Policy, Pool, PoolSettings, SignWith


class DecideTable(ConfigTable, frozen=True):
    """The schema of the ``[decide]`` table (keys with ``_`` for ``-``)."""

    accepted_domains: list[str] | None = None
    aaaa_counts_as_a: bool | None = None
    accepted_requires_auth: bool | None = None
    trusted_relays: list[str] | None = None
    trusted_authserv_ids: list[str] | None = None
    authserv_id: str | None = None
    dns_timeout: Seconds | None = None

    def __post_init__(self) -> None:
        try:
            DomainSet(self.accepted_domains or ())
        except ValueError as exc:
            raise ValueError(f"accepted_domains: {exc}") from None
        for entry in self.trusted_relays or ():
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"trusted_relays: {entry!r} is not a network") from None
        check_authserv_id("authserv_id", self.authserv_id)


class PoolTable(ConfigTable, frozen=True):
    """The schema of one ``[pools.NAME]`` table."""

    transport: str | None = None
    source_addresses: Strings | None = None
    helo: str | None = None
    dkim_sign: SignWith | None = None

    def __post_init__(self) -> None:
        for address in as_list(self.source_addresses):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"source_addresses: {address!r} is not an IP address") from None


class PoolsTable(ConfigTable, frozen=True):
    """The schema of ``[pools]``: ``high-risk`` is also spelt ``high_risk``, ``highrisk``.

    The relay and high-risk pools never sign with the From domain's key: ``dkim_sign =
    "auto"`` is refused there.
    """

    normal: PoolTable | None = None
    relay: PoolTable | None = None
    high_risk: PoolTable | None = None

    def __post_init__(self) -> None:
        for name in ("relay", "high_risk"):
            table: PoolTable | None = getattr(self, name)
            if table is not None and table.dkim_sign == "auto":
                raise ValueError(f'{name}: dkim_sign must be "none" or "srs-domain" here')

    def pool(self, pool: Pool) -> PoolTable | None:
        """The table of ``pool``, when the file has one."""
        table: PoolTable | None = getattr(self, pool.name.lower())
        return table


def decide_settings(config: Config, extra_accepted: Iterable[str] = ()) -> DecideSettings:
    """``[decide]`` (checked when it was loaded) as the ``Policy`` and fact-gathering
    settings; the accepted domains are ``[decide]``'s, ``[srs] local_domains`` and
    ``extra_accepted`` (``--accepted-domain``), and the policy knows our SRS domain.

    Raises:
        ConfigError: an ``extra_accepted`` or ``[srs] local_domains`` entry that is not a
            domain.
    """
    table = config.file.decide
    domains = [*(table.accepted_domains or ()), *config.srs.local_domains, *extra_accepted]
    try:
        accepted = DomainSet(domains)
    except ValueError as exc:
        raise ConfigError(f"accepted domain: {exc}") from None
    flags: dict[str, Any] = {}
    if table.aaaa_counts_as_a is not None:
        flags["aaaa_counts_as_a"] = table.aaaa_counts_as_a
    if table.accepted_requires_auth is not None:
        flags["accepted_requires_auth"] = table.accepted_requires_auth
    srs_domain = config.srs.domain.lower().rstrip(".") if config.srs.domain else None
    return DecideSettings(
        policy=Policy(accepted=accepted, srs_domain=srs_domain, **flags),
        trusted_relays=tuple(table.trusted_relays or ()),
        trusted_authserv_ids=tuple(table.trusted_authserv_ids or ()),
        authserv_id=table.authserv_id,
        dns_timeout=None if table.dns_timeout is None else float(table.dns_timeout),
    )


def pools_from_config(config: Config) -> dict[Pool, PoolSettings]:
    """Every pool's settings from ``[pools.*]`` (checked when it was loaded).

    A pool that is not configured gets the transport named after it and no address.
    """
    found: dict[Pool, PoolSettings] = {}
    for pool in Pool:
        table = config.file.pools.pool(pool) or PoolTable()
        found[pool] = PoolSettings(
            pool,
            table.transport if table.transport is not None else pool.value,
            tuple(as_list(table.source_addresses)),
            table.helo or "",
            table.dkim_sign,
        )
    return found
